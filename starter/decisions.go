package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// decision is one thing a rollout decided or was told, as its workflow history records it.
type decision struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

func (d decision) String() string { return d.Time.UTC().Format(time.RFC3339) + " " + d.Text }

// runEnd is how one run closed: the exit code it means for `rollout --wait`, or the run it continued as.
type runEnd struct {
	code      int
	nextRunID string // continued as new: follow this run
}

// decisionReader turns history events into decisions. It is the one reading of history shared by `history` and
// `rollout --wait`, so both tell a rollout the same way. It keeps the activity types of scheduled events, because
// a completion names only the event that scheduled it.
type decisionReader struct {
	dc        converter.DataConverter
	scheduled map[int64]string
	// canary is "<name>.<namespace>", as Flagger names a canary in its messages; lastCanary the last canary
	// weight set, to tell an advance from a step back.
	canary     string
	lastCanary int
	// watch, when set, follows the revision a waiting starter rolled out (rollout --wait).
	watch *supersession
	// refused is the message of a refusal that came before the run changed anything (see refusal), "" when none.
	refused string
	// stated is set once the history carries the workflow's own statements of its decisions (the summaries of
	// its commands): from then on they are printed as they are, and no decision is derived from activity types.
	// Histories recorded before the workflow stated its decisions are read by the derivations below.
	stated bool
}

func newDecisionReader() *decisionReader {
	return &decisionReader{dc: converter.GetDefaultDataConverter(), scheduled: map[int64]string{}}
}

// read returns the decisions of one event and, for the event that closes the run, how it ended.
func (r *decisionReader) read(ev *historypb.HistoryEvent) ([]decision, *runEnd) {
	at := ev.GetEventTime().AsTime()
	texts := r.said(ev)
	var end *runEnd
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
		texts = append(texts, r.started(ev.GetWorkflowExecutionStartedEventAttributes())...)
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		a := ev.GetActivityTaskScheduledEventAttributes()
		name := a.GetActivityType().GetName()
		r.scheduled[ev.GetEventId()] = name
		texts = append(texts, r.scheduledActivity(name, a.GetInput())...)
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
		a := ev.GetActivityTaskCompletedEventAttributes()
		texts = append(texts, r.completedActivity(r.scheduled[a.GetScheduledEventId()], a.GetResult())...)
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
		a := ev.GetActivityTaskFailedEventAttributes()
		name := r.scheduled[a.GetScheduledEventId()]
		texts = append(texts, fmt.Sprintf("%s failed: %s", name, a.GetFailure().GetMessage()))
		if r.refused == "" && refusal(name, a.GetFailure()) {
			r.refused = a.GetFailure().GetMessage()
		}
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		texts = append(texts, r.localActivity(ev)...)
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
		a := ev.GetActivityTaskTimedOutEventAttributes()
		texts = append(texts, fmt.Sprintf("%s timed out: %s", r.scheduled[a.GetScheduledEventId()], a.GetFailure().GetMessage()))
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		a := ev.GetWorkflowExecutionSignaledEventAttributes()
		texts = append(texts, r.signal(a.GetSignalName(), a.GetInput()))
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
		// The updates of the same names as the signals (validated first): history records the accepted ones.
		in := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes().GetAcceptedRequest().GetInput()
		texts = append(texts, r.signal(in.GetName(), in.GetArgs())+" (update)")
	case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
		fields := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
		if p, ok := fields[searchattr.CanaryPhase.GetName()]; ok {
			var phase string
			if r.dc.FromPayload(p, &phase) == nil && phase != "" {
				texts = append(texts, "phase "+phase)
			}
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		var res workflows.RolloutResult
		if err := r.first(ev.GetWorkflowExecutionCompletedEventAttributes().GetResult(), &res); err != nil {
			texts, end = []string{"completed with a result this starter cannot read: " + err.Error()}, &runEnd{code: exitFailed}
			break
		}
		text, code := outcome(res)
		if code != exitOK && r.refused != "" {
			text, code = refusedText(r.refused), exitBadInput
		}
		texts, end = []string{text}, &runEnd{code: code}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
		text := "canceled"
		var res workflows.RolloutResult
		if r.first(ev.GetWorkflowExecutionCanceledEventAttributes().GetDetails(), &res) == nil && res.Reason != "" {
			text = "canceled: rolled back: " + res.Reason
		}
		texts, end = []string{text}, &runEnd{code: exitFailed}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
		a := ev.GetWorkflowExecutionFailedEventAttributes()
		if r.refused != "" {
			texts, end = []string{refusedText(r.refused)}, &runEnd{code: exitBadInput}
			break
		}
		texts, end = []string{"failed: " + rootMessage(a.GetFailure())}, &runEnd{code: exitFailed}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
		texts, end = []string{"workflow timed out"}, &runEnd{code: exitFailed}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
		a := ev.GetWorkflowExecutionTerminatedEventAttributes()
		text := "terminated (no cleanup ran)"
		if a.GetIdentity() != "" {
			text += " by " + a.GetIdentity()
		}
		if a.GetReason() != "" {
			text += ": " + a.GetReason()
		}
		texts, end = []string{text}, &runEnd{code: exitFailed}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		next := ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
		texts, end = []string{"continued as new run " + next}, &runEnd{nextRunID: next}
	}
	if r.watch != nil {
		if t, e := r.watch.see(ev); e != nil {
			texts, end = append(texts, t), e
		}
	}
	out := make([]decision, 0, len(texts))
	for _, t := range texts {
		out = append(out, decision{Time: at, Text: t})
	}
	return out, end
}

// said is what the workflow stated with a command (its summary: one decision per line), as it worded it.
func (r *decisionReader) said(ev *historypb.HistoryEvent) []string {
	p := ev.GetUserMetadata().GetSummary()
	if p == nil {
		return nil
	}
	var summary string
	if r.dc.FromPayload(p, &summary) != nil || summary == "" {
		return nil
	}
	r.stated = true
	return strings.Split(summary, "\n")
}

// refusal says whether an activity's final failure is a refusal that changed nothing: any non-retryable failure of
// DetectRevision (the first step of a run, which only reads), or a step that refused before its first write
// (activities.ErrTypeRefused). Such a run ends with exit 2, like input the starter refuses itself.
func refusal(activity string, f *failurepb.Failure) bool {
	app := f.GetApplicationFailureInfo()
	if app == nil || !app.GetNonRetryable() {
		return false
	}
	return activity == "DetectRevision" || app.GetType() == activities.ErrTypeRefused
}

func refusedText(msg string) string {
	return "refused before any change (nothing was written; fix it and run the rollout again): " + msg
}

// rootMessage is the innermost cause of a failure: the workflow's own message is "activity error".
func rootMessage(f *failurepb.Failure) string {
	for f.GetCause() != nil {
		f = f.GetCause()
	}
	return f.GetMessage()
}

// outcome words a run's result and gives the exit code it means: 0 when the target is what runs (promoted,
// initialised, nothing new), 1 otherwise.
func outcome(res workflows.RolloutResult) (string, int) {
	switch {
	case res.Promoted:
		return "promoted revision " + res.Revision, exitOK
	case res.NoNewRun:
		return "no new run: " + res.Reason, exitOK
	case res.Suspended:
		return "not rolled out: " + res.Reason, exitFailed
	case res.Phase == workflows.PhaseInitialized:
		return "initialized: first rollout of this canary, primary created at revision " + res.Revision + " (no analysis)", exitOK
	}
	return "rolled back: " + res.Reason, exitFailed
}

func (r *decisionReader) started(a *historypb.WorkflowExecutionStartedEventAttributes) []string {
	var in workflows.RolloutInput
	if err := r.first(a.GetInput(), &in); err != nil {
		return []string{"rollout started"}
	}
	c := in.Canary
	r.canary = c.Name + "." + c.Namespace
	if in.Status != nil {
		r.lastCanary = in.Status.CanaryWeight
		return []string{fmt.Sprintf("rollout of %s/%s continues (run %d) at phase %s, weight %d",
			c.Namespace, c.Name, in.Status.Runs+1, in.Status.Phase, in.Status.CanaryWeight)}
	}
	return []string{fmt.Sprintf("rollout of %s/%s started: %s %s, provider %s, strategy %s",
		c.Namespace, c.Name, c.Spec.TargetRef.Kind, c.Spec.TargetRef.Name, c.Spec.Provider, c.Strategy())}
}

// localActivity reads a local activity's marker (a short Kubernetes call, from the workflow's lean-history version
// on; a step's checks without webhooks, from its local-checks version on) as the events of an activity would
// read.
func (r *decisionReader) localActivity(ev *historypb.HistoryEvent) []string {
	typ, result, failure, ok := workflows.LocalActivity(ev)
	if !ok {
		return nil // a version marker
	}
	if failure != nil {
		if r.refused == "" && refusal(typ, failure) {
			r.refused = failure.GetMessage()
		}
		return []string{fmt.Sprintf("%s failed: %s", typ, failure.GetMessage())}
	}
	if s, ok := workflows.SplitSet(ev); ok {
		return r.split(s)
	}
	if typ == activities.ActivityRunChecks { // a step's checks without webhooks, from the local-checks version on
		return r.completedActivity(typ, result)
	}
	return r.scheduledActivity(typ, nil)
}

// split words a split set on the router, with the advance it makes.
func (r *decisionReader) split(s activities.RoutesResult) []string {
	t := fmt.Sprintf("weight primary %d canary %d", s.PrimaryWeight, s.CanaryWeight)
	if s.Mirrored {
		t += " (canary gets mirrored traffic)"
	}
	var out []string
	if s.CanaryWeight > r.lastCanary && !r.stated {
		out = append(out, fmt.Sprintf("Advance %s canary weight %d", r.canary, s.CanaryWeight))
	}
	r.lastCanary = s.CanaryWeight
	return append(out, t)
}

func (r *decisionReader) scheduledActivity(name string, input *commonpb.Payloads) []string {
	switch name {
	case "SetRoutes":
		var in activities.RoutesInput
		if r.first(input, &in) != nil {
			return nil
		}
		return r.split(activities.RoutesResult{PrimaryWeight: in.PrimaryWeight, CanaryWeight: in.CanaryWeight, Mirrored: in.Mirrored})
	case "InitializeWorkloads":
		if !r.stated {
			return []string{"initialising: creating the primary, its Services and the router"}
		}
	case "Promote":
		if !r.stated {
			return []string{"promoting: copying the canary's pod template to the primary"}
		}
	}
	return nil
}

func (r *decisionReader) completedActivity(name string, result *commonpb.Payloads) []string {
	switch name {
	case activities.ActivityRunMetricChecks:
		var res activities.MetricChecksResult
		if r.first(result, &res) != nil {
			return nil
		}
		return r.checks(res.Results, true)
	case activities.ActivityCallWebhook:
		var res activities.WebhookResult
		if r.first(result, &res) != nil || res.Type == v1beta1.EventHook {
			return nil // event hooks are notifications, not decisions
		}
		return []string{hookLine(res)}
	case activities.ActivityRunChecks:
		// A step's webhooks and metric checks, run at once: the same lines as when each was an activity.
		var res activities.ChecksResult
		if r.first(result, &res) != nil {
			return nil
		}
		out := make([]string, 0, len(res.Webhooks)+len(res.Checks)+1)
		hookFailed := false
		for _, w := range res.Webhooks {
			out = append(out, hookLine(w))
			hookFailed = hookFailed || !w.Passed
		}
		if res.MetricsError != "" && !r.stated {
			// Worded as the failure of the metric checks when they were an activity of their own, so that a
			// history reads the same before and after the workflow's lean-history version.
			out = append(out, activities.ActivityRunMetricChecks+" failed: "+res.MetricsError)
		}
		return append(out, r.checks(res.Checks, !hookFailed)...) // a failed hook is the step's failed check
	}
	return nil
}

// checks words metric results, with the halt the first failure causes when it is the step's failed check (in a
// history where the workflow does not state it).
func (r *decisionReader) checks(results []activities.CheckResult, halts bool) []string {
	out := make([]string, 0, len(results)+1)
	halt := ""
	for _, c := range results {
		out = append(out, "check "+checkLine(c))
		if halt == "" && c.Verdict == activities.VerdictFail { // the first failure halts the step
			halt = "Halt " + r.canary + " advancement " + c.Message
		}
	}
	if halt != "" && halts && !r.stated {
		out = append(out, halt)
	}
	return out
}

// hookLine is "rollout hook load-test passed" (or failed, with the reason).
func hookLine(res activities.WebhookResult) string {
	verdict := "passed"
	if !res.Passed {
		verdict = "failed"
	}
	t := fmt.Sprintf("%s hook %s %s", res.Type, res.Name, verdict)
	if res.Reason != "" {
		t += ": " + res.Reason
	}
	return t
}

// checkLine is "request-success-rate 99.8 in [99, —] pass": the value against its range and the verdict. A
// comparison with the primary prints its figures instead: "request-duration vs primary +21.4% p=0.003 < 0.05
// (20 canary, 20 primary samples) fail".
func checkLine(c activities.CheckResult) string {
	if c.PValue != nil && c.EffectSize != nil {
		sig := ""
		if c.Alpha != nil {
			rel := "<"
			if *c.PValue >= *c.Alpha {
				rel = "≥"
			}
			sig = " " + rel + " " + num(*c.Alpha)
		}
		return fmt.Sprintf("%s vs primary %s p=%s%s (%d canary, %d primary samples) %s", c.Metric, activities.SignedPercent(*c.EffectSize),
			activities.PValue(*c.PValue), sig, c.CanarySamples, c.PrimarySamples, c.Verdict)
	}
	rng := "[" + bound(c.Min) + ", " + bound(c.Max) + "]"
	if c.Value == nil {
		// No value: the check's message says why (no values found, a query the backend refused, a timeout).
		if c.Message == "" || c.Message == "no values found" {
			return c.Metric + " no values found " + string(c.Verdict)
		}
		return c.Metric + " " + string(c.Verdict) + ": " + c.Message
	}
	rel := "in"
	if (c.Min != nil && *c.Value < *c.Min) || (c.Max != nil && *c.Value > *c.Max) {
		rel = "not in"
	}
	return fmt.Sprintf("%s %s %s %s %s", c.Metric, num(*c.Value), rel, rng, c.Verdict)
}

func bound(f *float64) string {
	if f == nil {
		return "—"
	}
	return num(*f)
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func (r *decisionReader) signal(name string, input *commonpb.Payloads) string {
	if name == workflows.SignalApprove {
		var s workflows.ApproveSignal
		_ = r.first(input, &s)
		return "approve by " + orDash(s.By) + " gate " + orDash(string(s.Gate)) + reasonSuffix(s.Reason)
	}
	var s workflows.ActionSignal
	_ = r.first(input, &s)
	return name + " by " + orDash(s.By) + reasonSuffix(s.Reason)
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return " reason " + strconv.Quote(reason)
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return s
}

// first decodes the first payload of a list into v.
func (r *decisionReader) first(p *commonpb.Payloads, v any) error {
	if len(p.GetPayloads()) == 0 {
		return fmt.Errorf("no payload")
	}
	return r.dc.FromPayload(p.GetPayloads()[0], v)
}
