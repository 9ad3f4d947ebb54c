//go:build lab

package activities_test

// The statistical judge on the lab's real Traefik and Prometheus, with live podinfo traffic: the experiment of
// issue 17 (figures in BENCHMARKS.md).

import (
	"context"
	"fmt"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

// delayArgs makes podinfo sleep a uniformly random time in [lo, hi) ms before every answer.
func delayArgs(lo, hi int) []string {
	return []string{"--random-delay=true", "--random-delay-unit=ms", fmt.Sprintf("--random-delay-min=%d", lo), fmt.Sprintf("--random-delay-max=%d", hi)}
}

// serveBoth runs primary and canary podinfo in ns behind a TraefikService weighted 50/50, as canaryflow's traefik
// router writes it mid-rollout, and waits until Traefik serves the host.
func serveBoth(t *testing.T, ns string, primaryArgs, canaryArgs []string) {
	t.Helper()
	ctx := context.Background()
	_, cs := labtest.Kube(t)
	dyn := labtest.Dynamic(t)
	for _, w := range []struct {
		name, svc string
		args      []string
	}{{"podinfo-primary", "podinfo-primary", primaryArgs}, {"podinfo", "podinfo-canary", canaryArgs}} {
		d := labtest.Podinfo(ns, w.name, w.name, "ghcr.io/stefanprodan/podinfo:6.0.1", 1)
		d.Spec.Template.Spec.Containers[0].Args = w.args
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
		require.NoError(t, err)
		_, err = cs.CoreV1().Services(ns).Create(ctx, labtest.Service(ns, w.svc, w.name), metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err := dyn.Resource(labtest.TraefikServices).Namespace(ns).Create(ctx, labtest.TraefikService(ns, "podinfo",
		labtest.Backend{Service: "podinfo-primary", Weight: 50}, labtest.Backend{Service: "podinfo-canary", Weight: 50}), metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = dyn.Resource(labtest.IngressRoutes).Namespace(ns).Create(ctx,
		labtest.IngressRoute(ns, "podinfo", ns+".lab", map[string]any{"name": "podinfo", "kind": "TraefikService"}), metav1.CreateOptions{})
	require.NoError(t, err)
	base := labtest.TraefikURL(t)
	waitFor(t, 90*time.Second, func() error {
		ok := 0
		for range 20 { // both backends answer
			if labGet(base+"/version", ns+".lab") == 200 {
				ok++
			}
		}
		if ok < 20 {
			return fmt.Errorf("Traefik served %d of 20 requests for %s", ok, ns)
		}
		return nil
	})
}

// load sends requests for host with n workers until ctx ends.
func load(ctx context.Context, base, host string, n int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				labGet(base+"/", host)
			}
		}()
	}
	return &wg
}

// meanLatency is a user's MetricTemplate over Traefik's histogram: the mean request duration in ms of the workload
// {{ target }} names. The Services are <target>-canary and <target>-primary, so the canary's side adds "-canary".
func meanLatency(ns string) v1beta1.MetricTemplate {
	sel := `service=~"{{ namespace }}-{{ target }}{{ if ne target (printf "%s-primary" name) }}-canary{{ end }}-[0-9a-zA-Z-]+@kubernetescrd"`
	return v1beta1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "mean-latency", Namespace: ns},
		Spec: v1beta1.MetricTemplateSpec{Provider: v1beta1.MetricTemplateProvider{Type: "prometheus"},
			Query: `sum(rate(traefik_service_request_duration_seconds_sum{` + sel + `}[{{ interval }}]))
/ sum(rate(traefik_service_request_duration_seconds_count{` + sel + `}[{{ interval }}])) * 1000`}}
}

// The experiment of issue 17 on live traffic. Primary requests take 100–170 ms, the slow canary's 120–204 ms:
// 20% slower. A fixed range set from the primary's own P99 misses it (Traefik's buckets put both P99s at the same
// interpolated 248.5 ms; the canary's slowest sleep stays 46 ms under the 250 ms bound, so that what a busy
// machine adds to a request seldom carries it into the next bucket; when it does, the test reports the share
// that crossed instead of failing); the comparison of mean latencies (30 s
// interval, 3 s steps, confidence 0.95, minEffectSize 10%) catches it, and the delay from the first request to
// the failing check is reported. Two identical versions are then judged on disjoint 30 s windows (20 with
// CANARYFLOW_LONG=1, 4 otherwise): none may fail.
func TestJudgeCatchesATwentyPercentSlowerCanaryWithoutFalseAlarms(t *testing.T) {
	prom, base := labtest.PrometheusURL(t), labtest.TraefikURL(t)
	slowNS, sameNS := labtest.Namespace(t, "judge-slow"), labtest.Namespace(t, "judge-same")
	serveBoth(t, slowNS, delayArgs(100, 170), delayArgs(120, 204))
	serveBoth(t, sameNS, delayArgs(100, 170), delayArgs(100, 170))

	ctx, stop := context.WithCancel(context.Background())
	start := time.Now()
	loads := []*sync.WaitGroup{load(ctx, base, slowNS+".lab", 8), load(ctx, base, sameNS+".lab", 8)}
	defer func() {
		stop()
		for _, wg := range loads {
			wg.Wait()
		}
	}()

	a := &activities.Analysis{DefaultMetricsServer: prom}
	judgeLab := func(ns string, m v1beta1.CanaryMetric, templates ...v1beta1.MetricTemplate) activities.CheckResult {
		ref := activities.CanaryRef{Namespace: ns, Name: "podinfo", Target: "podinfo", Service: "podinfo", Provider: "traefik"}
		r, err := a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{Canary: ref,
			Metrics: []v1beta1.CanaryMetric{m}, Templates: templates}))
		require.NoError(t, err)
		return r.Results[0]
	}
	// A fresh metric each time: defaulting fills the namespace of its templateRef in place.
	compare := func() v1beta1.CanaryMetric {
		return v1beta1.CanaryMetric{Name: "mean-latency", Interval: "30s",
			TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "mean-latency"},
			Compare:     &v1beta1.MetricComparison{Direction: v1beta1.CompareIncrease, Step: "3s", MinEffectSize: f64(0.1)}}
	}

	// Detection: judge the slow canary every half second from the first request until the comparison fails.
	var caught activities.CheckResult
	var delay time.Duration
	waitFor(t, 120*time.Second, func() error {
		caught = judgeLab(slowNS, compare(), meanLatency(slowNS))
		if caught.Verdict != activities.VerdictFail || caught.PValue == nil { // no data yet is not a detection
			return fmt.Errorf("not caught yet: %s", caught.Message)
		}
		delay = time.Since(start)
		return nil
	})
	t.Logf("FIGURE detection delay %.1fs: %s (%d canary, %d primary samples)", delay.Seconds(), caught.Message, caught.CanarySamples, caught.PrimarySamples)

	// After a full interval: the figures of a complete window.
	time.Sleep(time.Until(start.Add(35 * time.Second)))
	full := judgeLab(slowNS, compare(), meanLatency(slowNS))
	require.Equal(t, activities.VerdictFail, full.Verdict, full.Message)
	require.InDelta(t, 0.2, *full.EffectSize, 0.07, full.Message)
	t.Logf("FIGURE full window: %s (%d canary, %d primary samples)", full.Message, full.CanarySamples, full.PrimarySamples)

	// The fixed range a user would set from the primary's own P99 lets the same canary through.
	p, err := metrics.NewPrometheus(metrics.Config{Address: prom})
	require.NoError(t, err)
	primaryP99, err := p.RunQuery(context.Background(), fmt.Sprintf(`histogram_quantile(0.99, sum(rate(traefik_service_request_duration_seconds_bucket{service=~"%s-podinfo-primary-[0-9a-zA-Z-]+@kubernetescrd"}[30s])) by (le)) * 1000`, slowNS))
	require.NoError(t, err)
	fixed := judgeLab(slowNS, v1beta1.CanaryMetric{Name: "request-duration", Interval: "30s",
		ThresholdRange: &v1beta1.CanaryThresholdRange{Max: f64(math.Ceil(primaryP99))}})
	if fixed.Verdict != activities.VerdictPass {
		// The canary's sleeps end 46 ms under the bucket's 250 ms bound, so only what the machine adds to a request
		// can carry it over; a third of a percent of requests there lifts the interpolated P99 past the threshold.
		// Then the figure measures the machine's load, not the bucket layout: say so rather than fail.
		over, err := p.RunQuery(context.Background(), fmt.Sprintf(`1 - sum(rate(traefik_service_request_duration_seconds_bucket{service=~"%[1]s-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd",le="0.25"}[30s]))
/ sum(rate(traefik_service_request_duration_seconds_count{service=~"%[1]s-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd"}[30s]))`, slowNS))
		require.NoError(t, err)
		require.Positive(t, over, "the fixed range at the primary's P99 %.1f ms caught a canary none of whose requests took 250 ms: %s", primaryP99, fixed.Message)
		t.Logf("FIGURE fixed range from the primary's P99 (%.1f ms) not shown: the machine pushed %.2f%% of the canary's requests past 250 ms (its sleeps end at 204 ms): %s", primaryP99, over*100, fixed.Message)
	} else {
		t.Logf("FIGURE fixed range from the primary's P99 (%.1f ms) misses it: %s", primaryP99, fixed.Message)
	}

	// False alarms: identical versions on disjoint 30 s windows: 20 (the figure in BENCHMARKS.md) with
	// CANARYFLOW_LONG=1 (make test-long), 4 in make test, whose budget ten minutes of windows would eat.
	windows := 4
	if os.Getenv("CANARYFLOW_LONG") == "1" {
		windows = 20
	}
	var alarms int
	var worstP, worstEffect = 1.0, 0.0
	for i := range windows {
		time.Sleep(time.Until(start.Add(time.Duration(i+2) * 30 * time.Second)))
		r := judgeLab(sameNS, compare(), meanLatency(sameNS))
		require.NotNil(t, r.PValue, r.Message)
		t.Logf("same run %2d: %s (%d/%d samples)", i+1, r.Message, r.CanarySamples, r.PrimarySamples)
		if r.Verdict == activities.VerdictFail {
			alarms++
		}
		worstP = min(worstP, *r.PValue)
		if math.Abs(*r.EffectSize) > math.Abs(worstEffect) {
			worstEffect = *r.EffectSize
		}
	}
	t.Logf("FIGURE identical versions: %d false alarms in %d runs; smallest p=%s, largest effect %s", alarms, windows, activities.PValue(worstP), activities.SignedPercent(worstEffect))
	require.Zero(t, alarms)
}
