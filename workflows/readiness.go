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
	for {
		var res activities.ReadyResult
		err := r.kube(readyOptions(), wl.CheckReady, activities.ReadyInput{Canary: r.c, Workload: w}, &res)
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
		if r.watchReady {
			waited, ready, err := r.watchReadyFor(w, min(readyWatchFor, deadline-elapsed), stop)
			switch {
			case err != nil:
				return false, "", err
			case ready:
				return true, "", nil
			case stop():
				return false, "", nil
			case waited:
				continue // the wait ran its course: look again (the reason, the deadline), then wait again
			}
			// Answered at once (a worker that cannot watch, a watch refused): the timer as before.
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

// watchReadyFor runs one readiness wait (CheckReady with WatchFor d, an activity the worker completes when a
// watch sees the workload ready) until it completes or stop holds, which cancels it. waited says it took at least
// half of d: a wait that ends sooner without ready (a worker that cannot watch, a failed watch) is no wait, and
// the caller falls back to its timer. A wait that failed (its worker stopped, its watch broke) is not ready.
func (r *rollout) watchReadyFor(w activities.Workload, d time.Duration, stop func() bool) (waited, ready bool, err error) {
	r.flushCanaryStatus() // the state it waits in is what the cluster shows meanwhile
	start := workflow.Now(r.ctx)
	actx, cancel := workflow.WithCancel(r.ctx)
	opts := workflow.ActivityOptions{
		// The worker completes the wait watchMargin before its deadline; queueing counts too.
		StartToCloseTimeout:    d + readyWatchSlack,
		ScheduleToCloseTimeout: d + 2*readyWatchSlack,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1}, // the loop looks again instead
		Summary:                r.summary(),
	}
	fut := workflow.ExecuteActivity(workflow.WithActivityOptions(actx, opts), wl.CheckReady,
		activities.ReadyInput{Canary: r.c, Workload: w, WatchFor: d})
	if err := workflow.Await(r.ctx, func() bool { return fut.IsReady() || stop() }); err != nil {
		cancel()
		return false, false, errCanceled
	}
	if !fut.IsReady() {
		cancel() // a signal to handle: the wait is not wanted any more
		return false, false, nil
	}
	var res activities.ReadyResult
	err = fut.Get(r.ctx, &res)
	return workflow.Now(r.ctx).Sub(start) >= d/2, err == nil && res.Ready, nil
}

func deadlineReason(w activities.Workload, c v1beta1.Canary, why string) string {
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
	err := r.kube(readyOptions(), wl.CheckReady, activities.ReadyInput{Canary: r.c, Workload: activities.WorkloadCanary}, &res)
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
