package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/slack-go/slack"
)

// SlackWebhook posts to a Slack incoming webhook.
type SlackWebhook struct {
	cfg    Config
	client *http.Client
}

// SlackBot posts with a bot token to a channel through chat.postMessage. Config.Address, when set, is the Web
// API's base URL (default https://slack.com/api/).
type SlackBot struct {
	cfg Config
	api *slack.Client
}

func newSlackBot(cfg Config, hc *http.Client) (*SlackBot, error) {
	if cfg.Channel == "" {
		return nil, fmt.Errorf("%w: slack with a token needs a channel", ErrInvalidConfig)
	}
	opts := []slack.Option{slack.OptionHTTPClient(hc)}
	if cfg.Address != "" {
		opts = append(opts, slack.OptionAPIURL(strings.TrimSuffix(cfg.Address, "/")+"/"))
	}
	return &SlackBot{cfg: cfg, api: slack.New(cfg.Token, opts...)}, nil
}

// slackAttachment is the message as Flagger shows it in Slack: coloured bar, canary as author, facts as fields.
func slackAttachment(m Message) slack.Attachment {
	color := "good"
	switch m.Severity {
	case "error":
		color = "danger"
	case "warn":
		color = "warning"
	}
	fields := make([]slack.AttachmentField, 0, len(m.Fields))
	for _, f := range m.Fields {
		fields = append(fields, slack.AttachmentField{Title: f.Name, Value: f.Value, Short: len(f.Value) < 40})
	}
	return slack.Attachment{
		Color:      color,
		AuthorName: m.Title,
		Fallback:   m.Title + ": " + m.Text,
		Text:       m.Text,
		MarkdownIn: []string{"text"},
		Fields:     fields,
	}
}

func slackWebhookMessage(cfg Config, m Message) *slack.WebhookMessage {
	return &slack.WebhookMessage{
		Channel:     cfg.Channel,
		Username:    cfg.Username,
		IconEmoji:   ":rocket:",
		Attachments: []slack.Attachment{slackAttachment(m)},
	}
}

// Post sends the message to the incoming webhook.
func (s *SlackWebhook) Post(ctx context.Context, m Message) error {
	if err := slack.PostWebhookCustomHTTPContext(ctx, s.cfg.Address, s.client, slackWebhookMessage(s.cfg, m)); err != nil {
		return fmt.Errorf("slack webhook %s: %w", Redact(s.cfg.Address), stripURL(err))
	}
	return nil
}

// Post sends the message to the configured channel.
func (s *SlackBot) Post(ctx context.Context, m Message) error {
	_, _, err := s.api.PostMessageContext(ctx, s.cfg.Channel,
		slack.MsgOptionAttachments(slackAttachment(m)),
		slack.MsgOptionUsername(s.cfg.Username),
		slack.MsgOptionIconEmoji(":rocket:"),
	)
	if err != nil {
		return fmt.Errorf("slack chat.postMessage to %s: %w", s.cfg.Channel, stripURL(err))
	}
	return nil
}
