package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/webhook"
)

// historyLimit is the history length (events) past which a run continues as new, carrying its Status. Temporal
// warns at 10,240 events and refuses past 51,200; 8,000 leaves room for the events of one more step and for
// signals. A 10-step canary with 2 metrics and a rollout webhook uses a few hundred events (see README), so only
// rollouts held for days (pause, a gate nobody opens, a canary that never gets ready) reach it.
var historyLimit = 8000

// Polling of readiness: one quick look per observation, on a workflow timer that backs off from the first to the
// last interval. A run whose worker names a readiness queue (--watch-readiness) looks once and then waits in one
// AwaitReady there (awaitReadyOptions); it polls only when that wait fails. A poll costs a timer, a workflow task
// and a look each (six history events); the wait one activity and one workflow task for the whole wait.
const (
	readyPollFirst = 2 * time.Second
	readyPollMax   = 30 * time.Second
)

// awaitReadyOptions: a wait for readiness on the worker's readiness queue (AwaitReady), for at most left (the rest
// of the progress deadline). A queue no worker serves any more (its workers restarted without --watch-readiness)
// fails the wait within a minute and polls take over; a worker that dies mid-wait stops heartbeating, and the
// wait is retried on another.
func awaitReadyOptions(queue string, left time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		TaskQueue:              queue,
		ScheduleToStartTimeout: time.Minute,
		StartToCloseTimeout:    left + 30*time.Second,
		HeartbeatTimeout:       30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Second,
			MaximumAttempts:        3,
			NonRetryableErrorTypes: permanentErrorTypes,
		},
	}
}

// Activity options, one set per kind of side effect.

// kubeOptions: Kubernetes reads and writes of the workload and routing activities. Each call is short; transient
// API errors are retried with backoff for a few minutes, permanent ones (non-retryable types) fail at once.
func kubeOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    30 * time.Second,
		ScheduleToCloseTimeout: 5 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: permanentErrorTypes,
		},
	}
}

// cleanupOptions: the writes of a rollback (route to the primary, scale the canary down). They retry until they
// succeed, because giving up would leave users on a failed canary; only permanent errors stop them.
func cleanupOptions() workflow.ActivityOptions {
	o := initOptions()
	o.RetryPolicy.MaximumInterval = time.Minute
	return o
}

// initOptions: the Kubernetes calls that are activities of their own: the revision read that starts every run and
// the writes of an initialisation. They are what a thousand canaries created or changed at once wait for in the
// task queue, and a deadline counted from the schedule (kubeOptions' 5 minutes) spent itself there: at 1,000
// canaries (make bench-scale), initialisations failed whose attempts had hardly run, and were undone. So, as
// Flagger retries an initialisation at every interval until it succeeds, these retry transient errors (an
// overloaded or unreachable API server) until they succeed; a permanent error (not found, forbidden, a refusal)
// still fails at once, and cancelling the run stops them and undoes the initialisation. (Passed to kube, these
// options, having no schedule-to-close, keep the call an activity.)
func initOptions() workflow.ActivityOptions {
	o := kubeOptions()
	o.ScheduleToCloseTimeout = 0
	return o
}

// readyOptions: one readiness observation. Short: the workflow polls again anyway.
func readyOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout:    15 * time.Second,
		ScheduleToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        10 * time.Second,
			NonRetryableErrorTypes: permanentErrorTypes,
		},
	}
}

// metricOptions: all metric checks of one step. A query that fails is a check result, not an activity error;
// the activity only fails when it could not run at all, which a couple of retries may fix.
//
// The deadline is what the queries may take (each is bounded by activities.QueryTimeout, and they run one after
// the other) plus a margin, not a fixed 2 min: an attempt lost with a killed worker is retried only at the
// deadline, and a step held for 2 min also stops the load test that the steps' rollout webhooks keep going, so the
// retried checks found no traffic and rolled a healthy release back (e2e/chaos, seed 1795985614051161717).
func metricOptions(a *v1beta1.CanaryAnalysis) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Duration(len(a.Metrics))*activities.QueryTimeout(a.Interval) + metricMargin,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    2 * time.Second,
			BackoffCoefficient: 2,
			MaximumAttempts:    3,
		},
	}
}

// webhookOptions: one webhook call. The activity makes the hook's own retries (spec retries, each bounded by the
// hook's timeout), so its deadline covers them all; Temporal retries only a lost worker, once.
func webhookOptions(h v1beta1.CanaryWebhook) workflow.ActivityOptions {
	perCall := h.TimeoutDuration()
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Duration(h.Retries+1)*perCall + webhook.Pauses(h.Retries) + 5*time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 2},
	}
}

// checksOptions: one step's webhooks and metric checks, run at once by RunChecks. Its deadline is the slowest
// of them: a hook with its own retries (webhookOptions), the metric checks with theirs (RunChecks retries a
// backend it cannot reach; activities.MetricChecksTimeout), plus a margin. It heartbeats, so a lost worker is
// noticed within checksHeartbeatTimeout rather than at that deadline: a step held for minutes would also stop
// the load the steps' webhooks keep going, and the retried checks would find no traffic. RunChecks turns every
// failure of a check into a result, so Temporal retries only a lost worker, once.
func checksOptions(a *v1beta1.CanaryAnalysis, hooks []v1beta1.CanaryWebhook, metrics bool) workflow.ActivityOptions {
	var budget time.Duration
	if metrics {
		budget = activities.MetricChecksTimeout(a.Interval)
	}
	for _, h := range hooks {
		budget = max(budget, webhookOptions(h).StartToCloseTimeout)
	}
	return workflow.ActivityOptions{
		StartToCloseTimeout: budget + checksMargin,
		HeartbeatTimeout:    checksHeartbeatTimeout,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 2},
	}
}

// checksMargin is what RunChecks may take beyond its checks (reading a MetricTemplate's Secret, building the
// clients, a loaded machine); checksHeartbeatTimeout leaves room for a few missed heartbeats.
const (
	checksMargin           = 15 * time.Second
	checksHeartbeatTimeout = 4 * activities.ChecksHeartbeat
)

// alertOptions: notifications. They never fail the rollout, so a few attempts are enough.
func alertOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    2 * time.Second,
			BackoffCoefficient: 2,
			MaximumAttempts:    3,
		},
	}
}

var permanentErrorTypes = []string{
	activities.ErrTypeProgressDeadlineExceeded,
	activities.ErrTypeNotFound,
	activities.ErrTypeUnsupportedProvider,
	activities.ErrTypePermanent,
}

// metricMargin is the time one metric-checks activity may take beyond its queries: reading a MetricTemplate's
// Secret, building the clients, a loaded machine.
const metricMargin = 15 * time.Second
