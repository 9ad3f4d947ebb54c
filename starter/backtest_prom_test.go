package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/providers/metrics/promtest"
)

// errorBurstHistory records two hours of a service's error rate (percent, every 15 s) that is 0 except for 10
// during [burst, burst+5m), and its p99 latency, a steady 120 ms, in OpenMetrics for promtool.
func errorBurstHistory(from, to, burst time.Time) string {
	var b strings.Builder
	b.WriteString("# HELP error_rate_percent Percent of requests answered 5xx.\n# TYPE error_rate_percent gauge\n")
	for t := from; !t.After(to); t = t.Add(15 * time.Second) {
		v := 0.0
		if !t.Before(burst) && t.Before(burst.Add(5*time.Minute)) {
			v = 10
		}
		fmt.Fprintf(&b, "error_rate_percent{namespace=\"test\",workload=\"podinfo-primary\"} %g %d\n", v, t.Unix())
	}
	b.WriteString("# HELP latency_p99_ms P99 request latency.\n# TYPE latency_p99_ms gauge\n")
	for t := from; !t.After(to); t = t.Add(15 * time.Second) {
		fmt.Fprintf(&b, "latency_p99_ms{namespace=\"test\"} 120 %d\n", t.Unix())
	}
	b.WriteString("# EOF\n")
	return b.String()
}

// TestBacktestFindsExactlyTheStartsWhoseAnalysisSawAnErrorBurst replays a canary (5 steps of 1 min, threshold
// 1) over an hour of recorded history, backfilled into a real Prometheus, with a 5-minute error burst at +20m:
// exactly the starts whose 5 checks (start+1m … start+5m) include a minute of the burst roll back, and the
// error-rate metric is named as what decided.
func TestBacktestFindsExactlyTheStartsWhoseAnalysisSawAnErrorBurst(t *testing.T) {
	t.Parallel()
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Minute).UTC()
	burst := t0.Add(20 * time.Minute)
	prom := promtest.StartWithHistory(t, errorBurstHistory(t0.Add(-10*time.Minute), t0.Add(2*time.Hour), burst))

	// The error rate is read where the template's provider.address points, the latency from --prometheus.
	doc := `apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: error-rate, namespace: test}
spec:
  provider: {type: prometheus, address: ` + prom + `}
  query: max(error_rate_percent{namespace="{{ namespace }}", workload="{{ target }}"})
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: latency, namespace: test}
spec:
  provider: {type: prometheus}
  query: max(latency_p99_ms{namespace="{{ namespace }}"})
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    threshold: 1
    stepWeight: 10
    maxWeight: 50
    webhooks:
    - name: load-test
      type: rollout
      url: http://loadtester.test/
    metrics:
    - name: latency
      templateRef: {name: latency, namespace: test}
      thresholdRange: {max: 500}
    - name: error-rate
      templateRef: {name: error-rate, namespace: test}
      thresholdRange: {max: 1}
`
	file := filepath.Join(t.TempDir(), "canary.yaml")
	require.NoError(t, os.WriteFile(file, []byte(doc), 0o600))
	window := []string{"backtest", "-f", file, "--from", t0.Format(time.RFC3339), "--to", t0.Add(time.Hour).Format(time.RFC3339),
		"--step", "1m", "--prometheus", prom}

	code, out, errOut := runStarter("", append(window, "--target", "primary")...)
	require.Equal(t, exitFailed, code, "some start would roll back: exit 1\n%s%s", out, errOut)

	var want, got []string
	for m := 15; m <= 23; m++ {
		want = append(want, t0.Add(time.Duration(m)*time.Minute).Format(time.RFC3339))
	}
	for _, m := range regexp.MustCompile(`(?m)^start (\S+): roll back at \S+: error-rate 10\.00 > 1$`).FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	require.Equal(t, want, got, out)
	require.Contains(t, out, "Summary: 9 of 61 starts would roll back, 52 would promote, 0 still running\n"+
		"  rolled back by error-rate: 9 starts, first "+want[0]+", last "+want[8]+"\n")
	require.Contains(t, out, "note: webhooks cannot be replayed: load-test (rollout) are treated as passed")
	require.Contains(t, out, "(2 Prometheus range queries)", "one range query per metric covers the whole window")
	// A start whose last check comes right after the burst passes every step and promotes.
	after := t0.Add(24 * time.Minute)
	require.Contains(t, out, "start "+after.Format(time.RFC3339)+": promote at "+clock(after.Add(5*time.Minute))+"\n"+
		"  "+clock(after)+"  weight 0           first step: pre-rollout webhooks, no metric checks → weight 10\n"+
		"  "+clock(after.Add(time.Minute))+"  weight 10          latency 120.00 <= 500; error-rate 0.00 <= 1 → weight 20\n")

	// The canary's own series (the default target) did not exist then: every check finds no data and fails, as a
	// rollout's would.
	code, out, errOut = runStarter("", window...)
	require.Equal(t, exitFailed, code, out+errOut)
	require.Contains(t, out, "Summary: 61 of 61 starts would roll back")
	require.Contains(t, out, "error-rate: no values found (is the canary receiving traffic?)")
}
