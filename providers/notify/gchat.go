package notify

import (
	"context"
	"net/http"
)

// GChat posts to a Google Chat space's incoming webhook: a plain-text line (shown in notifications) and a card
// (cardsV2) with the facts.
type GChat struct {
	cfg    Config
	client *http.Client
}

type gchatMessage struct {
	Text    string      `json:"text"`
	CardsV2 []gchatCard `json:"cardsV2"`
}

type gchatCard struct {
	CardID string        `json:"cardId"`
	Card   gchatCardBody `json:"card"`
}

type gchatCardBody struct {
	Header   gchatHeader    `json:"header"`
	Sections []gchatSection `json:"sections"`
}

type gchatHeader struct {
	Title    string `json:"title"`
	Subtitle string `json:"subtitle"`
}

type gchatSection struct {
	Widgets []gchatWidget `json:"widgets"`
}

type gchatWidget struct {
	DecoratedText *gchatDecoratedText `json:"decoratedText,omitempty"`
	TextParagraph *gchatText          `json:"textParagraph,omitempty"`
}

type gchatDecoratedText struct {
	TopLabel string `json:"topLabel"`
	Text     string `json:"text"`
}

type gchatText struct {
	Text string `json:"text"`
}

// Post sends the message.
func (g *GChat) Post(ctx context.Context, m Message) error {
	text := m.Text
	if isError(m) {
		text = `<font color="#d93025">` + m.Text + `</font>`
	}
	widgets := []gchatWidget{{TextParagraph: &gchatText{Text: text}}}
	for _, f := range m.Fields {
		widgets = append(widgets, gchatWidget{DecoratedText: &gchatDecoratedText{TopLabel: f.Name, Text: f.Value}})
	}
	msg := gchatMessage{
		Text: m.Title + ": " + m.Text,
		CardsV2: []gchatCard{{
			CardID: "canaryflow",
			Card: gchatCardBody{
				Header:   gchatHeader{Title: m.Title, Subtitle: "canaryflow"},
				Sections: []gchatSection{{Widgets: widgets}},
			},
		}},
	}
	return postJSON(ctx, g.client, g.cfg.Address, msg)
}
