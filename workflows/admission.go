package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// AtWorkPhases are the phases of a rollout at work: changing Kubernetes objects on its own. A rollout waiting at a
// gate (Waiting, WaitingPromotion) is not counted, so that a release waiting for a person does not hold the others
// back (--max-releases-at-work).
var AtWorkPhases = []Phase{PhaseInitializing, PhaseProgressing, PhasePromoting, PhaseFinalising}

// AtWorkQuery is the visibility query that matches the rollouts of taskQueue at work, by the phase each upserts
// (searchattr.CanaryPhase).
func AtWorkQuery(taskQueue string) string {
	phases := make([]string, len(AtWorkPhases))
	for i, p := range AtWorkPhases {
		phases[i] = "'" + string(p) + "'"
	}
	return fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND TaskQueue = '%s' AND %s IN (%s)",
		WorkflowName, taskQueue, searchattr.CanaryPhase.GetName(), strings.Join(phases, ", "))
}

// adm names the admission activity (registered on the admission queue's worker, --release-rate).
var adm *activities.Admission

// admissionUnserved is how long a release waits in the admission queue before it starts without its turn: long
// enough for any queue the rate makes (a thousand releases at one a second wait up to about 17 minutes), and a
// bound on the wait of releases left in a queue no worker serves any more (every worker restarted without
// --release-rate).
const admissionUnserved = time.Hour

// admitOptions: the Admit of a release, on the admission queue. It waits in that queue as long as the rate makes
// it, up to admissionUnserved; the activity itself completes at once.
func admitOptions(queue string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		TaskQueue:              queue,
		ScheduleToStartTimeout: admissionUnserved,
		StartToCloseTimeout:    30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
		},
	}
}

// admit waits for the release's turn when the worker that detected it admits releases at a rate (the revision
// read named an admission queue): an Admit activity on that queue, which the Temporal server hands out no faster
// than the workers' --release-rate. Nothing of the release has touched the cluster yet. A release of many
// canaries at once then starts its traffic shifting at a pace the cluster and the Temporal server keep up with,
// so that the analysis steps of the releases admitted keep their interval, instead of every canary scaling up in
// the same second and every step waiting for CPU (BENCHMARKS.md, issue 15).
//
// A first rollout (init) waits for its turn in the same queue before it creates anything: a thousand canaries
// applied at once are then initialised at the rate, not all in the same minute, with a few dozen initialisations
// at work at once instead of a thousand (the worker's peak memory at 1,000 canaries was there, BENCHMARKS.md).
//
// An abort or a promote-now signal ends the wait at once, and the analysis then acts on it as it would have; a
// pause waits in the queue and holds the release when admitted; a release that waited admissionUnserved starts
// anyway, with a warning that names the queue. An initialisation leaves the queue early only for an abort (the
// caller ends the run, nothing created). The branch needs no version gate: a run takes it only when its recorded
// DetectRevision result names a queue, which no run recorded before the change that brought it (releases), or
// before the one that named it on a first rollout (initialisations), does.
func (r *rollout) admit(rev activities.RevisionResult, init bool) error {
	if rev.AdmissionQueue == "" {
		return nil
	}
	from := workflow.Now(r.ctx)
	of := fmt.Sprintf("%s revision %s", r.name(), rev.TargetRevision)
	if init {
		of = fmt.Sprintf("the initialization of %s", r.name())
	}
	r.st.Message = fmt.Sprintf("Waiting for admission of %s (task queue %s)", of, rev.AdmissionQueue)
	actx, cancel := workflow.WithCancel(r.ctx)
	defer cancel()
	opts := admitOptions(rev.AdmissionQueue)
	opts.Summary = r.summary()
	f := workflow.ExecuteActivity(workflow.WithActivityOptions(actx, opts), adm.Admit,
		activities.AdmitInput{Canary: r.name(), Revision: rev.TargetRevision})
	if err := workflow.Await(r.ctx, func() bool { return f.IsReady() || r.abort != nil || (r.promote != nil && !init) }); err != nil {
		return errCanceled
	}
	waited := workflow.Now(r.ctx).Sub(from).Round(time.Second)
	if !f.IsReady() {
		what := "an abort"
		if r.abort == nil {
			what = "promote now"
		}
		r.info(fmt.Sprintf("Left the admission queue with %s after %s for %s", of, waited, what), "admission skipped")
		return nil
	}
	if err := f.Get(r.ctx, nil); err != nil {
		if temporal.IsCanceledError(err) || r.ctx.Err() != nil {
			return errCanceled
		}
		var te *temporal.TimeoutError
		if errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START {
			r.warn(fmt.Sprintf("No worker admitted %s from task queue %s in %s: starting it without its turn "+
				"(run the workers of task queue %s with --release-rate, or without it everywhere)", of,
				rev.AdmissionQueue, admissionUnserved, workflow.GetInfo(r.ctx).TaskQueueName), "admission queue unserved")
			return nil
		}
		return fmt.Errorf("admission of %s on task queue %s: %w", of, rev.AdmissionQueue, err)
	}
	r.info(fmt.Sprintf("Admitted %s after %s in the admission queue", of, waited), "admitted")
	return nil
}
