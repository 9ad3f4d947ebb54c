//go:build lab

package livefault

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/workflows"
)

// TestGateTargetHangingHoldsTheRolloutUntilApproved: the confirm-promotion gate's target accepts connections and
// never answers. As a closed gate (Flagger), the hook's failure after its 2 s timeout holds the rollout at the
// gate, every interval, without counting failed checks or rolling back; `starter approve` opens it and the
// release is promoted.
func TestGateTargetHangingHoldsTheRolloutUntilApproved(t *testing.T) {
	t.Parallel()
	ctx, s := startStack(t, 10*time.Minute, e2e.Options{})
	hanging := newFaultProxy(t, s.LoadTesterURL)
	hanging.set(t, hang)
	gate := func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, v1beta1.CanaryWebhook{
			Name: "release-manager", Type: v1beta1.ConfirmPromotionHook, URL: hanging.URL + "/gate/check", Timeout: "2s"})
	}
	c := newCanary(t, ctx, s, "gate-hang", gate)
	done := c.rollout(c.write("canary", gate), "6.0.1")
	at := c.waitStatus(5*time.Minute, "the confirm-promotion gate", func(st workflows.Status) bool {
		return st.PendingGate == workflows.GateConfirmPromotion
	})
	asked := hanging.count(hang)
	// Held for three intervals: the gate is asked again, the weight stays, no check fails.
	time.Sleep(3 * interval)
	held, err := c.status()
	require.NoError(t, err)
	require.Equal(t, workflows.GateConfirmPromotion, held.PendingGate)
	require.Equal(t, at.CanaryWeight, held.CanaryWeight)
	require.Zero(t, held.FailedChecks, "a closed gate is no failed check")
	require.Greater(t, hanging.count(hang), asked, "the gate is asked again while it holds")

	a := c.starter("approve", "podinfo", "-n", c.NS, "--gate", "confirm-promotion", "--by", "carol", "--reason", "gate service down, checked by hand")
	require.Equal(t, 0, a.Code, a.Output)
	r := waitResult(t, done, 3*time.Minute)
	require.Equal(t, 0, r.Code, r.Output)
	e := c.end()
	c.requirePromoted(e, "6.0.1", 30)
	// The reason names the target's host (a URL's path may hold a token), once per interval held.
	require.GreaterOrEqual(t, strings.Count(e.History, "confirm-promotion hook release-manager failed: no answer from "+hanging.URL+" within 2s"), 3, e.History)
	require.Zero(t, strings.Count(e.History, "Rolling back"), e.History)
	require.Equal(t, 1, strings.Count(e.History, "approve by carol"), e.History)
}
