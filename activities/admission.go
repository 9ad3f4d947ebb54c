package activities

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
)

// Admission admits releases: its one activity, Admit, runs on a task queue of its own whose workers set a rate
// (the worker's --release-rate, Temporal's TaskQueueActivitiesPerSecond). The Temporal server hands out that
// queue's tasks no faster than the rate, across every worker polling it, so the releases of many canaries changed
// at once start their traffic shifting at that rate and not all in the same second. A release waits for its Admit
// before its canary is scaled up (a first rollout before its initialisation), and only when the DetectRevision
// that started it named the queue (RevisionResult.AdmissionQueue): a worker without a rate names none, and its
// releases start at once.
//
// With MaxAtWork set (the worker's --max-releases-at-work) an Admit also waits until fewer than that many rollouts
// of the task queue are at work, counted in Temporal visibility by their phase: the releases admitted then
// stay bounded on a day the cluster or the Temporal server serves them more slowly than the rate assumes, and a
// worker's sticky cache sized a little above the bound holds every rollout at work, while those still waiting
// leave it (BENCHMARKS.md, issue 15).
type Admission struct {
	// MaxAtWork is the most rollouts at work at once that an Admit lets in; 0: no bound, an Admit completes at once.
	MaxAtWork int
	// TaskQueue is the task queue of the rollouts counted (the worker's --task-queue), for the messages.
	TaskQueue string
	// AtWork is the visibility query that matches the rollouts of TaskQueue at work (workflows.AtWorkQuery).
	AtWork string
	// Count counts the workflow executions a visibility query matches (client.Client.CountWorkflow).
	Count func(ctx context.Context, query string) (int64, error)
	// Poll is how often a waiting Admit counts again, Hold how long it waits before it gives its slot up, Settle
	// how long a release this worker admitted counts as at work on its own (0: 2 s, 20 s and 15 s).
	Poll, Hold, Settle time.Duration

	mu       sync.Mutex
	admitted []time.Time // when each release admitted in the last Settle will stop counting on its own
}

// AdmitInput names the release waiting to start, for the Web UI and the worker's log.
type AdmitInput struct {
	Canary   string `json:"canary"`
	Revision string `json:"revision"`
}

// ErrTypeAtWorkBound is the type of the error an Admit returns when the bound stayed full while it held its slot:
// retried by Temporal, logged as benign.
const ErrTypeAtWorkBound = "ReleasesAtWorkBound"

// Admit completes at once without a bound: the wait is in the task queue, before a worker is handed the task.
// With one, it counts the rollouts at work every Poll and completes when fewer than MaxAtWork are; after Hold it
// returns a retryable error instead, so that its slot goes to the next in the queue and Temporal tries it again
// after its retry backoff (no workflow task, no history event meanwhile).
//
// Visibility sees an admitted release at work only once its workflow has run its next task and the server has
// written the phase, a moment after the Admit completed; an Admit in that moment would count it out. So the
// releases this worker admitted in the last Settle count as at work besides what visibility says (twice, once it
// says so: the bound errs on the side of fewer). With several workers of the admission queue, each knows only
// its own admissions: the bound can be passed by the releases the others admitted in that moment.
func (a *Admission) Admit(ctx context.Context, in AdmitInput) error {
	if a.MaxAtWork <= 0 {
		return nil
	}
	poll, hold := a.Poll, a.Hold
	if poll <= 0 {
		poll = 2 * time.Second
	}
	if hold <= 0 {
		hold = 20 * time.Second
	}
	deadline := time.Now().Add(hold)
	for {
		seen, err := a.Count(ctx, a.AtWork)
		if err != nil {
			return fmt.Errorf("count the rollouts at work of task queue %s in Temporal visibility: %w", a.TaskQueue, err)
		}
		if n, ok := a.admit(seen); ok {
			return nil
		} else if !time.Now().Add(poll).Before(deadline) {
			return temporal.NewApplicationErrorWithOptions(
				fmt.Sprintf("%s revision %s waits: %d rollouts at work on task queue %s, at most %d (--max-releases-at-work)",
					in.Canary, in.Revision, n, a.TaskQueue, a.MaxAtWork),
				ErrTypeAtWorkBound, temporal.ApplicationErrorOptions{Category: temporal.ApplicationErrorCategoryBenign})
		}
		activity.RecordHeartbeat(ctx, seen)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

// admit adds the releases admitted here in the last Settle to the seen at work, and when the sum is under the bound
// counts one more admitted. It returns the sum.
func (a *Admission) admit(seen int64) (int64, bool) {
	settle := a.Settle
	if settle <= 0 {
		settle = 15 * time.Second
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.admitted = slices.DeleteFunc(a.admitted, now.After)
	n := seen + int64(len(a.admitted))
	if n >= int64(a.MaxAtWork) {
		return n, false
	}
	a.admitted = append(a.admitted, now.Add(settle))
	return n, true
}
