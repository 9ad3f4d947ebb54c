package workflows

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
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
			r.RegisterWorkflowWithOptions(CanaryFinalize, workflow.RegisterOptions{Name: FinalizeWorkflowName})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, file))
		})
	}
}

// TestTenStepCanaryFitsFarBelowTheHistoryLimit pins the history size of the reference canary (10 steps, 2
// metrics, 1 rollout webhook, promoted), as recorded on a dev server: a normal rollout must never need
// continue-as-new, and from versionLeanHistory on it writes at most 200 events (the events each change saved are
// in the README).
func TestTenStepCanaryFitsFarBelowTheHistoryLimit(t *testing.T) {
	for _, tc := range []struct {
		file string
		max  int
	}{
		{"ten-steps.json", historyLimit / 10}, // recorded before versionLeanHistory
		{"ten-steps-v2.json", 200},            // recorded at versionLeanHistory
		{"ten-steps-v3.json", 200},            // recorded at versionSignalListeners
		{"ten-steps-v4.json", 200},            // recorded once the workflow states its decisions (summaries)
		{"ten-steps-v5.json", 200},            // recorded at versionStepCadence
		{"metrics-only-v6.json", 140},         // recorded at versionLocalChecks, without the webhook
		{"baseline-metrics-only.json", 130},   // the same canary recorded at versionBaseline
	} {
		hist := readHistory(t, tc.file)
		t.Logf("%s: %d history events (continue-as-new at %d)", tc.file, len(hist.Events), historyLimit)
		require.LessOrEqual(t, len(hist.Events), tc.max, tc.file)
	}
}

// From versionLocalChecks on, an analysis step without webhooks is one workflow task: its timer fires, one task
// checks the metrics (a RunChecks marker), sets the weight and starts the next timer, with no activity task. A
// step with a webhook keeps its RunChecks activity and the workflow task its result wakes: two per step. Read from
// histories recorded on a dev server; a retried check (a lost attempt) stays in its step's one task.
func TestMetricsOnlyStepsAreOneWorkflowTask(t *testing.T) {
	for _, tc := range []struct {
		file                string
		tasksPerStep        int
		markers, activities int // RunChecks as local activities (markers) and as activities
	}{
		{"ten-steps-v5.json", 2, 0, 10},
		{"metrics-only-v6.json", 1, 10, 0},
		{"metrics-only-retried-v6.json", 1, 5, 0}, // one marker per step, its retry in it
		{"baseline-metrics-only.json", 1, 10, 0},  // local checks taken at the baseline, with no marker of their own
		{"metrics-only-rollback-v6.json", 1, 3, 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			hist := readHistory(t, tc.file)
			var perStep []int
			tasks, inStep, markers, acts := 0, false, 0, 0
			for _, ev := range hist.GetEvents() {
				switch ev.GetEventType() {
				case enumspb.EVENT_TYPE_TIMER_FIRED:
					tasks, inStep = 0, true
				case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
					tasks++
				case enumspb.EVENT_TYPE_TIMER_STARTED:
					if inStep {
						perStep = append(perStep, tasks)
					}
					inStep = false
				}
				if typ, _, _, ok := LocalActivity(ev); ok && typ == activities.ActivityRunChecks {
					markers++
				}
				if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == activities.ActivityRunChecks {
					acts++
				}
			}
			require.NotEmpty(t, perStep)
			for i, n := range perStep {
				require.Equal(t, tc.tasksPerStep, n, "workflow tasks of the step after timer %d: %v", i+1, perStep)
			}
			require.Equal(t, tc.markers, markers, "RunChecks local activities")
			require.Equal(t, tc.activities, acts, "RunChecks activities")
		})
	}
}

// The StatefulSet histories are what their names say: the weight search attribute (the share of updated pods)
// steps through every partition of the 5 replicas, with a RunChecks activity between steps, to the end recorded.
func TestStatefulSetHistoriesStepThroughThePartitions(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	for _, tc := range []struct {
		file    string
		weights []int
		checks  int
		phase   Phase
	}{
		// Partitions 4, 3, 2, 1, 0, then back at 5 with the new template recorded as stable.
		{"statefulset-promotion.json", []int{0, 20, 40, 60, 80, 100, 0}, 4, PhaseSucceeded},
		// Partition 4, the checks of the second step fail, the stable template is restored on every pod.
		{"statefulset-rollback-failed-checks.json", []int{0, 20, 0}, 1, PhaseFailed},
	} {
		t.Run(tc.file, func(t *testing.T) {
			hist := readHistory(t, tc.file)
			var weights []int
			checks := 0
			var res RolloutResult
			for _, ev := range hist.GetEvents() {
				fields := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
				if p, ok := fields[searchattr.CanaryWeight.GetName()]; ok {
					var w int
					require.NoError(t, dc.FromPayload(p, &w))
					weights = append(weights, w)
				}
				if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "RunChecks" {
					checks++
				}
				if a := ev.GetWorkflowExecutionCompletedEventAttributes(); a != nil {
					require.NoError(t, dc.FromPayloads(a.GetResult(), &res))
				}
			}
			t.Logf("%s: %d history events", tc.file, len(hist.GetEvents()))
			require.Equal(t, tc.weights, weights, "CanaryWeight upserts")
			require.Equal(t, tc.checks, checks, "RunChecks activities")
			require.Equal(t, tc.phase, res.Phase)
		})
	}
}

// Signals that reach a rollout in one workflow task apply in a fixed order of kinds (approve, abort, pause,
// resume, promote, revision), whatever order they came in: signals-one-task-v6.json was recorded with one
// listener coroutine per kind, and a resume then a pause sent during a step came in one task; the pause applied
// first, so the resume undid it and the rollout went on to its promotion. The single listener must decide the
// same (one applying them as they came would pause and leave the rollout waiting): the replay fails otherwise.
func TestSignalsOfOneTaskApplyInAFixedOrder(t *testing.T) {
	hist := readHistory(t, "signals-one-task-v6.json")
	var signals []string
	tasks := 0 // workflow tasks started since the first signal
	var res RolloutResult
	for _, ev := range hist.GetEvents() {
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
			signals = append(signals, a.GetSignalName())
		}
		if len(signals) > 0 && len(signals) < 2 && ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED {
			tasks++
		}
		if a := ev.GetWorkflowExecutionCompletedEventAttributes(); a != nil {
			require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(a.GetResult(), &res))
		}
	}
	require.Equal(t, []string{SignalResume, SignalPause}, signals)
	require.Zero(t, tasks, "both signals came in one workflow task")
	require.True(t, res.Promoted, "the rollout went on: the resume applied after the pause")
	require.False(t, res.Status.Paused)

	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(CanaryRollout, workflow.RegisterOptions{Name: WorkflowName})
	require.NoError(t, r.ReplayWorkflowHistory(nil, hist))
}

// A run from versionBaseline on records one version marker and one upsert of TemporalChangeVersion, where the
// runs before it recorded one of each per change they met (six in a metrics-only promotion), and takes every
// change's branch all the same: its steps keep the interval's cadence (a timer shorter than the interval after a
// step), record their metric values in the memo, and check in a local activity when they call no webhook.
func TestBaselineRunsRecordOneVersionMarkerAndTakeEveryChange(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	for _, tc := range []struct {
		file               string
		markers            []string // version markers, in order
		memos, localChecks int      // lastChecks memo upserts; RunChecks local activities
		cadencedTimers     int      // timers between steps shorter than the 10 s interval
		activity           int      // RunChecks activities
	}{
		{file: "metrics-only-v6.json", markers: []string{versionLeanHistory, versionSignalListeners, versionStepCadence,
			versionLocalChecks, versionMemoChecks, versionRevertPromotion}, memos: 10, localChecks: 10, cadencedTimers: 10},
		{file: "baseline-metrics-only.json", markers: []string{versionBaseline}, memos: 10, localChecks: 10, cadencedTimers: 10},
		{file: "baseline-slow-ready.json", markers: []string{versionBaseline}, memos: 5, cadencedTimers: 5, activity: 5},
	} {
		t.Run(tc.file, func(t *testing.T) {
			hist := readHistory(t, tc.file)
			var markers []string
			changeVersions, memos, local, cadenced, remote := 0, 0, 0, 0, 0
			inSteps := false
			for _, ev := range hist.GetEvents() {
				if m := ev.GetMarkerRecordedEventAttributes(); m != nil && m.GetMarkerName() == "Version" {
					var id string
					require.NoError(t, dc.FromPayloads(m.GetDetails()["change-id"], &id))
					markers = append(markers, id)
				}
				if _, ok := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()["TemporalChangeVersion"]; ok {
					changeVersions++
				}
				if _, ok := ev.GetWorkflowPropertiesModifiedEventAttributes().GetUpsertedMemo().GetFields()["lastChecks"]; ok {
					memos++
				}
				if typ, _, _, ok := LocalActivity(ev); ok && typ == activities.ActivityRunChecks {
					local++
				}
				if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == activities.ActivityRunChecks {
					remote++
				}
				if split, ok := SplitSet(ev); ok {
					inSteps = split.CanaryWeight > 0
				}
				// The wait after a step (not a readiness poll's 2 or 4 s): what is left of the 10 s interval.
				if d := ev.GetTimerStartedEventAttributes().GetStartToFireTimeout().AsDuration(); inSteps && d > 5*time.Second && d < 10*time.Second {
					cadenced++
				}
			}
			require.Equal(t, tc.markers, markers, "version markers")
			require.Equal(t, len(tc.markers), changeVersions, "TemporalChangeVersion upserts, one per marker")
			require.Equal(t, tc.memos, memos, "steps that recorded their metric values in the memo")
			require.Equal(t, tc.localChecks, local, "RunChecks local activities")
			require.Equal(t, tc.activity, remote, "RunChecks activities (a webhook keeps them one)")
			require.Equal(t, tc.cadencedTimers, cadenced, "waits after a step that took off the step's own time")
		})
	}
}

// readHistory reads a history recorded in testdata/histories.
func readHistory(t *testing.T, file string) *historypb.History {
	t.Helper()
	f, err := os.Open(filepath.Join(historiesDir, file))
	require.NoError(t, err)
	defer f.Close()
	hist, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	return hist
}
