package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// outcome is what the analysis decided, carrying what acting on it needs; release acts on it.
type outcome interface{ isOutcome() }

// keepGoing is no decision: the analysis goes on.
var keepGoing outcome

// toPromote: promote now.
type toPromote struct{}

// toRollback: roll back, for reason (in Flagger's words), reporting event.
type toRollback struct {
	reason string
	event  activities.EventType
}

// toRestart: the target changed to a new revision, rev: restart the analysis on it.
type toRestart struct{ rev activities.RevisionResult }

// toRevert: the target went back to the primary's revision, rev: nothing left to roll out.
type toRevert struct{ rev activities.RevisionResult }

// toContinueAsNew: the history is long: continue as new with the status.
type toContinueAsNew struct{}

func (toPromote) isOutcome()       {}
func (toRollback) isOutcome()      {}
func (toRestart) isOutcome()       {}
func (toRevert) isOutcome()        {}
func (toContinueAsNew) isOutcome() {}

// analyse runs the analysis of the current revision from where the status says it is: the confirm-rollout gate
// (Waiting), the canary's start (Progressing), then the steps.
func (r *rollout) analyse() (outcome, error) {
	resumeSteps := r.resumed && r.st.Phase != PhaseWaiting && r.st.Phase != ""
	r.resumed = false
	if !resumeSteps {
		if out, err := r.confirmRollout(); out != keepGoing || err != nil {
			return out, err
		}
		if out, err := r.startCanary(); out != keepGoing || err != nil {
			return out, err
		}
	}

	// The analysis: one step now (the canary is ready, nothing to wait for), then one per interval.
	wait := resumeSteps
	var due time.Time // when the next step is due on the steps' cadence; zero until a step ran
	for {
		if wait || r.st.Paused {
			if err := r.wait(r.untilDue(due), true, r.hasUrgent); err != nil {
				return keepGoing, err
			}
			if r.continueAsNewDue() {
				return toContinueAsNew{}, nil
			}
		}
		wait = true
		due = r.nextDue(due)
		if out, err := r.urgent(); out != keepGoing || err != nil {
			return out, err
		}
		// An approval of the gate the last step stopped at opens it now: the checks of that step passed, so only
		// the rest of the step (the strategy) runs.
		var out outcome
		var err error
		if r.st.PendingGate != "" && r.hasOpenGate(r.st.PendingGate) {
			out, err = r.advance()
		} else {
			out, err = r.step()
		}
		if out != keepGoing || err != nil {
			return out, err
		}
	}
}

// untilDue is how long to wait for the next step, due then (zero: no step ran yet in this run). From
// versionStepCadence on, the steps keep the cadence of the interval, as Flagger's ticker does: the time a step took
// (its checks, a retry, a late timer) comes off the wait for the next, which is due at once when the step took an
// interval or more. Runs recorded before it waited a whole interval after each step, so every step's time added to
// the rollout's. A pause waits a whole interval after the resume either way (wait).
func (r *rollout) untilDue(due time.Time) time.Duration {
	interval := r.a.IntervalDuration()
	if due.IsZero() || r.st.Paused || !r.stepCadence() {
		return interval
	}
	return min(max(due.Sub(workflow.Now(r.ctx)), 0), interval)
}

// nextDue is when the step after the one about to run is due: an interval after the one that was due, or an
// interval from now when this step is not the one due (the first, one taken early for a signal, or one a pause or
// a step longer than an interval moved off the cadence).
func (r *rollout) nextDue(due time.Time) time.Time {
	interval := r.a.IntervalDuration()
	now := workflow.Now(r.ctx)
	if due.IsZero() || now.Before(due) || now.Sub(due) >= interval {
		return now.Add(interval)
	}
	return due.Add(interval)
}

// stepCadence says whether this run keeps the steps' cadence (versionStepCadence). The version is asked at the
// first wait between steps, so that runs without a second step record no marker.
func (r *rollout) stepCadence() bool { return r.versionOnce(&r.cadence, versionStepCadence) }

// versionOnce asks the version of changeID the first time it is needed, and keeps the answer in *asked: 1 from the
// change on, -1 before it, 0 until asked. A version asked only where a run meets the change records no marker in
// runs that never do.
func (r *rollout) versionOnce(asked *int, changeID string) bool {
	if *asked == 0 {
		*asked = -1
		if r.at(changeID) {
			*asked = 1
		}
	}
	return *asked > 0
}

// confirmRollout is the gate before any traffic: confirm-rollout, tried again every interval (Waiting). It
// returns keepGoing once the gate opens.
func (r *rollout) confirmRollout() (outcome, error) {
	interval := r.a.IntervalDuration()
	for {
		if out, err := r.urgent(); out != keepGoing || err != nil {
			return out, err
		}
		if r.st.Paused {
			// Held before any traffic: the gate is not even tried until resumed.
			if err := r.wait(interval, true, r.hasUrgent); err != nil {
				return keepGoing, err
			}
			continue
		}
		if out, err := r.rollbackGateWhileWaiting(); out != keepGoing || err != nil {
			return out, err
		}
		open, err := r.gate(GateConfirmRollout)
		if err != nil {
			return keepGoing, err
		}
		if open {
			return keepGoing, nil
		}
		r.setPhase(PhaseWaiting)
		r.setCondition(ConditionUnknown, "Waiting", "Waiting for approval.")
		r.info(fmt.Sprintf("Halt %s advancement waiting for approval %s", r.name(), GateConfirmRollout), "confirm-rollout closed")
		if err := r.wait(interval, true, r.hasUrgent); err != nil {
			return keepGoing, err
		}
		if r.continueAsNewDue() {
			return toContinueAsNew{}, nil
		}
	}
}

// rollbackGateWhileWaiting calls the rollback webhooks before each try of the confirm-rollout gate, as Flagger
// calls them in every waiting phase: a rollback webhook answering 2xx ends the wait with a rollback, so a pipeline
// can cancel a release that waits for approval. (WaitingPromotion needs nothing here: each of its intervals is an
// analysis step, which calls them first.)
func (r *rollout) rollbackGateWhileWaiting() (outcome, error) {
	hooks := r.hooks(v1beta1.RollbackHook)
	if len(hooks) == 0 ||
		!r.at(versionRollbackWhileWaiting) {
		return keepGoing, nil
	}
	for _, h := range hooks {
		res, err := r.callHook(h)
		if err != nil {
			return keepGoing, err
		}
		if res.Passed {
			return r.rollbackFor(fmt.Sprintf("Rolling back %s manual webhook invoked", r.name()), activities.EventRolledBack), nil
		}
	}
	return keepGoing, nil
}

// startCanary enters Progressing: the router is reconciled, the canary scaled up and waited for. It returns
// keepGoing when the steps are to run (the canary is ready and the analysis not skipped).
func (r *rollout) startCanary() (outcome, error) {
	if r.c.IsStatefulSet() {
		return r.startStatefulSet()
	}
	r.setPhase(PhaseProgressing)
	r.setCondition(ConditionUnknown, "Progressing", "New revision detected, progressing canary analysis.")
	r.decide(activities.EventNewRevision, v1beta1.SeverityInfo, true,
		fmt.Sprintf("New revision detected! Scaling up %s.%s", r.c.Spec.TargetRef.Name, r.c.Namespace), "revision "+r.st.Revision)
	var res activities.ActionResult
	if err := r.kube(kubeOptions(), rt.ReconcileRouter, r.routerIn(), &res); err != nil {
		return keepGoing, err
	}
	if err := r.kube(kubeOptions(), wl.ScaleCanary, r.scaleIn(true), &res); err != nil {
		return keepGoing, err
	}
	ready, reason, err := r.waitReady(activities.WorkloadCanary, r.hasUrgent)
	if err != nil {
		return keepGoing, err
	}
	if out, err := r.urgent(); out != keepGoing || err != nil {
		return out, err
	}
	if !ready {
		return r.rollbackFor(fmt.Sprintf("Rolling back %s progress deadline exceeded %s", r.name(), reason), activities.EventRolledBack), nil
	}
	r.st.NotReadySince = time.Time{}
	if r.c.Spec.SkipAnalysis {
		r.info("Skipping analysis of "+r.name()+": promoting", "skipAnalysis")
		return toPromote{}, nil
	}
	return keepGoing, nil
}

// step is one analysis step, in Flagger's order (design.md §3): the gates and checks (1-4), then the strategy.
func (r *rollout) step() (outcome, error) {
	// 1. Rollback gate: a rollback webhook answering 2xx rolls back now.
	if hooks := r.hooks(v1beta1.RollbackHook); len(hooks) > 0 {
		for _, h := range hooks {
			res, err := r.callHook(h)
			if err != nil {
				return keepGoing, err
			}
			if res.Passed {
				return r.rollbackFor(fmt.Sprintf("Rolling back %s manual webhook invoked", r.name()), activities.EventRolledBack), nil
			}
		}
	}
	// 2. The canary must be ready; not ready halts, not ready past the progress deadline rolls back.
	ready, reason, err := r.checkCanaryReady()
	if err != nil {
		return keepGoing, err
	}
	if !ready && r.deadlinePassed() {
		return r.rollbackFor(fmt.Sprintf("Rolling back %s progress deadline exceeded %s", r.name(),
			deadlineReason(activities.WorkloadCanary, &r.c, reason)), activities.EventRolledBack), nil
	}
	if !ready {
		r.decide(activities.EventHalted, v1beta1.SeverityWarn, false,
			fmt.Sprintf("Halt advancement %s.%s %s", r.c.Spec.TargetRef.Name, r.c.Namespace, reason), "canary not ready")
		return keepGoing, nil
	}
	// 3. Failed checks at the threshold roll back (normally caught when counted, below; kept for resumed runs).
	if r.st.FailedChecks >= r.a.Threshold {
		return r.thresholdRollback(), nil
	}
	// 4. Checks: pre-rollout hooks on the first step, then rollout hooks and metrics on every other one.
	first := r.st.CanaryWeight == 0 && r.st.Iterations == 0 && !r.st.Mirrored
	if first {
		r.info("Starting canary analysis for "+r.name(), "first step")
	}
	check := r.checkInTurn
	if r.lean {
		check = r.checkAtOnce
	}
	if passed, out, err := check(first); !passed || err != nil {
		return out, err
	}
	// A signal that came in during the checks wins over advancing.
	if out, err := r.urgent(); out != keepGoing || err != nil {
		return out, err
	}
	return r.advance()
}

// advance is the strategy's part of a step (5); alone, it is the rest of a step whose checks passed but whose
// gate was closed, once an approval opens the gate.
func (r *rollout) advance() (outcome, error) {
	if r.c.IsStatefulSet() {
		return r.advanceStatefulSet()
	}
	switch r.st.Strategy {
	case v1beta1.StrategyABTesting:
		return r.stepABTesting()
	case v1beta1.StrategyBlueGreen, v1beta1.StrategyBlueGreenMirroring:
		return r.stepBlueGreen()
	default:
		return r.stepWeights()
	}
}

// stepWeights advances a weighted canary (with or without session affinity) by one weight, or promotes at max.
func (r *rollout) stepWeights() (outcome, error) {
	next, more := r.a.NextWeight(r.st.CanaryWeight)
	mirrorFirst := r.a.Mirror && r.st.CanaryWeight == 0 && !r.st.Mirrored && more
	if more {
		if !r.st.Mirrored {
			open, err := r.gate(GateConfirmTrafficIncrease)
			if err != nil || !open {
				if err == nil {
					r.info(fmt.Sprintf("Halt %s advancement waiting for traffic increase approval", r.name()), "confirm-traffic-increase closed")
				}
				return keepGoing, err
			}
		}
		if mirrorFirst {
			// Flagger's canary mirroring: one step of mirrored traffic before shifting any.
			msg := "Start traffic mirroring for " + r.name()
			r.sayFirst(msg)
			if err := r.setRoutes(kubeOptions(), 100, 0, true); err != nil {
				return keepGoing, err
			}
			r.decide(activities.EventAdvanced, v1beta1.SeverityInfo, false, msg, "mirror")
			return keepGoing, nil
		}
		msg := fmt.Sprintf("Advance %s canary weight %d", r.name(), next)
		r.sayFirst(msg)
		if err := r.setRoutes(kubeOptions(), 100-next, next, false); err != nil {
			return keepGoing, err
		}
		r.decide(activities.EventAdvanced, v1beta1.SeverityInfo, false, msg, "checks passed")
		return keepGoing, nil
	}
	return r.promotionGate()
}

// stepABTesting runs one iteration of A/B testing (matching requests go to the canary), or promotes after the
// last one.
func (r *rollout) stepABTesting() (outcome, error) {
	if r.st.Iterations >= r.a.Iterations {
		return r.promotionGate()
	}
	if r.st.CanaryWeight != 100 {
		if err := r.setRoutes(kubeOptions(), 0, 100, false); err != nil {
			return keepGoing, err
		}
	}
	return r.iterated(), nil
}

// stepBlueGreen runs one iteration of blue/green (no user traffic, or mirrored traffic), or switches all traffic
// to the canary and promotes after the last one.
func (r *rollout) stepBlueGreen() (outcome, error) {
	if r.st.Iterations >= r.a.Iterations {
		out, err := r.promotionGate()
		if _, promote := out.(toPromote); !promote || err != nil {
			return out, err
		}
		r.info("Routing all traffic to canary "+r.name(), "blue/green switch")
		if err := r.setRoutes(kubeOptions(), 0, 100, false); err != nil {
			return keepGoing, err
		}
		return toPromote{}, nil
	}
	if r.a.Mirror && !r.st.Mirrored {
		if err := r.setRoutes(kubeOptions(), 100, 0, true); err != nil {
			return keepGoing, err
		}
		r.info("Start traffic mirroring for "+r.name(), "mirror")
	}
	return r.iterated(), nil
}

// iterated counts an iteration whose checks passed.
func (r *rollout) iterated() outcome {
	r.st.Iterations++
	r.decide(activities.EventAdvanced, v1beta1.SeverityInfo, false,
		fmt.Sprintf("Advance %s canary iteration %d/%d", r.name(), r.st.Iterations, r.a.Iterations), "checks passed")
	return keepGoing
}

// promotionGate opens on confirm-promotion (webhooks or an approval); closed, the rollout waits in
// WaitingPromotion and the analysis keeps running every interval.
func (r *rollout) promotionGate() (outcome, error) {
	open, err := r.gate(GateConfirmPromotion)
	if err != nil {
		return keepGoing, err
	}
	if !open {
		r.setPhase(PhaseWaitingPromotion)
		r.setCondition(ConditionUnknown, "WaitingPromotion", "Waiting for approval.")
		r.info(fmt.Sprintf("Halt %s advancement waiting for promotion approval", r.name()), "confirm-promotion closed")
		return keepGoing, nil
	}
	return toPromote{}, nil
}

// failedCheck counts one failed check and halts the step, or rolls back when the count reaches the threshold
// (at once: Flagger waits one more interval to notice, holding users on a canary already judged bad).
func (r *rollout) failedCheck(why string, checks []activities.CheckResult) outcome {
	r.st.FailedChecks++
	r.decide(activities.EventHalted, v1beta1.SeverityWarn, true, fmt.Sprintf("Halt %s advancement %s", r.name(), why), why, checks...)
	if r.st.FailedChecks >= r.a.Threshold {
		return r.thresholdRollback()
	}
	return keepGoing
}

func (r *rollout) thresholdRollback() outcome {
	return r.rollbackFor(fmt.Sprintf("Rolling back %s failed checks threshold reached %d", r.name(), r.st.FailedChecks), activities.EventRolledBack)
}

func (r *rollout) rollbackFor(reason string, ev activities.EventType) outcome {
	return toRollback{reason: reason, event: ev}
}

// urgent acts on abort, promote and revision requests, in that order of precedence.
func (r *rollout) urgent() (outcome, error) {
	r.drain()
	switch {
	case r.abort != nil:
		return r.rollbackFor(r.abortReason(), activities.EventAborted), nil
	case r.promote != nil:
		r.st.PromotedBy, r.st.PromoteReason = r.promote.By, r.promote.Reason
		r.decide(activities.EventApproved, v1beta1.SeverityInfo, true,
			fmt.Sprintf("Promote %s now: requested by %s: %s", r.name(), r.promote.By, r.promote.Reason), "promote signal")
		r.promote = nil
		return toPromote{}, nil
	case r.revision != nil:
		r.revision = nil
		rev, err := r.detect()
		if err != nil {
			return keepGoing, err
		}
		switch {
		case !rev.Changed:
			return toRevert{rev}, nil
		case rev.TargetRevision == r.st.Revision:
			r.info(fmt.Sprintf("Revision of %s unchanged (%s): analysis goes on", r.name(), rev.TargetRevision), "revision signal")
			return keepGoing, nil
		}
		return toRestart{rev}, nil
	}
	return keepGoing, nil
}

// hasUrgent says whether a signal needs the analysis to act before its timer fires.
func (r *rollout) hasUrgent() bool {
	return r.abort != nil || r.promote != nil || r.revision != nil ||
		(!r.st.Paused && r.st.PendingGate != "" && r.hasOpenGate(r.st.PendingGate))
}

// continueAsNewDue is checked only between steps, where the whole state is in r.st: past historyLimit events,
// or when the server suggests it (its own history count or size limits, which it knows better than a count).
func (r *rollout) continueAsNewDue() bool {
	info := workflow.GetInfo(r.ctx)
	if info.GetCurrentHistoryLength() < historyLimit && !r.continueAsNewSuggested(info) {
		return false
	}
	r.drain()
	return !r.hasUrgent()
}

// continueAsNewSuggested says whether to follow the server's suggestion to continue as new. The version is asked
// only when the server suggests it, so that runs that never get the suggestion record no marker; runs recorded
// before versionContinueAsNewSuggested went on past it.
func (r *rollout) continueAsNewSuggested(info *workflow.Info) bool {
	return info.GetContinueAsNewSuggested() && r.at(versionContinueAsNewSuggested)
}
