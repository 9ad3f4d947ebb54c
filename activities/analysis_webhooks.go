package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/webhook"
)

// CallWebhook calls one webhook with Flagger's protocol: a JSON POST of the payload, with the hook's metadata
// merged under the payload's own (event fields win), the hook's timeout per attempt and hook.Retries extra
// attempts. Status 200, 201 or 202 passes; anything else, or no answer in time, is Passed false with the response
// body as the reason. Only a URL that cannot be called is an error (non-retryable InvalidWebhook).
func (a *Analysis) CallWebhook(ctx context.Context, in WebhookInput) (WebhookResult, error) {
	h := in.Hook
	payload := in.Payload
	meta := make(map[string]string, len(payload.Metadata)+len(h.MetadataMap()))
	for k, v := range h.MetadataMap() {
		meta[k] = v
	}
	for k, v := range payload.Metadata {
		meta[k] = v
	}
	payload.Metadata = meta
	hookType := h.Type
	if hookType == "" {
		hookType = v1beta1.RolloutHook
	}
	c := webhook.Client{HTTPClient: func(disableTLS bool) *http.Client { return a.webhookClient(disableTLS) }}
	r, err := c.Call(ctx, webhook.Request{
		URL: h.URL, Payload: payload, Timeout: h.TimeoutDuration(), Retries: max(h.Retries, 0),
		DisableTLS: h.DisableTLS, Backoff: a.WebhookBackoff,
	})
	if err != nil {
		if errors.Is(err, webhook.ErrInvalidURL) {
			return WebhookResult{}, invalid(ErrTypeInvalidWebhook, fmt.Sprintf("webhook %s (%s): %v", h.Name, hookType, err), nil)
		}
		return WebhookResult{}, fmt.Errorf("webhook %s (%s): %w", h.Name, hookType, err)
	}
	a.log().Debug("webhook called", zap.String("hook", h.Name), zap.String("type", string(hookType)),
		zap.Bool("passed", r.Passed), zap.Int("status", r.StatusCode), zap.Int("attempts", r.Attempts))
	return WebhookResult{
		Name: h.Name, Type: hookType, Passed: r.Passed, StatusCode: r.StatusCode, Reason: r.Reason, Attempts: r.Attempts,
	}, nil
}

// webhookClient has no overall timeout of its own: the hook's timeout bounds each attempt.
func (a *Analysis) webhookClient(disableTLS bool) *http.Client {
	c := *a.httpClient(disableTLS)
	c.Timeout = 0
	return &c
}

// EventWebhookPayload is the payload of an event webhook for ev, as Flagger sends it: metadata eventMessage,
// eventType (Normal, or Warning for warn and error events) and timestamp (milliseconds since the epoch, from the
// event's workflow time), plus event (canaryflow's event type). It is deterministic, so workflows may call it.
func EventWebhookPayload(ev Event) WebhookPayload {
	kind := "Normal"
	if ev.Severity == v1beta1.SeverityWarn || ev.Severity == v1beta1.SeverityError {
		kind = "Warning"
	}
	return WebhookPayload{
		Name:      ev.Canary.Name,
		Namespace: ev.Canary.Namespace,
		Phase:     ev.Phase,
		Checksum:  ev.Revision,
		Metadata: map[string]string{
			"eventMessage": EventText(ev),
			"eventType":    kind,
			"timestamp":    strconv.FormatInt(ev.Timestamp.UnixMilli(), 10),
			"event":        string(ev.Type),
		},
	}
}
