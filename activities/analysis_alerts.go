package activities

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/notify"
)

// AlertProvider Secret keys (as Flagger): they override the spec's address, token and proxy.
const (
	AlertSecretAddressKey = "address"
	AlertSecretTokenKey   = "token"
	AlertSecretProxyKey   = "proxy"
)

// SendAlerts sends one event to every alert whose severity admits it (info gets everything, warn gets warn and
// error, error gets error only, as Flagger). AlertProvider addresses and tokens are read from their Secrets here.
// A delivery failure is recorded in the result and never fails the activity or the rollout.
func (a *Analysis) SendAlerts(ctx context.Context, in AlertInput) (AlertResult, error) {
	var out AlertResult
	msg := AlertMessage(in.Event, a.ClusterName)
	for _, al := range in.Alerts {
		if !SeverityAdmits(al.Severity, in.Event.Severity) {
			out.Filtered = append(out.Filtered, al.Name)
			continue
		}
		if err := a.sendAlert(ctx, al, in, msg); err != nil {
			if out.Failed == nil {
				out.Failed = map[string]string{}
			}
			out.Failed[al.Name] = err.Error()
			a.log().Warn("alert not delivered", zap.String("alert", al.Name), zap.Error(err))
			continue
		}
		out.Sent = append(out.Sent, al.Name)
	}
	return out, nil
}

func (a *Analysis) sendAlert(ctx context.Context, al v1beta1.CanaryAlert, in AlertInput, msg notify.Message) error {
	ns := al.ProviderRef.Namespace
	var p *v1beta1.AlertProvider
	for i := range in.Providers {
		if in.Providers[i].Name == al.ProviderRef.Name && in.Providers[i].Namespace == ns {
			p = &in.Providers[i]
			break
		}
	}
	if p == nil {
		return fmt.Errorf("AlertProvider %s/%s is not in the input", ns, al.ProviderRef.Name)
	}
	cfg := notify.Config{
		Type: p.Spec.Type, Address: p.Spec.Address, Channel: p.Spec.Channel, Username: p.Spec.Username,
		Proxy: p.Spec.Proxy, HTTPClient: a.httpClient(false),
	}
	if p.Spec.SecretRef != nil && p.Spec.SecretRef.Name != "" {
		data, err := a.readSecret(ctx, ns, p.Spec.SecretRef.Name)
		if err != nil {
			return fmt.Errorf("AlertProvider %s/%s secretRef: %w", ns, p.Name, err)
		}
		if v := strings.TrimSpace(string(data[AlertSecretAddressKey])); v != "" {
			cfg.Address = v
		}
		if v := strings.TrimSpace(string(data[AlertSecretTokenKey])); v != "" {
			cfg.Token = v
		}
		if v := strings.TrimSpace(string(data[AlertSecretProxyKey])); v != "" {
			cfg.Proxy = v
		}
	}
	n, err := notify.New(cfg)
	if err != nil {
		return fmt.Errorf("AlertProvider %s/%s: %w", ns, p.Name, err)
	}
	if err := n.Post(ctx, msg); err != nil {
		return fmt.Errorf("AlertProvider %s/%s: %w", ns, p.Name, err)
	}
	return nil
}

// SeverityAdmits reports whether an alert of severity alert receives an event of severity event.
func SeverityAdmits(alert, event v1beta1.AlertSeverity) bool {
	rank := func(s v1beta1.AlertSeverity) int {
		switch s {
		case v1beta1.SeverityWarn:
			return 1
		case v1beta1.SeverityError:
			return 2
		}
		return 0
	}
	return rank(event) >= rank(alert)
}

// EventText is the event's sentence: its Message when the workflow wrote one, else a default per type.
func EventText(ev Event) string {
	if ev.Message != "" {
		return ev.Message
	}
	id := ev.Canary.Name + "." + ev.Canary.Namespace
	switch ev.Type {
	case EventInitialized:
		return "Initialization done! " + id
	case EventNewRevision:
		return "New revision detected! Scaling up " + id
	case EventWaitingApproval:
		return "Waiting for approval of " + id
	case EventApproved:
		return id + " approved"
	case EventAdvanced:
		return fmt.Sprintf("Advance %s canary weight %d", id, ev.Weight)
	case EventHalted:
		return "Halt " + id + " advancement"
	case EventRolledBack:
		return "Canary analysis failed, " + id + " rolled back"
	case EventPromoted:
		return "Promotion completed! " + id
	case EventAborted:
		return "Rollout of " + id + " aborted"
	}
	return string(ev.Type) + " " + id
}

// AlertMessage renders an event as a chat message: the sentence and the facts a reader needs (cluster, target,
// phase, revision, weight, failed checks and each failing check's message).
func AlertMessage(ev Event, cluster string) notify.Message {
	m := notify.Message{
		Title:    ev.Canary.Name + "." + ev.Canary.Namespace,
		Text:     EventText(ev),
		Severity: string(ev.Severity),
	}
	add := func(name, value string) {
		if value != "" {
			m.Fields = append(m.Fields, notify.Field{Name: name, Value: value})
		}
	}
	add("Cluster", cluster)
	add("Target", ev.Canary.Target)
	add("Event", string(ev.Type))
	add("Phase", ev.Phase)
	add("Revision", ev.Revision)
	add("Weight", strconv.Itoa(ev.Weight)+"%")
	add("Failed checks", strconv.Itoa(ev.FailedChecks))
	for _, c := range ev.Checks {
		if c.Verdict == VerdictPass {
			continue
		}
		add("Check "+c.Metric, c.Message)
	}
	return m
}
