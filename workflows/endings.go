package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// promoteNow copies the canary to the primary, waits for the primary, routes all traffic to it (in
// stepWeightPromotion steps when set), scales the canary down and ends Succeeded.
func (r *rollout) promoteNow() (*RolloutResult, error) {
	if r.c.IsStatefulSet() {
		return r.promoteStatefulSet()
	}
	r.st.PendingGate = ""
	r.setPhase(PhasePromoting)
	r.setCondition(ConditionUnknown, "Promoting", "Canary analysis completed, starting primary rolling update.")
	t := r.c.Spec.TargetRef.Name
	r.info(fmt.Sprintf("Copying %s.%s template spec to %s-primary.%s", t, r.c.Namespace, t, r.c.Namespace), "promotion")
	var res activities.ActionResult
	// From here on the primary may run the canary's template: an abort up to the end of the promotion, or any
	// rollback, puts the previous revision back (runs recorded before that version noticed an abort only while
	// waiting, and left the primary on the aborted revision).
	revertible := r.at(versionRevertPromotion)
	aborted := func() bool {
		if revertible {
			r.drain()
		}
		return r.abort != nil
	}
	if revertible && aborted() { // an abort that came with the approval wins: nothing reaches the primary
		return r.rollback(r.abortReason(), activities.EventAborted)
	}
	r.primaryWritten = revertible
	if err := r.kube(kubeOptions(), wl.Promote, r.workloadIn(), &res); err != nil {
		return r.fail(err)
	}
	ready, reason, err := r.waitReady(activities.WorkloadPrimary, aborted)
	if err != nil {
		return r.fail(err)
	}
	if aborted() {
		return r.rollback(r.abortReason(), activities.EventAborted)
	}
	if !ready {
		// The rollback puts the primary's previous template back (runs recorded before that left the new one).
		return r.rollback(fmt.Sprintf("Rolling back %s progress deadline exceeded %s", r.name(), reason), activities.EventRolledBack)
	}

	weighted := r.st.Strategy == v1beta1.StrategyCanary || r.st.Strategy == v1beta1.StrategyCanarySessionAffinity
	if weighted && r.a.StepWeightPromotion > 0 && r.st.CanaryWeight > 0 {
		steps := r.a.PromotionWeights(r.st.CanaryWeight)
		for i, w := range steps {
			msg := fmt.Sprintf("Advance %s primary weight %d", r.name(), 100-w)
			r.sayFirst(msg)
			if err := r.setRoutes(kubeOptions(), 100-w, w, false); err != nil {
				return r.fail(err)
			}
			if revertible && aborted() {
				return r.rollback(r.abortReason(), activities.EventAborted)
			}
			r.decide(activities.EventAdvanced, v1beta1.SeverityInfo, false, msg, "promotion")
			if i == len(steps)-1 {
				break
			}
			if err := r.wait(r.a.IntervalDuration(), false, aborted); err != nil {
				return r.fail(err)
			}
			if aborted() {
				return r.rollback(r.abortReason(), activities.EventAborted)
			}
		}
	} else if r.st.PrimaryWeight != 100 || r.st.Mirrored {
		r.info("Routing all traffic to primary "+r.name(), "promotion")
		if err := r.setRoutes(kubeOptions(), 100, 0, false); err != nil {
			return r.fail(err)
		}
	}
	if revertible && aborted() {
		return r.rollback(r.abortReason(), activities.EventAborted)
	}

	r.setPhase(PhaseFinalising)
	if err := r.kube(kubeOptions(), wl.ScaleCanary, r.scaleIn(false), &res); err != nil {
		return r.fail(err)
	}
	if revertible && aborted() {
		return r.rollback(r.abortReason(), activities.EventAborted)
	}
	r.primaryWritten = false
	r.setPhase(PhaseSucceeded)
	r.setCondition(ConditionTrue, "Succeeded", "Canary analysis completed successfully, promotion finished.")
	if _, err := r.runHooks(v1beta1.PostRolloutHook); err != nil {
		if !errors.Is(err, errCanceled) || !r.at(versionKeepFinishedPromotion) {
			return r.fail(err)
		}
		// The release is out and users are on it: a cancel now only stops the hooks. Rolling back here would end
		// Failed with the primary on the new revision and call the post-rollout hooks a second time (what runs
		// recorded before versionKeepFinishedPromotion did). The promotion is still reported, out of the
		// cancellation's reach.
		r.ctx, _ = workflow.NewDisconnectedContext(r.ctx)
		r.warn("Post-rollout hooks of "+r.name()+" stopped: the workflow was cancelled after the promotion finished", "cancelled")
	}
	msg := fmt.Sprintf("Promotion completed! Scaling down %s.%s", t, r.c.Namespace)
	if r.c.Spec.SkipAnalysis {
		msg = fmt.Sprintf("Promotion completed! Canary analysis was skipped for %s.%s", t, r.c.Namespace)
	}
	r.decide(activities.EventPromoted, v1beta1.SeverityInfo, true, msg, "promoted")
	return r.result("promoted", false), nil
}

// rollback routes all traffic to the primary, scales the canary down and ends Failed. Its writes retry until they
// succeed (cleanupOptions).
func (r *rollout) rollback(reason string, ev activities.EventType) (*RolloutResult, error) {
	if r.c.IsStatefulSet() {
		return r.rollbackStatefulSet(reason, ev)
	}
	r.st.PendingGate = ""
	r.log.Error(reason, r.keyvals("rollback")...)
	r.say(reason)
	if r.primaryWritten {
		if err := r.revertPromotion(); err != nil {
			if errors.Is(err, errCanceled) {
				return r.result(reason, false), err
			}
			reason = fmt.Sprintf("%s; the primary still runs the canary's revision %s: %v", reason, r.st.Revision, err)
		}
	}
	r.st.Message = reason
	if err := r.setRoutes(cleanupOptions(), 100, 0, false); err != nil {
		return r.result(reason, false), fmt.Errorf("roll back %s: %w", r.name(), err)
	}
	r.warn(fmt.Sprintf("Canary failed! Scaling down %s.%s", r.c.Spec.TargetRef.Name, r.c.Namespace), reason)
	var res activities.ActionResult
	if err := r.exec(cleanupOptions(), wl.ScaleCanary, r.scaleIn(false), &res); err != nil {
		return r.result(reason, false), fmt.Errorf("roll back %s: %w", r.name(), err)
	}
	r.setPhase(PhaseFailed)
	r.setCondition(ConditionFalse, "Failed", "Canary analysis failed, Deployment scaled to zero.")
	if _, err := r.runHooks(v1beta1.PostRolloutHook); err != nil && !errors.Is(err, errCanceled) {
		return r.result(reason, false), err
	}
	r.st.Message = reason
	r.emit(r.event(ev, v1beta1.SeverityError, reason, r.st.LastChecks), true)
	return r.result(reason, false), nil
}

// revertPromotion puts the primary's previous revision back (template and config copies), so that the rollback
// routes users to the previous version, not to the one rolled back. It does not wait for the primary's pods: the
// Deployment rolls them back under its own strategy, keeping its available pods serving meanwhile.
func (r *rollout) revertPromotion() error {
	prev := r.st.PrimaryRevision
	r.warn(fmt.Sprintf("Restoring %s-primary.%s to revision %s", r.c.Spec.TargetRef.Name, r.c.Namespace, prev), "promotion reverted")
	var res activities.ActionResult
	if err := r.exec(cleanupOptions(), wl.RevertPromotion, r.revertIn(prev), &res); err != nil {
		return err
	}
	r.primaryWritten = false
	return nil
}

// fail ends the run after an unexpected error (an activity that failed for good): it rolls back when it can and
// returns the error when even that fails. A cancellation unwinds to CanaryRollout.
func (r *rollout) fail(err error) (*RolloutResult, error) {
	if errors.Is(err, errCanceled) || r.ctx.Err() != nil {
		return nil, errCanceled
	}
	res, rbErr := r.rollback(fmt.Sprintf("Rolling back %s: %v", r.name(), err), activities.EventRolledBack)
	if rbErr != nil {
		return res, fmt.Errorf("%w (after %v)", rbErr, err)
	}
	return res, nil
}

// canceled rolls back in a disconnected context after the workflow was cancelled, then ends the execution as
// canceled with the result (phase Failed) as details.
func (r *rollout) canceled() (*RolloutResult, error) {
	dctx, _ := workflow.NewDisconnectedContext(r.ctx)
	r.ctx = dctx
	reason := fmt.Sprintf("Rolling back %s: workflow cancelled", r.name())
	var res *RolloutResult
	if phase := r.st.Phase; phase == "" || phase == PhaseInitializing {
		// Nothing to roll back: what the initialisation made is undone, and the next run initialises again.
		r.setPhase(PhaseFailed)
		msg := "Initialization cancelled."
		if phase == PhaseInitializing {
			if err := r.undoInit(); err != nil {
				msg += fmt.Sprintf(" Undoing it failed, remove %s-primary and its Services by hand: %v", r.c.Spec.TargetRef.Name, err)
			}
		}
		r.setCondition(ConditionFalse, "Failed", msg)
		res = r.result("workflow cancelled during initialization", false)
	} else {
		var err error
		if res, err = r.rollback(reason, activities.EventAborted); err != nil {
			return res, err
		}
	}
	return res, temporal.NewCanceledError(*res)
}

// restart routes traffic back to the primary, resets the counters and sets the new revision; analyse then
// starts again from the confirm-rollout gate.
func (r *rollout) restart(rev activities.RevisionResult) error {
	r.info(fmt.Sprintf("New revision detected! Restarting analysis for %s", r.name()), "revision "+rev.TargetRevision)
	// A StatefulSet has no router to reset: its controller moves the pods already updated to the new revision,
	// and the analysis restarts from the partition they are at.
	if (r.st.PrimaryWeight != 100 || r.st.Mirrored) && !r.c.IsStatefulSet() {
		if err := r.setRoutes(kubeOptions(), 100, 0, false); err != nil {
			return err
		}
	}
	r.st.Revision, r.st.PrimaryRevision = rev.TargetRevision, rev.PrimaryRevision
	r.st.FailedChecks, r.st.Iterations = 0, 0
	r.st.LastChecks, r.st.LastWebhooks = nil, nil
	r.st.PendingGate, r.st.OpenGates = "", nil
	r.st.NotReadySince = time.Time{}
	r.syncSearchAttributes()
	return nil
}

// revert ends a run whose target went back to what the primary runs: traffic to the primary, canary down.
func (r *rollout) revert(rev activities.RevisionResult) (*RolloutResult, error) {
	if r.c.IsStatefulSet() {
		return r.revertStatefulSet(rev)
	}
	msg := fmt.Sprintf("No new run for %s: the target is back at the primary's revision %s", r.name(), rev.TargetRevision)
	r.info(msg, "revision reverted")
	if err := r.setRoutes(cleanupOptions(), 100, 0, false); err != nil {
		return r.fail(err)
	}
	var res activities.ActionResult
	if err := r.exec(cleanupOptions(), wl.ScaleCanary, r.scaleIn(false), &res); err != nil {
		return r.fail(err)
	}
	r.st.Revision = rev.TargetRevision
	r.st.FailedChecks, r.st.Iterations, r.st.PendingGate = 0, 0, ""
	r.setPhase(PhaseInitialized)
	r.setCondition(ConditionTrue, "Initialized", msg)
	return r.result("no new run: target reverted to the primary's revision", true), nil
}

func (r *rollout) abortReason() string {
	return fmt.Sprintf("Rolling back %s aborted by %s: %s", r.name(), r.abort.By, r.abort.Reason)
}
