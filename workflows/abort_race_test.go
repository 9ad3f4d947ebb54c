package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// An abort that arrives while the promotion is under way must not leave the aborted release on the primary: the
// rollout restores the primary's previous revision before it routes users back to it and reports the rollback,
// so status, history and the cluster agree. Each case delivers the abort while one promotion activity runs.
func TestAbortDuringEachPromotionActivityRestoresThePrimary(t *testing.T) {
	promotionRoutes := func(c *v1beta1.Canary) { c.Spec.Analysis.StepWeightPromotion = 25 }
	for _, tc := range []struct {
		name   string
		during string // the activity call the abort arrives in
		spec   func(*v1beta1.Canary)
	}{
		{"while the template is copied to the primary", "Promote", nil},
		{"while the primary rolls out", "CheckReady primary", nil},
		{"while traffic moves back to the primary", "SetRoutes 100/0", nil},
		{"between the promotion's weight steps", "SetRoutes 75/25", promotionRoutes},
		{"while the canary is scaled down", "ScaleCanary down", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			aborted := false
			h.f.during = func(call string, _ int) {
				if call == tc.during && !aborted {
					aborted = true
					h.env.SignalWorkflow(SignalAbort, ActionSignal{By: "bob", Reason: "pager fired"})
				}
			}
			var opts []func(*v1beta1.Canary)
			if tc.spec != nil {
				opts = append(opts, tc.spec)
			}
			res := h.run(podinfo(opts...))

			require.True(t, aborted, "the abort was delivered during %s", tc.during)
			require.Equal(t, PhaseFailed, res.Status.Phase)
			require.Equal(t, "Rolling back podinfo.test aborted by bob: pager fired", res.Reason)
			require.Equal(t, "rev1", h.f.primary, "the primary runs the revision from before the promotion")
			require.Equal(t, 1, h.count("RevertPromotion rev1"))
			routes := h.f.snapshotRoutes()
			require.Equal(t, "100/0", routes[len(routes)-1].String(), "users end on the restored primary")
			require.Equal(t, ConditionFalse, res.Status.Conditions[0].Status)
			require.Equal(t, "bob", res.Status.AbortedBy)
			// The restore comes before the rollback's routing and scale-down: nobody is sent to the aborted version.
			var revertAt, lastRouteAt int
			for i, c := range h.f.calls {
				if c == "RevertPromotion rev1" {
					revertAt = i
				}
				if c == "SetRoutes 100/0" {
					lastRouteAt = i
				}
			}
			require.Less(t, revertAt, lastRouteAt)
		})
	}
}

// Approve and abort at the same instant at the confirm-promotion gate, in either order: the release does not go
// out. Whichever the workflow sees first, it ends Failed with users on the primary's previous revision.
func TestApproveAndAbortAtTheSameInstantAtTheGateLeaveThePreviousRevision(t *testing.T) {
	approve := func(h *harness) {
		h.env.SignalWorkflow(SignalApprove, ApproveSignal{Gate: GateConfirmPromotion, By: "carol", Reason: "looks good"})
	}
	abort := func(h *harness) { h.env.SignalWorkflow(SignalAbort, ActionSignal{By: "bob", Reason: "no, wait"}) }
	for _, tc := range []struct {
		name  string
		order []func(*harness)
	}{
		{"approve first", []func(*harness){approve, abort}},
		{"abort first", []func(*harness){abort, approve}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.f.hookPasses = func(hk v1beta1.CanaryWebhook, _ int) bool { return hk.Type != v1beta1.ConfirmPromotionHook }
			at := 6*m + 10*time.Second
			h.at(at, func() {
				for _, send := range tc.order {
					send(h)
				}
			})
			res := h.run(podinfo(func(c *v1beta1.Canary) {
				c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.ConfirmPromotionHook, "gate"))
			}))

			require.Equal(t, PhaseFailed, res.Status.Phase)
			require.Equal(t, "Rolling back podinfo.test aborted by bob: no, wait", res.Reason)
			require.Contains(t, []string{"", "rev1"}, h.f.primary, "the primary never ran rev2, or was put back on rev1")
			require.Equal(t, h.count("Promote"), h.count("RevertPromotion rev1"), "every promotion begun was reverted")
			routes := h.f.snapshotRoutes()
			require.Equal(t, r(100, 0, at), routes[len(routes)-1])
		})
	}
}

// An abort that arrives after the release finished has nothing to act on: the rollout stays promoted.
func TestAbortAfterPromotionCompletedChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.f.during = func(call string, _ int) {
		if call == "CallWebhook post-rollout/notify" {
			h.env.SignalWorkflow(SignalAbort, ActionSignal{By: "bob", Reason: "too late"})
		}
	}
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.PostRolloutHook, "notify"))
	}))
	require.Equal(t, PhaseSucceeded, res.Status.Phase)
	require.Equal(t, "rev2", h.f.primary)
	require.Zero(t, h.count("RevertPromotion rev1"))
}

// Cancelling the workflow while the post-rollout hooks of a finished promotion run only stops the hooks: the
// rollout stays Succeeded with users on the new revision, and no hook is called twice.
func TestCancelDuringPostRolloutHooksOfAFinishedPromotionKeepsItSucceeded(t *testing.T) {
	h := newHarness(t)
	h.f.during = func(call string, _ int) {
		if call == "CallWebhook post-rollout/notify" {
			h.env.CancelWorkflow()
		}
	}
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks,
			hook(v1beta1.PostRolloutHook, "notify"), hook(v1beta1.PostRolloutHook, "audit"))
	}))

	require.Equal(t, PhaseSucceeded, res.Status.Phase)
	require.True(t, res.Promoted)
	h.requirePhases(promotedPhases...)
	require.Equal(t, "rev2", h.f.primary, "the primary runs the promoted revision")
	require.Zero(t, h.count("RevertPromotion rev1"))
	require.Equal(t, 1, h.count("CallWebhook post-rollout/notify"), "the hook the cancel caught is not called again")
	require.Zero(t, h.count("CallWebhook post-rollout/audit"), "the cancel stops the hooks not yet called")
	require.Equal(t, 1, h.count("ScaleCanary down"))
	routes := h.f.snapshotRoutes()
	require.Equal(t, "100/0", routes[len(routes)-1].String())
	require.Equal(t, ConditionTrue, res.Status.Conditions[0].Status)
}

// Pause, then promote: the promotion is an explicit request to finish now, so it proceeds while paused.
func TestPromoteWhilePausedPromotes(t *testing.T) {
	h := newHarness(t)
	h.signal(90*time.Second, SignalPause, ActionSignal{By: "dave", Reason: "incident elsewhere"})
	h.signal(3*m, SignalPromote, ActionSignal{By: "erin", Reason: "incident over, ship it"})
	res := h.run(podinfo())

	require.Equal(t, PhaseSucceeded, res.Status.Phase)
	require.Equal(t, "rev2", h.f.primary)
	require.Equal(t, "erin", res.Status.PromotedBy)
	routes := h.f.snapshotRoutes()
	require.Equal(t, r(100, 0, 3*m), routes[len(routes)-1], "promoted at the instant of the request, paused or not")
}

// An abort that arrives while the rollback runs changes nothing more: one rollback, Failed, primary untouched.
func TestAbortDuringRollbackRollsBackOnce(t *testing.T) {
	h := newHarness(t)
	h.f.value = func(int, string) *float64 { v := 10.0; return &v }
	h.f.during = func(call string, _ int) {
		if call == "SetRoutes 100/0" {
			h.env.SignalWorkflow(SignalAbort, ActionSignal{By: "bob", Reason: "make sure"})
		}
	}
	res := h.run(podinfo())

	require.Equal(t, PhaseFailed, res.Status.Phase)
	require.Equal(t, 1, h.count("SetRoutes 100/0"))
	require.Equal(t, 1, h.count("ScaleCanary down"))
	require.Zero(t, h.count("Promote"))
	require.Equal(t, "", h.f.primary, "the primary never changed")
	require.Contains(t, res.Reason, "failed checks threshold reached")
}
