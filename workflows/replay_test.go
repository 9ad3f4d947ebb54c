package workflows

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays every history recorded on a dev server (see TestRecordHistories) against
// the current code: a change that would break open rollouts fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(historiesDir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories: CANARYFLOW_RECORD=1 go test ./workflows -run TestRecordHistories")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(CanaryRollout, workflow.RegisterOptions{Name: WorkflowName})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, file))
		})
	}
}

// TestTenStepCanaryFitsFarBelowTheHistoryLimit pins the history size of the reference canary (10 steps, 2
// metrics, 1 rollout webhook, promoted): a normal rollout must never need continue-as-new.
func TestTenStepCanaryFitsFarBelowTheHistoryLimit(t *testing.T) {
	f, err := os.Open(filepath.Join(historiesDir, "ten-steps.json"))
	require.NoError(t, err)
	defer f.Close()
	hist, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	t.Logf("ten-step canary: %d history events (continue-as-new at %d)", len(hist.Events), historyLimit)
	require.Less(t, len(hist.Events), historyLimit/10)
}
