package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/canaryflow/canaryflow/activities"
)

// admittedRevision is rev2 detected by a worker with --release-rate: the release waits for an Admit on its queue.
func admittedRevision() activities.RevisionResult {
	rev := newRevision("rev2")
	rev.AdmissionQueue = "canaryflow-admission"
	return rev
}

// waitInQueue has the Admit of the harness complete after d on the test clock, as if its turn came then, and
// records the task queue it was scheduled on.
func (h *harness) waitInQueue(d time.Duration, queue *string) {
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "Admit" {
			*queue = info.TaskQueue
		}
	})
	h.env.OnActivity("Admit", mock.Anything, mock.Anything).After(d).Return(nil)
}

// signalWhileQueued runs a release whose turn in the admission queue would come after an hour, with the signal
// name sent a minute in.
func signalWhileQueued(t *testing.T, name string, s ActionSignal) (*harness, RolloutResult) {
	h := newHarness(t, admittedRevision())
	var queue string
	h.waitInQueue(time.Hour, &queue)
	h.signal(time.Minute, name, s)
	return h, h.run(podinfo())
}

// A release detected by a worker that admits releases at a rate touches nothing until its turn comes: the canary
// is scaled up and the traffic shifted only after the Admit on the admission queue, and from there the analysis
// runs as it would have.
func TestReleaseStartsOnlyWhenAdmitted(t *testing.T) {
	h := newHarness(t, admittedRevision())
	var queue string
	h.waitInQueue(3*m, &queue)
	h.at(2*m, func() {
		require.NotContains(t, h.f.calls, "ScaleCanary up", "nothing of the release ran before its turn")
		require.Equal(t, "Waiting for admission of podinfo.test revision rev2 (task queue canaryflow-admission)", h.status().Message)
	})
	res := h.run(podinfo())

	require.Equal(t, "canaryflow-admission", queue)
	h.requirePhases(promotedPhases...)
	var want []route
	for _, rt := range podinfoRoutes {
		want = append(want, r(rt.Primary, rt.Canary, rt.At+3*m))
	}
	h.requireRoutes(want...)
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, []string{"DetectRevision", "ReconcileRouter", "ScaleCanary up"}, h.f.calls[:3])
	h.requireLogged("Admitted podinfo.test revision rev2 after 3m0s in the admission queue")
}

// An abort while the release waits in the admission queue leaves the queue at once and ends the release as an
// abort does before any traffic moved: Failed, the canary never scaled up, the primary keeping all traffic.
func TestAbortWhileWaitingForAdmissionEndsTheReleaseWithoutScalingUp(t *testing.T) {
	h, res := signalWhileQueued(t, SignalAbort, ActionSignal{By: "bob", Reason: "wrong image"})

	require.Equal(t, PhaseFailed, res.Status.Phase)
	require.Equal(t, "bob", res.Status.AbortedBy)
	require.Equal(t, []string{"DetectRevision", "SetRoutes 100/0", "ScaleCanary down"}, h.f.calls,
		"the rollback's writes only: the canary was never scaled up")
	h.requireRoutes(r(100, 0, time.Minute))
	h.requireLogged("Left the admission queue with podinfo.test revision rev2 after 1m0s for an abort")
}

// Promote now while waiting in the admission queue skips the queue, as it skips the analysis: whoever promotes by
// hand wants it now.
func TestPromoteWhileWaitingForAdmissionSkipsTheQueue(t *testing.T) {
	h, res := signalWhileQueued(t, SignalPromote, ActionSignal{By: "erin", Reason: "hotfix"})

	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, "erin", res.Status.PromotedBy)
	require.Equal(t, []string{"DetectRevision", "Promote", "CheckReady primary", "ScaleCanary down"}, h.f.calls,
		"promoted straight onto the primary, which kept all traffic throughout")
	require.Less(t, h.env.Now().Sub(t0), 2*m, "promoted at the signal, not after the hour in the queue")
	h.requireLogged("Left the admission queue with podinfo.test revision rev2 after 1m0s for promote now")
}

// A release detected by a worker without a rate (no queue named) schedules no Admit: its history is what it was
// before admissions existed.
func TestReleaseWithoutAnAdmissionQueueDoesNotWait(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo())
	require.True(t, res.Promoted)
	require.NotContains(t, h.f.calls, "Admit")
}

// A release left in an admission queue no worker serves any more (every worker restarted without --release-rate)
// starts after an hour without its turn, with a warning that names the queue and the fix, instead of waiting for
// ever.
func TestReleaseInAnUnservedAdmissionQueueStartsAfterAnHour(t *testing.T) {
	h := newHarness(t, admittedRevision())
	h.env.OnActivity("Admit", mock.Anything, mock.Anything).After(admissionUnserved).
		Return(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil))
	res := h.run(podinfo())

	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, r(90, 10, time.Hour), h.f.snapshotRoutes()[0], "the release started when the hour was up")
	h.requireLogged("No worker admitted podinfo.test revision rev2 from task queue canaryflow-admission in 1h0m0s: " +
		"starting it without its turn (run the workers of task queue default-test-taskqueue with --release-rate, or without it everywhere)")
}

// firstRolloutQueued is a first rollout (no primary yet) detected by a worker with --release-rate.
func firstRolloutQueued() activities.RevisionResult {
	return activities.RevisionResult{TargetRevision: "rev1", AdmissionQueue: "canaryflow-admission"}
}

// A first rollout detected by a worker that admits releases at a rate waits for its turn in the same queue
// before it creates anything: a thousand canaries applied at once are initialised at the rate. Promote now does
// not skip that queue (there is nothing to promote yet); the initialisation then runs as it would have.
func TestInitialisationStartsOnlyWhenAdmitted(t *testing.T) {
	h := newHarness(t, firstRolloutQueued())
	var queue string
	h.waitInQueue(3*m, &queue)
	h.signal(time.Minute, SignalPromote, ActionSignal{By: "erin", Reason: "hurry"})
	h.at(30*time.Second, func() {
		require.Equal(t, "Waiting for admission of the initialization of podinfo.test (task queue canaryflow-admission)", h.status().Message)
	})
	h.at(2*m, func() {
		require.Equal(t, []string{"DetectRevision"}, h.f.calls, "nothing created before its turn, promote now or not")
	})
	res := h.run(podinfo())

	require.Equal(t, "canaryflow-admission", queue)
	h.requirePhases(PhaseInitializing, PhaseInitialized)
	require.Equal(t, PhaseInitialized, res.Status.Phase)
	require.Equal(t, []string{"DetectRevision", "InitializeWorkloads", "ReconcileRouter", "SetRoutes 100/0",
		"CheckReady primary", "ScaleCanary down"}, h.f.calls)
	h.requireRoutes(r(100, 0, 3*m))
	h.requireLogged("Admitted the initialization of podinfo.test after 3m0s in the admission queue")
}

// An abort while a first rollout waits in the admission queue ends it Failed at once, with nothing created and so
// nothing to undo; the next run initialises.
func TestAbortWhileInitialisationWaitsForAdmissionCreatesNothing(t *testing.T) {
	h := newHarness(t, firstRolloutQueued())
	var queue string
	h.waitInQueue(time.Hour, &queue)
	h.signal(time.Minute, SignalAbort, ActionSignal{By: "bob", Reason: "wrong namespace"})
	res := h.run(podinfo())

	h.requirePhases(PhaseFailed)
	require.Equal(t, PhaseFailed, res.Status.Phase)
	require.Equal(t, []string{"DetectRevision"}, h.f.calls, "no write: nothing was created")
	require.Equal(t, "Initialization of podinfo.test aborted by bob before its turn: wrong namespace (nothing was created)", res.Reason)
	require.Less(t, h.env.Now().Sub(t0), 2*m, "ended at the abort, not after the hour in the queue")
	h.requireLogged("Left the admission queue with the initialization of podinfo.test after 1m0s for an abort")
}
