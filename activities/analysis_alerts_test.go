package activities_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

func TestSeverityFilteringAsFlagger(t *testing.T) {
	for _, tc := range []struct {
		alert, event v1beta1.AlertSeverity
		want         bool
	}{
		{"info", "info", true}, {"info", "warn", true}, {"info", "error", true},
		{"warn", "info", false}, {"warn", "warn", true}, {"warn", "error", true},
		{"error", "info", false}, {"error", "warn", false}, {"error", "error", true},
		{"", "info", true},
	} {
		require.Equal(t, tc.want, activities.SeverityAdmits(tc.alert, tc.event), "%s alert, %s event", tc.alert, tc.event)
	}
}

// chatSink is a Slack-compatible webhook that records what each path received.
type chatSink struct {
	*httptest.Server
	mu  sync.Mutex
	got map[string][]map[string]any
}

func newChatSink(t *testing.T) *chatSink {
	s := &chatSink{got: map[string][]map[string]any{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		s.mu.Lock()
		s.got[r.URL.Path] = append(s.got[r.URL.Path], m)
		s.mu.Unlock()
		if r.URL.Path == "/broken/SECRET-PATH" {
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestSendAlertsFiltersBySeverityResolvesSecretsAndDescribesTheEvent(t *testing.T) {
	sink := newChatSink(t)
	prov := func(name, typ, address, secret string) v1beta1.AlertProvider {
		p := v1beta1.AlertProvider{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test"},
			Spec: v1beta1.AlertProviderSpec{Type: typ, Address: address, Channel: "#deploys"}}
		if secret != "" {
			p.Spec.SecretRef = &corev1.LocalObjectReference{Name: secret}
		}
		return p
	}
	a := &activities.Analysis{ClusterName: "prod-eu", Secrets: fakeSecrets{
		"test/slack-url": {"address": []byte(sink.URL + "/services/T/B/from-secret")},
	}}
	ref := func(n string) v1beta1.CrossNamespaceObjectReference {
		return v1beta1.CrossNamespaceObjectReference{Name: n}
	}
	in := defaultedAlerts(activities.AlertInput{
		Event: activities.Event{Type: activities.EventRolledBack, Severity: v1beta1.SeverityError, Phase: "Failed", Revision: "5d8f",
			Canary: activities.CanaryRef{Name: "podinfo", Namespace: "test", Target: "podinfo"}, Weight: 10, FailedChecks: 2,
			Checks: []activities.CheckResult{
				{Metric: "request-success-rate", Verdict: activities.VerdictFail, Message: "request-success-rate 90.00 < 99"},
				{Metric: "request-duration", Verdict: activities.VerdictPass, Message: "request-duration 20.00 <= 500"},
			},
			Timestamp: time.Unix(1772600767, 0)},
		Alerts: []v1beta1.CanaryAlert{
			{Name: "on-call", Severity: v1beta1.SeverityError, ProviderRef: ref("slack-secret")},
			{Name: "team", Severity: v1beta1.SeverityInfo, ProviderRef: ref("discord")},
			{Name: "broken", Severity: v1beta1.SeverityWarn, ProviderRef: ref("broken")},
			{Name: "missing", Severity: v1beta1.SeverityInfo, ProviderRef: ref("nowhere")},
		},
		Providers: []v1beta1.AlertProvider{
			prov("slack-secret", "slack", "", "slack-url"),
			prov("discord", "discord", sink.URL+"/api/webhooks/1/x", ""),
			prov("broken", "rocket", sink.URL+"/broken/SECRET-PATH", ""),
		},
	})
	r, err := a.SendAlerts(context.Background(), in)
	require.NoError(t, err, "a failed alert never fails the activity")
	require.Equal(t, []string{"on-call", "team"}, r.Sent)
	require.Empty(t, r.Filtered)
	require.Len(t, r.Failed, 2)
	require.Contains(t, r.Failed["broken"], "500")
	require.NotContains(t, r.Failed["broken"], "SECRET-PATH")
	require.Contains(t, r.Failed["missing"], "test/nowhere")

	got := sink.got["/services/T/B/from-secret"]
	require.Len(t, got, 1, "the address came from the Secret")
	att := got[0]["attachments"].([]any)[0].(map[string]any)
	require.Equal(t, "Canary analysis failed, podinfo.test rolled back", att["text"])
	require.Equal(t, "danger", att["color"])
	require.Equal(t, "podinfo.test", att["author_name"])
	fields := map[string]string{}
	for _, f := range att["fields"].([]any) {
		fm := f.(map[string]any)
		fields[fm["title"].(string)] = fm["value"].(string)
	}
	require.Equal(t, map[string]string{
		"Cluster": "prod-eu", "Target": "podinfo", "Event": "rolled-back", "Phase": "Failed", "Revision": "5d8f",
		"Weight": "10%", "Failed checks": "2", "Check request-success-rate": "request-success-rate 90.00 < 99",
	}, fields, "passing checks are left out")
	require.Len(t, sink.got["/api/webhooks/1/x/slack"], 1)

	// An info event reaches only the info alert.
	in.Event = activities.Event{Type: activities.EventAdvanced, Severity: v1beta1.SeverityInfo, Weight: 30,
		Canary: activities.CanaryRef{Name: "podinfo", Namespace: "test"}}
	r, err = a.SendAlerts(context.Background(), in)
	require.NoError(t, err)
	require.Equal(t, []string{"team"}, r.Sent)
	require.Equal(t, []string{"on-call", "broken"}, r.Filtered)
	last := sink.got["/api/webhooks/1/x/slack"][1]["attachments"].([]any)[0].(map[string]any)
	require.Equal(t, "Advance podinfo.test canary weight 30", last["text"])
	require.Equal(t, "good", last["color"])
}

// Each event type has a sentence; the approver the workflow writes into Message is shown as is.
func TestEventTextPerEvent(t *testing.T) {
	c := activities.CanaryRef{Name: "podinfo", Namespace: "test"}
	for typ, want := range map[activities.EventType]string{
		activities.EventInitialized:     "Initialization done! podinfo.test",
		activities.EventNewRevision:     "New revision detected! Scaling up podinfo.test",
		activities.EventWaitingApproval: "Waiting for approval of podinfo.test",
		activities.EventApproved:        "podinfo.test approved",
		activities.EventAdvanced:        "Advance podinfo.test canary weight 40",
		activities.EventHalted:          "Halt podinfo.test advancement",
		activities.EventRolledBack:      "Canary analysis failed, podinfo.test rolled back",
		activities.EventPromoted:        "Promotion completed! podinfo.test",
		activities.EventAborted:         "Rollout of podinfo.test aborted",
	} {
		require.Equal(t, want, activities.EventText(activities.Event{Type: typ, Canary: c, Weight: 40}))
	}
	require.Equal(t, "confirm-promotion approved by alice", activities.EventText(activities.Event{Type: activities.EventApproved, Canary: c,
		Message: "confirm-promotion approved by alice"}))
}
