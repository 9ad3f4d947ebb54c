package workflows

import (
	"errors"
	"fmt"

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
	cs *activities.CanaryStatus
)

// CanaryRollout runs one release of a Canary (workflow ID canary/<namespace>/<name>, see v1beta1.WorkflowID).
//
// The first rollout of a canary initialises it (primary, Services, router at 100/0, target scaled to zero) and
// ends Initialized. A later run ends at once with NoNewRun when the target equals what the primary runs;
// otherwise it analyses the new revision (design.md §3) and ends Succeeded (promoted) or Failed (rolled back).
// Cancelling the workflow rolls back like abort and ends the execution as canceled, with the RolloutResult (phase
// Failed) as the cancellation details; once the promotion has finished, a cancel only stops the post-rollout
// hooks and the run ends Succeeded. Terminating it stops it without cleanup.
//
// History stays bounded: past historyLimit events, or when the server suggests it, a run continues as new (between
// steps) with its Status in the input.
//
// The input and the result are pointers, for the worker's memory; their payloads are the same JSON as values'.
// A worker keeps the coroutine of every rollout it caches, parked where the run waits (an interval, a readiness
// look, the admission queue), with the frames of every call down to there on its stack. The runtime halves a
// parked coroutine's stack only while less than a quarter of it is used, so a few KiB of frames decide whether a
// rollout holds 16 or 32 KiB of stack (BenchmarkCachedRolloutMemory in worker/). Values took a copy in the frame
// of each caller down to the wait, and the SDK calls this function by reflection with a frame on the heap that
// holds its arguments and results as long as the run is cached (near 1.5 KiB with values). Nothing of this changes
// what the workflow does or its commands: recorded histories replay as before.
func CanaryRollout(ctx workflow.Context, in *RolloutInput) (*RolloutResult, error) {
	if in == nil { // started by hand with no input, or "null"
		return nil, temporal.NewNonRetryableApplicationError("CanaryRollout has no input: it needs a RolloutInput "+
			`with the Canary to roll out ({"canary": {...}}); start it with starter, or give the temporal CLI --input`,
			"NoInput", nil)
	}
	r := newRollout(ctx, in)
	if err := r.setup(); err != nil {
		return nil, err
	}
	res, err := r.run()
	if err != nil && (errors.Is(err, errCanceled) || ctx.Err() != nil) {
		res, err := r.canceled()
		r.flushCanaryStatus()
		return res, err
	}
	r.flushCanaryStatus()
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
	return res, continueAsNew(ctx, in, nil)
}

// continueAsNew is the error that ends this run and starts the next with in's Canary, templates and alert
// providers, carrying st when not nil (the same release, continued) or none (a new release). Apart from its
// callers, so that the input it builds takes no room in their frames while they wait.
//
//go:noinline
func continueAsNew(ctx workflow.Context, in *RolloutInput, st *Status) error {
	return workflow.NewContinueAsNewError(ctx, WorkflowName, RolloutInput{
		Canary: in.Canary, Templates: in.Templates, AlertProviders: in.AlertProviders, Status: st,
		Defaulted: in.Defaulted, WriteStatus: in.WriteStatus,
	})
}

// errCanceled unwinds the rollout when the workflow is cancelled; CanaryRollout then cleans up.
var errCanceled = errors.New("workflow canceled")

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

	// resumed is true when this run continues a previous one (Status carried by continue-as-new).
	resumed bool
	// baseline is true from versionBaseline on: every change up to it is taken without asking its version (at).
	baseline bool
	// lean is true from versionLeanHistory on: short Kubernetes calls are local activities, a step's checks one
	// activity.
	lean bool
	// listening is true from versionSignalListeners on: listener goroutines apply the signals as they arrive.
	listening bool
	// readyQueue is the task queue of the worker's readiness waits (AwaitReady), as the run's last revision read
	// named it; "" polls readiness on workflow timers.
	readyQueue string
	// cadence is 1 from versionStepCadence on (steps keep the interval's cadence), -1 before it, 0 until asked
	// (stepCadence).
	cadence int
	// localChecks is 1 from versionLocalChecks on (a step's metric checks without webhooks are a local
	// activity), -1 before it, 0 until asked (checksLocally).
	localChecks int
	// primaryWritten is set when the promotion may have given the primary the canary's template: a rollback
	// from then on must put the primary's previous revision back first.
	primaryWritten bool
	// last search attribute values upserted, to upsert only changes.
	saPhase    Phase
	saWeight   int
	saRevision string
	// Decisions not yet stated in history (say), and the one stated ahead of its command (sayFirst).
	unsaid     []string
	unsaidMore int
	saidAhead  string
	// The Canary status last written to the cluster (in.WriteStatus), to write only changes.
	written *activities.CanaryStatusInput
}

func newRollout(ctx workflow.Context, in *RolloutInput) *rollout {
	r := &rollout{ctx: ctx, in: *in, log: workflow.GetLogger(ctx), saWeight: -1}
	if !in.Defaulted {
		// An input written by hand, or by a starter older than the flag: default it here, once, so that every
		// activity gets an explicit spec. The inputs of the starter are defaulted when loaded.
		r.in = withDefaults(r.in)
	}
	in = &r.in
	r.c = in.Canary
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

// withDefaults returns in with Flagger's defaults applied to the Canary, its MetricTemplates and AlertProviders
// (copies: the caller's slices are not changed), and Defaulted set.
func withDefaults(in RolloutInput) RolloutInput {
	in.Canary.SetDefaults()
	in.Templates = append([]v1beta1.MetricTemplate(nil), in.Templates...)
	for i := range in.Templates {
		in.Templates[i].SetDefaults()
	}
	in.AlertProviders = append([]v1beta1.AlertProvider(nil), in.AlertProviders...)
	for i := range in.AlertProviders {
		in.AlertProviders[i].SetDefaults()
	}
	in.Defaulted = true
	return in
}

func (r *rollout) setup() error {
	r.approveCh = workflow.GetSignalChannel(r.ctx, SignalApprove)
	r.abortCh = workflow.GetSignalChannel(r.ctx, SignalAbort)
	r.pauseCh = workflow.GetSignalChannel(r.ctx, SignalPause)
	r.resumeCh = workflow.GetSignalChannel(r.ctx, SignalResume)
	r.promoteCh = workflow.GetSignalChannel(r.ctx, SignalPromote)
	r.revisionCh = workflow.GetSignalChannel(r.ctx, SignalRevision)
	r.wake = workflow.NewBufferedChannel(r.ctx, 1)
	r.baseline = workflow.GetVersion(r.ctx, versionBaseline, workflow.DefaultVersion, 1) != workflow.DefaultVersion
	r.lean = r.at(versionLeanHistory)
	if r.at(versionSignalListeners) {
		r.listen()
	}
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
func (r *rollout) run() (*RolloutResult, error) {
	if r.resumed {
		r.info(fmt.Sprintf("Continuing rollout of %s at %s (run %d)", r.name(), r.st.Phase, r.st.Runs), "continued as new")
		if r.c.IsStatefulSet() {
			workflow.GetVersion(r.ctx, versionStatefulSet, workflow.DefaultVersion, 1)
		}
		return r.release()
	}
	if r.c.Spec.Suspend {
		r.st.Message = "Canary " + r.name() + " is suspended: no rollout started"
		r.info(r.st.Message, "suspended")
		return &RolloutResult{Suspended: true, Reason: r.st.Message, Status: r.st}, nil
	}
	rev, err := r.detect()
	if err != nil {
		return nil, err
	}
	r.st.Revision, r.st.PrimaryRevision = rev.TargetRevision, rev.PrimaryRevision
	switch {
	case !rev.PrimaryExists:
		if err := r.admit(rev, true); err != nil {
			return nil, err
		}
		if r.abort != nil {
			return r.abortedInQueue()
		}
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
	if err := r.admit(rev, false); err != nil {
		return nil, err
	}
	return r.release()
}

// initialise sets up a canary's first rollout: primary, Services, router at 100/0, target scaled to zero.
func (r *rollout) initialise() (*RolloutResult, error) {
	if r.c.IsStatefulSet() {
		return r.initialiseStatefulSet()
	}
	r.setPhase(PhaseInitializing)
	r.info("Initializing "+r.name(), "first rollout: no primary")
	var res activities.ActionResult
	if err := r.exec(initOptions(), wl.InitializeWorkloads, r.workloadIn(), &res); err != nil {
		return r.failInit(err)
	}
	if err := r.exec(initOptions(), rt.ReconcileRouter, r.routerIn(), &res); err != nil {
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
	if err := r.exec(initOptions(), wl.ScaleCanary, r.scaleIn(false), &res); err != nil {
		return r.failInit(err)
	}
	r.setPhase(PhaseInitialized)
	r.setCondition(ConditionTrue, "Initialized", "Deployment initialization completed.")
	r.decide(activities.EventInitialized, v1beta1.SeverityInfo, true, "Initialization done! "+r.name(), "initialized")
	return r.result("initialized", false), nil
}

// abortedInQueue ends a first rollout aborted while it waited for its turn in the admission queue: nothing was
// created, so there is nothing to undo, and the next run initialises.
func (r *rollout) abortedInQueue() (*RolloutResult, error) {
	r.setPhase(PhaseFailed)
	msg := fmt.Sprintf("Initialization of %s aborted by %s before its turn: %s (nothing was created)", r.name(), r.abort.By, r.abort.Reason)
	r.setCondition(ConditionFalse, "Failed", msg)
	r.decide(activities.EventRolledBack, v1beta1.SeverityWarn, true, msg, "aborted in the admission queue")
	return r.result(msg, false), nil
}

// failInit ends a failed initialisation and undoes what it made (router objects, primary, Services), so that the
// next run finds no half-made canary and initialises again: a primary left behind would make it report "no new
// run" on objects that never served. (Runs recorded before versionUndoInit left them.)
func (r *rollout) failInit(err error) (*RolloutResult, error) {
	if errors.Is(err, errCanceled) || r.ctx.Err() != nil {
		return nil, errCanceled
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

// undoInit removes what an initialisation made: the router's objects (a provider without a router made none),
// then the primary, its autoscaler and Services, with the target serving as before.
func (r *rollout) undoInit() error {
	if r.c.IsStatefulSet() {
		return nil // its initialisation only records the stable template and the partition: nothing half-made
	}
	if !r.at(versionUndoInit) {
		return nil
	}
	r.warn("Undoing the initialization of "+r.name(), "initialization failed")
	var res activities.ActionResult
	err := r.exec(cleanupOptions(), rt.FinalizeRouter, r.routerIn(), &res)
	var ae *temporal.ApplicationError
	if err != nil && !(errors.As(err, &ae) && ae.Type() == activities.ErrTypeUnsupportedProvider) {
		return err
	}
	return r.exec(cleanupOptions(), wl.FinalizeWorkloads, r.workloadIn(), &res)
}

// release analyses the revision in r.st.Revision until it is promoted or rolled back, restarting on new revisions.
func (r *rollout) release() (*RolloutResult, error) {
	for {
		out, err := r.analyse()
		if err != nil {
			return r.fail(err)
		}
		switch out := out.(type) {
		case toPromote:
			return r.promoteNow()
		case toRollback:
			return r.rollback(out.reason, out.event)
		case toRestart:
			if err := r.restart(out.rev); err != nil {
				return r.fail(err)
			}
		case toRevert:
			return r.revert(out.rev)
		case toContinueAsNew:
			r.info(fmt.Sprintf("History of %s has %d events: continuing as new", r.name(),
				workflow.GetInfo(r.ctx).GetCurrentHistoryLength()), "history limit")
			return nil, continueAsNew(r.ctx, &r.in, &r.st)
		}
	}
}

// detect reads the target's and the primary's revisions.
func (r *rollout) detect() (activities.RevisionResult, error) {
	if r.c.IsStatefulSet() {
		return r.detectStatefulSet()
	}
	var rev activities.RevisionResult
	err := r.exec(initOptions(), wl.DetectRevision, r.workloadIn(), &rev)
	if err == nil {
		r.readyQueue = rev.ReadinessQueue
	}
	return rev, err
}

// setRoutes writes a split on the router and records it in the status and search attributes.
func (r *rollout) setRoutes(opts workflow.ActivityOptions, primary, canary int, mirrored bool) error {
	var res activities.RoutesResult
	if err := r.kube(opts, rt.SetRoutes, r.routesIn(primary, canary, mirrored), &res); err != nil {
		return err
	}
	r.st.PrimaryWeight, r.st.CanaryWeight, r.st.Mirrored = primary, canary, mirrored
	r.syncSearchAttributes()
	return nil
}

// exec runs one activity and waits for it. A cancellation becomes errCanceled.
func (r *rollout) exec(opts workflow.ActivityOptions, fn any, in any, out any) error {
	opts.Summary = r.summary()
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(r.ctx, opts), fn, in).Get(r.ctx, out)
	if err != nil && (temporal.IsCanceledError(err) || r.ctx.Err() != nil) {
		return errCanceled
	}
	return err
}

// kube runs a short Kubernetes call. From versionLeanHistory on, a call whose retries are bounded
// (opts.ScheduleToCloseTimeout) is a local activity: the worker that runs the workflow task runs it, and its
// result is one marker in that task, with no activity events and no workflow task of its own. It keeps its
// timeouts and retries (retries past the local retry threshold wait on a workflow timer), and like any activity
// it may run again after a crash, which the idempotent Kubernetes calls allow. A cleanup call that retries until
// it succeeds (cleanupOptions) stays an activity.
func (r *rollout) kube(opts workflow.ActivityOptions, fn any, in any, out any) error {
	if !r.lean || opts.ScheduleToCloseTimeout == 0 {
		return r.exec(opts, fn, in, out)
	}
	return r.local(opts, fn, in, out)
}

// local runs one local activity with an activity's timeouts and retries, and waits for it. A cancellation
// becomes errCanceled.
func (r *rollout) local(opts workflow.ActivityOptions, fn any, in any, out any) error {
	lctx := workflow.WithLocalActivityOptions(r.ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: opts.ScheduleToCloseTimeout,
		StartToCloseTimeout:    opts.StartToCloseTimeout,
		RetryPolicy:            opts.RetryPolicy,
		Summary:                r.summary(),
	})
	err := workflow.ExecuteLocalActivity(lctx, fn, in).Get(r.ctx, out)
	if err != nil && (temporal.IsCanceledError(err) || r.ctx.Err() != nil) {
		return errCanceled
	}
	return err
}

// The inputs of the activities that carry the Canary (near a KiB each), built and boxed apart from their
// callers: a frame that builds one keeps room for it while the call it makes waits, and a rollout's coroutine
// waits in such frames (see canaryRollout on why their size matters).

//go:noinline
func (r *rollout) workloadIn() any { return activities.WorkloadInput{Canary: r.c} }

//go:noinline
func (r *rollout) routerIn() any { return activities.RouterInput{Canary: r.c} }

//go:noinline
func (r *rollout) scaleIn(up bool) any { return activities.ScaleInput{Canary: r.c, Up: up} }

//go:noinline
func (r *rollout) readyIn(w activities.Workload) any {
	return activities.ReadyInput{Canary: r.c, Workload: w}
}

//go:noinline
func (r *rollout) revertIn(revision string) any {
	return activities.RevertInput{Canary: r.c, Revision: revision}
}

//go:noinline
func (r *rollout) routesIn(primary, canary int, mirrored bool) any {
	return activities.RoutesInput{Canary: r.c, PrimaryWeight: primary, CanaryWeight: canary, Mirrored: mirrored}
}

func (r *rollout) name() string { return r.c.Name + "." + r.c.Namespace }

func (r *rollout) result(reason string, noNewRun bool) *RolloutResult {
	return &RolloutResult{
		Phase: r.st.Phase, Revision: r.st.Revision, Promoted: r.st.Phase == PhaseSucceeded,
		NoNewRun: noNewRun, Reason: reason, Status: r.st,
	}
}
