package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// checkInTurn runs the checks of a step one activity at a time, stopping at the first failure: the hooks of the
// step (pre-rollout on the first step, rollout on the others), then the metric checks. It says whether they
// passed; when not, out is what the step ends with (a failed check, or a hold). Runs recorded before
// versionLeanHistory check so.
func (r *rollout) checkInTurn(first bool) (passed bool, out outcome, err error) {
	if first {
		failed, err := r.runHooks(v1beta1.PreRolloutHook)
		if err != nil || failed != "" {
			return false, r.failedCheckIf(failed), err
		}
		return true, keepGoing, nil
	}
	if failed, err := r.runHooks(v1beta1.RolloutHook); err != nil || failed != "" {
		return false, r.failedCheckIf(failed), err
	}
	failed, hold, err := r.runMetrics()
	if err != nil {
		return false, keepGoing, err
	}
	return r.judged(failed, hold)
}

// checkAtOnce runs the checks of a step (as checkInTurn) in one RunChecks activity, all at once, and judges
// every result in Flagger's order: the first hook that failed, in spec order, then the metrics. One activity
// and one workflow task per step, with every hook's answer and every check's query, value, range and verdict in
// its result. Unlike Flagger, which stops at the first failing check, every check of the step runs.
func (r *rollout) checkAtOnce(first bool) (passed bool, out outcome, err error) {
	t, metrics := v1beta1.RolloutHook, r.a.Metrics
	if first {
		t, metrics = v1beta1.PreRolloutHook, nil
	}
	hooks := r.hooks(t)
	if len(hooks) == 0 && len(metrics) == 0 {
		return true, keepGoing, nil
	}
	in := activities.ChecksInput{Canary: r.ref, Payload: r.webhookPayload(), Hooks: hooks, Metrics: metrics, Templates: r.in.Templates}
	var res activities.ChecksResult
	if err := r.runChecks(checksOptions(r.a, hooks, len(metrics) > 0), len(hooks) > 0, in, &res); err != nil {
		if errors.Is(err, errCanceled) {
			return false, keepGoing, err
		}
		if len(metrics) > 0 {
			r.st.LastChecks = nil
		}
		return false, r.failedCheck("checks could not run: "+cause(err), nil), nil
	}
	if len(hooks) > 0 {
		r.st.LastWebhooks = res.Webhooks
	}
	failed, hold := "", ""
	if len(metrics) > 0 {
		if res.MetricsError != "" {
			r.st.LastChecks = nil
			failed = "metric checks could not run: " + res.MetricsError
		} else {
			failed, hold = r.recordChecks(res.Checks)
		}
	}
	for i, w := range res.Webhooks {
		if !w.Passed {
			return false, r.failedCheck(fmt.Sprintf("%s check %s failed %s", t, hooks[i].Name, w.Reason), nil), nil
		}
	}
	return r.judged(failed, hold)
}

// runChecks runs RunChecks for a step. From versionLocalChecks on, a step without webhooks runs it as a local
// activity, in the workflow task its timer woke: the step is then one workflow task, with no activity task for
// the server to match and record (at a thousand canaries, the server's work per step is what keeps them on time
// or not). A worker lost during the checks is noticed at the workflow task's timeout (10 s), and another worker
// runs the task and the checks again, which read-only queries allow. A step with webhooks keeps the activity:
// a load test may take minutes, and the activity heartbeats.
func (r *rollout) runChecks(opts workflow.ActivityOptions, hooks bool, in activities.ChecksInput, out *activities.ChecksResult) error {
	if hooks || !r.checksLocally() {
		return r.exec(opts, activities.ActivityRunChecks, in, out)
	}
	opts.HeartbeatTimeout = 0 // a local activity is kept alive by its workflow task
	return r.local(opts, activities.ActivityRunChecks, in, out)
}

// checksLocally says whether this run's steps without webhooks run their checks as a local activity
// (versionLocalChecks). The version is asked at the first such step, so that runs without one record no marker.
func (r *rollout) checksLocally() bool { return r.versionOnce(&r.localChecks, versionLocalChecks) }

// judged ends a step's checks on the metrics' verdict: a failure counts one failed check, a hold halts the step.
func (r *rollout) judged(failed, hold string) (bool, outcome, error) {
	switch {
	case failed != "":
		return false, r.failedCheck(failed, r.st.LastChecks), nil
	case hold != "":
		r.decide(activities.EventHalted, v1beta1.SeverityInfo, false,
			fmt.Sprintf("Halt %s advancement %s", r.name(), hold), "metric on hold")
		return false, keepGoing, nil
	}
	return true, keepGoing, nil
}

// failedCheckIf counts the failed check of a hook that failed ("" when none did).
func (r *rollout) failedCheckIf(failed string) outcome {
	if failed == "" {
		return keepGoing
	}
	return r.failedCheck(failed, nil)
}

func (r *rollout) hooks(t v1beta1.HookType) []v1beta1.CanaryWebhook {
	var out []v1beta1.CanaryWebhook
	for _, h := range r.a.Webhooks {
		if h.Type == t {
			out = append(out, h)
		}
	}
	return out
}

// runHooks calls the webhooks of a type in order and stops at the first failure, returning what failed ("" when
// all passed). Post-rollout hooks are all called; their failures are reported, never acted on.
func (r *rollout) runHooks(t v1beta1.HookType) (string, error) {
	hooks := r.hooks(t)
	if len(hooks) == 0 {
		return "", nil
	}
	r.st.LastWebhooks = nil
	failed := ""
	for _, h := range hooks {
		res, err := r.callHook(h)
		if err != nil {
			return "", err
		}
		if !res.Passed && failed == "" {
			failed = fmt.Sprintf("%s check %s failed %s", t, h.Name, res.Reason)
			if t != v1beta1.PostRolloutHook {
				break
			}
		}
	}
	if t == v1beta1.PostRolloutHook {
		if failed != "" {
			r.warn(fmt.Sprintf("Post-rollout hook of %s failed: %s", r.name(), failed), failed)
		}
		return "", nil
	}
	return failed, nil
}

// callHook calls one webhook; an activity that failed for good counts as the hook failing.
func (r *rollout) callHook(h v1beta1.CanaryWebhook) (activities.WebhookResult, error) {
	in := activities.WebhookInput{Hook: h, Payload: r.webhookPayload()}
	in.Payload.Metadata = h.MetadataMap()
	var res activities.WebhookResult
	if err := r.exec(webhookOptions(h), activities.ActivityCallWebhook, in, &res); err != nil {
		if errors.Is(err, errCanceled) {
			return res, err
		}
		res = activities.WebhookResult{Name: h.Name, Type: h.Type, Passed: false, Reason: err.Error()}
	}
	if h.Type != v1beta1.EventHook {
		r.st.LastWebhooks = append(r.st.LastWebhooks, res)
	}
	return res, nil
}

// webhookPayload is the body of a check or gate webhook call, without the hook's metadata.
func (r *rollout) webhookPayload() activities.WebhookPayload {
	phase := r.st.Phase
	if phase == "" {
		phase = PhaseWaiting // the first confirm-rollout call, before the run has a phase
	}
	return activities.WebhookPayload{Name: r.c.Name, Namespace: r.c.Namespace, Phase: string(phase), Checksum: r.st.Revision}
}

// runMetrics runs every metric check of the step in one activity. It returns the first failure (counted as one
// failed check) or the first hold (halts the step without counting).
func (r *rollout) runMetrics() (failed, hold string, err error) {
	if len(r.a.Metrics) == 0 {
		return "", "", nil
	}
	in := activities.MetricChecksInput{Canary: r.ref, Metrics: r.a.Metrics, Templates: r.in.Templates}
	var res activities.MetricChecksResult
	if err := r.exec(metricOptions(r.a), activities.ActivityRunMetricChecks, in, &res); err != nil {
		if errors.Is(err, errCanceled) {
			return "", "", err
		}
		r.st.LastChecks = nil
		return "metric checks could not run: " + cause(err), "", nil
	}
	failed, hold = r.recordChecks(res.Results)
	return failed, hold, nil
}

// recordChecks keeps a step's metric results in the status and the memo and returns the first failure and the
// first hold among them.
func (r *rollout) recordChecks(results []activities.CheckResult) (failed, hold string) {
	r.st.LastChecks = results
	r.memoChecks(results)
	// The rule lives with the checks (activities.Decisive), so that `starter backtest` decides as a rollout does.
	i := activities.Decisive(results)
	switch {
	case i < 0:
		return "", ""
	case results[i].Verdict == activities.VerdictFail:
		return checkReason(results[i]), ""
	}
	return "", checkReason(results[i])
}

// memoChecks records the step's metric values in the memo ("lastChecks": metric → value), where the workers'
// canaryflow_canary_metric_analysis metric reads them from visibility: every worker replica sees the same values.
func (r *rollout) memoChecks(results []activities.CheckResult) {
	if !r.at(versionMemoChecks) {
		return
	}
	values := make(map[string]float64, len(results))
	for _, c := range results {
		if c.Value != nil {
			values[c.Metric] = *c.Value
		}
	}
	if err := workflow.UpsertMemo(r.ctx, map[string]any{"lastChecks": values}); err != nil {
		r.log.Warn("recording the metric values in the memo failed: "+err.Error(), r.keyvals("memo")...)
	}
}

// checkReason is why a check failed or held, as its activity worded it. A result without a message (none
// recorded so) is still a failure: the verdict decides, never the wording.
func checkReason(c activities.CheckResult) string {
	if c.Message != "" {
		return c.Message
	}
	return c.Metric + " " + string(c.Verdict)
}

// cause is what an activity's failure says, without the activity error's own wrapping (type, event IDs), for
// messages a user reads.
func cause(err error) string {
	var ae *temporal.ActivityError
	if errors.As(err, &ae) && ae.Unwrap() != nil {
		return ae.Unwrap().Error()
	}
	return err.Error()
}
