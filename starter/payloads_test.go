package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
)

// The starter measures a rollout's input as the server does: a real dev server accepts an input of exactly
// payloadLimit bytes encoded and refuses one byte more, and the starter refuses that one itself.
func TestPayloadLimitIsWhereTheServerRefuses(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	dc := converter.GetDefaultDataConverter()
	c := v1beta1.Canary{}
	c.Name, c.Namespace = "payload-limit", "test"
	// sized returns an input whose webhook metadata makes it exactly size bytes encoded.
	sized := func(size int) workflows.RolloutInput {
		t.Helper()
		n := 0
		for range 5 { // the length prefixes grow with the data: converge
			md := map[string]string{"blob": strings.Repeat("x", n)}
			in := c
			in.Spec.Analysis = &v1beta1.CanaryAnalysis{Webhooks: []v1beta1.CanaryWebhook{{Name: "load", Metadata: &md}}}
			input := workflows.RolloutInput{Canary: in}
			ps, err := dc.ToPayloads(input)
			require.NoError(t, err)
			got := proto.Size(ps)
			if got == size {
				return input
			}
			n += size - got
		}
		t.Fatalf("no input of exactly %d bytes", size)
		return workflows.RolloutInput{}
	}
	sig := workflows.ActionSignal{By: "ci"}
	start := func(input workflows.RolloutInput) error {
		// A task queue no worker polls: only the server's acceptance matters here.
		opts := client.StartWorkflowOptions{ID: c.WorkflowID(), TaskQueue: "canaryflow-starter-test-nobody"}
		_, err := e.client.SignalWithStartWorkflow(t.Context(), c.WorkflowID(), workflows.SignalRevision, sig, opts, workflows.WorkflowName, input)
		return err
	}

	at, over := sized(payloadLimit), sized(payloadLimit+1)

	require.NoError(t, checkPayloads(dc, &c, at, sig))
	require.NoError(t, start(at), "the server accepts an input of exactly the limit")
	require.NoError(t, e.client.TerminateWorkflow(t.Context(), c.WorkflowID(), "", "test cleanup"))
	err := checkPayloads(dc, &c, over, sig)
	var ee *exitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, exitBadInput, ee.code)
	assert.Contains(t, err.Error(), "is 2097153 bytes encoded, over Temporal's payload limit of 2 MiB (2097152 bytes")
	assert.ErrorContains(t, start(over), "Blob data size exceeds limit", "the server refuses one byte more")
}
