package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/workflows"
)

// The canary metrics read the visibility of a real Temporal dev server (whose SQL visibility refuses ORDER BY, as
// Temporal Cloud does): a canary rolled back and then run again with nothing new counts one failure and is done
// (its newer run decides its status), a canary only initialised is done too.
func TestCanaryMetricsReadTheVisibilityOfARealDevServer(t *testing.T) {
	ctx := t.Context()
	srv, err := labbin.DevServer(ctx, quietSDKLogger{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	tc := srv.Client()
	cluster := activitiestest.NewCluster()
	const queue = "canaryflow-canarymetrics-test"
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(cluster.Activities())
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	rollout := func(name string) workflows.RolloutResult {
		t.Helper()
		set, err := v1beta1.Load(strings.NewReader(fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: %s, namespace: metrics}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  service: {port: 9898}
  analysis:
    interval: 10s
    threshold: 1
    stepWeight: 50
    maxWeight: 50
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1m
`, name, name)), name, v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
		require.NoError(t, err)
		c := set.Canaries()[0]
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: c.WorkflowID(), TaskQueue: queue},
			workflows.WorkflowName, workflows.RolloutInput{Canary: *c})
		require.NoError(t, err)
		var res workflows.RolloutResult
		require.NoError(t, run.Get(ctx, &res))
		return res
	}
	cluster.Set("metrics", "flipped", func(c *activitiestest.Canary) { c.SuccessRate = 10 })
	require.Equal(t, workflows.PhaseFailed, rollout("flipped").Phase)
	cluster.Set("metrics", "flipped", func(c *activitiestest.Canary) { c.Target = c.Primary })
	require.True(t, rollout("flipped").NoNewRun)
	cluster.Set("metrics", "fresh", func(c *activitiestest.Canary) { c.Primary = "" })
	require.Equal(t, workflows.PhaseInitialized, rollout("fresh").Phase)

	reg := prometheus.NewRegistry()
	reg.MustRegister(&canaryMetrics{list: tc.ListWorkflow, ns: "default", refresh: 0})
	want := `
# HELP canaryflow_visibility_up 1 when the last read of Temporal visibility succeeded.
# TYPE canaryflow_visibility_up gauge
canaryflow_visibility_up 1
# HELP canaryflow_canary_total Canaries known to canaryflow, by namespace.
# TYPE canaryflow_canary_total gauge
canaryflow_canary_total{namespace="metrics"} 2
# HELP canaryflow_canary_status Last rollout of a canary: 0 running, 1 done, 2 failed.
# TYPE canaryflow_canary_status gauge
canaryflow_canary_status{name="flipped",namespace="metrics"} 1
canaryflow_canary_status{name="fresh",namespace="metrics"} 1
# HELP canaryflow_canary_failures_total Rollouts that failed or were rolled back, by strategy.
# TYPE canaryflow_canary_failures_total counter
canaryflow_canary_failures_total{deployment_strategy="canary",name="flipped",namespace="metrics"} 1
`
	names := []string{"canaryflow_visibility_up", "canaryflow_canary_total", "canaryflow_canary_status",
		"canaryflow_canary_failures_total", "canaryflow_canary_successes_total"}
	require.EventuallyWithT(t, func(c *assert.CollectT) { // visibility is eventually consistent
		assert.NoError(c, testutil.GatherAndCompare(reg, strings.NewReader(want), names...))
	}, 30*time.Second, 250*time.Millisecond, "the worker's canary metrics")
}
