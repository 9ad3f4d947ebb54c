package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// FinalizeWorkflowName is the registered type of the workflow that finalises a deleted Canary.
const FinalizeWorkflowName = "CanaryFinalize"

// PhaseTerminated ends a Canary's finalisation (Flagger's phase of the same name): what spec.revertOnDeletion asks
// for is done, and canaryflow no longer manages the target.
const PhaseTerminated Phase = "Terminated"

// FinalizeWorkflowID is the ID of the finalisation of the canary namespace/name. It is derived, not random, so
// that whoever finalises (starter delete today, a Kubernetes finalizer in GitOps mode) reaches the same execution:
// starting it again while one runs attaches to that one, and a retry after a failed one starts afresh. It is not
// the rollout's ID, so that a rollout's history, its failed-revision rule and `starter status` only ever see
// CanaryRollout runs.
func FinalizeWorkflowID(namespace, name string) string {
	return "finalize/" + namespace + "/" + name
}

// FinalizeInput is the Canary being deleted (defaulted, as a rollout's input), and who asked and why.
type FinalizeInput struct {
	Canary v1beta1.Canary `json:"canary"`
	By     string         `json:"by,omitempty"`
	Reason string         `json:"reason,omitempty"`
}

// FinalizeStatus is what the status query of a finalisation answers, and its result.
type FinalizeStatus struct {
	// Phase is Terminating until every step is done, then Terminated.
	Phase Phase `json:"phase"`
	// Reverted says this finalisation restores the objects (spec.revertOnDeletion); false leaves them as they are.
	Reverted bool `json:"reverted"`
	// Message says what the last step did, or what it waits for.
	Message string `json:"message,omitempty"`
	// Steps are the summaries of the steps done, in order.
	Steps              []string  `json:"steps,omitempty"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// CanaryFinalize finalises a deleted Canary, on the worker's task queue, as Flagger's finalizer does: phase
// Terminating, then, with spec.revertOnDeletion, the target scaled back up to the primary's replicas (or its
// autoscaler's), a wait until it is ready, the router's objects pointed back at the apex Service or removed (per
// provider), the apex Service pointed at the target's pods and the primary workload, its autoscaler, config copies
// and the primary and canary Services deleted; then phase Terminated.
//
// Unlike Flagger, the router is reverted before the apex Service is switched: until the last step the apex Service
// still selects the primary's pods, so traffic is never sent to target pods that are not ready yet (Flagger's
// order drops requests when the target is slow to start).
//
// Without spec.revertOnDeletion nothing is changed, as Flagger's finalizer leaves what it does not own: the
// primary keeps serving. (Flagger's own objects carry owner references to the Canary, so Kubernetes' garbage
// collector deletes them after the Canary; canaryflow's carry none outside GitOps mode, so nothing is collected.)
//
// The caller makes sure no rollout of the canary is open (starter delete aborts it with --force first); the
// workflow does no I/O of its own to check it. A step that fails permanently fails the workflow with the step named;
// the primary keeps serving, and running the finalisation again resumes from the top, every step being idempotent.
func CanaryFinalize(ctx workflow.Context, in FinalizeInput) (FinalizeStatus, error) {
	f := &finalizer{ctx: ctx, c: in.Canary}
	f.st.Reverted = in.Canary.Spec.RevertOnDeletion
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (FinalizeStatus, error) { return f.st, nil }); err != nil {
		return f.st, fmt.Errorf("register the status query of %s: %w", f.name(), err)
	}
	// Only an unregistered attribute fails here: visibility suffers, the finalisation must not.
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		searchattr.CanaryName.ValueSet(in.Canary.Name),
		searchattr.CanaryNamespace.ValueSet(in.Canary.Namespace),
		searchattr.CanaryProvider.ValueSet(in.Canary.Spec.Provider),
	)
	by := ""
	if in.By != "" {
		by = " (asked by " + in.By + ")"
	}
	f.setPhase(PhaseTerminating, "Terminating canary "+f.name()+by)
	if !in.Canary.Spec.RevertOnDeletion {
		f.setPhase(PhaseTerminated, "spec.revertOnDeletion is false: "+f.name()+"'s objects are left as they are, the primary keeps serving")
		return f.st, nil
	}
	if err := f.revert(); err != nil {
		f.st.Message = err.Error()
		workflow.GetLogger(ctx).Error("Finalisation failed", "canary", f.name(), "error", err)
		return f.st, err
	}
	f.setPhase(PhaseTerminated, "Finalization complete for "+f.name()+": the target serves without canaryflow")
	return f.st, nil
}

// finalizer is one finalisation: the Canary and the status it reports.
type finalizer struct {
	ctx workflow.Context
	c   v1beta1.Canary
	st  FinalizeStatus
}

func (f *finalizer) name() string { return f.c.Name + "." + f.c.Namespace }

func (f *finalizer) setPhase(p Phase, msg string) {
	f.st.Phase, f.st.Message, f.st.LastTransitionTime = p, msg, workflow.Now(f.ctx)
	workflow.GetLogger(f.ctx).Info(msg, "canary", f.name(), "phase", p)
	_ = workflow.UpsertTypedSearchAttributes(f.ctx, searchattr.CanaryPhase.ValueSet(string(p)))
}

// step runs one activity and records its summary.
func (f *finalizer) step(what string, opts workflow.ActivityOptions, act, in any) error {
	var res activities.ActionResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(f.ctx, opts), act, in).Get(f.ctx, &res); err != nil {
		return fmt.Errorf("%s of %s: %w", what, f.name(), err)
	}
	s := res.Summary
	if s == "" {
		s = what
	}
	f.st.Steps = append(f.st.Steps, s)
	f.st.Message = s
	return nil
}

// revert restores the objects as they were before the Canary, target first.
func (f *finalizer) revert() error {
	if f.c.IsStatefulSet() {
		// Nothing was copied, scaled or routed: the StatefulSet only loses its stable record and its partition.
		return f.step("release the StatefulSet", cleanupOptions(), sts.ReleaseStatefulSet, activities.WorkloadInput{Canary: f.c})
	}
	if err := f.step("scale the target up", cleanupOptions(), wl.ScaleCanary, activities.ScaleInput{Canary: f.c, Up: true}); err != nil {
		return err
	}
	if err := f.awaitTarget(); err != nil {
		return err
	}
	err := f.step("revert the router", cleanupOptions(), rt.FinalizeRouter, activities.RouterInput{Canary: f.c})
	var ae *temporal.ApplicationError
	if err != nil && !(errors.As(err, &ae) && ae.Type() == activities.ErrTypeUnsupportedProvider) {
		return err
	}
	return f.step("revert the workloads and Services", cleanupOptions(), wl.FinalizeWorkloads, activities.WorkloadInput{Canary: f.c})
}

// awaitTarget polls the target's readiness on a backing-off workflow timer, for at most the progress deadline.
func (f *finalizer) awaitTarget() error {
	deadline := workflow.Now(f.ctx).Add(f.c.ProgressDeadline())
	wait := readyPollFirst
	for {
		var res activities.ReadyResult
		ctx := workflow.WithActivityOptions(f.ctx, readyOptions())
		if err := workflow.ExecuteActivity(ctx, wl.CheckReady, activities.ReadyInput{Canary: f.c, Workload: activities.WorkloadCanary}).Get(f.ctx, &res); err != nil {
			return fmt.Errorf("check that target %s is ready: %w", f.c.Spec.TargetRef.Name, err)
		}
		if res.Ready {
			f.st.Steps = append(f.st.Steps, "target "+f.c.Spec.TargetRef.Name+" is ready")
			return nil
		}
		f.st.Message = "waiting for target " + f.c.Spec.TargetRef.Name + " to be ready: " + res.Reason
		if !workflow.Now(f.ctx).Add(wait).Before(deadline) {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
				"target %s of %s is not ready after the progress deadline (%s): %s; nothing was reverted past scaling it up, "+
					"the primary still serves: make the target ready and finalise again", f.c.Spec.TargetRef.Name, f.name(),
				f.c.ProgressDeadline(), res.Reason), activities.ErrTypeProgressDeadlineExceeded, nil)
		}
		if err := workflow.Sleep(f.ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, readyPollMax)
	}
}
