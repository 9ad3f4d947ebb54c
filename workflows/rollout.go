// Package workflows holds CanaryRollout, the durable state machine of one release of a Canary: it initialises a
// canary on its first rollout, or analyses a new revision step by step and promotes or rolls it back, reacting at
// once to approve, abort, pause, resume, promote and revision signals. The code is deterministic: every side effect
// is an activity of package activities, every wait a workflow timer.
//
// Changing this code changes what replays of open rollouts see: guard a change of behaviour with workflow.GetVersion
// (a change ID per change, e.g. "threshold-rollback-now") and keep the replay tests (testdata/histories) passing.
package workflows

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// Activities called through method values of nil pointers: the SDK takes the activity name from the method and
// type-checks the input; the real structs with their dependencies are registered on the worker.
var (
	wl *activities.Workloads
	rt *activities.Routing
)

// CanaryRollout runs one release of a Canary (workflow ID canary/<namespace>/<name>, see v1beta1.WorkflowID).
//
// The first rollout of a canary initialises it (primary, Services, router at 100/0, target scaled to zero) and
// ends Initialized. A later run ends at once with NoNewRun when the target equals what the primary runs;
// otherwise it analyses the new revision (design.md §3) and ends Succeeded (promoted) or Failed (rolled back).
// Cancelling the workflow rolls back like abort and ends the execution as canceled, with the RolloutResult (phase
// Failed) as the cancellation details. Terminating it stops it without cleanup.
//
// History stays bounded: past historyLimit events a run continues as new with its Status in the input.
func CanaryRollout(ctx workflow.Context, in RolloutInput) (RolloutResult, error) {
	r := newRollout(ctx, in)
	if err := r.setup(); err != nil {
		return RolloutResult{}, err
	}
	res, err := r.run()
	if err != nil && (errors.Is(err, errCanceled) || ctx.Err() != nil) {
		return r.canceled()
	}
	if err != nil {
		return res, err
	}
	// A revision signal that arrived while the run was finishing starts the next run for it (one run, one
	// release) instead of being lost with this run. Other signals that come after the end have nothing left to
	// act on and must not rewrite the status that says how the release ended.
	for r.revisionCh.ReceiveAsync(nil) {
		r.revision = &ActionSignal{}
	}
	if r.revision == nil || res.Suspended {
		return res, nil
	}
	rev, err := r.detect()
	if err != nil || !rev.Changed || rev.TargetRevision == res.Revision {
		// Nothing newer than what this run handled (an error here only loses a signal the starter repeats).
		return res, nil
	}
	r.info("New revision signalled while finishing: starting a new run for "+r.name(), "revision "+rev.TargetRevision)
	return res, workflow.NewContinueAsNewError(ctx, WorkflowName, RolloutInput{
		Canary: in.Canary, Templates: in.Templates, AlertProviders: in.AlertProviders,
	})
}

// errCanceled unwinds the rollout when the workflow is cancelled; CanaryRollout then cleans up.
var errCanceled = errors.New("workflow canceled")

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

// rollout is one run: the defaulted spec, the status and the signal state.
type rollout struct {
	ctx workflow.Context
	in  RolloutInput
	c   v1beta1.Canary
	a   *v1beta1.CanaryAnalysis // never nil
	ref activities.CanaryRef
	st  Status
	log log.Logger

	approveCh, abortCh, pauseCh, resumeCh, promoteCh, revisionCh workflow.ReceiveChannel
	// wake is written by update handlers so that a wait selecting on the signal channels notices them.
	wake workflow.Channel

	// Requests received and not yet acted on.
	abort, promote, revision *ActionSignal

	// rollback reason and event of a doRollback outcome; next revision of a doRestart/doRevert.
	rollbackReason string
	rollbackEvent  activities.EventType
	nextRevision   activities.RevisionResult

	// resumed is true when this run continues a previous one (Status carried by continue-as-new).
	resumed bool
	// primaryWritten is set when the promotion may have given the primary the canary's template: a rollback
	// from then on must put the primary's previous revision back first.
	primaryWritten bool
	// last search attribute values upserted, to upsert only changes.
	saPhase    Phase
	saWeight   int
	saRevision string
}

func newRollout(ctx workflow.Context, in RolloutInput) *rollout {
	r := &rollout{ctx: ctx, in: in, c: in.Canary, log: workflow.GetLogger(ctx), saWeight: -1}
	r.c.SetDefaults()
	r.a = r.c.Spec.Analysis
	if r.a == nil {
		r.a = &v1beta1.CanaryAnalysis{}
	}
	r.ref = activities.RefOf(&r.c)
	if in.Status != nil {
		r.st = *in.Status
		r.resumed = true
	} else {
		r.st = Status{PrimaryWeight: 100, Conditions: []Condition{}}
	}
	r.st.Strategy = r.c.Strategy()
	r.st.Runs++
	return r
}

func (r *rollout) setup() error {
	r.approveCh = workflow.GetSignalChannel(r.ctx, SignalApprove)
	r.abortCh = workflow.GetSignalChannel(r.ctx, SignalAbort)
	r.pauseCh = workflow.GetSignalChannel(r.ctx, SignalPause)
	r.resumeCh = workflow.GetSignalChannel(r.ctx, SignalResume)
	r.promoteCh = workflow.GetSignalChannel(r.ctx, SignalPromote)
	r.revisionCh = workflow.GetSignalChannel(r.ctx, SignalRevision)
	r.wake = workflow.NewBufferedChannel(r.ctx, 1)
	if err := workflow.SetQueryHandler(r.ctx, QueryStatus, func() (Status, error) { return r.st, nil }); err != nil {
		return fmt.Errorf("register status query of %s: %w", r.name(), err)
	}
	if err := r.registerUpdates(); err != nil {
		return err
	}
	if err := workflow.UpsertMemo(r.ctx, map[string]any{
		"target":   r.c.Spec.TargetRef.Kind + "/" + r.c.Spec.TargetRef.Name,
		"provider": r.c.Spec.Provider,
		"strategy": string(r.st.Strategy),
	}); err != nil {
		return fmt.Errorf("upsert memo of %s: %w", r.name(), err)
	}
	if err := workflow.UpsertTypedSearchAttributes(r.ctx,
		searchattr.CanaryName.ValueSet(r.c.Name),
		searchattr.CanaryNamespace.ValueSet(r.c.Namespace),
		searchattr.CanaryProvider.ValueSet(r.c.Spec.Provider),
	); err != nil {
		return fmt.Errorf("upsert search attributes of %s: %w", r.name(), err)
	}
	return nil
}

// run decides what this run is: refused (suspended), an initialisation, nothing (no new run) or a release.
func (r *rollout) run() (RolloutResult, error) {
	if r.resumed {
		r.info(fmt.Sprintf("Continuing rollout of %s at %s (run %d)", r.name(), r.st.Phase, r.st.Runs), "continued as new")
		return r.release()
	}
	if r.c.Spec.Suspend {
		r.st.Message = "Canary " + r.name() + " is suspended: no rollout started"
		r.info(r.st.Message, "suspended")
		return RolloutResult{Suspended: true, Reason: r.st.Message, Status: r.st}, nil
	}
	rev, err := r.detect()
	if err != nil {
		return RolloutResult{}, err
	}
	r.st.Revision, r.st.PrimaryRevision = rev.TargetRevision, rev.PrimaryRevision
	switch {
	case !rev.PrimaryExists:
		return r.initialise()
	case !rev.Changed:
		msg := fmt.Sprintf("No new run for %s: the primary already runs revision %s", r.name(), rev.TargetRevision)
		r.setPhase(PhaseInitialized)
		r.setCondition(ConditionTrue, "Initialized", msg)
		r.info(msg, "target equals primary")
		return r.result("no new run: target equals primary", true), nil
	case r.in.FailedRevision != "" && rev.TargetRevision == r.in.FailedRevision:
		msg := fmt.Sprintf("Canary %s: revision %s was rolled back and the target has not changed since: change its "+
			"image or config, or run it again with starter retry", r.name(), rev.TargetRevision)
		r.setPhase(PhaseFailed)
		r.setCondition(ConditionFalse, "Failed", msg)
		r.warn(msg, "failed revision unchanged")
		return r.result(msg, false), nil
	}
	r.st.Message = ""
	return r.release()
}

// initialise sets up a canary's first rollout: primary, Services, router at 100/0, target scaled to zero.
func (r *rollout) initialise() (RolloutResult, error) {
	r.setPhase(PhaseInitializing)
	r.info("Initializing "+r.name(), "first rollout: no primary")
	var res activities.ActionResult
	if err := r.exec(kubeOptions(), wl.InitializeWorkloads, activities.WorkloadInput{Canary: r.c}, &res); err != nil {
		return r.failInit(err)
	}
	if err := r.exec(kubeOptions(), rt.ReconcileRouter, activities.RouterInput{Canary: r.c}, &res); err != nil {
		return r.failInit(err)
	}
	if err := r.setRoutes(kubeOptions(), 100, 0, false); err != nil {
		return r.failInit(err)
	}
	ready, reason, err := r.waitReady(activities.WorkloadPrimary, func() bool { return r.abort != nil })
	if err != nil {
		return r.failInit(err)
	}
	if !ready {
		return r.failInit(errors.New(reason))
	}
	if r.abort != nil {
		return r.failInit(fmt.Errorf("aborted by %s: %s", r.abort.By, r.abort.Reason))
	}
	if err := r.exec(kubeOptions(), wl.ScaleCanary, activities.ScaleInput{Canary: r.c, Up: false}, &res); err != nil {
		return r.failInit(err)
	}
	r.setPhase(PhaseInitialized)
	r.setCondition(ConditionTrue, "Initialized", "Deployment initialization completed.")
	r.decide(activities.EventInitialized, v1beta1.SeverityInfo, true, "Initialization done! "+r.name(), "initialized")
	return r.result("initialized", false), nil
}

// failInit ends a failed initialisation and undoes what it made (router objects, primary, Services), so that the
// next run finds no half-made canary and initialises again: a primary left behind would make it report "no new
// run" on objects that never served. (Runs recorded before versionUndoInit left them.)
func (r *rollout) failInit(err error) (RolloutResult, error) {
	if errors.Is(err, errCanceled) || r.ctx.Err() != nil {
		return RolloutResult{}, errCanceled
	}
	r.setPhase(PhaseFailed)
	msg := fmt.Sprintf("Initialization of %s failed: %v", r.name(), err)
	if undoErr := r.undoInit(); undoErr != nil {
		msg += fmt.Sprintf("; undoing it failed too, remove %s-primary and its Services by hand: %v", r.c.Spec.TargetRef.Name, undoErr)
	}
	r.setCondition(ConditionFalse, "Failed", msg)
	r.decide(activities.EventRolledBack, v1beta1.SeverityError, true, msg, err.Error())
	return r.result(msg, false), nil
}

// versionUndoInit marks runs that undo a failed or cancelled initialisation.
const versionUndoInit = "undo-failed-init"

// undoInit removes what an initialisation made: the router's objects (a provider without a router made none),
// then the primary, its autoscaler and Services, with the target serving as before.
func (r *rollout) undoInit() error {
	if workflow.GetVersion(r.ctx, versionUndoInit, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	r.warn("Undoing the initialization of "+r.name(), "initialization failed")
	var res activities.ActionResult
	err := r.exec(cleanupOptions(), rt.FinalizeRouter, activities.RouterInput{Canary: r.c}, &res)
	var ae *temporal.ApplicationError
	if err != nil && !(errors.As(err, &ae) && ae.Type() == activities.ErrTypeUnsupportedProvider) {
		return err
	}
	return r.exec(cleanupOptions(), wl.FinalizeWorkloads, activities.WorkloadInput{Canary: r.c}, &res)
}

// release analyses the revision in r.st.Revision until it is promoted or rolled back, restarting on new revisions.
func (r *rollout) release() (RolloutResult, error) {
	for {
		out, err := r.analyse()
		if err != nil {
			return r.fail(err)
		}
		switch out {
		case doPromote:
			return r.promoteNow()
		case doRollback:
			return r.rollback(r.rollbackReason, r.rollbackEvent)
		case doRestart:
			if err := r.restart(); err != nil {
				return r.fail(err)
			}
		case doRevert:
			return r.revert()
		case doContinueAsNew:
			r.info(fmt.Sprintf("History of %s has %d events: continuing as new", r.name(),
				workflow.GetInfo(r.ctx).GetCurrentHistoryLength()), "history limit")
			return RolloutResult{}, workflow.NewContinueAsNewError(r.ctx, WorkflowName, RolloutInput{
				Canary: r.in.Canary, Templates: r.in.Templates, AlertProviders: r.in.AlertProviders, Status: &r.st,
			})
		}
	}
}

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

// promoteNow copies the canary to the primary, waits for the primary, routes all traffic to it (in
// stepWeightPromotion steps when set), scales the canary down and ends Succeeded.
func (r *rollout) promoteNow() (RolloutResult, error) {
	r.st.PendingGate = ""
	r.setPhase(PhasePromoting)
	r.setCondition(ConditionUnknown, "Promoting", "Canary analysis completed, starting primary rolling update.")
	t := r.c.Spec.TargetRef.Name
	r.info(fmt.Sprintf("Copying %s.%s template spec to %s-primary.%s", t, r.c.Namespace, t, r.c.Namespace), "promotion")
	var res activities.ActionResult
	// From here on the primary may run the canary's template: an abort up to the end of the promotion, or any
	// rollback, puts the previous revision back (runs recorded before that version noticed an abort only while
	// waiting, and left the primary on the aborted revision).
	revertible := workflow.GetVersion(r.ctx, versionRevertPromotion, workflow.DefaultVersion, 1) != workflow.DefaultVersion
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
	if err := r.exec(kubeOptions(), wl.Promote, activities.WorkloadInput{Canary: r.c}, &res); err != nil {
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
			if err := r.setRoutes(kubeOptions(), 100-w, w, false); err != nil {
				return r.fail(err)
			}
			if revertible && aborted() {
				return r.rollback(r.abortReason(), activities.EventAborted)
			}
			r.decide(activities.EventAdvanced, v1beta1.SeverityInfo, false,
				fmt.Sprintf("Advance %s primary weight %d", r.name(), 100-w), "promotion")
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
	if err := r.exec(kubeOptions(), wl.ScaleCanary, activities.ScaleInput{Canary: r.c, Up: false}, &res); err != nil {
		return r.fail(err)
	}
	if revertible && aborted() {
		return r.rollback(r.abortReason(), activities.EventAborted)
	}
	r.primaryWritten = false
	r.setPhase(PhaseSucceeded)
	r.setCondition(ConditionTrue, "Succeeded", "Canary analysis completed successfully, promotion finished.")
	if _, err := r.runHooks(v1beta1.PostRolloutHook); err != nil {
		return r.fail(err)
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
func (r *rollout) rollback(reason string, ev activities.EventType) (RolloutResult, error) {
	r.st.PendingGate = ""
	r.log.Error(reason, r.keyvals("rollback")...)
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
	if err := r.exec(cleanupOptions(), wl.ScaleCanary, activities.ScaleInput{Canary: r.c, Up: false}, &res); err != nil {
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
	if err := r.exec(cleanupOptions(), wl.RevertPromotion, activities.RevertInput{Canary: r.c, Revision: prev}, &res); err != nil {
		return err
	}
	r.primaryWritten = false
	return nil
}

// fail ends the run after an unexpected error (an activity that failed for good): it rolls back when it can and
// returns the error when even that fails. A cancellation unwinds to CanaryRollout.
func (r *rollout) fail(err error) (RolloutResult, error) {
	if errors.Is(err, errCanceled) || r.ctx.Err() != nil {
		return RolloutResult{}, errCanceled
	}
	res, rbErr := r.rollback(fmt.Sprintf("Rolling back %s: %v", r.name(), err), activities.EventRolledBack)
	if rbErr != nil {
		return res, fmt.Errorf("%w (after %v)", rbErr, err)
	}
	return res, nil
}

// canceled rolls back in a disconnected context after the workflow was cancelled, then ends the execution as
// canceled with the result (phase Failed) as details.
func (r *rollout) canceled() (RolloutResult, error) {
	dctx, _ := workflow.NewDisconnectedContext(r.ctx)
	r.ctx = dctx
	reason := fmt.Sprintf("Rolling back %s: workflow cancelled", r.name())
	var res RolloutResult
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
	return res, temporal.NewCanceledError(res)
}

// restart routes traffic back to the primary, resets the counters and sets the new revision; analyse then
// starts again from the confirm-rollout gate.
func (r *rollout) restart() error {
	rev := r.nextRevision
	r.info(fmt.Sprintf("New revision detected! Restarting analysis for %s", r.name()), "revision "+rev.TargetRevision)
	if r.st.PrimaryWeight != 100 || r.st.Mirrored {
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
func (r *rollout) revert() (RolloutResult, error) {
	msg := fmt.Sprintf("No new run for %s: the target is back at the primary's revision %s", r.name(), r.nextRevision.TargetRevision)
	r.info(msg, "revision reverted")
	if err := r.setRoutes(cleanupOptions(), 100, 0, false); err != nil {
		return r.fail(err)
	}
	var res activities.ActionResult
	if err := r.exec(cleanupOptions(), wl.ScaleCanary, activities.ScaleInput{Canary: r.c, Up: false}, &res); err != nil {
		return r.fail(err)
	}
	r.st.Revision = r.nextRevision.TargetRevision
	r.st.FailedChecks, r.st.Iterations, r.st.PendingGate = 0, 0, ""
	r.setPhase(PhaseInitialized)
	r.setCondition(ConditionTrue, "Initialized", msg)
	return r.result("no new run: target reverted to the primary's revision", true), nil
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

func (r *rollout) abortReason() string {
	return fmt.Sprintf("Rolling back %s aborted by %s: %s", r.name(), r.abort.By, r.abort.Reason)
}

// continueAsNewDue is checked only between steps, where the whole state is in r.st.
func (r *rollout) continueAsNewDue() bool {
	if workflow.GetInfo(r.ctx).GetCurrentHistoryLength() < historyLimit {
		return false
	}
	r.drain()
	return !r.hasUrgent()
}

// detect reads the target's and the primary's revisions.
func (r *rollout) detect() (activities.RevisionResult, error) {
	var rev activities.RevisionResult
	err := r.exec(kubeOptions(), wl.DetectRevision, activities.WorkloadInput{Canary: r.c}, &rev)
	return rev, err
}

// waitReady polls the readiness of a workload on a backing-off timer until it is ready, the progress deadline
// passes (ready false, with the reason) or stop says a signal needs handling (ready false, reason "").
func (r *rollout) waitReady(w activities.Workload, stop func() bool) (bool, string, error) {
	since := workflow.Now(r.ctx)
	deadline := r.c.ProgressDeadline()
	poll := readyPollFirst
	for {
		var res activities.ReadyResult
		err := r.exec(readyOptions(), wl.CheckReady, activities.ReadyInput{Canary: r.c, Workload: w, NotReadySince: since}, &res)
		if isDeadline(err) {
			return false, deadlineReason(w, r.c, err.Error()), nil
		}
		if errors.Is(err, errCanceled) {
			return false, "", err
		}
		if err != nil {
			// A read that failed even after retries (API server away) is "not ready yet": the deadline decides.
			res.Reason = "readiness unknown: " + err.Error()
		}
		if res.Ready {
			return true, "", nil
		}
		elapsed := workflow.Now(r.ctx).Sub(since)
		if elapsed >= deadline {
			return false, deadlineReason(w, r.c, res.Reason), nil
		}
		if err := r.wait(min(poll, deadline-elapsed), false, stop); err != nil {
			return false, "", err
		}
		if stop() {
			return false, "", nil
		}
		poll = min(2*poll, readyPollMax)
	}
}

func deadlineReason(w activities.Workload, c v1beta1.Canary, why string) string {
	name := c.Spec.TargetRef.Name
	if w == activities.WorkloadPrimary {
		name += "-primary"
	}
	return fmt.Sprintf("%s deployment %s.%s not ready: %s", w, name, c.Namespace, why)
}

func isDeadline(err error) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.Type() == activities.ErrTypeProgressDeadlineExceeded
}

// checkCanaryReady observes the canary once during the analysis; r.st.NotReadySince runs the deadline clock.
func (r *rollout) checkCanaryReady() (bool, string, error) {
	var res activities.ReadyResult
	err := r.exec(readyOptions(), wl.CheckReady, activities.ReadyInput{
		Canary: r.c, Workload: activities.WorkloadCanary, NotReadySince: r.st.NotReadySince,
	}, &res)
	if isDeadline(err) {
		r.st.NotReadySince = workflow.Now(r.ctx).Add(-r.c.ProgressDeadline())
		return false, err.Error(), nil
	}
	if errors.Is(err, errCanceled) {
		return false, "", err
	}
	if err != nil {
		// Halt rather than roll back on an API outage; the progress deadline bounds how long.
		res = activities.ReadyResult{Reason: "readiness unknown: " + err.Error()}
	}
	if res.Ready {
		r.st.NotReadySince = time.Time{}
		return true, "", nil
	}
	if r.st.NotReadySince.IsZero() {
		r.st.NotReadySince = workflow.Now(r.ctx)
	}
	return false, res.Reason, nil
}

func (r *rollout) deadlinePassed() bool {
	return !r.st.NotReadySince.IsZero() && workflow.Now(r.ctx).Sub(r.st.NotReadySince) >= r.c.ProgressDeadline()
}

// gate says whether a gate is open: an unused approval opens it once; otherwise all its webhooks must pass (no
// webhook: open). Closed, it becomes the pending gate.
func (r *rollout) gate(g Gate) (bool, error) {
	if r.takeOpenGate(g) {
		if r.st.PendingGate == g {
			r.st.PendingGate = ""
		}
		last := r.lastApproval(g)
		r.decide(activities.EventApproved, v1beta1.SeverityInfo, true,
			fmt.Sprintf("Gate %s of %s opened by %s: %s", g, r.name(), last.By, last.Reason), "approved")
		return true, nil
	}
	failed, err := r.runHooks(v1beta1.HookType(g))
	if err != nil {
		return false, err
	}
	if failed == "" {
		if r.st.PendingGate == g {
			r.st.PendingGate = ""
		}
		return true, nil
	}
	if r.st.PendingGate != g {
		r.st.PendingGate = g
		r.decide(activities.EventWaitingApproval, v1beta1.SeverityInfo, true,
			fmt.Sprintf("Canary %s is waiting for approval: %s", r.name(), failed), string(g)+" closed")
	}
	return false, nil
}

func (r *rollout) hasOpenGate(g Gate) bool {
	for _, o := range r.st.OpenGates {
		if o == g {
			return true
		}
	}
	return false
}

func (r *rollout) takeOpenGate(g Gate) bool {
	for i, o := range r.st.OpenGates {
		if o == g {
			r.st.OpenGates = append(r.st.OpenGates[:i:i], r.st.OpenGates[i+1:]...)
			return true
		}
	}
	return false
}

func (r *rollout) lastApproval(g Gate) Approval {
	for i := len(r.st.Approvals) - 1; i >= 0; i-- {
		if r.st.Approvals[i].Gate == g {
			return r.st.Approvals[i]
		}
	}
	return Approval{Gate: g}
}

func (r *rollout) hooks(t v1beta1.HookType) []v1beta1.CanaryWebhook {
	var out []v1beta1.CanaryWebhook
	for _, h := range r.a.Webhooks {
		if h.Type == t {
			out = append(out, h)
		}
	}
	return out
}

// runHooks calls the webhooks of a type in order and stops at the first failure, returning what failed ("" when
// all passed). Post-rollout hooks are all called; their failures are reported, never acted on.
func (r *rollout) runHooks(t v1beta1.HookType) (string, error) {
	hooks := r.hooks(t)
	if len(hooks) == 0 {
		return "", nil
	}
	r.st.LastWebhooks = nil
	failed := ""
	for _, h := range hooks {
		res, err := r.callHook(h)
		if err != nil {
			return "", err
		}
		if !res.Passed && failed == "" {
			failed = fmt.Sprintf("%s check %s failed %s", t, h.Name, res.Reason)
			if t != v1beta1.PostRolloutHook {
				break
			}
		}
	}
	if t == v1beta1.PostRolloutHook {
		if failed != "" {
			r.warn(fmt.Sprintf("Post-rollout hook of %s failed: %s", r.name(), failed), failed)
		}
		return "", nil
	}
	return failed, nil
}

// callHook calls one webhook; an activity that failed for good counts as the hook failing.
func (r *rollout) callHook(h v1beta1.CanaryWebhook) (activities.WebhookResult, error) {
	phase := r.st.Phase
	if phase == "" {
		phase = PhaseWaiting // the first confirm-rollout call, before the run has a phase
	}
	in := activities.WebhookInput{Hook: h, Payload: activities.WebhookPayload{
		Name: r.c.Name, Namespace: r.c.Namespace, Phase: string(phase), Checksum: r.st.Revision, Metadata: h.MetadataMap(),
	}}
	var res activities.WebhookResult
	if err := r.exec(webhookOptions(h), activities.ActivityCallWebhook, in, &res); err != nil {
		if errors.Is(err, errCanceled) {
			return res, err
		}
		res = activities.WebhookResult{Name: h.Name, Type: h.Type, Passed: false, Reason: err.Error()}
	}
	if h.Type != v1beta1.EventHook {
		r.st.LastWebhooks = append(r.st.LastWebhooks, res)
	}
	return res, nil
}

// runMetrics runs every metric check of the step in one activity. It returns the first failure (counted as one
// failed check) or the first hold (halts the step without counting).
func (r *rollout) runMetrics() (failed, hold string, err error) {
	if len(r.a.Metrics) == 0 {
		return "", "", nil
	}
	in := activities.MetricChecksInput{Canary: r.ref, Metrics: r.a.Metrics, Templates: r.in.Templates}
	var res activities.MetricChecksResult
	if err := r.exec(metricOptions(r.a), activities.ActivityRunMetricChecks, in, &res); err != nil {
		if errors.Is(err, errCanceled) {
			return "", "", err
		}
		r.st.LastChecks = nil
		return "metric checks could not run: " + cause(err), "", nil
	}
	r.st.LastChecks = res.Results
	r.memoChecks(res.Results)
	for _, c := range res.Results {
		switch c.Verdict {
		case activities.VerdictFail:
			return CheckMessage(c), "", nil
		case activities.VerdictHold:
			if hold == "" {
				hold = CheckMessage(c)
			}
		}
	}
	return "", hold, nil
}

// versionMemoChecks marks runs that record their last metric values in the memo (runs recorded before it do not,
// and replay without it).
const versionMemoChecks = "memo-last-checks"

// versionRevertPromotion marks runs whose rollback after the promotion began restores the primary's previous
// revision (runs recorded before it routed back to a primary that already ran the rolled-back revision).
const versionRevertPromotion = "revert-promotion"

// memoChecks records the step's metric values in the memo ("lastChecks": metric → value), where the workers'
// canaryflow_canary_metric_analysis metric reads them from visibility: every worker replica sees the same values.
func (r *rollout) memoChecks(results []activities.CheckResult) {
	if workflow.GetVersion(r.ctx, versionMemoChecks, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	values := make(map[string]float64, len(results))
	for _, c := range results {
		if c.Value != nil {
			values[c.Metric] = *c.Value
		}
	}
	if err := workflow.UpsertMemo(r.ctx, map[string]any{"lastChecks": values}); err != nil {
		r.log.Warn("recording the metric values in the memo failed: "+err.Error(), r.keyvals("memo")...)
	}
}

// CheckMessage words a metric result as Flagger does ("success rate 53.42% < 99%").
func CheckMessage(c activities.CheckResult) string {
	if c.Value == nil {
		return "no values found for metric " + c.Metric
	}
	v := *c.Value
	switch c.Metric {
	case v1beta1.MetricRequestSuccessRate:
		if c.Min != nil && v < *c.Min {
			return fmt.Sprintf("success rate %.2f%% < %s%%", v, num(*c.Min))
		}
	case v1beta1.MetricRequestDuration:
		if c.Max != nil && v > *c.Max {
			return fmt.Sprintf("request duration %sms > %sms", num(v), num(*c.Max))
		}
	}
	switch {
	case c.Min != nil && v < *c.Min:
		return fmt.Sprintf("%s %s < %s", c.Metric, num(v), num(*c.Min))
	case c.Max != nil && v > *c.Max:
		return fmt.Sprintf("%s %s > %s", c.Metric, num(v), num(*c.Max))
	case c.Message != "":
		return c.Message
	}
	return fmt.Sprintf("%s %s", c.Metric, num(v))
}

// cause is what an activity's failure says, without the activity error's own wrapping (type, event IDs), for
// messages a user reads.
func cause(err error) string {
	var ae *temporal.ActivityError
	if errors.As(err, &ae) && ae.Unwrap() != nil {
		return ae.Unwrap().Error()
	}
	return err.Error()
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// wait blocks for d, returning early when stop says a signal needs handling or the workflow is cancelled. While
// paused (and pausable) no timer runs: after resume a fresh full d starts, so a pause leaves no hidden timer state.
func (r *rollout) wait(d time.Duration, pausable bool, stop func() bool) error {
	for {
		r.drain()
		if stop() {
			return nil
		}
		if pausable && r.st.Paused {
			sel := r.signalSelector()
			for r.st.Paused && !stop() {
				sel.Select(r.ctx)
				if r.ctx.Err() != nil {
					return errCanceled
				}
			}
			continue
		}
		tctx, cancel := workflow.WithCancel(r.ctx)
		fired := false
		sel := r.signalSelector()
		sel.AddFuture(workflow.NewTimer(tctx, d), func(workflow.Future) { fired = true })
		for !fired && !stop() && !(pausable && r.st.Paused) {
			sel.Select(r.ctx)
			if r.ctx.Err() != nil {
				cancel()
				return errCanceled
			}
		}
		if fired {
			return nil
		}
		cancel()
	}
}

// signalSelector selects on every signal channel and on cancellation.
func (r *rollout) signalSelector() workflow.Selector {
	sel := workflow.NewSelector(r.ctx)
	sel.AddReceive(r.ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.AddReceive(r.approveCh, func(c workflow.ReceiveChannel, _ bool) { r.receiveApprove(c) })
	sel.AddReceive(r.abortCh, func(c workflow.ReceiveChannel, _ bool) { r.receiveAbort(c) })
	sel.AddReceive(r.pauseCh, func(c workflow.ReceiveChannel, _ bool) { r.receivePause(c) })
	sel.AddReceive(r.resumeCh, func(c workflow.ReceiveChannel, _ bool) { r.receiveResume(c) })
	sel.AddReceive(r.promoteCh, func(c workflow.ReceiveChannel, _ bool) { r.receivePromote(c) })
	sel.AddReceive(r.revisionCh, func(c workflow.ReceiveChannel, _ bool) { r.receiveRevision(c) })
	sel.AddReceive(r.wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(r.ctx, nil) })
	return sel
}

// drain takes every signal already received, in a fixed order of channels.
func (r *rollout) drain() {
	for more := true; more; {
		more = false
		for _, c := range []struct {
			ch workflow.ReceiveChannel
			fn func(workflow.ReceiveChannel)
		}{
			{r.approveCh, r.receiveApprove}, {r.abortCh, r.receiveAbort}, {r.pauseCh, r.receivePause},
			{r.resumeCh, r.receiveResume}, {r.promoteCh, r.receivePromote}, {r.revisionCh, r.receiveRevision},
			{r.wake, func(c workflow.ReceiveChannel) { c.Receive(r.ctx, nil) }},
		} {
			if c.ch.Len() > 0 {
				c.fn(c.ch)
				more = true
			}
		}
	}
}

func (r *rollout) receiveApprove(c workflow.ReceiveChannel) {
	var s ApproveSignal
	c.Receive(r.ctx, &s)
	r.applyApprove(s)
}

func (r *rollout) applyApprove(s ApproveSignal) {
	if !s.Gate.Valid() {
		r.warn(fmt.Sprintf("Ignoring approval of %s by %s: %q is not a gate (confirm-rollout, confirm-traffic-increase, confirm-promotion)", r.name(), s.By, s.Gate), "invalid gate")
		return
	}
	r.st.Approvals = append(r.st.Approvals, Approval{Gate: s.Gate, By: s.By, Reason: s.Reason, At: workflow.Now(r.ctx)})
	if !r.hasOpenGate(s.Gate) {
		r.st.OpenGates = append(r.st.OpenGates, s.Gate)
	}
	r.info(fmt.Sprintf("Approved %s of %s by %s: %s", s.Gate, r.name(), s.By, s.Reason), "approve signal")
}

func (r *rollout) receiveAbort(c workflow.ReceiveChannel) {
	var s ActionSignal
	c.Receive(r.ctx, &s)
	r.applyAbort(s)
}

func (r *rollout) applyAbort(s ActionSignal) {
	if r.st.Phase == PhaseSucceeded || r.st.Phase == PhaseFailed {
		// The release already ended (a signal drained while the run finishes): there is nothing left to abort,
		// and the status keeps saying what happened.
		r.log.Info(fmt.Sprintf("Ignoring abort of %s by %s: the rollout already ended %s", r.name(), s.By, r.st.Phase), r.keyvals("abort signal")...)
		return
	}
	if r.abort == nil {
		r.abort = &s
		r.st.AbortedBy, r.st.AbortReason = s.By, s.Reason
	}
	r.warn(fmt.Sprintf("Abort of %s requested by %s: %s", r.name(), s.By, s.Reason), "abort signal")
}

func (r *rollout) receivePause(c workflow.ReceiveChannel) {
	var s ActionSignal
	c.Receive(r.ctx, &s)
	r.applyPause(s)
}

func (r *rollout) applyPause(s ActionSignal) {
	r.st.Paused, r.st.PausedBy, r.st.PauseReason = true, s.By, s.Reason
	r.info(fmt.Sprintf("Pause %s at canary weight %d by %s: %s", r.name(), r.st.CanaryWeight, s.By, s.Reason), "pause signal")
}

func (r *rollout) receiveResume(c workflow.ReceiveChannel) {
	var s ActionSignal
	c.Receive(r.ctx, &s)
	r.applyResume(s)
}

func (r *rollout) applyResume(s ActionSignal) {
	if !r.st.Paused {
		return
	}
	r.st.Paused = false
	r.info(fmt.Sprintf("Resume %s by %s: %s", r.name(), s.By, s.Reason), "resume signal")
}

func (r *rollout) receivePromote(c workflow.ReceiveChannel) {
	var s ActionSignal
	c.Receive(r.ctx, &s)
	r.applyPromote(s)
}

func (r *rollout) applyPromote(s ActionSignal) {
	r.promote = &s
	r.info(fmt.Sprintf("Promotion of %s requested by %s: %s", r.name(), s.By, s.Reason), "promote signal")
}

func (r *rollout) receiveRevision(c workflow.ReceiveChannel) {
	var s ActionSignal
	c.Receive(r.ctx, &s)
	r.revision = &s
}

// setRoutes writes a split on the router and records it in the status and search attributes.
func (r *rollout) setRoutes(opts workflow.ActivityOptions, primary, canary int, mirrored bool) error {
	var res activities.ActionResult
	in := activities.RoutesInput{Canary: r.c, PrimaryWeight: primary, CanaryWeight: canary, Mirrored: mirrored}
	if err := r.exec(opts, rt.SetRoutes, in, &res); err != nil {
		return err
	}
	r.st.PrimaryWeight, r.st.CanaryWeight, r.st.Mirrored = primary, canary, mirrored
	r.syncSearchAttributes()
	return nil
}

// exec runs one activity and waits for it. A cancellation becomes errCanceled.
func (r *rollout) exec(opts workflow.ActivityOptions, fn any, in any, out any) error {
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(r.ctx, opts), fn, in).Get(r.ctx, out)
	if err != nil && (temporal.IsCanceledError(err) || r.ctx.Err() != nil) {
		return errCanceled
	}
	return err
}

func (r *rollout) setPhase(p Phase) {
	if r.st.Phase == p {
		return
	}
	r.st.Phase = p
	r.st.LastTransitionTime = workflow.Now(r.ctx)
	r.syncSearchAttributes()
}

func (r *rollout) setCondition(s ConditionStatus, reason, msg string) {
	now := workflow.Now(r.ctx)
	if len(r.st.Conditions) == 1 && r.st.Conditions[0].Status == s && r.st.Conditions[0].Reason == reason {
		r.st.Conditions[0].Message = msg
		return
	}
	r.st.Conditions = []Condition{{Type: ConditionPromoted, Status: s, Reason: reason, Message: msg, LastTransitionTime: now}}
}

// syncSearchAttributes upserts the phase, weight and revision that changed since the last upsert.
func (r *rollout) syncSearchAttributes() {
	var ups []temporal.SearchAttributeUpdate
	if r.st.Phase != r.saPhase {
		ups = append(ups, searchattr.CanaryPhase.ValueSet(string(r.st.Phase)))
	}
	if r.st.CanaryWeight != r.saWeight {
		ups = append(ups, searchattr.CanaryWeight.ValueSet(int64(r.st.CanaryWeight)))
	}
	if r.st.Revision != r.saRevision && r.st.Revision != "" {
		ups = append(ups, searchattr.CanaryRevision.ValueSet(r.st.Revision))
	}
	if len(ups) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(r.ctx, ups...); err != nil {
		// Only an unregistered attribute fails here: visibility suffers, the rollout must not.
		r.warn("Upsert search attributes of "+r.name()+" failed: "+err.Error(), "search attributes")
		return
	}
	r.saPhase, r.saWeight, r.saRevision = r.st.Phase, r.st.CanaryWeight, r.st.Revision
}

// decide logs a decision, records it as the status message and sends it as an event to the event webhooks and,
// with alert, to the alerts.
func (r *rollout) decide(t activities.EventType, sev v1beta1.AlertSeverity, alert bool, msg, reason string, checks ...activities.CheckResult) {
	switch sev {
	case v1beta1.SeverityError:
		r.log.Error(msg, r.keyvals(reason)...)
	case v1beta1.SeverityWarn:
		r.log.Warn(msg, r.keyvals(reason)...)
	default:
		r.log.Info(msg, r.keyvals(reason)...)
	}
	r.st.Message = msg
	r.emit(r.event(t, sev, msg, checks), alert)
}

func (r *rollout) event(t activities.EventType, sev v1beta1.AlertSeverity, msg string, checks []activities.CheckResult) activities.Event {
	return activities.Event{
		Type: t, Severity: sev, Message: msg, Canary: r.ref, Revision: r.st.Revision, Phase: string(r.st.Phase),
		Weight: r.st.CanaryWeight, FailedChecks: r.st.FailedChecks, Checks: checks, Timestamp: workflow.Now(r.ctx),
	}
}

// emit sends an event to the event webhooks and the alerts. Delivery failures are logged, never acted on; with
// no alerts and no event webhooks no activity runs, to keep history small.
func (r *rollout) emit(ev activities.Event, alert bool) {
	for _, h := range r.hooks(v1beta1.EventHook) {
		// Flagger's event payload (eventType Normal or Warning), over the hook's own metadata.
		payload := activities.EventWebhookPayload(ev)
		md := h.MetadataMap()
		for k, v := range payload.Metadata {
			md[k] = v
		}
		payload.Metadata = md
		in := activities.WebhookInput{Hook: h, Payload: payload}
		var res activities.WebhookResult
		if err := r.exec(webhookOptions(h), activities.ActivityCallWebhook, in, &res); err != nil {
			r.log.Warn("Event webhook "+h.Name+" failed: "+err.Error(), r.keyvals("event webhook")...)
		}
	}
	if !alert || len(r.a.Alerts) == 0 {
		return
	}
	in := activities.AlertInput{Event: ev, Alerts: r.a.Alerts, Providers: r.in.AlertProviders}
	var res activities.AlertResult
	if err := r.exec(alertOptions(), activities.ActivitySendAlerts, in, &res); err != nil {
		r.log.Warn("Alerts failed: "+err.Error(), r.keyvals("alert")...)
	}
}

func (r *rollout) info(msg, reason string) {
	r.log.Info(msg, r.keyvals(reason)...)
	r.st.Message = msg
}

func (r *rollout) warn(msg, reason string) {
	r.log.Warn(msg, r.keyvals(reason)...)
	r.st.Message = msg
}

func (r *rollout) keyvals(reason string) []any {
	return []any{"canary", r.name(), "revision", r.st.Revision, "phase", string(r.st.Phase), "weight", r.st.CanaryWeight, "reason", reason}
}

func (r *rollout) name() string { return r.c.Name + "." + r.c.Namespace }

func (r *rollout) result(reason string, noNewRun bool) RolloutResult {
	return RolloutResult{
		Phase: r.st.Phase, Revision: r.st.Revision, Promoted: r.st.Phase == PhaseSucceeded,
		NoNewRun: noNewRun, Reason: reason, Status: r.st,
	}
}
