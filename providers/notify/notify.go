// Package notify posts rollout events to chat systems (Slack, Microsoft Teams, Discord, Rocket.Chat, Google Chat).
// Each backend is one small file; New picks one by the AlertProvider's type. It knows nothing of Temporal.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Field is one labelled fact of a message (cluster, target, weight, failed checks, …).
type Field struct {
	Name  string
	Value string
}

// Message is what every backend renders in its own format.
type Message struct {
	// Title names the canary: "<name>.<namespace>".
	Title string
	// Text is the event in one sentence.
	Text string
	// Severity is info, warn or error; error messages are shown in red where the backend has colours.
	Severity string
	Fields   []Field
}

// Notifier posts a message.
type Notifier interface {
	Post(ctx context.Context, m Message) error
}

// Config is an AlertProvider resolved: its Secret's address/token/proxy already merged in.
type Config struct {
	// Type is slack, msteams, discord, rocket or gchat.
	Type     string
	Address  string
	Token    string
	Channel  string
	Username string
	Proxy    string
	// HTTPClient sends the requests; nil means a client with a 15s timeout (through Proxy when set).
	HTTPClient *http.Client
}

// ErrInvalidConfig is an AlertProvider that cannot be used as written (unknown type, missing address).
var ErrInvalidConfig = errors.New("invalid alert provider")

// New builds the notifier for cfg.Type.
func New(cfg Config) (Notifier, error) {
	if cfg.Username == "" {
		cfg.Username = "canaryflow"
	}
	hc, err := cfg.client()
	if err != nil {
		return nil, err
	}
	typ := strings.ToLower(cfg.Type)
	if typ == "slack" && cfg.Token != "" {
		return newSlackBot(cfg, hc)
	}
	if cfg.Address == "" {
		return nil, fmt.Errorf("%w: %s needs an address (spec.address or the Secret's address key)", ErrInvalidConfig, cfg.Type)
	}
	if u, err := url.Parse(cfg.Address); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%w: %s address %s is not an http(s) URL", ErrInvalidConfig, cfg.Type, Redact(cfg.Address))
	}
	switch typ {
	case "slack":
		return &SlackWebhook{cfg: cfg, client: hc}, nil
	case "discord":
		return newDiscord(cfg, hc), nil
	case "rocket":
		return &Rocket{cfg: cfg, client: hc}, nil
	case "msteams":
		return &MSTeams{cfg: cfg, client: hc}, nil
	case "gchat":
		return &GChat{cfg: cfg, client: hc}, nil
	default:
		return nil, fmt.Errorf("%w: unknown type %q (known: slack, msteams, discord, rocket, gchat)", ErrInvalidConfig, cfg.Type)
	}
}

func (c Config) client() (*http.Client, error) {
	if c.HTTPClient != nil && c.Proxy == "" {
		return c.HTTPClient, nil
	}
	base := c.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: 15 * time.Second}
	}
	if c.Proxy == "" {
		return base, nil
	}
	p, err := url.Parse(c.Proxy)
	if err != nil || p.Host == "" {
		return nil, fmt.Errorf("%w: proxy %s is not a URL", ErrInvalidConfig, Redact(c.Proxy))
	}
	var t *http.Transport
	if bt, ok := base.Transport.(*http.Transport); ok {
		t = bt.Clone()
	} else {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	t.Proxy = http.ProxyURL(p)
	hc := *base
	hc.Transport = t
	return &hc, nil
}

// Redact keeps scheme and host of a URL: chat webhook URLs carry their token in the path.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid URL>"
	}
	return u.Scheme + "://" + u.Host
}

// postJSON posts v as JSON; any answer but 2xx is an error with the (capped) body, never the URL's path.
func postJSON(ctx context.Context, hc *http.Client, address string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding message: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, address, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("posting to %s: %w", Redact(address), stripURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %s: %w", Redact(address), stripURL(err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("posting to %s: %s: %s", Redact(address), resp.Status, strings.TrimSpace(string(raw)))
	}
	return nil
}

func stripURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

func isError(m Message) bool { return m.Severity == "error" }
