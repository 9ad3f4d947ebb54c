// Package webhook speaks Flagger's webhook protocol: a JSON POST whose answer 200, 201 or 202 means yes, anything
// else (or no answer in time) means no, with the response body as the reason. It knows nothing of Temporal.
package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MaxReason caps the response body kept as the reason, so a chatty hook cannot bloat workflow history.
const MaxReason = 1024

// Request is one webhook call with its own timeout and retries.
type Request struct {
	URL     string
	Payload any
	// Timeout bounds each attempt (default 10s).
	Timeout time.Duration
	// Retries is the number of extra attempts after a failed one.
	Retries int
	// DisableTLS skips verification of the hook's certificate.
	DisableTLS bool
	// Backoff is the pause between attempts (default 1s, doubling up to 10s).
	Backoff time.Duration
}

// Result is what the hook said.
type Result struct {
	Passed     bool
	StatusCode int
	// Reason is the trimmed, capped response body, or the transport error with the URL reduced to scheme and host.
	Reason   string
	Attempts int
}

// Client calls webhooks.
type Client struct {
	// HTTPClient returns the client for a call; nil means a fresh client per call with the given TLS setting.
	HTTPClient func(disableTLS bool) *http.Client
}

// ErrInvalidURL is a hook URL that cannot be called at all: a permanent problem of the spec.
var ErrInvalidURL = errors.New("invalid webhook URL")

// Passed reports whether a status code means yes in Flagger's protocol.
func Passed(code int) bool {
	return code == http.StatusOK || code == http.StatusCreated || code == http.StatusAccepted
}

// Call posts the payload, retrying a "no" or a transport failure up to r.Retries times, and returns the last answer.
// FirstPause and MaxPause bound the pauses between a hook's attempts: the first pause (unless Request.Backoff
// says otherwise), doubling after each attempt up to the most.
const (
	FirstPause = time.Second
	MaxPause   = 10 * time.Second
)

// Pauses is how long Call pauses in all between the attempts of a hook with retries, with the default first pause.
// The workflow sizes a webhook activity's deadline with it.
func Pauses(retries int) time.Duration {
	var total time.Duration
	for i, p := 0, FirstPause; i < retries; i++ {
		total += p
		p = min(2*p, MaxPause)
	}
	return total
}

// Call sends one webhook request. Only an invalid URL or an unencodable payload is an error; the hook saying
// no is a Result.
func (c Client) Call(ctx context.Context, r Request) (Result, error) {
	u, err := url.Parse(r.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return Result{}, fmt.Errorf("%w: %s", ErrInvalidURL, redact(r.URL))
	}
	body, err := json.Marshal(r.Payload)
	if err != nil {
		return Result{}, fmt.Errorf("encoding webhook payload: %w", err)
	}
	if r.Timeout <= 0 {
		r.Timeout = 10 * time.Second
	}
	backoff := r.Backoff
	if backoff <= 0 {
		backoff = FirstPause
	}
	hc := c.client(r.DisableTLS)
	var res Result
	for attempt := 1; attempt <= r.Retries+1; attempt++ {
		res = c.once(ctx, hc, r, body)
		res.Attempts = attempt
		if res.Passed || ctx.Err() != nil || attempt == r.Retries+1 {
			break
		}
		select {
		case <-ctx.Done():
			return res, nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, MaxPause)
	}
	return res, nil
}

func (c Client) client(disableTLS bool) *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient(disableTLS)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	if disableTLS {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the spec's disableTLS asks for it
	}
	return &http.Client{Transport: t}
}

func (c Client) once(ctx context.Context, hc *http.Client, r Request, body []byte) Result {
	ctx, cancel := context.WithTimeout(ctx, r.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		return Result{Reason: "building request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return Result{Reason: fmt.Sprintf("no answer from %s within %s", redact(r.URL), r.Timeout)}
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return Result{Reason: fmt.Sprintf("calling %s: %v", redact(r.URL), err)}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, MaxReason+1))
	reason := strings.TrimSpace(string(raw))
	if len(reason) > MaxReason {
		reason = strings.ToValidUTF8(reason[:MaxReason], "") + "…"
	}
	if reason == "" && !Passed(resp.StatusCode) {
		reason = resp.Status
	}
	return Result{Passed: Passed(resp.StatusCode), StatusCode: resp.StatusCode, Reason: reason}
}

// redact keeps scheme and host of a URL: hook URLs may carry tokens in their path or query.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<invalid URL>"
	}
	return u.Scheme + "://" + u.Host
}
