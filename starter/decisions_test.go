package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/canaryflow/canaryflow/activities"
)

// historyDecisions reads a history recorded by the workflows package's TestRecordHistories as `starter history`
// does and returns the texts of its decisions and the exit code its end means.
func historyDecisions(t *testing.T, file string) ([]string, int) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "workflows", "testdata", "histories", file))
	require.NoError(t, err)
	defer f.Close()
	hist, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	r := newDecisionReader()
	var texts []string
	code := -1
	for _, ev := range hist.GetEvents() {
		ds, end := r.read(ev)
		for _, d := range ds {
			texts = append(texts, d.Text)
		}
		if end != nil {
			code = end.code
		}
	}
	return texts, code
}

// The workflow's lean-history version writes about half the events (local activities for the short Kubernetes
// calls, one activity for a step's checks), and `starter history` still tells every decision of it: the same
// decisions, in the same order, as the history of the same rollout recorded before that version.
func TestHistoryTellsTheSameDecisionsBeforeAndAfterTheLeanHistory(t *testing.T) {
	for _, tc := range []struct{ before, after string }{
		{"ten-steps.json", "ten-steps-v2.json"},
		{"ten-steps.json", "ten-steps-v3.json"},
		{"rollback-failed-checks.json", "rollback-failed-checks-v2.json"},
		{"confirm-promotion-approved.json", "confirm-promotion-approved-v2.json"},
		{"confirm-promotion-approved.json", "confirm-promotion-approved-v3.json"},
		{"abort-signal.json", "abort-signal-v3.json"},
	} {
		t.Run(tc.after, func(t *testing.T) {
			before, beforeCode := historyDecisions(t, tc.before)
			after, afterCode := historyDecisions(t, tc.after)
			require.Equal(t, beforeCode, afterCode)
			// The canaries of the recordings are named apart (-v2): compare with the suffix taken out.
			for i := range after {
				after[i] = strings.NewReplacer("-v2", "", "-v3", "").Replace(after[i])
			}
			require.Equal(t, before, after)
		})
	}
}

// The reference ten-step canary's history names every weight it set, every check with its value and range, every
// webhook answer, and the promotion: derived from activity types in a history of a workflow that did not state
// its decisions (v3), stated by the workflow itself from v4 on.
func TestHistoryOfTheTenStepCanaryNamesEveryDecision(t *testing.T) {
	for _, file := range []string{"ten-steps-v3.json", "ten-steps-v4.json"} {
		t.Run(file, func(t *testing.T) {
			texts, code := historyDecisions(t, file)
			require.Equal(t, exitOK, code)
			name := "podinfo-" + strings.TrimSuffix(file, ".json") + ".test"
			count := map[string]int{}
			for _, tx := range texts {
				count[tx]++
			}
			for w := 10; w <= 100; w += 10 {
				require.Equal(t, 1, count["Advance "+name+" canary weight "+itoa(w)], "stated once:\n%s", strings.Join(texts, "\n"))
				require.Contains(t, texts, "weight primary "+itoa(100-w)+" canary "+itoa(w))
			}
			require.Contains(t, texts, "weight primary 100 canary 0")
			require.Equal(t, 10, count["rollout hook load-test passed"])
			require.Equal(t, 10, count["check request-success-rate 99.5 in [99, —] pass"])
			require.Equal(t, 10, count["check request-duration 120 in [—, 500] pass"])
			require.Equal(t, "promoted revision rev2", texts[len(texts)-1])
		})
	}
}

// From v4 on the workflow states each decision once, in its own words, as the summary of the command that acts on
// it; `starter history` prints those and derives none. The advances it used to derive are the ones the workflow
// now states, in the same order, and the workflow states more: the new revision, the start of the analysis, each
// halt with its reason (a gate included), the rollback and the promotion, as Flagger's events name them.
func TestHistoryPrintsTheDecisionsTheWorkflowStated(t *testing.T) {
	decisions := func(texts []string) []string {
		var out []string
		for _, tx := range texts {
			tx = strings.NewReplacer("-v2", "", "-v3", "", "-v4", "").Replace(tx)
			if strings.HasPrefix(tx, "Advance ") {
				out = append(out, tx)
			}
		}
		return out
	}
	for _, tc := range []struct {
		before, after string
		stated        []string
	}{
		{"ten-steps-v3.json", "ten-steps-v4.json", []string{"New revision detected! Scaling up podinfo.test",
			"Starting canary analysis for podinfo-ten-steps-v4.test", "Copying podinfo.test template spec to podinfo-primary.test"}},
		{"rollback-failed-checks-v2.json", "rollback-failed-checks-v4.json", []string{
			"Halt podinfo-rollback-v4.test advancement success rate 53.42% < 99%",
			"Rolling back podinfo-rollback-v4.test failed checks threshold reached 3", "Canary failed! Scaling down podinfo.test"}},
		{"confirm-promotion-approved-v3.json", "confirm-promotion-approved-v4.json", []string{
			"Canary podinfo-approval-v4.test is waiting for approval: confirm-promotion check promotion-gate failed forbidden",
			"Halt podinfo-approval-v4.test advancement waiting for promotion approval",
			"Gate confirm-promotion of podinfo-approval-v4.test opened by recorder: replay fixture"}},
		{"abort-signal-v3.json", "abort-signal-v4.json", []string{
			"Rolling back podinfo-abort-v4.test aborted by recorder: replay fixture"}},
	} {
		t.Run(tc.after, func(t *testing.T) {
			before, beforeCode := historyDecisions(t, tc.before)
			after, afterCode := historyDecisions(t, tc.after)
			require.Equal(t, beforeCode, afterCode)
			require.Equal(t, decisions(before), decisions(after))
			for _, s := range tc.stated {
				require.Contains(t, after, s, "stated by the workflow:\n%s", strings.Join(after, "\n"))
				require.NotContains(t, before, strings.NewReplacer("-v4", "-v3").Replace(s), "not stated before v4")
			}
			for _, derived := range []string{"promoting: copying the canary's pod template to the primary", "RunMetricChecks failed"} {
				for _, tx := range after {
					require.False(t, strings.HasPrefix(tx, derived), "derived from an activity's name: %q", tx)
				}
			}
		})
	}
}

// From the local-checks version on, a step without webhooks checks its metrics in a local activity, its result a
// marker: `starter history` still names every check of every step with its value and range, each weight, the
// promotion, and the halt and rollback of failed checks.
func TestHistoryNamesTheChecksOfMetricsOnlySteps(t *testing.T) {
	texts, code := historyDecisions(t, "metrics-only-v6.json")
	require.Equal(t, exitOK, code)
	count := map[string]int{}
	for _, tx := range texts {
		count[tx]++
	}
	for w := 10; w <= 100; w += 10 {
		require.Equal(t, 1, count["Advance podinfo-metrics-only-v6.test canary weight "+itoa(w)], "stated once:\n%s", strings.Join(texts, "\n"))
	}
	// The first step checks nothing (no traffic yet); the nine after it and the promotion's step check both.
	require.Equal(t, 10, count["check request-success-rate 99.5 in [99, —] pass"], "%s", strings.Join(texts, "\n"))
	require.Equal(t, 10, count["check request-duration 120 in [—, 500] pass"])
	require.Equal(t, "promoted revision rev2", texts[len(texts)-1])

	texts, code = historyDecisions(t, "metrics-only-rollback-v6.json")
	require.Equal(t, exitFailed, code)
	require.Contains(t, texts, "check request-success-rate 53.42 not in [99, —] fail")
	require.Contains(t, texts, "Halt podinfo-metrics-only-rollback-v6.test advancement success rate 53.42% < 99%")
	require.Contains(t, texts[len(texts)-1], "rolled back: Rolling back podinfo-metrics-only-rollback-v6.test failed checks threshold reached 3")
}

func itoa(i int) string { return strconv.Itoa(i) }

// A short Kubernetes call is a local activity, and its failure a marker: a refusal there (the router's object is
// not canaryflow's) still reads as a refusal before any change, exit 2, as when the call was an activity.
func TestHistoryReadsARefusalOfALocalActivity(t *testing.T) {
	texts, code := historyDecisions(t, "refused-router-v3.json")
	require.Equal(t, exitBadInput, code)
	require.Contains(t, texts, "ReconcileRouter failed: TraefikService test/podinfo exists and is not managed by canaryflow")
	require.Equal(t, refusedText("TraefikService test/podinfo exists and is not managed by canaryflow"), texts[len(texts)-1])
}

// Metric checks that cannot run (the backend down) read as before lean-history, when they were an activity of
// their own that failed: one line per step, then the rollback at the threshold. From v4 on the workflow states
// the halt each of them causes, with the cause: the line a user reads is the decision, not an activity's name.
func TestHistoryReadsMetricChecksThatCouldNotRun(t *testing.T) {
	const cause = "metric request-success-rate of canary test/podinfo: dial tcp 127.0.0.1:9090: connect: connection refused"
	for _, tc := range []struct{ file, line, absent string }{
		{"metrics-down-v3.json", "RunMetricChecks failed: " + cause, "Halt "},
		{"metrics-down-v4.json", "Halt podinfo-metrics-down-v4.test advancement metric checks could not run: " + cause, "RunMetricChecks failed"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			texts, code := historyDecisions(t, tc.file)
			require.Equal(t, exitFailed, code)
			n := 0
			for _, tx := range texts {
				if tx == tc.line {
					n++
				}
				require.False(t, strings.HasPrefix(tx, tc.absent), "%q in:\n%s", tx, strings.Join(texts, "\n"))
			}
			require.Equal(t, 2, n, "one per step until the threshold (2):\n%s", strings.Join(texts, "\n"))
			name := "podinfo-" + strings.TrimSuffix(tc.file, ".json") + ".test"
			require.Contains(t, texts[len(texts)-1], "rolled back: Rolling back "+name+" failed checks threshold reached 2")
		})
	}
}

// A check line keeps its form for fixed ranges and prints the comparison's figures for a compare check.
func TestCheckLinePrintsAComparisonsPValueAndEffectSize(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		c    activities.CheckResult
		line string
	}{
		{activities.CheckResult{Metric: "request-success-rate", Value: f(99.5), Min: f(99), Verdict: activities.VerdictPass}, "request-success-rate 99.5 in [99, —] pass"},
		{activities.CheckResult{Metric: "request-success-rate", Value: f(42), Min: f(99), Verdict: activities.VerdictFail}, "request-success-rate 42 not in [99, —] fail"},
		{activities.CheckResult{Metric: "request-duration", Verdict: activities.VerdictFail, Message: "no values found"}, "request-duration no values found fail"},
		{activities.CheckResult{Metric: "request-duration", Value: f(121.4), Verdict: activities.VerdictFail, PValue: f(0.003), Alpha: f(0.05),
			EffectSize: f(0.2143), CanarySamples: 20, PrimarySamples: 19}, "request-duration vs primary +21.4% p=0.003 < 0.05 (20 canary, 19 primary samples) fail"},
		{activities.CheckResult{Metric: "request-duration", Value: f(100.2), Max: f(500), Verdict: activities.VerdictPass, PValue: f(0.41), Alpha: f(0.01),
			EffectSize: f(-0.012), CanarySamples: 11, PrimarySamples: 11}, "request-duration vs primary -1.2% p=0.41 ≥ 0.01 (11 canary, 11 primary samples) pass"},
	} {
		require.Equal(t, tc.line, checkLine(tc.c))
	}
}
