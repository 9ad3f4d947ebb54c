package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// update sends an update at d and records whether it was rejected and what it answered.
func (h *harness) update(d time.Duration, name string, arg any) *updateOutcome {
	out := &updateOutcome{}
	h.at(d, func() {
		h.env.UpdateWorkflow(name, name+d.String(), &testsuite.TestUpdateCallback{
			OnReject: func(err error) { out.rejected = err },
			OnComplete: func(v any, err error) {
				out.completed, out.err = true, err
				if st, ok := v.(Status); ok {
					out.status = st
				}
			},
		}, arg)
	})
	return out
}

type updateOutcome struct {
	rejected  error
	completed bool
	err       error
	status    Status
}

func TestApproveUpdateIsValidatedThenOpensTheGateAtOnce(t *testing.T) {
	h := newHarness(t)
	h.f.hookPasses = func(hk v1beta1.CanaryWebhook, _ int) bool { return hk.Type != v1beta1.ConfirmRolloutHook }
	noBy := h.update(10*time.Second, UpdateApprove, ApproveSignal{Gate: GateConfirmRollout})
	badGate := h.update(11*time.Second, UpdateApprove, ApproveSignal{Gate: "confirm-everything", By: "alice"})
	noHook := h.update(12*time.Second, UpdateApprove, ApproveSignal{Gate: GateConfirmTrafficIncrease, By: "alice"})
	ok := h.update(30*time.Second, UpdateApprove, ApproveSignal{Gate: GateConfirmRollout, By: "alice", Reason: "go"})
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.ConfirmRolloutHook, "gate"))
	}))

	require.ErrorContains(t, noBy.rejected, `"by" is required`)
	require.ErrorContains(t, badGate.rejected, `"confirm-everything" is not a gate`)
	require.ErrorContains(t, noHook.rejected, "has no confirm-traffic-increase webhook")
	require.NoError(t, ok.rejected)
	require.True(t, ok.completed)
	require.Equal(t, "alice", ok.status.Approvals[0].By)
	h.requireRoutes(shift(podinfoRoutes, 30*time.Second)...)
	require.Len(t, res.Status.Approvals, 1, "rejected updates leave nothing behind")
}

func TestAbortUpdateRollsBackAtOnceAndRefusesASecondAbort(t *testing.T) {
	h := newHarness(t)
	first := h.update(90*time.Second, UpdateAbort, ActionSignal{By: "bob", Reason: "latency"})
	resume := h.update(90*time.Second, UpdateResume, ActionSignal{By: "bob"})
	res := h.run(podinfo())

	require.NoError(t, first.rejected)
	require.ErrorContains(t, resume.rejected, "is not paused")
	h.requirePhases(PhaseProgressing, PhaseFailed)
	h.requireRoutes(r(90, 10, 0), r(80, 20, m), r(100, 0, 90*time.Second))
	require.Equal(t, "bob", res.Status.AbortedBy)
}
