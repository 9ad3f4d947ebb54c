package main

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/workflows"
)

// On a real dev server: the worker finds CanaryChecks where it is registered (the lab registers canaryflow's
// attributes) and not in a namespace without it; a rollout whose worker found it writes its metric values there,
// with no memo update, and the canary metrics read them back from visibility.
func TestMetricValuesGoInCanaryChecksWhereTheNamespaceHasIt(t *testing.T) {
	ctx := t.Context()
	srv, err := labbin.DevServer(ctx, quietSDKLogger{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	tc := srv.Client()
	log := zap.NewNop()

	require.True(t, checksAttribute(ctx, tc, "default", log), "registered by the lab")
	_, err = tc.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: "bare", WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour)})
	require.NoError(t, err)
	require.Eventually(t, func() bool { // a new namespace reaches every service's cache within seconds
		resp, err := tc.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "bare"})
		return err == nil && resp.GetSystemAttributes() != nil
	}, 30*time.Second, 200*time.Millisecond)
	require.False(t, checksAttribute(ctx, tc, "bare", log), "a namespace without it")

	cluster := activitiestest.NewCluster()
	cluster.ChecksAttribute = true
	const queue = "canaryflow-checksattr-test"
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(cluster.Activities())
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	set, err := v1beta1.Load(strings.NewReader(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: checked, namespace: metrics}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: checked}
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
`), "checked", v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
	require.NoError(t, err)
	c := set.Canaries()[0]
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: c.WorkflowID(), TaskQueue: queue},
		workflows.WorkflowName, workflows.RolloutInput{Canary: *c})
	require.NoError(t, err)
	var res workflows.RolloutResult
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, workflows.PhaseSucceeded, res.Phase)

	upserts, memos := 0, 0
	it := tc.GetWorkflowHistory(ctx, c.WorkflowID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if _, ok := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()["CanaryChecks"]; ok {
			upserts++
		}
		if _, ok := ev.GetWorkflowPropertiesModifiedEventAttributes().GetUpsertedMemo().GetFields()["lastChecks"]; ok {
			memos++
		}
	}
	assert.Positive(t, upserts, "the values went in CanaryChecks")
	assert.Zero(t, memos, "and not in the memo")

	reg := prometheus.NewRegistry()
	reg.MustRegister(&canaryMetrics{list: tc.ListWorkflow, ns: "default", refresh: 0})
	require.EventuallyWithT(t, func(ct *assert.CollectT) { // visibility is eventually consistent
		assert.NoError(ct, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP canaryflow_canary_metric_analysis Last value of each metric check of a canary.
# TYPE canaryflow_canary_metric_analysis gauge
canaryflow_canary_metric_analysis{metric="request-success-rate",name="checked",namespace="metrics"} 99.5
`), "canaryflow_canary_metric_analysis")) // the Cluster's success rate
	}, 30*time.Second, 250*time.Millisecond)
}
