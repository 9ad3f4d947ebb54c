package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
)

// withRevertOnDeletion sets spec.revertOnDeletion in a file canaryFile wrote.
func withRevertOnDeletion(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(string(b), "spec:\n", "spec:\n  revertOnDeletion: true\n", 1)), 0o600))
	return path
}

// finalizeResult reads the result of the latest finalisation of ns/name.
func (e *temporalEnv) finalizeResult(t *testing.T, ns, name string) workflows.FinalizeStatus {
	t.Helper()
	var res workflows.FinalizeStatus
	require.NoError(t, e.client.GetWorkflow(context.Background(), workflows.FinalizeWorkflowID(ns, name), "").Get(context.Background(), &res))
	return res
}

func TestDeleteIsRefusedWhileARolloutIsOpenAndForceAbortsItFirst(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := withRevertOnDeletion(t, canaryFile(t, "test", "doomed", "stepWeight: 10\n    maxWeight: 50", ""))
	wait, _ := e.background("rollout", "-f", f, "--wait")
	e.eventuallyStatus(t, "test", "doomed", func(s workflows.Status) bool { return s.CanaryWeight == 10 }, "weight 10")

	code, out, errOut := e.starter("delete", "doomed", "-n", "test", "--wait")
	require.Equal(t, 2, code, out+errOut)
	assert.Contains(t, errOut, "a rollout of test/doomed is open (run ")
	assert.Contains(t, errOut, "nothing was changed; let it end, or pass --force")
	assert.Equal(t, 10, e.status(t, "test", "doomed").Status.CanaryWeight, "the refused delete left the rollout alone")

	code, out, errOut = e.starter("delete", "doomed", "-n", "test", "--force", "--wait", "--by", "carol")
	require.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "aborted the open rollout of test/doomed")
	assert.Contains(t, out, "finalising test/doomed, restoring the objects as they were before it (spec.revertOnDeletion)")
	assert.Contains(t, out, "phase Terminated: Finalization complete for doomed.test")
	assert.Less(t, strings.Index(out, "has ended"), strings.Index(out, "finalising"), "finalised only after the rollback:\n"+out)

	code, rout, _ := wait()
	assert.Equal(t, 1, code, "the aborted rollout ended rolled back:\n"+rout)
	assert.Contains(t, rout, "abort by carol")
	res := e.finalizeResult(t, "test", "doomed")
	assert.Equal(t, workflows.PhaseTerminated, res.Phase)
	assert.True(t, res.Reverted)
	assert.Len(t, res.Steps, 4, "scale up, target ready, router, workloads: %v", res.Steps)
}

func TestDeleteByNameUsesTheSpecOfTheLastRollout(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := canaryFile(t, "test", "kept", "stepWeight: 50\n    maxWeight: 50", "")
	code, out, errOut := e.starter("rollout", "-f", f, "--wait")
	require.Equal(t, 0, code, out+errOut)

	code, out, errOut = e.starter("delete", "kept", "-n", "test", "--wait")

	require.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "leaving its objects as they are (spec.revertOnDeletion is false)")
	assert.Contains(t, out, "workflow ID: finalize/test/kept")
	assert.Contains(t, out, "phase Terminated: spec.revertOnDeletion is false")
	res := e.finalizeResult(t, "test", "kept")
	assert.False(t, res.Reverted)
	assert.Empty(t, res.Steps)
}

func TestDeleteOfACanaryThatNeverRanNeedsItsFile(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	code, _, errOut := e.starter("delete", "ghost", "-n", "test")
	require.Equal(t, 2, code)
	assert.Contains(t, errOut, "no rollout has run for test/ghost, so its spec is unknown: name the Canary file with -f FILE")

	f := withRevertOnDeletion(t, canaryFile(t, "test", "ghost", "stepWeight: 50\n    maxWeight: 50", ""))
	code, out, errOut := e.starter("delete", "-f", f, "--wait")
	require.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "phase Terminated")
}

// While a finalisation runs, a rollout of the same canary is refused before anything changes: the finalisation is
// taking the canary's objects down, and a rollout would fight it. (A finalisation on a queue no worker polls stays
// running for the test.)
func TestRolloutIsRefusedWhileAFinalisationRuns(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := canaryFile(t, "test", "going", "stepWeight: 10\n    maxWeight: 50", "")
	c, err := e.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: workflows.FinalizeWorkflowID("test", "going"), TaskQueue: "nobody-polls",
	}, workflows.FinalizeWorkflowName, workflows.FinalizeInput{By: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.client.TerminateWorkflow(context.Background(), c.GetID(), "", "test done") })

	code, out, errOut := e.starter("rollout", "-f", f)
	require.Equal(t, 2, code, out+errOut)
	assert.Contains(t, errOut, "test/going: a finalisation of this canary is running")
	_, err = e.client.DescribeWorkflowExecution(context.Background(), v1beta1.WorkflowID("test", "going"), "")
	require.Error(t, err, "no rollout was started")

	require.NoError(t, e.client.TerminateWorkflow(context.Background(), c.GetID(), "", "finalisation over"))
	code, out, errOut = e.starter("rollout", "-f", f)
	require.Equal(t, 0, code, out+errOut)
}
