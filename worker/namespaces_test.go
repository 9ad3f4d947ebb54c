package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"
	"k8s.io/client-go/rest"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/workflows"
)

func TestConfigReadsNamespacesAndRefusesNamesThatAreNotNamespaces(t *testing.T) {
	t.Setenv("CANARYFLOW_NAMESPACES", "team-a, team-b,")
	cfg, err := parseConfig(nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"team-a", "team-b"}, cfg.namespaces)

	_, err = parseConfig([]string{"--namespaces", "team-a,Team_B"})
	require.ErrorContains(t, err, `--namespaces: "Team_B" is not a namespace name`)
}

// A worker started with CANARYFLOW_NAMESPACES, wired as main wires it, refuses a Canary of another namespace at the
// first activity of its run, naming the namespace, without a single request to Kubernetes: its API server here is
// an address where nothing listens, so any read or write would have failed differently (and been retried).
func TestNamespacedWorkerRefusesACanaryOfAForeignNamespaceNamingIt(t *testing.T) {
	ctx := t.Context()
	srv, err := labbin.DevServer(ctx, quietSDKLogger{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	t.Setenv("CANARYFLOW_NAMESPACES", "team-a,team-b")
	cfg, err := parseConfig([]string{"--task-queue", "canaryflow-namespaces-test"})
	require.NoError(t, err)
	deps, err := newDependencies(cfg, &rest.Config{Host: "https://127.0.0.1:1", Timeout: time.Second}, zap.NewNop())
	require.NoError(t, err)
	w := worker.New(srv.Client(), cfg.taskQueue, cfg.workerOptions())
	register(w, deps)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	set, err := v1beta1.Load(strings.NewReader(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: team-c}
spec:
  provider: kubernetes
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 10s, iterations: 2, threshold: 1}
`), "podinfo.yaml", v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
	require.NoError(t, err)
	c := set.Canaries()[0]
	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	run, err := srv.Client().ExecuteWorkflow(runCtx, client.StartWorkflowOptions{ID: c.WorkflowID(), TaskQueue: cfg.taskQueue},
		workflows.WorkflowName, workflows.RolloutInput{Canary: *c})
	require.NoError(t, err)
	err = run.Get(runCtx, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `this worker runs Canaries only in namespaces team-a, team-b (CANARYFLOW_NAMESPACES), not podinfo.team-c in namespace "team-c"; nothing was changed`)
	assert.NotContains(t, err.Error(), "127.0.0.1:1", "nothing was asked of Kubernetes")
}
