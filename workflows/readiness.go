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
		if err := r.wait(min(poll, deadline-elapsed), false, stop); err != nil {
			return false, "", err
		}
		if stop() {
			return false, "", nil
		}
		poll = min(2*poll, readyPollMax)
	}
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
