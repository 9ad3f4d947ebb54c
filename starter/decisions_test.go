package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
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
// webhook answer, and the promotion.
func TestHistoryOfTheTenStepCanaryNamesEveryDecision(t *testing.T) {
	texts, code := historyDecisions(t, "ten-steps-v3.json")
	require.Equal(t, exitOK, code)
	for w := 10; w <= 100; w += 10 {
		require.Contains(t, texts, "Advance podinfo-ten-steps-v3.test canary weight "+itoa(w))
		require.Contains(t, texts, "weight primary "+itoa(100-w)+" canary "+itoa(w))
	}
	require.Contains(t, texts, "weight primary 100 canary 0")
	count := map[string]int{}
	for _, tx := range texts {
		count[tx]++
	}
	require.Equal(t, 10, count["rollout hook load-test passed"])
	require.Equal(t, 10, count["check request-success-rate 99.5 in [99, —] pass"])
	require.Equal(t, 10, count["check request-duration 120 in [—, 500] pass"])
	require.Equal(t, "promoted revision rev2", texts[len(texts)-1])
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
// their own that failed: one line per step, then the rollback at the threshold.
func TestHistoryReadsMetricChecksThatCouldNotRun(t *testing.T) {
	texts, code := historyDecisions(t, "metrics-down-v3.json")
	require.Equal(t, exitFailed, code)
	line := "RunMetricChecks failed: metric request-success-rate of canary test/podinfo: dial tcp 127.0.0.1:9090: connect: connection refused"
	n := 0
	for _, tx := range texts {
		if tx == line {
			n++
		}
	}
	require.Equal(t, 2, n, "one per step until the threshold (2):\n%s", strings.Join(texts, "\n"))
	require.Contains(t, texts[len(texts)-1], "rolled back: Rolling back podinfo-metrics-down-v3.test failed checks threshold reached 2")
}
