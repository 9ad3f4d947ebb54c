package rolloutclient_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/rolloutclient"
)

// A release of a canary with no open rollout starts one; a second release while it runs signals the same run;
// a release rolled back makes the next release carry its revision as the failed one (the workflow then refuses
// to analyse it again unchanged), and a promoted one does not.
func TestReleaseStartsOrSignalsAndLatestAppliesTheFailedRevisionRule(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv, err := labbin.DevServer(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	tc := srv.Client()
	const queue = "rolloutclient-test"
	cluster := activitiestest.NewCluster()
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(cluster.Activities())
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	rc := rolloutclient.Client{Temporal: tc, TaskQueue: queue}

	canary := func(name string) v1beta1.Canary {
		set, err := v1beta1.Load(strings.NewReader(fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: %s, namespace: rc}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  service: {port: 9898}
  analysis:
    interval: 2s
    threshold: 1
    maxWeight: 20
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1m
`, name, name)), name, v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
		require.NoError(t, err)
		return *set.Canaries()[0]
	}

	for _, tc := range []struct {
		name        string
		successRate float64
		phase       workflows.Phase
		failed      string
	}{
		{"promoted", 99.9, workflows.PhaseSucceeded, ""},
		{"rolled-back", 50, workflows.PhaseFailed, "rev2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := canary(tc.name)
			open, failed, err := rc.Latest(ctx, c.WorkflowID())
			require.NoError(t, err)
			require.Empty(t, open+failed, "a canary that never ran has no open run and no failed revision")
			cluster.Set("rc", tc.name, func(s *activitiestest.Canary) { s.SuccessRate = tc.successRate })

			run, err := rc.Release(ctx, workflows.RolloutInput{Canary: c}, workflows.ActionSignal{By: "test"})
			require.NoError(t, err)
			again, err := rc.Release(ctx, workflows.RolloutInput{Canary: c}, workflows.ActionSignal{By: "test"})
			require.NoError(t, err)
			require.Equal(t, run.GetRunID(), again.GetRunID(), "a release while a rollout is open signals it, never starts a second")
			open, _, err = rc.Latest(ctx, c.WorkflowID())
			require.NoError(t, err)
			require.Equal(t, run.GetRunID(), open, "the open run is the one started (each step waits 2 s, so it is still open)")

			var res workflows.RolloutResult
			require.NoError(t, run.Get(ctx, &res))
			require.Equal(t, tc.phase, res.Phase, res.Reason)
			read, err := rc.Result(ctx, c.WorkflowID(), run.GetRunID())
			require.NoError(t, err)
			require.Equal(t, res.Phase, read.Phase, "Result reads what the run returned")

			open, failed, err = rc.Latest(ctx, c.WorkflowID())
			require.NoError(t, err)
			require.Empty(t, open, "the run is closed")
			require.Equal(t, tc.failed, failed)
		})
	}
}
