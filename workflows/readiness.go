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

// waitReady polls the readiness of a workload on a backing-off timer until it is ready, the progress deadline
// passes (ready false, with the reason) or stop says a signal needs handling (ready false, reason "").
func (r *rollout) waitReady(w activities.Workload, stop func() bool) (bool, string, error) {
	since := workflow.Now(r.ctx)
	deadline := r.c.ProgressDeadline()
	poll := readyPollFirst
	watch := r.readyQueue != ""
	for {
		var res activities.ReadyResult
		err := r.kube(readyOptions(), wl.CheckReady, r.readyIn(w), &res)
		if isDeadline(err) {
			return false, deadlineReason(w, &r.c, err.Error()), nil
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
			return false, deadlineReason(w, &r.c, res.Reason), nil
		}
		if watch {
			// One wait on the worker's watch for the rest of the deadline; if it fails, polls take over.
			watch = false
			res, err := r.awaitReady(w, since.Add(deadline), stop)
			switch {
			case errors.Is(err, errCanceled):
				return false, "", err
			case stop():
				return false, "", nil
			case isDeadline(err):
				return false, deadlineReason(w, &r.c, err.Error()), nil
			case err == nil && res.Ready:
				return true, "", nil
			case err == nil && workflow.Now(r.ctx).Sub(since) >= deadline:
				return false, deadlineReason(w, &r.c, res.Reason), nil
			case err != nil:
				r.warn(fmt.Sprintf("Waiting for %s of %s on task queue %s failed: %s; polling its readiness instead",
					w, r.name(), r.readyQueue, err), "readiness watch")
			}
			continue
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

// awaitReady waits for w on the worker's readiness queue (AwaitReady) until it is ready, until is reached, or stop
// says a signal needs handling (then it cancels the wait and returns no result). Not ready at until is a result.
func (r *rollout) awaitReady(w activities.Workload, until time.Time, stop func() bool) (activities.ReadyResult, error) {
	var res activities.ReadyResult
	r.flushCanaryStatus() // the state it waits in is what the cluster shows meanwhile
	actx, cancel := workflow.WithCancel(r.ctx)
	defer cancel()
	opts := awaitReadyOptions(r.readyQueue, until.Sub(workflow.Now(r.ctx)))
	opts.Summary = r.summary()
	f := workflow.ExecuteActivity(workflow.WithActivityOptions(actx, opts), wl.AwaitReady,
		activities.AwaitReadyInput{Canary: r.c, Workload: w, Until: until})
	if err := workflow.Await(r.ctx, func() bool { return f.IsReady() || stop() }); err != nil {
		return res, errCanceled
	}
	if !f.IsReady() {
		return res, nil // stop holds: the caller handles the signal; the deferred cancel ends the wait
	}
	err := f.Get(r.ctx, &res)
	if err != nil && (temporal.IsCanceledError(err) || r.ctx.Err() != nil) {
		return res, errCanceled
	}
	return res, err
}

func deadlineReason(w activities.Workload, c *v1beta1.Canary, why string) string {
	if c.IsStatefulSet() {
		return fmt.Sprintf("StatefulSet %s.%s not ready: %s", c.Spec.TargetRef.Name, c.Namespace, why)
	}
	name := c.Spec.TargetRef.Name
	if w == activities.WorkloadPrimary {
		name += "-primary"
	}
	return fmt.Sprintf("%s deployment %s.%s not ready: %s", w, name, c.Namespace, why)
}

// isDeadline recognises the ProgressDeadlineExceeded failure of CheckReady in the histories of rollouts whose
// CheckReady judged the deadline; today only the workflow does.
func isDeadline(err error) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.Type() == activities.ErrTypeProgressDeadlineExceeded
}

// checkCanaryReady observes the canary once during the analysis; r.st.NotReadySince runs the deadline clock.
func (r *rollout) checkCanaryReady() (bool, string, error) {
	if r.c.IsStatefulSet() {
		return r.checkStatefulSetReady()
	}
	var res activities.ReadyResult
	err := r.kube(readyOptions(), wl.CheckReady, r.readyIn(activities.WorkloadCanary), &res)
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
