package main

import (
	"fmt"

	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
)

// payloadLimit is the largest encoded workflow input, and signal input, Temporal accepts: the server's default
// limit.blobSize.error, 2 MiB, which is also Temporal Cloud's payload limit (it warns from 512 KiB). The server
// measures the encoded payloads of a request and refuses a larger one ("Blob data size exceeds limit."): no
// rollout starts. A self-hosted server may raise its limit; the starter keeps to the default every server has.
const payloadLimit = 2 << 20

// checkPayloads encodes the rollout's workflow input and its revision signal as the client will send them and
// refuses, as bad input that changed nothing, what Temporal would refuse.
func checkPayloads(dc converter.DataConverter, c *v1beta1.Canary, input workflows.RolloutInput, sig workflows.ActionSignal) error {
	for _, p := range []struct {
		what, fix string
		v         any
	}{
		{"the rollout input (the Canary, its MetricTemplates and AlertProviders)", "webhook metadata and MetricTemplate queries are the usual bulk", input},
		{"the revision signal", "shorten --reason", sig},
	} {
		ps, err := dc.ToPayloads(p.v)
		if err != nil {
			return &exitError{code: exitBadInput, err: fmt.Errorf("rollout of %s/%s: %s cannot be encoded for Temporal: %w (nothing was changed)",
				c.Namespace, c.Name, p.what, err)}
		}
		if size := proto.Size(ps); size > payloadLimit {
			return &exitError{code: exitBadInput, err: fmt.Errorf(
				"rollout of %s/%s: %s is %d bytes encoded, over Temporal's payload limit of 2 MiB (%d bytes, limit.blobSize.error; "+
					"Temporal Cloud's too), so Temporal would refuse it: nothing was changed; make it smaller (%s)",
				c.Namespace, c.Name, p.what, size, payloadLimit, p.fix)}
		}
	}
	return nil
}
