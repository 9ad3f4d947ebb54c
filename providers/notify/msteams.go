package notify

import (
	"context"
	"net/http"
)

// MSTeams posts an Adaptive Card to a Teams webhook (a Workflows webhook or a legacy incoming webhook; both take
// the message envelope with the card as an attachment).
type MSTeams struct {
	cfg    Config
	client *http.Client
}

type teamsMessage struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string         `json:"$schema"`
	Type    string         `json:"type"`
	Version string         `json:"version"`
	Body    []teamsElement `json:"body"`
}

type teamsElement struct {
	Type   string      `json:"type"`
	Text   string      `json:"text,omitempty"`
	Weight string      `json:"weight,omitempty"`
	Size   string      `json:"size,omitempty"`
	Color  string      `json:"color,omitempty"`
	Wrap   bool        `json:"wrap,omitempty"`
	Facts  []teamsFact `json:"facts,omitempty"`
}

type teamsFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

// Post sends the message.
func (t *MSTeams) Post(ctx context.Context, m Message) error {
	color := "Good"
	switch m.Severity {
	case "error":
		color = "Attention"
	case "warn":
		color = "Warning"
	}
	facts := make([]teamsFact, 0, len(m.Fields))
	for _, f := range m.Fields {
		facts = append(facts, teamsFact{Title: f.Name, Value: f.Value})
	}
	body := []teamsElement{
		{Type: "TextBlock", Text: m.Title, Weight: "Bolder", Size: "Medium"},
		{Type: "TextBlock", Text: m.Text, Color: color, Wrap: true},
	}
	if len(facts) > 0 {
		body = append(body, teamsElement{Type: "FactSet", Facts: facts})
	}
	msg := teamsMessage{
		Type: "message",
		Attachments: []teamsAttachment{{
			ContentType: "application/vnd.microsoft.card.adaptive",
			Content: teamsCard{
				Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
				Type:    "AdaptiveCard",
				Version: "1.4",
				Body:    body,
			},
		}},
	}
	return postJSON(ctx, t.client, t.cfg.Address, msg)
}
