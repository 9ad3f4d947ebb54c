package activities_test

// Secret values used by the analysis activities never reach workflow history: a workflow on a real Temporal dev
// server (the lab's temporal binary) runs metric checks, webhooks and alerts whose credentials live in Secrets,
// and the JSON of its whole history is scanned for every one of those values.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
)

// analysisRound is what the test workflow runs: every analysis activity once, plus a failing alert.
type analysisRound struct {
	Checks   activities.MetricChecksInput
	Hook     activities.WebhookInput
	Alert    activities.AlertInput
	BadAlert activities.AlertInput
}

type analysisOutcome struct {
	Checks   activities.MetricChecksResult
	Hook     activities.WebhookResult
	Alert    activities.AlertResult
	BadAlert activities.AlertResult
}

func analysisRoundWorkflow(ctx workflow.Context, in analysisRound) (analysisOutcome, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 2}})
	var out analysisOutcome
	if err := workflow.ExecuteActivity(ctx, activities.ActivityRunMetricChecks, in.Checks).Get(ctx, &out.Checks); err != nil {
		return out, err
	}
	if err := workflow.ExecuteActivity(ctx, activities.ActivityCallWebhook, in.Hook).Get(ctx, &out.Hook); err != nil {
		return out, err
	}
	if err := workflow.ExecuteActivity(ctx, activities.ActivitySendAlerts, in.Alert).Get(ctx, &out.Alert); err != nil {
		return out, err
	}
	err := workflow.ExecuteActivity(ctx, activities.ActivitySendAlerts, in.BadAlert).Get(ctx, &out.BadAlert)
	return out, err
}

func startDevServer(t *testing.T) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := labbin.DevServer(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	return srv.Client()
}

func TestSecretValuesNeverReachWorkflowHistory(t *testing.T) {
	secrets := map[string]string{
		"promToken":   "prom-token-7Hq2SECRET",
		"ddAPI":       "dd-api-9Xk4SECRET",
		"ddApp":       "dd-app-3Lm8SECRET",
		"slackPath":   "T0001/B0002/slackhook5SECRET",
		"brokenPath":  "brokenhook6SECRET",
		"basicPasswd": "graphite-pw-1SECRET",
	}
	// Backends that demand the credentials.
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+secrets["promToken"] {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"status":"error","errorType":"client_error","error":"unauthorized"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"99.5"]}]}}`)
	}))
	defer prom.Close()
	dd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("DD-API-KEY") != secrets["ddAPI"] || r.Header.Get("DD-APPLICATION-KEY") != secrets["ddApp"] {
			w.WriteHeader(403)
			return
		}
		fmt.Fprint(w, `{"status":"ok","series":[{"pointlist":[[1700000000000,12.5]]}]}`)
	}))
	defer dd.Close()
	graphite := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		// Wrong password on purpose: the failure's message must not echo the credentials.
		w.WriteHeader(401)
		fmt.Fprint(w, "unauthorized")
	}))
	defer graphite.Close()
	slackHits := 0
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, secrets["brokenPath"]) {
			w.WriteHeader(500)
			return
		}
		slackHits++
	}))
	defer chat.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(202) }))
	defer hook.Close()

	a := &activities.Analysis{ClusterName: "lab", Secrets: fakeSecrets{
		"test/prom-auth":  {"token": []byte(secrets["promToken"])},
		"test/dd-keys":    {"datadog_api_key": []byte(secrets["ddAPI"]), "datadog_application_key": []byte(secrets["ddApp"])},
		"test/graphite":   {"username": []byte("graphite"), "password": []byte(secrets["basicPasswd"])},
		"test/slack-url":  {"address": []byte(chat.URL + "/services/" + secrets["slackPath"])},
		"test/broken-url": {"address": []byte(chat.URL + "/hooks/" + secrets["brokenPath"])},
	}}

	tpl := func(name, typ, address, secret, query string) v1beta1.MetricTemplate {
		return v1beta1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test"}, Spec: v1beta1.MetricTemplateSpec{
			Provider: v1beta1.MetricTemplateProvider{Type: typ, Address: address, SecretRef: &corev1.LocalObjectReference{Name: secret}},
			Query:    query}}
	}
	ref := func(n string) *v1beta1.CrossNamespaceObjectReference {
		return &v1beta1.CrossNamespaceObjectReference{Name: n}
	}
	canary := activities.CanaryRef{Namespace: "test", Name: "podinfo", Target: "podinfo", Service: "podinfo", Provider: "traefik"}
	event := activities.Event{Type: activities.EventRolledBack, Severity: v1beta1.SeverityError, Canary: canary, Timestamp: time.Unix(1772600767, 0)}
	alertProvider := func(name, secret string) v1beta1.AlertProvider {
		return v1beta1.AlertProvider{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test"},
			Spec: v1beta1.AlertProviderSpec{Type: "slack", Channel: "#deploys", SecretRef: &corev1.LocalObjectReference{Name: secret}}}
	}
	in := analysisRound{
		Checks: defaulted(activities.MetricChecksInput{Canary: canary,
			Templates: []v1beta1.MetricTemplate{
				tpl("prom", "prometheus", prom.URL, "prom-auth", `sum(rate(http_requests_total{namespace="{{ namespace }}"}[{{ interval }}]))`),
				tpl("dd", "datadog", dd.URL, "dd-keys", "avg:latency{service:{{ target }}}"),
				tpl("graphite", "graphite", graphite.URL, "graphite", "target=stats.{{ target }}.errors&from=-5min"),
			},
			Metrics: []v1beta1.CanaryMetric{
				{Name: "prom-rate", Interval: "1m", TemplateRef: ref("prom"), ThresholdRange: &v1beta1.CanaryThresholdRange{Min: f64(99)}},
				{Name: "dd-latency", Interval: "1m", TemplateRef: ref("dd"), ThresholdRange: &v1beta1.CanaryThresholdRange{Max: f64(100)}},
				{Name: "graphite-errors", Interval: "1m", TemplateRef: ref("graphite")},
			}}),
		Hook: activities.WebhookInput{Hook: v1beta1.CanaryWebhook{Name: "gate", Type: v1beta1.ConfirmRolloutHook, URL: hook.URL},
			Payload: activities.WebhookPayload{Name: "podinfo", Namespace: "test", Phase: "Progressing"}},
		Alert: defaultedAlerts(activities.AlertInput{Event: event, Providers: []v1beta1.AlertProvider{alertProvider("slack", "slack-url")},
			Alerts: []v1beta1.CanaryAlert{{Name: "on-call", Severity: v1beta1.SeverityError, ProviderRef: v1beta1.CrossNamespaceObjectReference{Name: "slack"}}}}),
		BadAlert: defaultedAlerts(activities.AlertInput{Event: event, Providers: []v1beta1.AlertProvider{alertProvider("broken", "broken-url")},
			Alerts: []v1beta1.CanaryAlert{{Name: "broken", Severity: v1beta1.SeverityInfo, ProviderRef: v1beta1.CrossNamespaceObjectReference{Name: "broken"}}}}),
	}

	c := startDevServer(t)
	queue := "history-" + fmt.Sprint(time.Now().UnixNano())
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(analysisRoundWorkflow, workflow.RegisterOptions{Name: "AnalysisRound"})
	w.RegisterActivityWithOptions(a.RunMetricChecks, activity.RegisterOptions{Name: activities.ActivityRunMetricChecks})
	w.RegisterActivityWithOptions(a.CallWebhook, activity.RegisterOptions{Name: activities.ActivityCallWebhook})
	w.RegisterActivityWithOptions(a.SendAlerts, activity.RegisterOptions{Name: activities.ActivitySendAlerts})
	require.NoError(t, w.Start())
	defer w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: queue, TaskQueue: queue}, "AnalysisRound", in)
	require.NoError(t, err)
	var out analysisOutcome
	require.NoError(t, run.Get(ctx, &out))

	// The round did use every credential.
	require.Equal(t, activities.VerdictPass, out.Checks.Results[0].Verdict, out.Checks.Results[0].Message)
	require.Equal(t, activities.VerdictPass, out.Checks.Results[1].Verdict, out.Checks.Results[1].Message)
	require.Equal(t, activities.VerdictFail, out.Checks.Results[2].Verdict)
	require.True(t, out.Hook.Passed)
	require.Equal(t, []string{"on-call"}, out.Alert.Sent)
	require.Equal(t, 1, slackHits)
	require.Contains(t, out.BadAlert.Failed, "broken")
	t.Logf("graphite check: %s; broken alert: %s", out.Checks.Results[2].Message, out.BadAlert.Failed["broken"])

	// Scan the whole history as JSON.
	var history strings.Builder
	iter := c.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, 0)
	events := 0
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		b, err := protojson.Marshal(ev)
		require.NoError(t, err)
		history.Write(b)
		history.WriteByte('\n')
		events++
	}
	h := history.String()
	require.Greater(t, events, 10)
	// Payload data is base64 in protojson: scan the decoded payloads too.
	decoded := decodePayloads(t, h)
	require.Contains(t, decoded, "prom-rate")
	require.Contains(t, decoded, "dd-latency")
	for name, v := range secrets {
		require.NotContains(t, h, v, "secret %s in history JSON", name)
		require.NotContains(t, decoded, v, "secret %s in history payloads", name)
	}
}

// decodePayloads returns the decoded data of every payload found in the history's JSON lines.
func decodePayloads(t *testing.T, jsonLines string) string {
	t.Helper()
	var out strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, child := range x {
				if k == "data" {
					if s, ok := child.(string); ok {
						if b, err := base64.StdEncoding.DecodeString(s); err == nil {
							out.Write(b)
							out.WriteByte('\n')
						}
					}
				}
				walk(child)
			}
		case []any:
			for _, child := range x {
				walk(child)
			}
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(jsonLines), "\n") {
		var v any
		require.NoError(t, json.Unmarshal([]byte(line), &v))
		walk(v)
	}
	return out.String()
}
