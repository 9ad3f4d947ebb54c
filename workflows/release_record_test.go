package workflows

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1alpha1"
	"github.com/canaryflow/canaryflow/lab/labbin"
)

// releaseHistoriesDir holds the recorded CanaryRelease histories TestReplayReleaseHistories replays (apart from
// the rollouts' own, whose tests read every file of historiesDir as a CanaryRollout).
const releaseHistoriesDir = "testdata/release-histories"

// releaseRecording is the release history kept: two clusters, a bake time, an approval gate, the second cluster
// failing and rollback-all.
const releaseRecording = "release-rollback-all.json"

// TestReplayReleaseHistories replays every recorded release history against the current code: a change that would
// break open releases fails here.
func TestReplayReleaseHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(releaseHistoriesDir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded release histories: CANARYFLOW_RECORD=1 go test ./workflows -run TestRecordReleaseHistory")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(CanaryRelease, workflow.RegisterOptions{Name: ReleaseWorkflowName})
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, file))
		})
	}
}

// TestRecordReleaseHistory records a CanaryRelease on a dev server, one worker per cluster task queue serving a
// stand-in CanaryRollout and the target activities over fake clusters, and writes its history for the replay test.
func TestRecordReleaseHistory(t *testing.T) {
	if os.Getenv("CANARYFLOW_RECORD") != "1" {
		t.Skip("set CANARYFLOW_RECORD=1 to record the replay histories on a dev server")
	}
	if only := os.Getenv("CANARYFLOW_RECORD_ONLY"); only != "" && !slices.Contains(strings.Split(only, ","), releaseRecording) {
		t.Skip("CANARYFLOW_RECORD_ONLY leaves out " + releaseRecording)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{ExistingPath: labbin.Temporal(), LogLevel: "error",
		ClientOptions: &client.Options{Namespace: "default"}})
	require.NoError(t, err)
	defer func() { _ = srv.Stop() }()
	c := srv.Client()

	f := newFakeClusters("canaryflow-a", "canaryflow-b")
	f.analysis = 2 * time.Second
	f.outcome["canaryflow-b"] = "fail"
	for _, q := range []string{"record-release", "canaryflow-a", "canaryflow-b"} {
		w := worker.New(c, q, worker.Options{})
		w.RegisterWorkflowWithOptions(CanaryRelease, workflow.RegisterOptions{Name: ReleaseWorkflowName})
		w.RegisterWorkflowWithOptions(f.rollout, workflow.RegisterOptions{Name: WorkflowName})
		w.RegisterActivity(&activities.Targets{Kube: f})
		require.NoError(t, w.Start())
		defer w.Stop()
	}
	p := plan(v1alpha1.OnFailureRollbackAll, func(p *v1alpha1.Plan) {
		p.Waves = p.Waves[:2]
		p.Waves[0].Clusters[0].Name, p.Waves[0].Clusters[0].TaskQueue = "a", "canaryflow-a"
		p.Waves[0].BakeTime = 2 * time.Second
		p.Waves[1].Clusters = p.Waves[1].Clusters[:1]
		p.Waves[1].Clusters[0].Name, p.Waves[1].Clusters[0].TaskQueue = "b", "canaryflow-b"
		p.Waves[1].Gate = v1alpha1.GateApproval
	})
	id := v1alpha1.WorkflowID(p.Name)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: "record-release"}, ReleaseWorkflowName, ReleaseInput{Plan: p})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		v, err := c.QueryWorkflow(ctx, id, "", QueryStatus)
		var st ReleaseStatus
		return err == nil && v.Get(&st) == nil && st.PendingGate == "eu"
	}, time.Minute, 200*time.Millisecond, "the release waits at wave eu's gate")
	require.NoError(t, c.SignalWorkflow(ctx, id, "", SignalApprove, ApproveSignal{Gate: "eu", By: "recorder", Reason: "replay fixture"}))
	var res ReleaseResult
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, ReleaseFailed, res.Phase)
	require.Equal(t, ClusterRolledBack, res.Status.Clusters[0].Phase, res.Reason)
	// writeHistory writes under historiesDir; the release's histories live beside it.
	require.NoError(t, writeHistory(ctx, c, filepath.Join("..", "release-histories", releaseRecording), id, run.GetRunID(), string(res.Phase)))
}
