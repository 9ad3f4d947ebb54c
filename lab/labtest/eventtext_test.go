package labtest

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
)

// The secret scan's view of an event holds every place a value can hide in it: a payload's data (and its base64,
// as the event's JSON shows it), a map's keys and values (memo, headers), a failure's message and its causes.
func TestEventTextHoldsEveryStringAndBytesOfAnEvent(t *testing.T) {
	key := []byte("k3Y-as-BYTES-77")
	started := &historypb.HistoryEvent{EventId: 1, Attributes: &historypb.HistoryEvent_WorkflowExecutionStartedEventAttributes{
		WorkflowExecutionStartedEventAttributes: &historypb.WorkflowExecutionStartedEventAttributes{
			Input: &commonpb.Payloads{Payloads: []*commonpb.Payload{{
				Metadata: map[string][]byte{"encoding": []byte("json/plain")},
				Data:     []byte(`{"Note":"token tok-9fQ2-SECRET-value","Bytes":"` + base64.StdEncoding.EncodeToString(key) + `"}`),
			}}},
			Memo:   &commonpb.Memo{Fields: map[string]*commonpb.Payload{"Memo-Key-77x": {Data: []byte(`"memo-Value-88y"`)}}},
			Header: &commonpb.Header{Fields: map[string]*commonpb.Payload{"auth": {Data: []byte("Bearer HDR-tok-55z")}}},
		}}}
	failed := &historypb.HistoryEvent{EventId: 7, Attributes: &historypb.HistoryEvent_ActivityTaskFailedEventAttributes{
		ActivityTaskFailedEventAttributes: &historypb.ActivityTaskFailedEventAttributes{Failure: &failurepb.Failure{
			Message: "webhook failed",
			Cause:   &failurepb.Failure{Message: "POST https://hooks.example/T0/B0/XyZ-Hook-Token-12: 500"},
		}},
	}}

	text := eventText(started)
	for _, want := range []string{"tok-9fQ2-SECRET-value", base64.StdEncoding.EncodeToString(key), "Memo-Key-77x",
		"memo-Value-88y", "Bearer HDR-tok-55z"} {
		assert.Contains(t, text, want)
	}
	data := started.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0].GetData()
	assert.Contains(t, text, base64.StdEncoding.EncodeToString(data), "the payload as its JSON shows it")
	assert.True(t, strings.Contains(eventText(failed), "XyZ-Hook-Token-12"), "a failure's cause")
}
