package main

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
)

// Every query of the shipped Grafana dashboard names metrics the worker really exports, so no panel stays empty.
func TestGrafanaDashboardQueriesMetricsTheWorkerExports(t *testing.T) {
	data, err := os.ReadFile("../deploy/grafana/canaryflow-dashboard.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &dash))
	require.NotEmpty(t, dash.Panels)

	// What a worker exports after one rollout and one activity.
	t0 := time.Now().Add(-time.Hour)
	execs := []*workflowpb.WorkflowExecutionInfo{
		execution(t, "canary/test/a", "a", "Succeeded", 0, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, t0),
		execution(t, "canary/test/b", "b", "Failed", 0, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, t0),
	}
	list := func(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
		return &workflowservice.ListWorkflowExecutionsResponse{Executions: execs}, nil
	}
	sdk := newSDKMetrics()
	sdk.Handler().WithTags(map[string]string{"activity_type": "SetRoutes"}).Timer("temporal_activity_execution_latency").Record(time.Millisecond)
	kubeReqs := newKubeRequests()
	kubeReqs.total.WithLabelValues("GET", "200", "SetRoutes").Inc()
	reg := prometheus.NewRegistry()
	reg.MustRegister(sdk, &canaryMetrics{list: list, ns: "default", refresh: time.Minute}, kubeReqs.total)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	exported := map[string]bool{}
	for _, mf := range mfs {
		exported[mf.GetName()] = true
		if mf.GetType().String() == "HISTOGRAM" {
			exported[mf.GetName()+"_bucket"] = true
		}
	}
	metricName := regexp.MustCompile(`\b(canaryflow_[a-z_]+|temporal_[a-z_]+)`)
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, target := range p.Targets {
			names := metricName.FindAllString(target.Expr, -1)
			require.NotEmpty(t, names, "panel %q queries no canaryflow or Temporal metric: %s", p.Title, target.Expr)
			for _, n := range names {
				require.True(t, exported[n], "panel %q queries %s, which the worker does not export", p.Title, n)
			}
		}
	}
}
