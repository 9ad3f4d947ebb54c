package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/slack-go/slack"
)

// Discord posts Slack-formatted messages to a Discord webhook's Slack-compatible endpoint (<webhook>/slack).
type Discord struct {
	cfg    Config
	client *http.Client
	url    string
}

func newDiscord(cfg Config, hc *http.Client) *Discord {
	target := cfg.Address
	if u, err := url.Parse(cfg.Address); err == nil && !strings.HasSuffix(u.Path, "/slack") {
		u.Path = path.Join(u.Path, "slack")
		target = u.String()
	}
	return &Discord{cfg: cfg, client: hc, url: target}
}

// Post sends the message.
func (d *Discord) Post(ctx context.Context, m Message) error {
	if err := slack.PostWebhookCustomHTTPContext(ctx, d.url, d.client, slackWebhookMessage(d.cfg, m)); err != nil {
		return fmt.Errorf("discord webhook %s: %w", Redact(d.url), stripURL(err))
	}
	return nil
}
