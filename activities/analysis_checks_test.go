package activities_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/metrics/promtest"
)

// One step's checks run at once in RunChecks: two hooks that hang for their whole timeout cost one timeout, not
// two, and every result comes back in spec order (each hook's answer, each metric's query, value, range and
// verdict) on a real Prometheus. A metric that cannot be checked is the step's MetricsError, never a lost hook.
func TestRunChecksRunsAStepsHooksAndMetricsAtOnceAndReturnsEveryResult(t *testing.T) {
	exp := newShapeExporter()
	defer exp.srv.Close()
	prom := promtest.Start(t, exp.target())
	a := &activities.Analysis{DefaultMetricsServer: prom, WebhookBackoff: 10 * time.Millisecond}
	hung := hungServer(t)
	no := newHookServer(t, false, "not yet", http.StatusForbidden)
	yes := newHookServer(t, false, "", http.StatusOK)
	hook := func(name, url string) v1beta1.CanaryWebhook {
		return v1beta1.CanaryWebhook{Type: v1beta1.RolloutHook, Name: name, URL: url, Timeout: "1s"}
	}
	answer := v1beta1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "answer", Namespace: "good"},
		Spec: v1beta1.MetricTemplateSpec{Provider: v1beta1.MetricTemplateProvider{Type: "prometheus"}, Query: "vector(42)"}}
	ref := &v1beta1.CrossNamespaceObjectReference{Name: "answer"}
	in := defaultedChecks(activities.ChecksInput{
		Canary:  canaryRef("traefik", "good"),
		Payload: activities.WebhookPayload{Name: "podinfo", Namespace: "good", Phase: "Progressing", Checksum: "7f9c5d"},
		Hooks:   []v1beta1.CanaryWebhook{hook("hung-1", hung.URL), hook("hung-2", hung.URL), hook("gate", no.URL), hook("load-test", yes.URL)},
		Metrics: []v1beta1.CanaryMetric{
			{Name: "in-range", TemplateRef: ref, ThresholdRange: &v1beta1.CanaryThresholdRange{Min: f64(40), Max: f64(50)}},
			{Name: "above-max", TemplateRef: ref, ThresholdRange: &v1beta1.CanaryThresholdRange{Max: f64(41)}},
		},
		Templates: []v1beta1.MetricTemplate{answer},
	})

	start := time.Now()
	res, err := a.RunChecks(context.Background(), in)
	took := time.Since(start)
	require.NoError(t, err)
	require.Less(t, took, 1900*time.Millisecond, "the two hung hooks waited side by side")

	require.Len(t, res.Webhooks, 4)
	for i, want := range []struct {
		name   string
		passed bool
	}{{"hung-1", false}, {"hung-2", false}, {"gate", false}, {"load-test", true}} {
		require.Equal(t, want.name, res.Webhooks[i].Name)
		require.Equal(t, want.passed, res.Webhooks[i].Passed, res.Webhooks[i].Reason)
	}
	require.Equal(t, "not yet", res.Webhooks[2].Reason)
	require.Empty(t, res.MetricsError)
	require.Len(t, res.Checks, 2)
	require.Equal(t, "in-range", res.Checks[0].Metric)
	require.Equal(t, activities.VerdictPass, res.Checks[0].Verdict)
	require.Equal(t, "vector(42)", res.Checks[0].Query)
	require.Equal(t, 42.0, *res.Checks[0].Value)
	require.Equal(t, activities.VerdictFail, res.Checks[1].Verdict)
	require.Equal(t, 41.0, *res.Checks[1].Max)

	in.Metrics = append(in.Metrics, v1beta1.CanaryMetric{Name: "not-checkable"})
	in = defaultedChecks(in)
	in.Hooks = in.Hooks[3:]
	res, err = a.RunChecks(context.Background(), in)
	require.NoError(t, err)
	require.Contains(t, res.MetricsError, "metric not-checkable of canary good/podinfo: ")
	require.Contains(t, res.MetricsError, "neither templateRef nor query")
	require.Empty(t, res.Checks)
	require.Len(t, res.Webhooks, 1)
	require.True(t, res.Webhooks[0].Passed, "the hooks' answers are kept when the metrics cannot run")
}
