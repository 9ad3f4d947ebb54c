package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

var msg = Message{
	Title:    "podinfo.test",
	Text:     "Canary analysis failed, podinfo.test rolled back",
	Severity: "error",
	Fields: []Field{
		{Name: "Cluster", Value: "prod-eu"},
		{Name: "Target", Value: "podinfo"},
		{Name: "Check request-success-rate", Value: "request-success-rate 90.00 < 99"},
	},
}

// capture records one request: method, path, content type and the decoded JSON (or form) body.
type capture struct {
	method, path, ctype string
	json                map[string]any
	form                url.Values
	auth                string
}

func captureServer(t *testing.T, answer string) (*httptest.Server, *capture) {
	c := &capture{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.method, c.path, c.ctype, c.auth = r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization")
		raw, _ := io.ReadAll(r.Body)
		if c.ctype == "application/json" {
			_ = json.Unmarshal(raw, &c.json)
		} else {
			c.form, _ = url.ParseQuery(string(raw))
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, c
}

// wantSlackAttachment is the attachment every Slack-format backend must send for msg.
var wantSlackAttachment = map[string]any{
	"color":       "danger",
	"fallback":    "podinfo.test: Canary analysis failed, podinfo.test rolled back",
	"author_name": "podinfo.test",
	"text":        "Canary analysis failed, podinfo.test rolled back",
	"mrkdwn_in":   []any{"text"},
	"fields": []any{
		map[string]any{"title": "Cluster", "value": "prod-eu", "short": true},
		map[string]any{"title": "Target", "value": "podinfo", "short": true},
		map[string]any{"title": "Check request-success-rate", "value": "request-success-rate 90.00 < 99", "short": true},
	},
}

func attachment(t *testing.T, v any) map[string]any {
	list, ok := v.([]any)
	require.True(t, ok, "attachments: %v", v)
	require.Len(t, list, 1)
	a := list[0].(map[string]any)
	// slack-go sends a few zero-valued keys of its own; compare the ones a reader sees.
	out := map[string]any{}
	for k := range wantSlackAttachment {
		out[k] = a[k]
	}
	return out
}

func TestSlackIncomingWebhookPayload(t *testing.T) {
	srv, c := captureServer(t, "ok")
	n, err := New(Config{Type: "slack", Address: srv.URL + "/services/T0/B0/XYZ", Channel: "#deploys", Username: "flagger"})
	require.NoError(t, err)
	require.NoError(t, n.Post(context.Background(), msg))
	require.Equal(t, http.MethodPost, c.method)
	require.Equal(t, "/services/T0/B0/XYZ", c.path)
	require.Equal(t, "#deploys", c.json["channel"])
	require.Equal(t, "flagger", c.json["username"])
	require.Equal(t, ":rocket:", c.json["icon_emoji"])
	require.Equal(t, wantSlackAttachment, attachment(t, c.json["attachments"]))
}

// With a token, Slack is asked through the Web API's chat.postMessage (slack-go pointed at a local server).
func TestSlackBotTokenPostsToChannel(t *testing.T) {
	srv, c := captureServer(t, `{"ok":true,"channel":"C123","ts":"1700000000.000100"}`)
	n, err := New(Config{Type: "slack", Address: srv.URL + "/api/", Token: "xoxb-secret", Channel: "C123", Username: "canaryflow"})
	require.NoError(t, err)
	require.NoError(t, n.Post(context.Background(), Message{Title: "podinfo.test", Text: "Promotion completed! podinfo.test", Severity: "info",
		Fields: []Field{{Name: "Weight", Value: "0%"}}}))
	require.Equal(t, "/api/chat.postMessage", c.path)
	require.Equal(t, "application/x-www-form-urlencoded", c.ctype)
	require.Equal(t, "xoxb-secret", c.form.Get("token"))
	require.Equal(t, "C123", c.form.Get("channel"))
	require.Equal(t, "canaryflow", c.form.Get("username"))
	var atts []map[string]any
	require.NoError(t, json.Unmarshal([]byte(c.form.Get("attachments")), &atts))
	require.Len(t, atts, 1)
	require.Equal(t, "good", atts[0]["color"])
	require.Equal(t, "Promotion completed! podinfo.test", atts[0]["text"])
	require.Equal(t, []any{map[string]any{"title": "Weight", "value": "0%", "short": true}}, atts[0]["fields"])

	_, err = New(Config{Type: "slack", Token: "xoxb"})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestSlackAPIErrorIsReported(t *testing.T) {
	srv, _ := captureServer(t, `{"ok":false,"error":"channel_not_found"}`)
	n, err := New(Config{Type: "slack", Address: srv.URL + "/api/", Token: "xoxb-secret", Channel: "C404"})
	require.NoError(t, err)
	err = n.Post(context.Background(), msg)
	require.ErrorContains(t, err, "channel_not_found")
	require.NotContains(t, err.Error(), "xoxb-secret")
}

// Discord takes Slack's format at <webhook>/slack; Rocket.Chat at the webhook itself.
func TestDiscordAndRocketUseSlackFormat(t *testing.T) {
	srv, c := captureServer(t, "ok")
	n, err := New(Config{Type: "discord", Address: srv.URL + "/api/webhooks/1/tok", Channel: "deploys", Username: "canaryflow"})
	require.NoError(t, err)
	require.NoError(t, n.Post(context.Background(), msg))
	require.Equal(t, "/api/webhooks/1/tok/slack", c.path)
	require.Equal(t, "deploys", c.json["channel"])
	require.Equal(t, wantSlackAttachment, attachment(t, c.json["attachments"]))

	srv, c = captureServer(t, `{"success":true}`)
	n, err = New(Config{Type: "rocket", Address: srv.URL + "/hooks/abc/def", Channel: "#deploys"})
	require.NoError(t, err)
	require.NoError(t, n.Post(context.Background(), msg))
	require.Equal(t, "/hooks/abc/def", c.path)
	require.Equal(t, "canaryflow", c.json["username"])
	require.Equal(t, wantSlackAttachment, attachment(t, c.json["attachments"]))
}

func TestMSTeamsAdaptiveCard(t *testing.T) {
	srv, c := captureServer(t, "1")
	n, err := New(Config{Type: "msteams", Address: srv.URL + "/workflows/abc"})
	require.NoError(t, err)
	require.NoError(t, n.Post(context.Background(), msg))
	require.Equal(t, "application/json", c.ctype)
	require.Equal(t, map[string]any{
		"type": "message",
		"attachments": []any{map[string]any{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"content": map[string]any{
				"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
				"type":    "AdaptiveCard",
				"version": "1.4",
				"body": []any{
					map[string]any{"type": "TextBlock", "text": "podinfo.test", "weight": "Bolder", "size": "Medium"},
					map[string]any{"type": "TextBlock", "text": "Canary analysis failed, podinfo.test rolled back", "color": "Attention", "wrap": true},
					map[string]any{"type": "FactSet", "facts": []any{
						map[string]any{"title": "Cluster", "value": "prod-eu"},
						map[string]any{"title": "Target", "value": "podinfo"},
						map[string]any{"title": "Check request-success-rate", "value": "request-success-rate 90.00 < 99"},
					}},
				},
			},
		}},
	}, c.json)
}

func TestGoogleChatCard(t *testing.T) {
	srv, c := captureServer(t, "{}")
	n, err := New(Config{Type: "gchat", Address: srv.URL + "/v1/spaces/AAA/messages?key=k&token=t"})
	require.NoError(t, err)
	require.NoError(t, n.Post(context.Background(), msg))
	require.Equal(t, "/v1/spaces/AAA/messages", c.path)
	require.Equal(t, map[string]any{
		"text": "podinfo.test: Canary analysis failed, podinfo.test rolled back",
		"cardsV2": []any{map[string]any{
			"cardId": "canaryflow",
			"card": map[string]any{
				"header": map[string]any{"title": "podinfo.test", "subtitle": "canaryflow"},
				"sections": []any{map[string]any{"widgets": []any{
					map[string]any{"textParagraph": map[string]any{"text": `<font color="#d93025">Canary analysis failed, podinfo.test rolled back</font>`}},
					map[string]any{"decoratedText": map[string]any{"topLabel": "Cluster", "text": "prod-eu"}},
					map[string]any{"decoratedText": map[string]any{"topLabel": "Target", "text": "podinfo"}},
					map[string]any{"decoratedText": map[string]any{"topLabel": "Check request-success-rate", "text": "request-success-rate 90.00 < 99"}},
				}}},
			},
		}},
	}, c.json)
}

// A failed delivery names the host, never the token in the webhook's path.
func TestDeliveryErrorsKeepTheWebhookTokenOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404) }))
	defer srv.Close()
	for _, typ := range []string{"slack", "discord", "rocket", "msteams", "gchat"} {
		n, err := New(Config{Type: typ, Address: srv.URL + "/hooks/SECRET-TOKEN"})
		require.NoError(t, err)
		err = n.Post(context.Background(), msg)
		require.Error(t, err, typ)
		require.NotContains(t, err.Error(), "SECRET-TOKEN", typ)
	}
	_, err := New(Config{Type: "pagerduty", Address: srv.URL})
	require.ErrorIs(t, err, ErrInvalidConfig)
}
