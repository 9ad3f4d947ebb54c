package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/catalog"
)

// backtestCanary loads a Canary with the given analysis fields and two inline-query metrics: error-rate (at
// most 1) and latency (at most 500, with the given onNoData policy, "" for the default).
func backtestCanary(t *testing.T, analysis, latencyNoData string) *v1beta1.Canary {
	t.Helper()
	noData := ""
	if latencyNoData != "" {
		noData = "\n      onNoData: " + latencyNoData
	}
	doc := `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    ` + strings.ReplaceAll(analysis, "\n", "\n    ") + `
    metrics:
    - name: latency
      query: latency
      thresholdRange: {max: 500}` + noData + `
    - name: error-rate
      query: errors
      thresholdRange: {max: 1}
`
	set, err := v1beta1.Load(strings.NewReader(doc), "test", v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
	require.NoError(t, err)
	require.Len(t, set.Canaries(), 1)
	return set.Canaries()[0]
}

// recorded is what Prometheus would answer at each minute after the start: a metric's value, or none.
type recorded map[string]map[int]float64

// replayOn replays c from start over the recorded values, with the backtest's own judging (promChecks.at).
func replayOn(t *testing.T, c *v1beta1.Canary, rec recorded, start, now time.Time) replayResult {
	t.Helper()
	p := &promChecks{}
	for _, m := range c.Spec.Analysis.Metrics {
		s := &metricSeries{metric: m, values: map[int64]float64{}, fetched: now.Add(time.Hour)}
		for minute, v := range rec[m.Name] {
			s.values[start.Add(time.Duration(minute)*time.Minute).UnixMilli()] = v
		}
		p.series = append(p.series, s)
	}
	r, err := replay(c, start, now, p.at)
	require.NoError(t, err)
	return r
}

// healthy is a recording where both metrics are fine for the first hour, with the given overrides.
func healthy(overrides recorded) recorded {
	rec := recorded{"latency": {}, "error-rate": {}}
	for m := 0; m < 60; m++ {
		rec["latency"][m], rec["error-rate"][m] = 100, 0
	}
	for name, vs := range overrides {
		for m, v := range vs {
			if v < 0 {
				delete(rec[name], m) // no data at that minute
				continue
			}
			rec[name][m] = v
		}
	}
	return rec
}

func TestBacktestReplaysTheAnalysisScheduleAsTheWorkflowRunsIt(t *testing.T) {
	start := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	later := start.Add(24 * time.Hour)
	for _, tc := range []struct {
		name, analysis, latencyNoData string
		rec                           recorded
		now                           time.Time
		// thens is what each step led to, from the first step (at the start) on, one per minute or as listed.
		thens       []string
		end         string
		endMinute   int
		decider     string
		failedAtEnd int
	}{
		{"healthy weighted canary promotes after maxWeight", "stepWeight: 10\nmaxWeight: 30", "", healthy(nil), later,
			[]string{"weight 10", "weight 20", "weight 30", endPromote}, endPromote, 3, "", 0},
		{"stepWeights win over stepWeight", "stepWeight: 10\nstepWeights: [5, 50]", "", healthy(nil), later,
			[]string{"weight 5", "weight 50", endPromote}, endPromote, 2, "", 0},
		{"a failure below the threshold halts the step and the analysis goes on", "stepWeight: 10\nmaxWeight: 30\nthreshold: 2", "",
			healthy(recorded{"error-rate": {2: 5}}), later,
			[]string{"weight 10", "weight 20", "halt", "weight 30", endPromote}, endPromote, 4, "", 1},
		{"failures reaching the threshold roll back at once", "stepWeight: 10\nmaxWeight: 30\nthreshold: 2", "",
			healthy(recorded{"error-rate": {2: 5, 3: 7}}), later,
			[]string{"weight 10", "weight 20", "halt", endRollback}, endRollback, 3, "error-rate", 2},
		{"failures need not be consecutive to reach the threshold", "stepWeight: 10\nmaxWeight: 50\nthreshold: 2", "",
			healthy(recorded{"error-rate": {1: 5, 3: 7}}), later,
			[]string{"weight 10", "halt", "weight 20", endRollback}, endRollback, 3, "error-rate", 2},
		{"the first step runs no metric checks", "stepWeight: 50\nmaxWeight: 50", "",
			healthy(recorded{"error-rate": {0: 99}}), later,
			[]string{"weight 50", endPromote}, endPromote, 1, "", 0},
		{"no data fails the check by default", "stepWeight: 10\nmaxWeight: 30", "",
			healthy(recorded{"latency": {2: -1}}), later,
			[]string{"weight 10", "weight 20", endRollback}, endRollback, 2, "latency", 1},
		{"onNoData pass passes the check", "stepWeight: 10\nmaxWeight: 30", "pass",
			healthy(recorded{"latency": {2: -1}}), later,
			[]string{"weight 10", "weight 20", "weight 30", endPromote}, endPromote, 3, "", 0},
		{"onNoData hold holds the step without a failed check", "stepWeight: 10\nmaxWeight: 30", "hold",
			healthy(recorded{"latency": {2: -1, 3: -1}}), later,
			[]string{"weight 10", "weight 20", "hold", "hold", "weight 30", endPromote}, endPromote, 5, "", 0},
		{"a failure decides over an earlier metric's hold", "stepWeight: 10\nmaxWeight: 30", "hold",
			healthy(recorded{"latency": {2: -1}, "error-rate": {2: 3}}), later,
			[]string{"weight 10", "weight 20", endRollback}, endRollback, 2, "error-rate", 1},
		{"blue/green promotes after its iterations", "iterations: 3", "", healthy(nil), later,
			[]string{"iteration 1/3", "iteration 2/3", "iteration 3/3", endPromote}, endPromote, 3, "", 0},
		{"blue/green rolls back on a failed iteration", "iterations: 3", "",
			healthy(recorded{"error-rate": {3: 2}}), later,
			[]string{"iteration 1/3", "iteration 2/3", "iteration 3/3", endRollback}, endRollback, 3, "error-rate", 1},
		{"A/B testing promotes after its iterations", "iterations: 2\nmatch: [{headers: {x-canary: {exact: insider}}}]", "",
			healthy(nil), later,
			[]string{"iteration 1/2", "iteration 2/2", endPromote}, endPromote, 2, "", 0},
		{"canary mirroring adds a mirrored step before any weight", "stepWeight: 50\nmaxWeight: 50\nmirror: true", "",
			healthy(nil), later,
			[]string{"mirror", "weight 50", endPromote}, endPromote, 2, "", 0},
		{"an analysis that would end after now is still running", "stepWeight: 10\nmaxWeight: 50", "", healthy(nil),
			start.Add(2*time.Minute + 30*time.Second),
			[]string{"weight 10", "weight 20", "weight 30"}, endRunning, 2, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := backtestCanary(t, tc.analysis, tc.latencyNoData)
			r := replayOn(t, c, tc.rec, start, tc.now)
			var thens []string
			for _, st := range r.Steps {
				thens = append(thens, st.Then)
			}
			require.Equal(t, tc.thens, thens)
			require.Equal(t, tc.end, r.End)
			require.Equal(t, start.Add(time.Duration(tc.endMinute)*time.Minute), r.At)
			require.Equal(t, tc.decider, r.Decider)
			require.Equal(t, tc.failedAtEnd, r.Steps[len(r.Steps)-1].FailedChecks)
		})
	}
}

func TestBacktestSummaryNamesTheDecidingMetricAndExits1OnlyWhenAStartRollsBack(t *testing.T) {
	at := func(m int) time.Time { return time.Date(2026, 11, 29, 10, m, 0, 0, time.UTC) }
	var out bytes.Buffer
	rolledBack := printBacktestSummary(&out, []replayResult{
		{Start: at(0), End: endPromote}, {Start: at(1), End: endRollback, Decider: "error-rate"},
		{Start: at(2), End: endRollback, Decider: "error-rate"}, {Start: at(3), End: endRollback, Decider: "latency"},
		{Start: at(4), End: endRunning},
	})
	require.True(t, rolledBack)
	require.Equal(t, "Summary: 3 of 5 starts would roll back, 1 would promote, 1 still running\n"+
		"  rolled back by error-rate: 2 starts, first 2026-11-29T10:01:00Z, last 2026-11-29T10:02:00Z\n"+
		"  rolled back by latency: 1 starts, first 2026-11-29T10:03:00Z, last 2026-11-29T10:03:00Z\n", out.String())
	require.False(t, printBacktestSummary(&bytes.Buffer{}, []replayResult{{Start: at(0), End: endPromote}, {Start: at(1), End: endRunning}}))
}

func TestBacktestReadsRelativeAndAbsoluteTimes(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 17, 42, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  string
	}{
		{"-24h", time.Date(2026, 11, 28, 10, 17, 0, 0, time.UTC), ""},
		{"-90m", time.Date(2026, 11, 29, 8, 47, 0, 0, time.UTC), ""},
		{"now", time.Date(2026, 11, 29, 10, 17, 0, 0, time.UTC), ""},
		{"2026-11-29T09:00:30+01:00", time.Date(2026, 11, 29, 8, 0, 30, 0, time.UTC), ""},
		{"24h", time.Time{}, "a relative time lies before now"},
		{"yesterday", time.Time{}, "use RFC3339"},
	} {
		got, err := parseWhen("--from", tc.in, now, time.Minute)
		if tc.bad != "" {
			require.ErrorContains(t, err, tc.bad, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestBacktestRefusesWhatItCannotReplay(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, doc, args, want string }{
		{"a metric of another backend", `apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: dd, namespace: test}
spec:
  provider: {type: datadog, address: https://api.datadoghq.com, secretRef: {name: dd}}
  query: avg:errors{*}
---
` + canaryWithMetric("    - name: errors\n      templateRef: {name: dd, namespace: test}\n      thresholdRange: {max: 1}"),
			"", "metric errors: MetricTemplate test/dd queries datadog: the backtest replays Prometheus metrics only"},
		{"a template with credentials", `apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: secured, namespace: test}
spec:
  provider: {type: prometheus, address: https://prom.example, secretRef: {name: prom-auth}}
  query: up
---
` + canaryWithMetric("    - name: up\n      templateRef: {name: secured, namespace: test}\n      thresholdRange: {min: 1}"),
			"", "metric up: MetricTemplate test/secured reads credentials from Secret prom-auth"},
		{"a builtin metric against the primary", canaryWithMetric("    - name: request-success-rate\n      thresholdRange: {min: 99}"),
			"--target primary", "metric request-success-rate: a builtin query selects the canary"},
		{"an unknown target", canaryWithMetric("    - name: request-success-rate\n      thresholdRange: {min: 99}"),
			"--target baseline", `--target "baseline": use canary or primary`},
		{"--to before --from", canaryWithMetric("    - name: request-success-rate\n      thresholdRange: {min: 99}"),
			"--to -2h", "is before --from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := dir + "/" + strings.ReplaceAll(tc.name, " ", "-") + ".yaml"
			require.NoError(t, os.WriteFile(f, []byte(tc.doc), 0o600))
			args := append([]string{"backtest", "-f", f, "--from", "-1h", "--prometheus", "http://127.0.0.1:1"}, strings.Fields(tc.args)...)
			code, out, errOut := runStarter("", args...)
			require.Equal(t, exitBadInput, code, out+errOut)
			require.Contains(t, errOut, tc.want)
			require.Empty(t, out, "nothing is replayed from input that cannot be")
		})
	}
}

func canaryWithMetric(metric string) string {
	return `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    stepWeight: 10
    maxWeight: 50
    metrics:
` + metric + "\n"
}

func TestBacktestExits2WhenPrometheusCannotBeAsked(t *testing.T) {
	f := t.TempDir() + "/canary.yaml"
	require.NoError(t, os.WriteFile(f, []byte(canaryWithMetric("    - name: request-success-rate\n      thresholdRange: {min: 99}")), 0o600))
	code, out, errOut := runStarter("", "backtest", "-f", f, "--from", "-1h", "--prometheus", "http://127.0.0.1:1")
	require.Equal(t, exitBadInput, code, out+errOut)
	require.Contains(t, errOut, "backtest: metric request-success-rate: prometheus http://127.0.0.1:1: ")
	require.Contains(t, errOut, "check the address")
	require.NotContains(t, out, "Summary", "nothing was judged")
}
