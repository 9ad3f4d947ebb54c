package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// outcome is what the analysis decided.
type outcome int

const (
	keepGoing       outcome = iota
	doPromote               // promote now
	doRollback              // roll back (reason in rollout.rollbackReason)
	doRestart               // a new revision: restart the analysis on it
	doRevert                // the target went back to the primary's revision: nothing left to roll out
	doContinueAsNew         // the history is long: continue as new with the status
)

// analyse runs the analysis of the current revision from where the status says it is.
func (r *rollout) analyse() (outcome, error) {
	interval := r.a.IntervalDuration()
	resumeSteps := r.resumed && r.st.Phase != PhaseWaiting && r.st.Phase != ""
	r.resumed = false
	if !resumeSteps {
		// The gate before any traffic: confirm-rollout, tried again every interval (Waiting).
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
			open, err := r.gate(GateConfirmRollout)
			if err != nil {
				return keepGoing, err
			}
			if open {
				break
			}
			r.setPhase(PhaseWaiting)
			r.setCondition(ConditionUnknown, "Waiting", "Waiting for approval.")
			r.info(fmt.Sprintf("Halt %s advancement waiting for approval %s", r.name(), GateConfirmRollout), "confirm-rollout closed")
			if err := r.wait(interval, true, r.hasUrgent); err != nil {
				return keepGoing, err
			}
			if r.continueAsNewDue() {
				return doContinueAsNew, nil
			}
		}

		r.setPhase(PhaseProgressing)
		r.setCondition(ConditionUnknown, "Progressing", "New revision detected, progressing canary analysis.")
		r.decide(activities.EventNewRevision, v1beta1.SeverityInfo, true,
			fmt.Sprintf("New revision detected! Scaling up %s.%s", r.c.Spec.TargetRef.Name, r.c.Namespace), "revision "+r.st.Revision)
		var res activities.ActionResult
		if err := r.exec(kubeOptions(), rt.ReconcileRouter, activities.RouterInput{Canary: r.c}, &res); err != nil {
			return keepGoing, err
		}
		if err := r.exec(kubeOptions(), wl.ScaleCanary, activities.ScaleInput{Canary: r.c, Up: true}, &res); err != nil {
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
			return doPromote, nil
		}
	}

	// The analysis: one step now (the canary is ready, nothing to wait for), then one per interval.
	wait := resumeSteps
	for {
		if wait || r.st.Paused {
			if err := r.wait(interval, true, r.hasUrgent); err != nil {
				return keepGoing, err
			}
			if r.continueAsNewDue() {
				return doContinueAsNew, nil
			}
		}
		wait = true
		if out, err := r.urgent(); out != keepGoing || err != nil {
			return out, err
		}
		// An approval of the gate the last step stopped at opens it now: the checks of that step passed, so only
		// the rest of the step (the strategy) runs.
		gateOnly := r.st.PendingGate != "" && r.hasOpenGate(r.st.PendingGate)
		out, err := r.step(gateOnly)
		if out != keepGoing || err != nil {
			return out, err
		}
	}
}

// step is one analysis step, in Flagger's order (design.md §3). With strategyOnly it skips the gates and checks
// that already passed in this interval.
func (r *rollout) step(strategyOnly bool) (outcome, error) {
	if !strategyOnly {
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
				deadlineReason(activities.WorkloadCanary, r.c, reason)), activities.EventRolledBack), nil
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
		if r.st.CanaryWeight == 0 && r.st.Iterations == 0 && !r.st.Mirrored {
			r.info("Starting canary analysis for "+r.name(), "first step")
			if failed, err := r.runHooks(v1beta1.PreRolloutHook); err != nil || failed != "" {
				if err != nil {
					return keepGoing, err
				}
				return r.failedCheck(failed, nil), nil
			}
		} else {
			if failed, err := r.runHooks(v1beta1.RolloutHook); err != nil || failed != "" {
				if err != nil {
					return keepGoing, err
				}
				return r.failedCheck(failed, nil), nil
			}
			failed, hold, err := r.runMetrics()
			if err != nil {
				return keepGoing, err
			}
			if failed != "" {
				return r.failedCheck(failed, r.st.LastChecks), nil
			}
			if hold != "" {
				r.decide(activities.EventHalted, v1beta1.SeverityInfo, false,
					fmt.Sprintf("Halt %s advancement %s", r.name(), hold), "metric on hold")
				return keepGoing, nil
			}
		}
		// A signal that came in during the checks wins over advancing.
		if out, err := r.urgent(); out != keepGoing || err != nil {
			return out, err
		}
	}
	// 5. The strategy.
	switch r.st.Strategy {
	case v1beta1.StrategyABTesting:
		return r.stepIterations(false)
	case v1beta1.StrategyBlueGreen, v1beta1.StrategyBlueGreenMirroring:
		return r.stepIterations(true)
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
			if err := r.setRoutes(kubeOptions(), 100, 0, true); err != nil {
				return keepGoing, err
			}
			r.decide(activities.EventAdvanced, v1beta1.SeverityInfo, false, "Start traffic mirroring for "+r.name(), "mirror")
			return keepGoing, nil
		}
		if err := r.setRoutes(kubeOptions(), 100-next, next, false); err != nil {
			return keepGoing, err
		}
		r.decide(activities.EventAdvanced, v1beta1.SeverityInfo, false,
			fmt.Sprintf("Advance %s canary weight %d", r.name(), next), "checks passed")
		return keepGoing, nil
	}
	return r.promotionGate()
}

// stepIterations runs one iteration of A/B testing (matching requests go to the canary) or blue/green (no user
// traffic, or mirrored traffic), or promotes after the last iteration.
func (r *rollout) stepIterations(blueGreen bool) (outcome, error) {
	if r.st.Iterations < r.a.Iterations {
		switch {
		case !blueGreen && r.st.CanaryWeight != 100:
			if err := r.setRoutes(kubeOptions(), 0, 100, false); err != nil {
				return keepGoing, err
			}
		case blueGreen && r.a.Mirror && !r.st.Mirrored:
			if err := r.setRoutes(kubeOptions(), 100, 0, true); err != nil {
				return keepGoing, err
			}
			r.info("Start traffic mirroring for "+r.name(), "mirror")
		}
		r.st.Iterations++
		r.decide(activities.EventAdvanced, v1beta1.SeverityInfo, false,
			fmt.Sprintf("Advance %s canary iteration %d/%d", r.name(), r.st.Iterations, r.a.Iterations), "checks passed")
		return keepGoing, nil
	}
	out, err := r.promotionGate()
	if out != doPromote || err != nil || !blueGreen {
		return out, err
	}
	r.info("Routing all traffic to canary "+r.name(), "blue/green switch")
	if err := r.setRoutes(kubeOptions(), 0, 100, false); err != nil {
		return keepGoing, err
	}
	return doPromote, nil
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
	return doPromote, nil
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
	r.rollbackReason, r.rollbackEvent = reason, ev
	return doRollback
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
		return doPromote, nil
	case r.revision != nil:
		r.revision = nil
		rev, err := r.detect()
		if err != nil {
			return keepGoing, err
		}
		r.nextRevision = rev
		switch {
		case !rev.Changed:
			return doRevert, nil
		case rev.TargetRevision == r.st.Revision:
			r.info(fmt.Sprintf("Revision of %s unchanged (%s): analysis goes on", r.name(), rev.TargetRevision), "revision signal")
			return keepGoing, nil
		}
		return doRestart, nil
	}
	return keepGoing, nil
}

// hasUrgent says whether a signal needs the analysis to act before its timer fires.
func (r *rollout) hasUrgent() bool {
	return r.abort != nil || r.promote != nil || r.revision != nil ||
		(!r.st.Paused && r.st.PendingGate != "" && r.hasOpenGate(r.st.PendingGate))
}

// continueAsNewDue is checked only between steps, where the whole state is in r.st.
func (r *rollout) continueAsNewDue() bool {
	if workflow.GetInfo(r.ctx).GetCurrentHistoryLength() < historyLimit {
		return false
	}
	r.drain()
	return !r.hasUrgent()
}
