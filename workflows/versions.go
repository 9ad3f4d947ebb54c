package workflows

import "go.temporal.io/sdk/workflow"

// Change IDs of workflow.GetVersion, every one in this block, as Temporal's own scheduler workflow keeps them: a
// change of the command sequence that open rollouts could meet gets a new ID here, its call site branches on the
// version, and a history recorded before the change stays in testdata/histories so that the replay test keeps
// proving the old branch.
const (
	// versionUndoInit marks runs that undo a failed or cancelled initialisation.
	versionUndoInit = "undo-failed-init"

	// versionMemoChecks marks runs that record their last metric values in the memo (runs recorded before it do
	// not, and replay without it).
	versionMemoChecks = "memo-last-checks"

	// versionRevertPromotion marks runs whose rollback after the promotion began restores the primary's previous
	// revision (runs recorded before it routed back to a primary that already ran the rolled-back revision).
	versionRevertPromotion = "revert-promotion"

	// versionKeepFinishedPromotion marks runs that stay Succeeded when cancelled during the post-rollout hooks
	// (runs recorded before it rolled back there, ending Failed on a primary that kept the new revision).
	versionKeepFinishedPromotion = "keep-finished-promotion"

	// versionLeanHistory marks runs that write about half the history: the short Kubernetes calls (revision reads
	// stay activities) are local activities, one marker each in the workflow task that asked for them, and an
	// analysis step's webhooks and metric checks run concurrently in one RunChecks activity. Runs recorded before
	// it ran each as an activity of its own, with a workflow task per result.
	versionLeanHistory = "lean-history"

	// versionContinueAsNewSuggested marks runs that continue as new (between steps) when the server suggests it,
	// not only past historyLimit events.
	versionContinueAsNewSuggested = "continue-as-new-suggested"

	// versionSignalListeners marks runs whose signals are applied by listener goroutines as they arrive, and
	// whose waits are workflow.Await conditions on that state. Runs recorded before it took signals only where
	// the code drained the channels (drain, the selector of wait).
	versionSignalListeners = "signal-listeners"

	// versionRollbackWhileWaiting marks runs that call their rollback webhooks while waiting at confirm-rollout,
	// as Flagger does in every waiting phase (runs recorded before it called them only at analysis steps). The
	// version is asked only by canaries that have rollback webhooks.
	versionRollbackWhileWaiting = "rollback-while-waiting"

	// versionStatefulSet marks runs of a StatefulSet target (a partitioned rollout, statefulset.go). Such a
	// target was refused before it, so no recorded run meets its branches; the marker lets a later change of
	// that path branch on it.
	versionStatefulSet = "statefulset-partitions"

	// versionStepCadence marks runs whose analysis steps keep the interval's cadence: the time a step took comes
	// off the wait for the next (analysis.go, untilDue). Runs recorded before it waited a whole interval after
	// each step, with a timer of the whole interval; the version is asked at the first wait between steps.
	versionStepCadence = "step-cadence"

	// versionLocalChecks marks runs whose analysis steps with metric checks and no webhooks run RunChecks as a
	// local activity: one marker in the workflow task the step's timer woke, so that a step is one workflow task
	// and no activity task (the server's work per step, which sets how many canaries one Temporal server keeps on
	// time). Runs recorded before it, and steps with webhooks (a load test may run for minutes, and heartbeats),
	// run RunChecks as an activity. The version is asked at the first such step.
	versionLocalChecks = "local-checks"

	// versionBaseline marks runs that take every change above at version 1 without asking each: one version
	// marker and one upsert of the TemporalChangeVersion search attribute per run instead of one of each per
	// change met (up to seven in a release). (A StatefulSet's runs still record statefulset-partitions, the
	// marker that lets a later change of that path branch on it.) Each upsert is a visibility write for the
	// Temporal server and its database, and an action in Temporal Cloud. Runs recorded before it ask each change's version as they meet
	// it (at), so their replay keeps their branches. It is asked first, as the run sets up. A change after it
	// asks its own version as those above did (or comes with a later baseline).
	versionBaseline = "baseline-1"
)

// at says whether this run takes changeID's branch (version 1): at once for a run that recorded the baseline,
// else by asking the change's own version, which records its marker the first time a new run asks it.
func (r *rollout) at(changeID string) bool {
	return r.baseline || workflow.GetVersion(r.ctx, changeID, workflow.DefaultVersion, 1) != workflow.DefaultVersion
}
