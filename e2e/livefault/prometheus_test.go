//go:build lab

package livefault

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/workflows"
)

// promCase starts a worker whose default Prometheus (CANARYFLOW_PROMETHEUS) is a fault proxy in front of the
// lab's, and a podinfo canary without spec.metricsServer, so its builtin metric goes through the proxy.
func promCase(t *testing.T, prefix string, edit func(*v1beta1.Canary)) (*canary, *faultProxy) {
	t.Helper()
	proxy := newFaultProxy(t, labPrometheus(t))
	ctx, s := startStack(t, 10*time.Minute, e2e.Options{PrometheusURL: proxy.URL})
	return newCanary(t, ctx, s, prefix, edit), proxy
}

// TestPrometheusDownMidAnalysisRollsBackAtTheThreshold: the worker's Prometheus refuses connections from the
// first advance on. Each step's checks fail as "could not run" (as Flagger counts a failed query); at the
// threshold the canary is rolled back; it is never promoted and the primary keeps the previous release.
func TestPrometheusDownMidAnalysisRollsBackAtTheThreshold(t *testing.T) {
	t.Parallel()
	c, proxy := promCase(t, "prom-down", nil)
	file := c.write("canary", nil)
	done := c.rollout(file, "6.0.1")
	c.waitStatus(5*time.Minute, "canary weight 10", func(st workflows.Status) bool { return st.CanaryWeight >= 10 })
	proxy.set(t, refuse)
	require.True(t, proxy.refused(c.ctx))
	down := time.Now()

	r := waitResult(t, done, 5*time.Minute)
	took := time.Since(down)
	require.Equal(t, 1, r.Code, r.Output)
	e := c.end()
	c.requireRolledBack(e, "6.0.0", "failed checks threshold reached 2")
	// The checks went to the proxy (the worker's default Prometheus) and each failed step is a halt the workflow
	// stated, naming why.
	require.Equal(t, 2, strings.Count(e.History, "Halt podinfo."+c.NS+" advancement metric checks could not run: metric request-success-rate of canary "+c.NS+"/podinfo: prometheus "+proxy.URL), e.History)
	require.NotContains(t, e.History, "RunMetricChecks failed", "the decision, not an activity's name")
	require.Contains(t, e.History, "connection refused")
	adv := c.advances(e.History)
	require.NotEmpty(t, adv)
	require.Equal(t, 10, adv[0])
	require.LessOrEqual(t, len(adv), 2, "at most the step in flight when Prometheus went down: %v", adv)
	t.Logf("Prometheus down at weight %v: rolled back %s later (interval %s, threshold 2)", adv, took.Round(time.Second), interval)
}

// TestPrometheusAnsweringErrorsRollsBackAtTheThreshold: the worker's Prometheus answers HTTP 500 for one step,
// then 200 with {"status":"error"}: both count as failed checks and the canary is rolled back at the threshold.
func TestPrometheusAnsweringErrorsRollsBackAtTheThreshold(t *testing.T) {
	t.Parallel()
	c, proxy := promCase(t, "prom-errors", nil)
	file := c.write("canary", nil)
	done := c.rollout(file, "6.0.1")
	c.waitStatus(5*time.Minute, "canary weight 10", func(st workflows.Status) bool { return st.CanaryWeight >= 10 })
	proxy.set(t, answer500)
	c.waitStatus(2*time.Minute, "a failed check", func(st workflows.Status) bool { return st.FailedChecks >= 1 })
	proxy.set(t, statusError)
	start := time.Now()

	r := waitResult(t, done, 5*time.Minute)
	require.Equal(t, 1, r.Code, r.Output)
	e := c.end()
	c.requireRolledBack(e, "6.0.0", "failed checks threshold reached 2")
	require.Equal(t, 2, strings.Count(e.History, "advancement metric checks could not run"), e.History)
	require.Contains(t, e.History, "server error: 500", "the 5xx is named")
	require.Contains(t, e.History, "injected fault: storage unavailable", "Prometheus's error is named")
	require.Positive(t, proxy.count(answer500))
	require.Positive(t, proxy.count(statusError))
	t.Logf("Prometheus answering 500 then status error: rolled back %s after the second fault began", time.Since(start).Round(time.Second))
}

// TestPrometheusOutageShorterThanTheThresholdCostsOneCheck: Prometheus refuses connections until one check has
// failed, then is back: the release goes on from where it was and is promoted, each weight decided once.
//
// Its second metric is a MetricTemplate without provider.address: it too queries the worker's default Prometheus.
func TestPrometheusOutageShorterThanTheThresholdCostsOneCheck(t *testing.T) {
	t.Parallel()
	withTemplate := func(c *v1beta1.Canary) {
		c.Spec.Analysis.Metrics = append(c.Spec.Analysis.Metrics, v1beta1.CanaryMetric{Name: "canary-5xx", Interval: "1m",
			TemplateRef:    &v1beta1.CrossNamespaceObjectReference{Name: "canary-5xx", Namespace: c.Namespace},
			ThresholdRange: &v1beta1.CanaryThresholdRange{Max: ptr.To(1.0)}})
	}
	c, proxy := promCase(t, "prom-blip", nil) // initialised without it: the template comes with the release
	template := v1beta1.MetricTemplate{
		TypeMeta:   metav1.TypeMeta{APIVersion: "flagger.app/v1beta1", Kind: "MetricTemplate"},
		ObjectMeta: metav1.ObjectMeta{Name: "canary-5xx", Namespace: c.NS},
		Spec: v1beta1.MetricTemplateSpec{Provider: v1beta1.MetricTemplateProvider{Type: "prometheus"},
			Query: `sum(rate(traefik_service_requests_total{service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd",code=~"5.."}[{{ interval }}])) or vector(0)`},
	}
	file := c.write("canary", withTemplate, template)
	done := c.rollout(file, "6.0.1")
	c.waitStatus(5*time.Minute, "canary weight 10", func(st workflows.Status) bool { return st.CanaryWeight >= 10 })
	proxy.set(t, refuse)
	down := time.Now()
	c.waitStatus(2*time.Minute, "a failed check", func(st workflows.Status) bool { return st.FailedChecks >= 1 })
	proxy.set(t, pass)
	outage := time.Since(down)

	r := waitResult(t, done, 5*time.Minute)
	require.Equal(t, 0, r.Code, r.Output)
	e := c.end()
	c.requirePromoted(e, "6.0.1", 30)
	require.Equal(t, 1, strings.Count(e.History, "advancement metric checks could not run"), "one failed check for the outage:\n%s", e.History)
	require.Positive(t, proxy.queried(`code=~"5.."`), "the MetricTemplate without an address queried the worker's default Prometheus")
	require.GreaterOrEqual(t, strings.Count(e.History, "check canary-5xx 0 in [—, 1] pass"), 2, e.History)
	gaps := c.stepGaps(e.History)
	t.Logf("Prometheus down %s (until the first failed check): promoted; step gaps %v", outage.Round(time.Second), gaps)
}

// TestMetricWithOnNoDataPassPassesWhileTheSeriesIsMissing: Prometheus answers every query with an empty result
// (the series is missing) during the whole analysis. A metric with onNoData: pass passes, as the spec says, and
// the release is promoted; the status shows why each check passed.
func TestMetricWithOnNoDataPassPassesWhileTheSeriesIsMissing(t *testing.T) {
	t.Parallel()
	onNoData := func(c *v1beta1.Canary) { c.Spec.Analysis.Metrics[0].OnNoData = v1beta1.NoDataPass }
	c, proxy := promCase(t, "prom-nodata", onNoData)
	proxy.set(t, noData)
	file := c.write("canary", onNoData)
	done := c.rollout(file, "6.0.1")
	st := c.waitStatus(5*time.Minute, "a checked step", func(st workflows.Status) bool { return len(st.LastChecks) > 0 })
	require.Contains(t, st.LastChecks[0].Message, "no values found (onNoData: pass)")

	r := waitResult(t, done, 5*time.Minute)
	require.Equal(t, 0, r.Code, r.Output)
	e := c.end()
	c.requirePromoted(e, "6.0.1", 30)
	require.Positive(t, proxy.count(noData))
	require.Zero(t, proxy.count(pass), "no query reached the real Prometheus: every check saw missing data")
}
