package activities_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/metrics"
	"github.com/canaryflow/canaryflow/providers/metrics/promtest"
)

// latencyExporter serves a noisy latency gauge per workload, a new value at every scrape: in namespace "slow"
// the canary (podinfo) is 20% slower than the primary, in "same" both come from the same distribution, in
// "lonely" the primary exports nothing. The noise is spread evenly (a golden-ratio sequence, a different phase
// per workload) rather than drawn at random, so two identical distributions look identical in every window and
// the test never depends on a lucky draw: with random draws it would raise a false alarm 5% of the time, by design.
type latencyExporter struct {
	mu    sync.Mutex
	k     int
	srv   *httptest.Server
	sides []latencySide
}

type latencySide struct {
	ns, workload string
	base, phase  float64
}

func newLatencyExporter() *latencyExporter {
	e := &latencyExporter{sides: []latencySide{
		{"slow", "podinfo", 120, 0.5}, {"slow", "podinfo-primary", 100, 0},
		{"same", "podinfo", 100, 0.5}, {"same", "podinfo-primary", 100, 0},
		{"lonely", "podinfo", 100, 0},
	}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e.mu.Lock()
		e.k++
		k := e.k
		e.mu.Unlock()
		fmt.Fprintln(w, "# TYPE judge_latency_ms gauge")
		for _, s := range e.sides {
			u := math.Mod(float64(k)*math.Phi+s.phase, 1) // evenly spread over [0, 1)
			fmt.Fprintf(w, "judge_latency_ms{namespace=%q,workload=%q} %g\n", s.ns, s.workload, s.base*(0.85+0.3*u))
		}
	}))
	return e
}

func latencyTemplate() v1beta1.MetricTemplate {
	return v1beta1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "latency", Namespace: "judge"},
		Spec: v1beta1.MetricTemplateSpec{Provider: v1beta1.MetricTemplateProvider{Type: "prometheus"},
			Query: `judge_latency_ms{namespace="{{ namespace }}", workload="{{ target }}"}`}}
}

func latencyMetric(direction v1beta1.CompareDirection, r *v1beta1.CanaryThresholdRange) v1beta1.CanaryMetric {
	return v1beta1.CanaryMetric{Name: "latency", Interval: "20s", ThresholdRange: r,
		TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "latency", Namespace: "judge"},
		Compare:     &v1beta1.MetricComparison{Direction: direction, Step: "1s"}}
}

func judge(t *testing.T, a *activities.Analysis, ns string, m v1beta1.CanaryMetric) activities.CheckResult {
	t.Helper()
	r, err := a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{
		Canary: canaryRef("traefik", ns), Metrics: []v1beta1.CanaryMetric{m}, Templates: []v1beta1.MetricTemplate{latencyTemplate()}}))
	require.NoError(t, err)
	require.Len(t, r.Results, 1)
	return r.Results[0]
}

// A real Prometheus scraping a canary 20% slower than its primary, both noisy: the comparison fails it and says
// by how much and how sure; two versions of the same speed pass; a change in the direction that does not hurt
// passes; a thresholdRange is still a hard limit; a primary without data falls to onNoData.
func TestComparisonWithThePrimaryCatchesASlowerCanaryAndPassesAnEqualOne(t *testing.T) {
	exp := newLatencyExporter()
	defer exp.srv.Close()
	prom := promtest.Start(t, strings.TrimPrefix(exp.srv.URL, "http://"))
	a := &activities.Analysis{DefaultMetricsServer: prom}

	// 20 s at one sample a second: wait until both sides have (almost) all of them.
	waitFor(t, 90*time.Second, func() error {
		c := judge(t, a, "same", latencyMetric(v1beta1.CompareIncrease, nil))
		if c.CanarySamples < 18 || c.PrimarySamples < 18 {
			return fmt.Errorf("%d canary and %d primary samples so far: %s", c.CanarySamples, c.PrimarySamples, c.Message)
		}
		return nil
	})

	slow := judge(t, a, "slow", latencyMetric(v1beta1.CompareIncrease, nil))
	require.Equal(t, activities.VerdictFail, slow.Verdict, slow.Message)
	// The exporter's sequence puts the medians of a clean 18–21 s window 15.8–24.4% apart; on a loaded machine
	// Prometheus misses a scrape or a range step repeats one, which moves them further (13.9% seen).
	require.Regexp(t, `^latency canary vs primary: \+(1\d|2\d)\.\d% \(p=[0-9.e-]+ < 0\.05\): fail$`, slow.Message)
	require.Less(t, *slow.PValue, 0.001)
	require.InDelta(t, 0.2, *slow.EffectSize, 0.1, "the medians differ by about 20%%")
	require.Equal(t, 0.05, *slow.Alpha)
	require.GreaterOrEqual(t, slow.CanarySamples, 18)
	require.GreaterOrEqual(t, slow.PrimarySamples, 18)
	require.Equal(t, `judge_latency_ms{namespace="slow", workload="podinfo"}`, slow.Query)
	require.Equal(t, `judge_latency_ms{namespace="slow", workload="podinfo-primary"}`, slow.PrimaryQuery, "{{ target }} names the primary")
	require.InDelta(t, 120, *slow.Value, 10, "a comparison reports the canary's median as its value")

	same := judge(t, a, "same", latencyMetric(v1beta1.CompareIncrease, nil))
	require.Equal(t, activities.VerdictPass, same.Verdict, same.Message)
	require.Greater(t, *same.PValue, 0.2)
	require.Less(t, math.Abs(*same.EffectSize), 0.05)
	require.Regexp(t, `^latency canary vs primary: [+-]\d\.\d% \(p=[0-9.]+ ≥ 0\.05\): pass$`, same.Message)

	faster := judge(t, a, "slow", latencyMetric(v1beta1.CompareDecrease, nil))
	require.Equal(t, activities.VerdictPass, faster.Verdict, "only a decrease would hurt: %s", faster.Message)
	require.Greater(t, *faster.PValue, 0.99)

	either := judge(t, a, "slow", latencyMetric(v1beta1.CompareEither, nil))
	require.Equal(t, activities.VerdictFail, either.Verdict, either.Message)

	small := latencyMetric(v1beta1.CompareIncrease, nil)
	small.Compare.MinEffectSize = f64(0.3)
	ignored := judge(t, a, "slow", small)
	require.Equal(t, activities.VerdictPass, ignored.Verdict)
	require.Contains(t, ignored.Message, "under minEffectSize 30%")

	capped := judge(t, a, "same", latencyMetric(v1beta1.CompareIncrease, &v1beta1.CanaryThresholdRange{Max: f64(90)}))
	require.Equal(t, activities.VerdictFail, capped.Verdict, "the range is checked first, on the canary's value")
	require.Regexp(t, `^latency \d+\.\d\d > 90$`, capped.Message)
	require.Nil(t, capped.PValue)

	inRange := judge(t, a, "slow", latencyMetric(v1beta1.CompareIncrease, &v1beta1.CanaryThresholdRange{Max: f64(500)}))
	require.Equal(t, activities.VerdictFail, inRange.Verdict, "a loose range passes, the comparison still catches the slowdown")
	require.Contains(t, inRange.Message, "canary vs primary")
	require.NotNil(t, inRange.Value)

	lonely := judge(t, a, "lonely", latencyMetric(v1beta1.CompareIncrease, nil))
	require.Equal(t, activities.VerdictFail, lonely.Verdict)
	require.Equal(t, "latency: no values found for the primary: nothing to compare the canary with (is the primary receiving traffic?)", lonely.Message)
	held := latencyMetric(v1beta1.CompareIncrease, nil)
	held.OnNoData = v1beta1.NoDataHold
	require.Equal(t, activities.VerdictHold, judge(t, a, "lonely", held).Verdict)
}

// The primary form of every provider's builtin query reads the primary's series, not the canary's: against the
// shape exporter's primary (every request slow and failing) the healthy canary is far faster and more successful.
// The success rate's rise is harmless and passes; the duration, compared in either direction, fails on its
// drop. APISIX has no primary form and says so.
func TestBuiltinQueriesHaveAPrimaryForm(t *testing.T) {
	exp := newShapeExporter()
	defer exp.srv.Close()
	prom := promtest.Start(t, exp.target())
	a := &activities.Analysis{DefaultMetricsServer: prom}
	checks := func() []v1beta1.CanaryMetric {
		return []v1beta1.CanaryMetric{
			{Name: "request-success-rate", Interval: "30s", Compare: &v1beta1.MetricComparison{Step: "3s"}},
			// either: the canary being faster than the primary is then the significant difference to find.
			{Name: "request-duration", Interval: "30s", Compare: &v1beta1.MetricComparison{Step: "3s", Direction: v1beta1.CompareEither}},
		}
	}
	require.ElementsMatch(t, []string{"traefik", "nginx", "istio", "linkerd", "osm", "contour", "gloo", "kuma", "appmesh",
		"skipper", "kubernetes", "gatewayapi"}, metrics.BuiltinPrimaryProviders())
	waitFor(t, 120*time.Second, func() error {
		r, err := a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{Canary: canaryRef("istio", "good"), Metrics: checks()}))
		if err != nil {
			return err
		}
		for _, c := range r.Results {
			if c.CanarySamples < 8 || c.PrimarySamples < 8 {
				return errors.New(c.Message)
			}
		}
		return nil
	})
	for _, p := range metrics.BuiltinPrimaryProviders() {
		t.Run(p, func(t *testing.T) {
			r, err := a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{Canary: canaryRef(p, "good"), Metrics: checks()}))
			require.NoError(t, err)
			sr, dur := r.Results[0], r.Results[1]
			require.Equal(t, activities.VerdictPass, sr.Verdict, "%s: %s", sr.Message, sr.PrimaryQuery)
			require.NotNil(t, sr.EffectSize, sr.Message)
			require.Equal(t, 1.0, *sr.EffectSize, "canary 100%% vs primary 0%%: %s", sr.PrimaryQuery)
			require.Greater(t, *sr.PValue, 0.99, "a higher success rate is no evidence of a decrease")
			require.Equal(t, activities.VerdictFail, dur.Verdict, "%s: %s", dur.Message, dur.PrimaryQuery)
			require.Less(t, *dur.EffectSize, -0.5, "the primary's requests take seconds: %s", dur.PrimaryQuery)
			require.Less(t, *dur.PValue, 0.001)
			require.GreaterOrEqual(t, dur.PrimarySamples, 8)
		})
	}
	_, err := a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{Canary: canaryRef("apisix", "good"), Metrics: checks()}))
	require.ErrorContains(t, err, `metric request-success-rate: compare: provider "apisix"'s builtin query has no primary form`)
}

func TestJudgeComparisonWording(t *testing.T) {
	for _, tc := range []struct {
		d                   v1beta1.CompareDirection
		p, effect, minEffct float64
		verdict             activities.Verdict
		message             string
	}{
		{v1beta1.CompareIncrease, 0.003, 0.2143, 0, activities.VerdictFail, "request-duration canary vs primary: +21.4% (p=0.003 < 0.05): fail"},
		{v1beta1.CompareIncrease, 0.41, 0.012, 0, activities.VerdictPass, "request-duration canary vs primary: +1.2% (p=0.41 ≥ 0.05): pass"},
		{v1beta1.CompareIncrease, 0.05, 0.3, 0, activities.VerdictPass, "request-duration canary vs primary: +30.0% (p=0.05 ≥ 0.05): pass"},
		{v1beta1.CompareIncrease, 0.001, -0.25, 0, activities.VerdictPass, "request-duration canary vs primary: -25.0% (p=0.001 < 0.05, in the harmless direction): pass"},
		{v1beta1.CompareDecrease, 0.001, -0.25, 0, activities.VerdictFail, "request-duration canary vs primary: -25.0% (p=0.001 < 0.05): fail"},
		{v1beta1.CompareEither, 0.001, -0.25, 0.3, activities.VerdictPass, "request-duration canary vs primary: -25.0% (p=0.001 < 0.05, under minEffectSize 30%): pass"},
		{v1beta1.CompareEither, 2.1e-05, 0.25, 0.1, activities.VerdictFail, "request-duration canary vs primary: +25.0% (p=2.1e-05 < 0.05): fail"},
		{v1beta1.CompareEither, 0.3, -0.0004, 0, activities.VerdictPass, "request-duration canary vs primary: +0.0% (p=0.3 ≥ 0.05): pass"},
	} {
		v, msg := activities.JudgeComparison("request-duration", tc.d, tc.p, 0.05, tc.effect, tc.minEffct)
		require.Equal(t, tc.verdict, v, msg)
		require.Equal(t, tc.message, msg)
	}
}
