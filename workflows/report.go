package workflows

import (
	"reflect"
	"strconv"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

func (r *rollout) setPhase(p Phase) {
	if r.st.Phase == p {
		return
	}
	r.st.Phase = p
	r.st.LastTransitionTime = workflow.Now(r.ctx)
	r.syncSearchAttributes()
}

func (r *rollout) setCondition(s ConditionStatus, reason, msg string) {
	now := workflow.Now(r.ctx)
	if len(r.st.Conditions) == 1 && r.st.Conditions[0].Status == s && r.st.Conditions[0].Reason == reason {
		r.st.Conditions[0].Message = msg
		return
	}
	r.st.Conditions = []Condition{{Type: ConditionPromoted, Status: s, Reason: reason, Message: msg, LastTransitionTime: now}}
}

// syncSearchAttributes upserts the phase, weight and revision that changed since the last upsert.
func (r *rollout) syncSearchAttributes() {
	var ups []temporal.SearchAttributeUpdate
	if r.st.Phase != r.saPhase {
		ups = append(ups, searchattr.CanaryPhase.ValueSet(string(r.st.Phase)))
	}
	if r.st.CanaryWeight != r.saWeight {
		ups = append(ups, searchattr.CanaryWeight.ValueSet(int64(r.st.CanaryWeight)))
	}
	if r.st.Revision != r.saRevision && r.st.Revision != "" {
		ups = append(ups, searchattr.CanaryRevision.ValueSet(r.st.Revision))
	}
	if len(ups) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(r.ctx, ups...); err != nil {
		// Only an unregistered attribute fails here: visibility suffers, the rollout must not.
		r.warn("Upsert search attributes of "+r.name()+" failed: "+err.Error(), "search attributes")
		return
	}
	r.saPhase, r.saWeight, r.saRevision = r.st.Phase, r.st.CanaryWeight, r.st.Revision
}

// decide logs a decision, records it as the status message and sends it as an event to the event webhooks and,
// with alert, to the alerts.
func (r *rollout) decide(t activities.EventType, sev v1beta1.AlertSeverity, alert bool, msg, reason string, checks ...activities.CheckResult) {
	switch sev {
	case v1beta1.SeverityError:
		r.log.Error(msg, r.keyvals(reason)...)
	case v1beta1.SeverityWarn:
		r.log.Warn(msg, r.keyvals(reason)...)
	default:
		r.log.Info(msg, r.keyvals(reason)...)
	}
	r.st.Message = msg
	r.sayOnce(msg)
	r.emit(r.event(t, sev, msg, checks), alert)
}

func (r *rollout) event(t activities.EventType, sev v1beta1.AlertSeverity, msg string, checks []activities.CheckResult) activities.Event {
	return activities.Event{
		Type: t, Severity: sev, Message: msg, Canary: r.ref, Revision: r.st.Revision, Phase: string(r.st.Phase),
		Weight: r.st.CanaryWeight, FailedChecks: r.st.FailedChecks, Checks: checks, Timestamp: workflow.Now(r.ctx),
	}
}

// emit sends an event to the event webhooks and the alerts. Delivery failures are logged, never acted on; with
// no alerts and no event webhooks no activity runs, to keep history small.
func (r *rollout) emit(ev activities.Event, alert bool) {
	for _, h := range r.hooks(v1beta1.EventHook) {
		// Flagger's event payload (eventType Normal or Warning), over the hook's own metadata.
		payload := activities.EventWebhookPayload(ev)
		md := h.MetadataMap()
		for k, v := range payload.Metadata {
			md[k] = v
		}
		payload.Metadata = md
		in := activities.WebhookInput{Hook: h, Payload: payload}
		var res activities.WebhookResult
		if err := r.exec(webhookOptions(h), activities.ActivityCallWebhook, in, &res); err != nil {
			r.log.Warn("Event webhook "+h.Name+" failed: "+err.Error(), r.keyvals("event webhook")...)
		}
	}
	if !alert || len(r.a.Alerts) == 0 {
		return
	}
	in := activities.AlertInput{Event: ev, Alerts: r.a.Alerts, Providers: r.in.AlertProviders}
	var res activities.AlertResult
	if err := r.exec(alertOptions(), activities.ActivitySendAlerts, in, &res); err != nil {
		r.log.Warn("Alerts failed: "+err.Error(), r.keyvals("alert")...)
	}
}

// info logs a decision and records it as the status message and in history (say).
func (r *rollout) info(msg, reason string) {
	r.ack(msg, reason)
	r.sayOnce(msg)
}

// warn is info at warning level.
func (r *rollout) warn(msg, reason string) {
	r.log.Warn(msg, r.keyvals(reason)...)
	r.st.Message = msg
	r.sayOnce(msg)
}

// ack logs what a signal asked and records it as the status message, without stating it in history: the signal's
// own event records it there, and the decision it leads to is stated when taken.
func (r *rollout) ack(msg, reason string) {
	r.log.Info(msg, r.keyvals(reason)...)
	r.st.Message = msg
}

// Bounds of what one command states: a decision is one line, and a command states at most a few.
const (
	maxSaidLines = 4
	maxSaidLine  = 1000
)

// say states a decision in history, once, in the workflow's own words: the next command the workflow issues (an
// activity, a local activity or a timer) carries it as its summary, which the Temporal Web UI shows beside the
// event and `starter history` prints. A decision is stated as it is taken, so the command after it is the first
// that acts on it (the write it decides, or the wait it decides on).
func (r *rollout) say(msg string) {
	if len(msg) > maxSaidLine {
		msg = msg[:maxSaidLine-len("…")] + "…"
	}
	if len(r.unsaid) == maxSaidLines {
		r.unsaidMore++
		return
	}
	r.unsaid = append(r.unsaid, msg)
}

// sayFirst states a decision ahead of the command that carries it out (an advance: the weight it sets); the
// decide that follows the command does not state it again.
func (r *rollout) sayFirst(msg string) {
	r.say(msg)
	r.saidAhead = msg
}

// sayOnce states msg unless sayFirst already did.
func (r *rollout) sayOnce(msg string) {
	if r.saidAhead == msg {
		r.saidAhead = ""
		return
	}
	r.say(msg)
}

// summary takes the decisions not yet stated, one per line, for the summary of the command about to be issued.
func (r *rollout) summary() string {
	if len(r.unsaid) == 0 {
		return ""
	}
	lines := r.unsaid
	if r.unsaidMore > 0 {
		lines = append(lines, "(and "+strconv.Itoa(r.unsaidMore)+" more: see the status query)")
	}
	r.unsaid, r.unsaidMore = nil, 0
	return strings.Join(lines, "\n")
}

func (r *rollout) keyvals(reason string) []any {
	return []any{"canary", r.name(), "revision", r.st.Revision, "phase", string(r.st.Phase), "weight", r.st.CanaryWeight, "reason", reason}
}

// canaryStatus is the rollout's state in the fields of Flagger's Canary status.
func (r *rollout) canaryStatus() activities.CanaryStatusInput {
	in := activities.CanaryStatusInput{
		Canary: r.ref, Phase: string(r.st.Phase), FailedChecks: r.st.FailedChecks, CanaryWeight: r.st.CanaryWeight,
		Iterations: r.st.Iterations, LastAppliedSpec: r.st.Revision, LastTransitionTime: r.st.LastTransitionTime,
	}
	if r.st.Phase == PhaseSucceeded || r.st.Phase == PhaseInitialized {
		in.LastPromotedSpec = r.st.Revision
	} else {
		in.LastPromotedSpec = r.st.PrimaryRevision
	}
	for _, c := range r.st.Conditions {
		in.Conditions = append(in.Conditions, activities.CanaryCondition{
			Type: c.Type, Status: string(c.Status), Reason: c.Reason, Message: c.Message,
			LastTransitionTime: c.LastTransitionTime, LastUpdateTime: r.st.LastTransitionTime,
		})
	}
	return in
}

// flushCanaryStatus writes the rollout's state to its Canary object when the input asks for it (GitOps mode) and
// the state changed since the last write: before every wait and when the run ends, so the cluster shows each state
// the rollout stays in (`kubectl get canaries`, `kubectl wait --for=condition=promoted`), with no write on a
// timer. A failed write is logged, never acted on: the rollout must not fail for its display.
func (r *rollout) flushCanaryStatus() {
	if !r.in.WriteStatus {
		return
	}
	in := r.canaryStatus()
	if r.written != nil && reflect.DeepEqual(*r.written, in) {
		return
	}
	var res activities.CanaryStatusResult
	if err := r.kube(kubeOptions(), cs.WriteCanaryStatus, in, &res); err != nil {
		r.log.Warn("Writing the status of Canary "+r.name()+" failed: "+err.Error(), r.keyvals("canary status")...)
		return
	}
	r.written = &in
}
