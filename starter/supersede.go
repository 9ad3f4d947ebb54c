package main

import (
	"context"
	"crypto/rand"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// markerHeader is the header the starter puts on the revision signal it sends, with a value of its own, so that
// `--wait` finds that signal in a history where other starters signalled too.
const markerHeader = "canaryflow-starter-signal"

// activityDetectRevision is the activity type whose result is the target's revision, read after a signal.
const activityDetectRevision = "DetectRevision"

type markerKey struct{}

// withMarker returns ctx and a new marker that the client (see signalMarker) sends as markerHeader with the
// signal-with-start made under ctx.
func withMarker(ctx context.Context) (context.Context, string) {
	m := rand.Text()
	return context.WithValue(ctx, markerKey{}, m), m
}

// signalMarker is the client interceptor that writes the marker of the context into the signal-with-start's
// header, which Temporal records on the signal's history event.
type signalMarker struct {
	interceptor.ClientInterceptorBase
}

func (*signalMarker) InterceptClient(next interceptor.ClientOutboundInterceptor) interceptor.ClientOutboundInterceptor {
	return &signalMarkerOutbound{interceptor.ClientOutboundInterceptorBase{Next: next}}
}

type signalMarkerOutbound struct {
	interceptor.ClientOutboundInterceptorBase
}

func (o *signalMarkerOutbound) SignalWithStartWorkflow(ctx context.Context, in *interceptor.ClientSignalWithStartWorkflowInput) (client.WorkflowRun, error) {
	if m, ok := ctx.Value(markerKey{}).(string); ok {
		p, err := converter.GetDefaultDataConverter().ToPayload(m)
		if err != nil {
			return nil, err
		}
		interceptor.Header(ctx)[markerHeader] = p
	}
	return o.Next.SignalWithStartWorkflow(ctx, in)
}

// supersession follows the revision a starter's own signal rolls out through the rollout's history, across
// continue-as-new, and ends the wait when another revision replaces it. The workflow reads the target's revision
// after each revision signal (DetectRevision) and records the revision under analysis in the CanaryRevision
// search attribute, so: ours is what the first read after our signal found, and a later CanaryRevision of another
// value means a newer revision took over the analysis (or the target went back to the primary's), and ours will
// never be promoted by this rollout.
//
// A second signal that the workflow takes in the same step as ours shares its read: both starters then wait for
// the later revision.
type supersession struct {
	marker string
	dc     converter.DataConverter
	// signalled: our signal is in the history read so far.
	signalled bool
	// reads are the DetectRevision activities scheduled after our signal, until one completes.
	reads map[int64]bool
	// ours is the revision our signal rolls out; current the one under analysis; phase the last phase recorded.
	ours, current, phase string
	// other is the last revision signal of someone else after ours: who asked for the replacing revision.
	other *workflows.ActionSignal
}

func newSupersession(marker string) *supersession {
	return &supersession{marker: marker, dc: converter.GetDefaultDataConverter(), reads: map[int64]bool{}}
}

// see reads one event. It returns the line to print and how the wait ends when the event decides it: our
// revision replaced, or the run ending after it settled ours to start the release of a newer one.
func (s *supersession) see(ev *historypb.HistoryEvent) (string, *runEnd) {
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		a := ev.GetWorkflowExecutionSignaledEventAttributes()
		if a.GetSignalName() != workflows.SignalRevision {
			return "", nil
		}
		var m string
		if p := a.GetHeader().GetFields()[markerHeader]; p != nil && s.dc.FromPayload(p, &m) == nil && m == s.marker {
			s.signalled = true
			return "", nil
		}
		if s.signalled {
			var sig workflows.ActionSignal
			if len(a.GetInput().GetPayloads()) > 0 && s.dc.FromPayload(a.GetInput().GetPayloads()[0], &sig) == nil {
				s.other = &sig
			}
		}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		if s.signalled && s.ours == "" && ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == activityDetectRevision {
			s.reads[ev.GetEventId()] = true
		}
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
		a := ev.GetActivityTaskCompletedEventAttributes()
		var rev activities.RevisionResult
		if s.ours == "" && s.reads[a.GetScheduledEventId()] && len(a.GetResult().GetPayloads()) > 0 &&
			s.dc.FromPayload(a.GetResult().GetPayloads()[0], &rev) == nil {
			s.ours = rev.TargetRevision
		}
	case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
		fields := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
		if p, ok := fields[searchattr.CanaryPhase.GetName()]; ok {
			_ = s.dc.FromPayload(p, &s.phase)
		}
		if p, ok := fields[searchattr.CanaryRevision.GetName()]; ok && s.dc.FromPayload(p, &s.current) == nil &&
			s.ours != "" && s.current != s.ours {
			return s.superseded(), &runEnd{code: exitSuperseded}
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
		var res workflows.RolloutResult
		p := ev.GetWorkflowExecutionCompletedEventAttributes().GetResult().GetPayloads()
		if s.ours != "" && len(p) > 0 && s.dc.FromPayload(p[0], &res) == nil && res.Revision != "" && res.Revision != s.ours {
			s.current = res.Revision
			return s.superseded(), &runEnd{code: exitSuperseded}
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
		// A run continues as new with no status when a revision signal came while it was finishing: the next run is
		// another release. If this run was ours, its last phase is our outcome.
		a := ev.GetWorkflowExecutionContinuedAsNewEventAttributes()
		var in workflows.RolloutInput
		p := a.GetInput().GetPayloads()
		if s.ours == "" || s.current != s.ours || len(p) == 0 || s.dc.FromPayload(p[0], &in) != nil || in.Status != nil {
			return "", nil
		}
		next := a.GetNewExecutionRunId()
		switch workflows.Phase(s.phase) {
		case workflows.PhaseSucceeded:
			return fmt.Sprintf("promoted revision %s; run %s goes on with a newer revision", s.ours, next), &runEnd{code: exitOK}
		case workflows.PhaseInitialized:
			return fmt.Sprintf("revision %s needed no new run; run %s goes on with a newer revision", s.ours, next), &runEnd{code: exitOK}
		}
		return fmt.Sprintf("revision %s ended %s; run %s goes on with a newer revision", s.ours, s.phase, next), &runEnd{code: exitFailed}
	}
	return "", nil
}

func (s *supersession) superseded() string {
	t := fmt.Sprintf("superseded: revision %s was replaced by revision %s before its analysis ended", s.ours, s.current)
	if s.other != nil {
		t += fmt.Sprintf(" (revision by %s%s)", orDash(s.other.By), reasonSuffix(s.other.Reason))
	}
	if workflows.Phase(s.phase) == workflows.PhaseInitialized { // the revert: the same upsert sets the phase
		return t + "; that is the primary's revision, so the rollout ended with no new run"
	}
	return t + "; the rollout goes on with " + s.current + " (starter status shows where it is)"
}
