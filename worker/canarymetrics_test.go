package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
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

	// Read only once visibility holds the three runs closed, so that the first (full) read sees them.
	require.Eventually(t, func() bool {
		n, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{
			Namespace: "default", Query: "ExecutionStatus != 'Running'"})
		return err == nil && n.GetCount() == 3
	}, 30*time.Second, 100*time.Millisecond, "three closed runs in visibility")

	lists := &listRecorder{list: tc.ListWorkflow}
	const lag = 2 * time.Second
	reg := prometheus.NewRegistry()
	reg.MustRegister(&canaryMetrics{list: lists.call, ns: "default", refresh: 0, fullEvery: time.Hour, closedLag: lag})
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

	// A release of another canary (one step of at least the 10 s interval) while the metrics are read: the reads
	// after the first list only what runs and what closed lately, and the snapshot still holds the runs of the
	// first list.
	cluster.Set("metrics", "later", func(*activitiestest.Canary) {})
	done := make(chan workflows.RolloutResult, 1)
	go func() { done <- rollout("later") }()
	var promoted workflows.RolloutResult
	for waiting := true; waiting; {
		select {
		case promoted = <-done:
			waiting = false
		case <-time.After(250 * time.Millisecond):
			_, err := testutil.GatherAndCount(reg, names...)
			require.NoError(t, err)
		}
	}
	require.Equal(t, workflows.PhaseSucceeded, promoted.Phase)
	want = strings.Replace(want, `{namespace="metrics"} 2`, `{namespace="metrics"} 3`, 1) + `
# HELP canaryflow_canary_successes_total Rollouts promoted, by strategy.
# TYPE canaryflow_canary_successes_total counter
canaryflow_canary_successes_total{deployment_strategy="canary",name="later",namespace="metrics"} 1
`
	want = strings.Replace(want, `canaryflow_canary_status{name="fresh",namespace="metrics"} 1
`, `canaryflow_canary_status{name="fresh",namespace="metrics"} 1
canaryflow_canary_status{name="later",namespace="metrics"} 1
`, 1)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NoError(c, testutil.GatherAndCompare(reg, strings.NewReader(want), names...))
	}, 30*time.Second, 250*time.Millisecond, "the canary metrics after a release")

	calls := lists.calls()
	require.NotContains(t, calls[0].query, "ExecutionStatus", "the first read lists every run")
	require.Equal(t, []string{"canary/metrics/flipped", "canary/metrics/flipped", "canary/metrics/fresh"},
		calls[0].ids, "the first read lists every run")
	var late int
	for _, c := range calls[1:] {
		require.Contains(t, c.query, "ExecutionStatus = 'Running' OR CloseTime >=", "every later read lists only what runs or closed lately")
		if c.at.Sub(calls[0].at) > 2*lag {
			late++
			for _, id := range c.ids {
				require.Equal(t, "canary/metrics/later", id, "a read %s after the first lists a run closed before it", c.at.Sub(calls[0].at))
			}
		}
	}
	require.Positive(t, late, "reads more than %s after the first", 2*lag)
}

// listRecorder records what each list of visibility asked for and which workflow IDs came back.
type listRecorder struct {
	list func(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	mu   sync.Mutex
	log  []listCall
}

type listCall struct {
	at    time.Time
	query string
	ids   []string // sorted
}

func (l *listRecorder) call(ctx context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	c := listCall{at: time.Now(), query: req.GetQuery()}
	resp, err := l.list(ctx, req)
	for _, e := range resp.GetExecutions() {
		c.ids = append(c.ids, e.GetExecution().GetWorkflowId())
	}
	slices.Sort(c.ids)
	l.mu.Lock()
	l.log = append(l.log, c)
	l.mu.Unlock()
	return resp, err
}

func (l *listRecorder) calls() []listCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.log)
}
