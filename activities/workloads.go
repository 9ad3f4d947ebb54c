package activities

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// WorkloadClient is what the workload activities need from Kubernetes. It is implemented in providers/workload
// against a real API server; its methods take plain types only, so the implementation imports no Temporal package.
// Every method is idempotent and converges to an absolute state (never "add one", always "make it so"), because an
// activity may run it again after a timeout or a worker crash. Errors are wrapped with the object they concern; an
// error that retrying cannot fix says so with a Permanent() bool method answering true (a Kubernetes NotFound is
// treated as permanent too).
type WorkloadClient interface {
	// Revisions returns the revision of the target (the checksum of its pod template and of the ConfigMaps and
	// Secrets it tracks) and the revision the primary runs, computed the same way so that a primary cloned from
	// the target has the same revision as the target. primary is "" when the primary workload does not exist yet
	// (the first rollout of this canary). It changes nothing.
	Revisions(ctx context.Context, c *v1beta1.Canary) (target, primary string, err error)

	// Initialize makes the objects a rollout needs exist and match the spec: the primary workload
	// "<target>-primary" cloned from the target (pod template, tracked ConfigMaps/Secrets copied as
	// "<name>-primary", labels rewritten, replicas from the target or its autoscaler), the primary's autoscaler
	// when spec.autoscalerRef is set, and the ClusterIP Services apex, "<apex>-primary" and "<apex>-canary"
	// (spec.service port, selectors on the primary and the target pods). When the primary exists already it
	// leaves its pod template alone (only Promote changes it). It does not scale the target.
	Initialize(ctx context.Context, c *v1beta1.Canary) error

	// ScaleFromZero scales the target up to serve as the canary, with Flagger's replica rule: the replicas the
	// target declares, else the primary's, else its autoscaler's minReplicas, else 1. Already scaled up is success.
	ScaleFromZero(ctx context.Context, c *v1beta1.Canary) error

	// ScaleToZero scales the target (the canary) to zero replicas and, when it has an autoscaler, sets the
	// autoscaler so that it does not scale it back up. Already at zero is success.
	ScaleToZero(ctx context.Context, c *v1beta1.Canary) error

	// IsReady reports whether the canary (the target; primary false) or the primary (primary true) has finished
	// rolling out: updated, available replicas at least spec.analysis.{canary,primary}ReadyThreshold percent (default
	// 100) of the desired replicas. Not ready is not an error: return ready false and a reason a user can read
	// ("waiting for rollout to finish: 1 of 2 updated replicas are available"). An error is only for a failed
	// read. It changes nothing.
	IsReady(ctx context.Context, c *v1beta1.Canary, primary bool) (ready bool, reason string, err error)

	// Promote copies the target's pod template (and the tracked ConfigMaps/Secrets, as their "-primary" copies)
	// onto the primary, keeping the primary's own labels, selector and replica count; Kubernetes then rolls the
	// primary out. Promoting twice is harmless.
	Promote(ctx context.Context, c *v1beta1.Canary) error

	// RevertPromotion puts back what the primary ran at revision before the last Promote: its pod template and
	// its config copies (Promote keeps a record of them before it writes). A primary already at revision is left
	// alone; a record of another revision, or none, is a permanent error naming what to restore by hand.
	RevertPromotion(ctx context.Context, c *v1beta1.Canary, revision string) error

	// Finalize undoes what Initialize did when the Canary is deleted with spec.revertOnDeletion: it scales the
	// target back to the primary's replicas and removes the primary workload, its autoscaler and the generated
	// Services (the apex Service is pointed back at the target's pods). Nothing left to undo is success.
	Finalize(ctx context.Context, c *v1beta1.Canary) error
}

// Workloads holds the activities acting on the target and primary workloads.
type Workloads struct {
	Kube WorkloadClient
	// Capabilities is what this worker's build can run; DetectRevision, the first activity of every run, refuses
	// a Canary it cannot (a Canary started without starter validate, or a worker older than the starter) before
	// anything is written. Nil skips the check.
	Capabilities *v1beta1.Capabilities
	// Namespaces, when not empty, are the only namespaces this worker runs Canaries in (its namespaced mode, where
	// its Roles grant nothing elsewhere): DetectRevision refuses a Canary of any other namespace before any read
	// or write, naming the namespace, instead of failing later on a Forbidden halfway through a rollout.
	Namespaces []string
	// AdmissionQueue, when not empty, is the task queue of this worker's Admission (--release-rate): every release
	// DetectRevision finds, and every first rollout (initialisation), is admitted there before it starts.
	AdmissionQueue string
	// ReadinessQueue, when not empty, is the task queue of this worker's readiness waits (Ready; --watch-readiness):
	// DetectRevision names it, and a rollout that finds a workload not ready at its first look waits for it there
	// in one AwaitReady instead of polling CheckReady on workflow timers.
	ReadinessQueue string
	// Ready waits for readiness on watch events (AwaitReady); nil on a worker that does not serve ReadinessQueue.
	Ready ReadyWaiter
}

// ReadyWaiter waits until a workload is ready (providers/workload.ReadyWatcher).
type ReadyWaiter interface {
	// AwaitReady returns ready true when the canary's target (primary false) or its primary is ready, by
	// WorkloadClient.IsReady's rules; when ctx ends first, ready false and the last reason observed, no error. An
	// error is a failed read, or a workload that does not exist (permanent).
	AwaitReady(ctx context.Context, c *v1beta1.Canary, primary bool) (ready bool, reason string, err error)
}

// Workload names which side of a rollout an activity looks at.
type Workload string

// The two workloads of a canary: the target (serving as the canary) and its primary clone.
const (
	WorkloadCanary  Workload = "canary"
	WorkloadPrimary Workload = "primary"
)

// WorkloadInput names the canary an activity acts on. The whole (defaulted) spec travels because the client needs
// the target, the Services and the thresholds; it holds no secret values.
type WorkloadInput struct {
	Canary v1beta1.Canary `json:"canary"`
}

// ActionResult says in one line what an activity that changes state did, for the history and the logs.
type ActionResult struct {
	Summary string `json:"summary,omitempty"`
}

// RevisionResult compares the target with what the primary runs.
type RevisionResult struct {
	// TargetRevision is the checksum of the target's pod template and tracked configs.
	TargetRevision string `json:"targetRevision"`
	// PrimaryRevision is the same checksum for the primary; empty when there is no primary.
	PrimaryRevision string `json:"primaryRevision,omitempty"`
	// PrimaryExists is false on the first rollout of a canary: it is initialised, not analysed.
	PrimaryExists bool `json:"primaryExists"`
	// Changed is true when the primary exists and runs another revision than the target: a rollout is due.
	Changed bool `json:"changed"`
	// AdmissionQueue, set on a change or a first rollout when the worker admits releases at a rate
	// (Workloads.AdmissionQueue), is the task queue of the Admit the release waits for before its canary is scaled
	// up, or the initialisation before it creates anything. A run replays on what it recorded here, so the wait is
	// in a run's history exactly when its worker asked for one.
	AdmissionQueue string `json:"admissionQueue,omitempty"`
	// ReadinessQueue, set when the worker waits for readiness on watch events (Workloads.ReadinessQueue), is the
	// task queue of the AwaitReady a wait for readiness of this run uses once its first look finds the workload
	// not ready. As with AdmissionQueue, a run replays on what it recorded here.
	ReadinessQueue string `json:"readinessQueue,omitempty"`
}

// Admissible says whether the run this result starts touches the cluster (it initialises a first rollout or
// releases a change), and so waits for admission when the worker names an admission queue.
func (r RevisionResult) Admissible() bool { return r.Changed || !r.PrimaryExists }

// ScaleInput asks to scale the target (the canary) up from zero or down to zero.
type ScaleInput struct {
	Canary v1beta1.Canary `json:"canary"`
	Up     bool           `json:"up"`
}

// ReadyInput asks whether one workload has finished rolling out.
type ReadyInput struct {
	Canary   v1beta1.Canary `json:"canary"`
	Workload Workload       `json:"workload"`
}

// AwaitReadyInput asks to wait until one workload has finished rolling out, at most until Until (the end of the
// progress deadline, on the workflow's clock).
type AwaitReadyInput struct {
	Canary   v1beta1.Canary `json:"canary"`
	Workload Workload       `json:"workload"`
	Until    time.Time      `json:"until"`
}

// awaitHeartbeat is how often AwaitReady heartbeats (the SDK sends at most one per 80% of the heartbeat
// timeout); a worker that dies mid-wait is noticed at the heartbeat timeout and the wait retried elsewhere.
const awaitHeartbeat = 5 * time.Second

// ReadyResult is one readiness observation; not ready yet is a result, not an error.
type ReadyResult struct {
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

func describe(c *v1beta1.Canary) string { return c.Name + "." + c.Namespace }

// DetectRevision reads the target's and the primary's revisions and says whether a rollout is due.
func (w *Workloads) DetectRevision(ctx context.Context, in WorkloadInput) (RevisionResult, error) {
	if err := refuseUnrunnable(w.Capabilities, w.Namespaces, &in.Canary); err != nil {
		return RevisionResult{}, err
	}
	target, primary, err := w.Kube.Revisions(ctx, &in.Canary)
	if err != nil {
		return RevisionResult{}, classify(err, "read revisions of "+describe(&in.Canary))
	}
	r := RevisionResult{TargetRevision: target, PrimaryRevision: primary, PrimaryExists: primary != ""}
	r.Changed = r.PrimaryExists && target != primary
	if r.Admissible() {
		r.AdmissionQueue = w.AdmissionQueue
	}
	r.ReadinessQueue = w.ReadinessQueue
	return r, nil
}

// refuseUnrunnable is the check of the first activity of every run: a Canary of a namespace this worker does not
// serve, or one its build cannot run, is refused before anything is read or written.
func refuseUnrunnable(caps *v1beta1.Capabilities, namespaces []string, c *v1beta1.Canary) error {
	if ns := c.Namespace; len(namespaces) > 0 && !slices.Contains(namespaces, ns) {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"this worker runs Canaries only in namespaces %s (CANARYFLOW_NAMESPACES), not %s in namespace %q; nothing was changed: "+
				"run it on a worker that serves %q (its own task queue), or add %q to this worker's namespaces and grant its Role "+
				"there (deploy/namespaced/rbac, Helm rbac.namespaces)",
			strings.Join(namespaces, ", "), describe(c), ns, ns, ns), ErrTypeInvalidSpec, nil)
	}
	if caps != nil {
		if errs := c.Validate(caps, v1beta1.RefCheck{}); len(errs) > 0 {
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("this worker cannot run %s, nothing was changed: %v", describe(c), errs), ErrTypeInvalidSpec, errs)
		}
	}
	return nil
}

// InitializeWorkloads creates or updates the primary workload and the Services (see WorkloadClient.Initialize).
func (w *Workloads) InitializeWorkloads(ctx context.Context, in WorkloadInput) (ActionResult, error) {
	if err := w.Kube.Initialize(ctx, &in.Canary); err != nil {
		return ActionResult{}, classify(err, "initialise "+describe(&in.Canary))
	}
	return ActionResult{Summary: "initialised primary and services of " + describe(&in.Canary)}, nil
}

// ScaleCanary scales the target up from zero (Up) or down to zero.
func (w *Workloads) ScaleCanary(ctx context.Context, in ScaleInput) (ActionResult, error) {
	name := in.Canary.Spec.TargetRef.Name + "." + in.Canary.Namespace
	if in.Up {
		if err := w.Kube.ScaleFromZero(ctx, &in.Canary); err != nil {
			return ActionResult{}, classify(err, "scale up "+name)
		}
		return ActionResult{Summary: "scaled up " + name}, nil
	}
	if err := w.Kube.ScaleToZero(ctx, &in.Canary); err != nil {
		return ActionResult{}, classify(err, "scale down "+name)
	}
	return ActionResult{Summary: "scaled " + name + " to zero"}, nil
}

// CheckReady observes once whether the canary or the primary is ready. It returns quickly: the workflow looks once
// and, when the workload is not ready, waits in AwaitReady (a worker with a readiness queue) or polls CheckReady
// on a workflow timer. It only observes: how long a workload may stay not ready (the progress deadline) is the
// workflow's to judge, on the workflow's clock.
func (w *Workloads) CheckReady(ctx context.Context, in ReadyInput) (ReadyResult, error) {
	ready, reason, err := w.Kube.IsReady(ctx, &in.Canary, in.Workload == WorkloadPrimary)
	if err != nil {
		return ReadyResult{}, classify(err, fmt.Sprintf("check %s of %s", in.Workload, describe(&in.Canary)))
	}
	if ready {
		return ReadyResult{Ready: true}, nil
	}
	activity.GetLogger(ctx).Debug("workload not ready", "canary", describe(&in.Canary), "workload", in.Workload, "reason", reason)
	return ReadyResult{Ready: false, Reason: reason}, nil
}

// Promote copies the target's pod template and tracked configs onto the primary.
func (w *Workloads) Promote(ctx context.Context, in WorkloadInput) (ActionResult, error) {
	if err := w.Kube.Promote(ctx, &in.Canary); err != nil {
		return ActionResult{}, classify(err, "promote "+describe(&in.Canary))
	}
	t := in.Canary.Spec.TargetRef.Name
	return ActionResult{Summary: fmt.Sprintf("copied %s.%s template spec to %s-primary.%s", t, in.Canary.Namespace, t, in.Canary.Namespace)}, nil
}

// RevertInput names the revision the primary ran before the promotion being undone.
type RevertInput struct {
	Canary   v1beta1.Canary `json:"canary"`
	Revision string         `json:"revision"`
}

// RevertPromotion puts the primary back on the revision it ran before the promotion (an abort or a rollback
// after the promotion began).
func (w *Workloads) RevertPromotion(ctx context.Context, in RevertInput) (ActionResult, error) {
	if err := w.Kube.RevertPromotion(ctx, &in.Canary, in.Revision); err != nil {
		return ActionResult{}, classify(err, "revert the promotion of "+describe(&in.Canary))
	}
	t := in.Canary.Spec.TargetRef.Name
	return ActionResult{Summary: fmt.Sprintf("restored %s-primary.%s to revision %s", t, in.Canary.Namespace, in.Revision)}, nil
}

// FinalizeWorkloads reverts the workloads and Services for a deleted Canary (spec.revertOnDeletion).
func (w *Workloads) FinalizeWorkloads(ctx context.Context, in WorkloadInput) (ActionResult, error) {
	if err := w.Kube.Finalize(ctx, &in.Canary); err != nil {
		return ActionResult{}, classify(err, "finalise "+describe(&in.Canary))
	}
	return ActionResult{Summary: "reverted " + describe(&in.Canary)}, nil
}

// AwaitReady waits until the canary or the primary is ready (Ready, on watch events), heartbeating, and returns
// ready; or, at in.Until or shortly before its own start-to-close deadline, not ready with the last reason seen, for
// the workflow to judge against the progress deadline. One activity and a workflow task in history for the
// whole wait, where polling costs a timer, a workflow task and a look at every poll.
func (w *Workloads) AwaitReady(ctx context.Context, in AwaitReadyInput) (ReadyResult, error) {
	if w.Ready == nil {
		return ReadyResult{}, temporal.NewNonRetryableApplicationError(
			"this worker does not wait for readiness (started without --watch-readiness) yet served its readiness queue",
			ErrTypePermanent, nil)
	}
	until := in.Until
	if d, ok := ctx.Deadline(); ok && (until.IsZero() || d.Add(-awaitHeartbeat).Before(until)) {
		until = d.Add(-awaitHeartbeat) // answer before the server times the attempt out
	}
	wctx, cancel := context.WithDeadline(ctx, until)
	defer cancel()
	defer heartbeat(ctx, awaitHeartbeat)()
	ready, reason, err := w.Ready.AwaitReady(wctx, &in.Canary, in.Workload == WorkloadPrimary)
	if err != nil {
		return ReadyResult{}, classify(err, fmt.Sprintf("wait for %s of %s", in.Workload, describe(&in.Canary)))
	}
	if ctx.Err() != nil {
		return ReadyResult{}, ctx.Err() // cancelled: the workflow stopped waiting
	}
	return ReadyResult{Ready: ready, Reason: reason}, nil
}
