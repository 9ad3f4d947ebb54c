package activities

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// ChecksInput asks for the checks of one analysis step: its webhooks and its metric checks, all independent of
// each other.
type ChecksInput struct {
	Canary CanaryRef `json:"canary"`
	// Payload is the webhooks' body (name, namespace, phase, checksum); each hook's own metadata is merged in.
	Payload WebhookPayload          `json:"payload"`
	Hooks   []v1beta1.CanaryWebhook `json:"hooks,omitempty"`
	Metrics []v1beta1.CanaryMetric  `json:"metrics,omitempty"`
	// Templates are the MetricTemplates the metrics reference (they carry secretRef names, never secret values).
	Templates []v1beta1.MetricTemplate `json:"templates,omitempty"`
}

// ChecksResult holds every result of one step's checks, in the order of the spec, so that the history records
// each hook's answer and each metric's query, value, range and verdict.
type ChecksResult struct {
	Webhooks []WebhookResult `json:"webhooks,omitempty"`
	Checks   []CheckResult   `json:"checks,omitempty"`
	// MetricsError says why the metric checks could not run (the backend unreachable after retries, a metric that
	// cannot be checked as written); Checks is empty then.
	MetricsError string `json:"metricsError,omitempty"`
}

// ActivityRunChecks is the name of Analysis.RunChecks.
const ActivityRunChecks = "RunChecks"

// metricAttempts and metricBackoff retry the metric checks of a step when the backend cannot be reached (an
// error, not a failed check), as the activity options of RunMetricChecks retry it: 3 attempts, 2 s then 4 s.
const (
	metricAttempts = 3
	metricBackoff  = 2 * time.Second
)

// MetricChecksTimeout is the longest the metric checks of a step may take in RunChecks, for an analysis interval:
// every attempt of a query bounded by QueryTimeout, and the pauses between them (the metrics run side by side).
func MetricChecksTimeout(interval string) time.Duration {
	return metricAttempts*QueryTimeout(interval) + metricBackoff + 2*metricBackoff
}

// ChecksHeartbeat is how often RunChecks tells Temporal it is alive: a worker lost in the middle of a step's
// checks is then noticed at the activity's heartbeat timeout, not at its deadline (a step held for minutes also
// stops the load the steps' webhooks keep going).
const ChecksHeartbeat = 3 * time.Second

// RunChecks runs one step's webhooks and metric checks concurrently and returns every result: one activity, one
// workflow task per step, however many checks. It never fails because of a check: a hook that cannot be called
// is a result that did not pass, and metric checks that cannot run are MetricsError. Which failure counts (hooks
// first, in spec order, then metrics) is the workflow's to decide.
func (a *Analysis) RunChecks(ctx context.Context, in ChecksInput) (ChecksResult, error) {
	if activity.IsActivity(ctx) {
		defer heartbeat(ctx, ChecksHeartbeat)()
	}
	out := ChecksResult{Webhooks: make([]WebhookResult, len(in.Hooks))}
	var wg sync.WaitGroup
	for i, h := range in.Hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := a.CallWebhook(ctx, WebhookInput{Hook: h, Payload: in.Payload})
			if err != nil {
				res = WebhookResult{Name: h.Name, Type: h.Type, Passed: false, Reason: err.Error()}
			}
			out.Webhooks[i] = res
		}()
	}
	if len(in.Metrics) > 0 {
		checks := make([]CheckResult, len(in.Metrics))
		errs := make([]error, len(in.Metrics))
		for i, m := range in.Metrics {
			wg.Add(1)
			go func() {
				defer wg.Done()
				checks[i], errs[i] = a.checkWithRetries(ctx, MetricChecksInput{Canary: in.Canary, Templates: in.Templates}, m)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				out.MetricsError = fmt.Sprintf("metric %s of canary %s/%s: %v", in.Metrics[i].Name, in.Canary.Namespace, in.Canary.Name, err)
				break
			}
		}
		if out.MetricsError == "" {
			out.Checks = checks
		}
	}
	wg.Wait()
	if len(out.Webhooks) == 0 {
		out.Webhooks = nil
	}
	return out, nil
}

// checkWithRetries runs one metric check, trying again after a backend error that retrying may fix.
func (a *Analysis) checkWithRetries(ctx context.Context, in MetricChecksInput, m v1beta1.CanaryMetric) (CheckResult, error) {
	pause := metricBackoff
	for attempt := 1; ; attempt++ {
		r, err := a.check(ctx, in, m)
		if err == nil || isApplicationError(err) || attempt == metricAttempts {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, err
		case <-time.After(pause):
		}
		pause *= 2
	}
}
