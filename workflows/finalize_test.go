package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// finalizeRun runs CanaryFinalize for c on the time-skipping environment with the fakes and returns the fakes, the
// phases upserted, and the run's result and error; the status query must agree with the result.
func finalizeRun(t *testing.T, c v1beta1.Canary, setup func(f *fakes)) (*fakes, []Phase, FinalizeStatus, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	f := newFakes(env.Now)
	if setup != nil {
		setup(f)
	}
	env.RegisterWorkflowWithOptions(CanaryFinalize, workflow.RegisterOptions{Name: FinalizeWorkflowName})
	env.RegisterActivity(f)
	var phases []Phase
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if p, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(searchattr.CanaryPhase); ok {
			phases = append(phases, Phase(p))
		}
	}).Return(nil)
	env.ExecuteWorkflow(FinalizeWorkflowName, FinalizeInput{Canary: c, By: "alice"})
	require.True(t, env.IsWorkflowCompleted())
	v, qerr := env.QueryWorkflow(QueryStatus)
	require.NoError(t, qerr)
	var st FinalizeStatus
	require.NoError(t, v.Get(&st))
	err := env.GetWorkflowError()
	if err == nil {
		var res FinalizeStatus
		require.NoError(t, env.GetWorkflowResult(&res))
		require.Equal(t, res, st)
	}
	return f, phases, st, err
}

func revertOnDeletion(c *v1beta1.Canary) { c.Spec.RevertOnDeletion = true }

func TestFinalizeRestoresTargetBeforeRouterAndServices(t *testing.T) {
	f, phases, st, err := finalizeRun(t, podinfo(revertOnDeletion), nil)
	require.NoError(t, err)
	// The target serves before traffic is sent to it; the apex Service switches last.
	require.Equal(t, []string{"ScaleCanary up", "CheckReady canary", "FinalizeRouter", "FinalizeWorkloads"}, f.calls)
	require.Equal(t, []Phase{PhaseTerminating, PhaseTerminated}, phases)
	require.Equal(t, PhaseTerminated, st.Phase)
	require.True(t, st.Reverted)
	require.Equal(t, t0, st.LastTransitionTime)
}

func TestFinalizeWithoutRevertOnDeletionChangesNothing(t *testing.T) {
	f, phases, st, err := finalizeRun(t, podinfo(), nil)
	require.NoError(t, err)
	require.Empty(t, f.calls)
	require.Equal(t, []Phase{PhaseTerminating, PhaseTerminated}, phases)
	require.False(t, st.Reverted)
	require.Contains(t, st.Message, "revertOnDeletion is false")
}

func TestFinalizeWaitsForTheTargetOnTimers(t *testing.T) {
	f, _, st, err := finalizeRun(t, podinfo(revertOnDeletion), func(f *fakes) {
		f.canaryReady = func(n int) (bool, string) { return n >= 3, "1 of 2 updated replicas are available" }
	})
	require.NoError(t, err)
	require.Equal(t, []string{"ScaleCanary up", "CheckReady canary", "CheckReady canary", "CheckReady canary",
		"FinalizeRouter", "FinalizeWorkloads"}, f.calls)
	// Polled at 2 s, then 4 s later on the workflow's clock.
	require.Equal(t, t0.Add(6*time.Second), st.LastTransitionTime)
}

func TestFinalizeStopsWithThePrimaryServingWhenTheTargetNeverGetsReady(t *testing.T) {
	f, phases, st, err := finalizeRun(t, podinfo(revertOnDeletion, func(c *v1beta1.Canary) {
		d := int32(60)
		c.Spec.ProgressDeadlineSeconds = &d
	}), func(f *fakes) {
		f.canaryReady = func(int) (bool, string) { return false, "0 of 2 updated replicas are available" }
	})
	require.Error(t, err)
	require.Contains(t, err.Error(), "not ready after the progress deadline (1m0s): 0 of 2 updated replicas are available")
	require.NotContains(t, f.calls, "FinalizeRouter")
	require.NotContains(t, f.calls, "FinalizeWorkloads")
	require.Equal(t, []Phase{PhaseTerminating}, phases)
	require.Equal(t, PhaseTerminating, st.Phase)
	require.Contains(t, st.Message, "the primary still serves")
}

func TestFinalizeWithoutRouterStillRevertsTheWorkloads(t *testing.T) {
	f, _, st, err := finalizeRun(t, podinfo(revertOnDeletion), func(f *fakes) {
		f.reconcileErr = temporal.NewNonRetryableApplicationError(`no router for provider "x"`, activities.ErrTypeUnsupportedProvider, nil)
	})
	require.NoError(t, err)
	require.Equal(t, []string{"ScaleCanary up", "CheckReady canary", "FinalizeRouter", "FinalizeWorkloads"}, f.calls)
	require.Equal(t, PhaseTerminated, st.Phase)
}

func TestFinalizeWorkflowIDIsDerivedFromTheCanary(t *testing.T) {
	require.Equal(t, "finalize/test/podinfo", FinalizeWorkflowID("test", "podinfo"))
	require.NotEqual(t, v1beta1.WorkflowID("test", "podinfo"), FinalizeWorkflowID("test", "podinfo"))
}
