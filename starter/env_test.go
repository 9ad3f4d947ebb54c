package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/workflows"
)

// testTaskQueue keeps the in-test worker apart from any other worker of the dev server.
const testTaskQueue = "canaryflow-starter-test"

// temporalEnv is one real Temporal dev server (the lab's temporal binary, our search attributes registered) with
// a worker running the real CanaryRollout against activitiestest.Cluster, shared by the tests of this package.
type temporalEnv struct {
	addr    string
	client  client.Client
	cluster *activitiestest.Cluster
}

var (
	envOnce sync.Once
	env     *temporalEnv
	envErr  error
	envStop []func()
)

func TestMain(m *testing.M) {
	// The tests name their server with flags; Temporal's own settings of the machine running them (a
	// TEMPORAL_NAMESPACE, a profile in ~/.config/temporalio) would otherwise fill the rest.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "TEMPORAL_") {
			_ = os.Unsetenv(name)
		}
	}
	_ = os.Setenv("TEMPORAL_CONFIG_FILE", filepath.Join(os.TempDir(), "canaryflow-starter-test-no-temporal.toml"))
	code := m.Run()
	for i := len(envStop) - 1; i >= 0; i-- {
		envStop[i]()
	}
	os.Exit(code)
}

func startTemporal(t *testing.T) *temporalEnv {
	t.Helper()
	envOnce.Do(func() { env, envErr = newTemporalEnv() })
	require.NoError(t, envErr)
	return env
}

func newTemporalEnv() (*temporalEnv, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := labbin.DevServer(ctx, quietLogger{})
	if err != nil {
		return nil, err
	}
	addr := srv.FrontendHostPort()
	envStop = append(envStop, func() { _ = srv.Stop() })
	c := srv.Client()
	cluster := activitiestest.NewCluster()
	w := worker.New(c, testTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterWorkflowWithOptions(workflows.CanaryFinalize, workflow.RegisterOptions{Name: workflows.FinalizeWorkflowName})
	w.RegisterActivity(cluster.Activities())
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start the worker: %w", err)
	}
	envStop = append(envStop, w.Stop)
	return &temporalEnv{addr: addr, client: c, cluster: cluster}, nil
}

// starter runs the CLI in process against the dev server and the test task queue.
func (e *temporalEnv) starter(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = e.starterTo(&out, &errb, args...)
	return code, out.String(), errb.String()
}

func (e *temporalEnv) starterTo(out, errOut interface{ Write([]byte) (int, error) }, args ...string) int {
	full := append([]string{"--temporal-address", e.addr, "--task-queue", testTaskQueue}, args...)
	return run(full, strings.NewReader(""), out, errOut)
}

// background runs the CLI in a goroutine; wait returns its exit code and output.
func (e *temporalEnv) background(args ...string) (wait func() (int, string, string), out *syncBuffer) {
	out = &syncBuffer{}
	errb := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- e.starterTo(out, errb, args...) }()
	return func() (int, string, string) {
		select {
		case code := <-done:
			return code, out.String(), errb.String()
		case <-time.After(2 * time.Minute):
			return -1, out.String(), errb.String() + "\n(test: the command did not end within 2m)"
		}
	}, out
}

// status reads `status -o json` of a canary.
func (e *temporalEnv) status(t *testing.T, ns, name string) canaryStatus {
	t.Helper()
	code, out, errOut := e.starter("status", name, "-n", ns, "-o", "json")
	require.Equal(t, 0, code, errOut)
	var cs canaryStatus
	require.NoError(t, jsonUnmarshal(out, &cs), out)
	return cs
}

// eventuallyStatus waits until the canary's status satisfies ok (a condition, never a fixed sleep).
func (e *temporalEnv) eventuallyStatus(t *testing.T, ns, name string, ok func(workflows.Status) bool, what string) workflows.Status {
	t.Helper()
	var last workflows.Status
	require.Eventually(t, func() bool {
		code, out, _ := e.starter("status", name, "-n", ns, "-o", "json")
		if code != 0 {
			return false
		}
		var cs canaryStatus
		if jsonUnmarshal(out, &cs) != nil {
			return false
		}
		last = cs.Status
		return ok(cs.Status)
	}, 90*time.Second, 200*time.Millisecond, "waiting for %s of %s/%s; last status %+v", what, ns, name, last)
	return last
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// canaryFile writes a Canary (traefik, 10 s interval, one success-rate check) to a temp file. extraAnalysis is
// indented YAML appended under spec.analysis.
func canaryFile(t *testing.T, ns, name, weights, extraAnalysis string) string {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: %s, namespace: %s}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  service: {port: 9898}
  analysis:
    interval: 10s
    threshold: 1
    %s
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1m
%s`, name, ns, name, weights, extraAnalysis)
	p := filepath.Join(t.TempDir(), name+".yaml")
	require.NoError(t, os.WriteFile(p, []byte(doc), 0o600))
	return p
}
