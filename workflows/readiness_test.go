package workflows

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// A worker with a readiness queue (--watch-readiness): a workload not ready at the first look is waited for in one
// AwaitReady on that queue, not polled on workflow timers.
func TestNotReadyWorkloadsAreWaitedForOnTheReadinessQueue(t *testing.T) {
	h := newHarness(t)
	h.f.readinessQueue = "canaryflow-readiness"
	h.f.canaryReady = func(n int) (bool, string) {
		return n >= 4, "waiting for rollout to finish: 0 of 2 updated replicas are available"
	}
	h.f.primaryReady = func(n int) (bool, string) {
		return n >= 3, "waiting for rollout to finish: 1 old replicas are pending termination"
	}
	res := h.run(podinfo())

	h.requirePhases(promotedPhases...)
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	// One look each, then one wait each: no poll on a timer.
	up := slices.Index(h.f.calls, "ScaleCanary up")
	require.Equal(t, []string{"ScaleCanary up", "CheckReady canary", "AwaitReady canary"}, h.f.calls[up:up+3])
	promote := slices.Index(h.f.calls, "Promote")
	require.Equal(t, []string{"Promote", "CheckReady primary", "AwaitReady primary"}, h.f.calls[promote:promote+3])
	require.Equal(t, 1, h.count("CheckReady primary"))
	// Each wait runs on the worker's readiness queue until the end of the progress deadline (600 s by default),
	// counted from the first look.
	require.Len(t, h.f.awaits, 2)
	require.Equal(t, activities.WorkloadCanary, h.f.awaits[0].Workload)
	require.Equal(t, t0.Add(10*time.Minute), h.f.awaits[0].Until)
	require.Equal(t, activities.WorkloadPrimary, h.f.awaits[1].Workload)
	require.Equal(t, t0.Add(5*m+10*time.Minute), h.f.awaits[1].Until)
}

// A readiness queue that no worker serves any more (its workers restarted without --watch-readiness) fails the
// wait; the rollout polls instead and is not held back.
func TestAFailedReadinessWaitFallsBackToPolling(t *testing.T) {
	h := newHarness(t)
	h.f.readinessQueue = "canaryflow-readiness"
	h.f.awaitErr = temporal.NewNonRetryableApplicationError("activity ScheduleToStart timeout", "Unserved", nil)
	h.f.canaryReady = func(n int) (bool, string) { return n >= 3, "waiting for rollout to finish" }
	res := h.run(podinfo())

	h.requirePhases(promotedPhases...)
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	up := slices.Index(h.f.calls, "ScaleCanary up")
	// The look after the failed wait (2nd, not ready), a poll 2 s later (3rd, ready).
	require.Equal(t, []string{"ScaleCanary up", "CheckReady canary", "AwaitReady canary", "CheckReady canary", "CheckReady canary"},
		h.f.calls[up:up+5])
	require.Equal(t, 1, h.count("AwaitReady canary"), "one wait a waitReady: after a failure it polls")
	var warned bool
	for _, e := range h.logs.AllUntimed() {
		warned = warned || strings.HasPrefix(e.Message, "Waiting for canary of podinfo.test on task queue canaryflow-readiness failed: ")
	}
	require.True(t, warned, "the fallback to polling is logged")
}

// A workload still not ready when the wait ends is judged against the progress deadline as a poll would be: a
// wait that ended early goes back to polling, and the deadline rolls back.
func TestAWorkloadNeverReadyOnTheReadinessQueueRollsBackAtTheDeadline(t *testing.T) {
	h := newHarness(t)
	h.f.readinessQueue = "canaryflow-readiness"
	h.f.canaryReady = func(int) (bool, string) {
		return false, "waiting for rollout to finish: 0 of 1 updated replicas are available"
	}
	res := h.run(podinfo(func(c *v1beta1.Canary) { s := int32(60); c.Spec.ProgressDeadlineSeconds = &s }))

	h.requirePhases(PhaseProgressing, PhaseFailed)
	require.Equal(t, failed("rev2", 0), summarize(res.Status))
	require.Equal(t, "Rolling back podinfo.test progress deadline exceeded canary deployment podinfo.test not ready: "+
		"waiting for rollout to finish: 0 of 1 updated replicas are available", res.Reason)
	require.Equal(t, 1, h.count("AwaitReady canary"))
	require.Zero(t, h.count("RunMetricChecks"))
}
