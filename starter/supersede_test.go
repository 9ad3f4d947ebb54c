package main

import (
	"testing"

	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// history builds the events of a rollout's history that the supersession reads, numbered in order.
type history struct {
	t      *testing.T
	events []*historypb.HistoryEvent
}

func (h *history) payloads(v any) *commonpb.Payloads {
	p, err := converter.GetDefaultDataConverter().ToPayloads(v)
	require.NoError(h.t, err)
	return p
}

func (h *history) add(ev *historypb.HistoryEvent) int64 {
	ev.EventId = int64(len(h.events) + 1)
	h.events = append(h.events, ev)
	return ev.EventId
}

func (h *history) signal(marker, by string) {
	a := &historypb.WorkflowExecutionSignaledEventAttributes{SignalName: workflows.SignalRevision,
		Input: h.payloads(workflows.ActionSignal{By: by})}
	if marker != "" {
		a.Header = &commonpb.Header{Fields: map[string]*commonpb.Payload{markerHeader: h.payloads(marker).GetPayloads()[0]}}
	}
	h.add(&historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionSignaledEventAttributes{WorkflowExecutionSignaledEventAttributes: a}})
}

func (h *history) detectScheduled() int64 {
	return h.add(&historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
		Attributes: &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
			ActivityType: &commonpb.ActivityType{Name: activityDetectRevision}}}})
}

func (h *history) detectCompleted(scheduled int64, target string) {
	h.add(&historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
		Attributes: &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{
			ScheduledEventId: scheduled, Result: h.payloads(activities.RevisionResult{TargetRevision: target, PrimaryRevision: "rev1", PrimaryExists: true, Changed: true})}}})
}

func (h *history) upsert(phase, revision string) {
	fields := map[string]*commonpb.Payload{}
	if phase != "" {
		fields[searchattr.CanaryPhase.GetName()] = h.payloads(phase).GetPayloads()[0]
	}
	if revision != "" {
		fields[searchattr.CanaryRevision.GetName()] = h.payloads(revision).GetPayloads()[0]
	}
	h.add(&historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
		Attributes: &historypb.HistoryEvent_UpsertWorkflowSearchAttributesEventAttributes{UpsertWorkflowSearchAttributesEventAttributes: &historypb.UpsertWorkflowSearchAttributesEventAttributes{
			SearchAttributes: &commonpb.SearchAttributes{IndexedFields: fields}}}})
}

func (h *history) continuedAsNew(in workflows.RolloutInput) {
	h.add(&historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
		Attributes: &historypb.HistoryEvent_WorkflowExecutionContinuedAsNewEventAttributes{WorkflowExecutionContinuedAsNewEventAttributes: &historypb.WorkflowExecutionContinuedAsNewEventAttributes{
			NewExecutionRunId: "next-run", Input: h.payloads(in)}}})
}

// The cases a real server cannot be made to produce on cue: which read of the target counts as the starter's,
// and how a run that continues as new ends the wait.
func TestSupersessionFollowsTheRevisionOfTheStartersOwnSignal(t *testing.T) {
	for _, tc := range []struct {
		name     string
		events   func(h *history)
		wantCode int    // -1: the wait goes on
		wantText string // the line that ends the wait
	}{
		{"a read begun before our signal is not ours", func(h *history) {
			early := h.detectScheduled() // reads the target before our --set-image reached it
			h.signal("ours", "ci-3")
			h.detectCompleted(early, "rev2")
			h.upsert("", "rev2")
			ours := h.detectScheduled()
			h.detectCompleted(ours, "rev3")
			h.upsert("Progressing", "rev3")
		}, -1, ""},
		{"a newer revision after ours supersedes it", func(h *history) {
			h.signal("ours", "ci-2")
			ours := h.detectScheduled()
			h.detectCompleted(ours, "rev2")
			h.upsert("Progressing", "rev2")
			h.signal("", "ci-3")
			newer := h.detectScheduled()
			h.detectCompleted(newer, "rev3")
			h.upsert("", "rev3")
		}, exitSuperseded, "superseded: revision rev2 was replaced by revision rev3 before its analysis ended (revision by ci-3); " +
			"the rollout goes on with rev3 (starter status shows where it is)"},
		{"the target going back to the primary's revision supersedes ours too", func(h *history) {
			h.signal("ours", "ci-2")
			ours := h.detectScheduled()
			h.detectCompleted(ours, "rev2")
			h.upsert("Progressing", "rev2")
			h.signal("", "ci-revert")
			revert := h.detectScheduled()
			h.detectCompleted(revert, "rev1")
			h.upsert("Initialized", "rev1")
		}, exitSuperseded, "superseded: revision rev2 was replaced by revision rev1 before its analysis ended (revision by ci-revert); " +
			"that is the primary's revision, so the rollout ended with no new run"},
		{"promoted, then a newer revision's release continues as new", func(h *history) {
			h.signal("ours", "ci-2")
			ours := h.detectScheduled()
			h.detectCompleted(ours, "rev2")
			h.upsert("Progressing", "rev2")
			h.upsert("Succeeded", "")
			h.signal("", "ci-3")
			newer := h.detectScheduled()
			h.detectCompleted(newer, "rev3")
			h.continuedAsNew(workflows.RolloutInput{})
		}, exitOK, "promoted revision rev2; run next-run goes on with a newer revision"},
		{"our signal starts the next release while the run finishes", func(h *history) {
			h.upsert("Progressing", "rev2")
			h.upsert("Succeeded", "")
			h.signal("ours", "ci-3")
			ours := h.detectScheduled()
			h.detectCompleted(ours, "rev3")
			h.continuedAsNew(workflows.RolloutInput{})
		}, -1, ""},
		{"a continue-as-new for history's length carries on", func(h *history) {
			h.signal("ours", "ci-2")
			ours := h.detectScheduled()
			h.detectCompleted(ours, "rev2")
			h.upsert("Progressing", "rev2")
			h.continuedAsNew(workflows.RolloutInput{Status: &workflows.Status{Phase: workflows.PhaseProgressing}})
		}, -1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &history{t: t}
			tc.events(h)
			s := newSupersession("ours")
			var text string
			var end *runEnd
			for _, ev := range h.events {
				if text, end = s.see(ev); end != nil {
					break
				}
			}
			if tc.wantCode < 0 {
				require.Nil(t, end, text)
				return
			}
			require.NotNil(t, end)
			require.Equal(t, tc.wantCode, end.code)
			require.Equal(t, tc.wantText, text)
		})
	}
}
