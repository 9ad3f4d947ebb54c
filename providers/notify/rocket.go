package notify

import (
	"context"
	"fmt"
	"net/http"

	"github.com/slack-go/slack"
)

// Rocket posts to a Rocket.Chat incoming webhook, which accepts Slack's message format.
type Rocket struct {
	cfg    Config
	client *http.Client
}

// Post sends the message.
func (r *Rocket) Post(ctx context.Context, m Message) error {
	if err := slack.PostWebhookCustomHTTPContext(ctx, r.cfg.Address, r.client, slackWebhookMessage(r.cfg, m)); err != nil {
		return fmt.Errorf("rocket webhook %s: %w", Redact(r.cfg.Address), stripURL(err))
	}
	return nil
}
