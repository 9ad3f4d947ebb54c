package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// testTaskQueue keeps the in-test worker apart from any other worker of the dev server.
const testTaskQueue = "canaryflow-starter-test"

// temporalEnv is one real Temporal dev server (the lab's temporal binary, our search attributes registered) with
// a worker running the real CanaryRollout against fakeCluster, shared by the tests of this package.
type temporalEnv struct {
	addr    string
	client  client.Client
	cluster *fakeCluster
}

var (
	envOnce sync.Once
	env     *temporalEnv
	envErr  error
	envStop []func()
)

func TestMain(m *testing.M) {
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
	bin := labtest.TemporalBinary()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("the lab's temporal binary is needed (make lab-build): %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	var args []string
	for _, d := range searchattr.Definitions() {
		args = append(args, "--search-attribute", d.Name+"="+d.Type.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  bin,
		ClientOptions: &client.Options{HostPort: addr, Namespace: "default", Logger: quietLogger{}},
		LogLevel:      "error",
		ExtraArgs:     args,
		Stdout:        io.Discard,
	})
	if err != nil {
		return nil, fmt.Errorf("start the dev server: %w", err)
	}
	envStop = append(envStop, func() { _ = srv.Stop() })
	c := srv.Client()
	cluster := newFakeCluster()
	w := worker.New(c, testTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(cluster)
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

// fakeCluster stands in for Kubernetes, the router and the metrics backend: it records the weights each canary
// was given and answers metric checks with a success rate a test sets. A canary it does not know has a primary
// at rev1 and a target at rev2 (a release to analyse) and a success rate of 99.5.
type fakeCluster struct {
	mu       sync.Mutex
	canaries map[string]*fakeCanary
}

type fakeCanary struct {
	target, primary string
	successRate     float64
	closedGates     map[v1beta1.HookType]bool
	routes          []string
}

func newFakeCluster() *fakeCluster { return &fakeCluster{canaries: map[string]*fakeCanary{}} }

// canary returns the state of ns/name, creating the default one; callers hold mu.
func (f *fakeCluster) canary(ns, name string) *fakeCanary {
	k := ns + "/" + name
	c, ok := f.canaries[k]
	if !ok {
		c = &fakeCanary{target: "rev2", primary: "rev1", successRate: 99.5, closedGates: map[v1beta1.HookType]bool{}}
		f.canaries[k] = c
	}
	return c
}

func (f *fakeCluster) set(ns, name string, fn func(c *fakeCanary)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.canary(ns, name))
}

func (f *fakeCluster) get(ns, name string) fakeCanary {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *f.canary(ns, name)
	c.routes = append([]string(nil), c.routes...)
	return c
}

func (f *fakeCluster) DetectRevision(_ context.Context, in activities.WorkloadInput) (activities.RevisionResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.canary(in.Canary.Namespace, in.Canary.Name)
	return activities.RevisionResult{TargetRevision: c.target, PrimaryRevision: c.primary,
		PrimaryExists: c.primary != "", Changed: c.primary != "" && c.primary != c.target}, nil
}

func (f *fakeCluster) InitializeWorkloads(_ context.Context, in activities.WorkloadInput) (activities.ActionResult, error) {
	f.set(in.Canary.Namespace, in.Canary.Name, func(c *fakeCanary) { c.primary = c.target })
	return activities.ActionResult{}, nil
}

func (f *fakeCluster) ScaleCanary(context.Context, activities.ScaleInput) (activities.ActionResult, error) {
	return activities.ActionResult{}, nil
}

func (f *fakeCluster) CheckReady(context.Context, activities.ReadyInput) (activities.ReadyResult, error) {
	return activities.ReadyResult{Ready: true}, nil
}

func (f *fakeCluster) Promote(_ context.Context, in activities.WorkloadInput) (activities.ActionResult, error) {
	f.set(in.Canary.Namespace, in.Canary.Name, func(c *fakeCanary) { c.primary = c.target })
	return activities.ActionResult{}, nil
}

func (f *fakeCluster) FinalizeWorkloads(context.Context, activities.WorkloadInput) (activities.ActionResult, error) {
	return activities.ActionResult{}, nil
}

func (f *fakeCluster) ReconcileRouter(context.Context, activities.RouterInput) (activities.ActionResult, error) {
	return activities.ActionResult{}, nil
}

func (f *fakeCluster) SetRoutes(_ context.Context, in activities.RoutesInput) (activities.ActionResult, error) {
	f.set(in.Canary.Namespace, in.Canary.Name, func(c *fakeCanary) {
		c.routes = append(c.routes, fmt.Sprintf("%d/%d", in.PrimaryWeight, in.CanaryWeight))
	})
	return activities.ActionResult{}, nil
}

func (f *fakeCluster) FinalizeRouter(context.Context, activities.RouterInput) (activities.ActionResult, error) {
	return activities.ActionResult{}, nil
}

func (f *fakeCluster) RunMetricChecks(_ context.Context, in activities.MetricChecksInput) (activities.MetricChecksResult, error) {
	rate := f.get(in.Canary.Namespace, in.Canary.Name).successRate
	var out activities.MetricChecksResult
	for _, m := range in.Metrics {
		v := rate
		r := activities.CheckResult{Metric: m.Name, Value: &v, Verdict: activities.VerdictPass}
		if m.ThresholdRange != nil {
			r.Min, r.Max = m.ThresholdRange.Min, m.ThresholdRange.Max
		}
		if (r.Min != nil && v < *r.Min) || (r.Max != nil && v > *r.Max) {
			r.Verdict = activities.VerdictFail
		}
		out.Results = append(out.Results, r)
	}
	return out, nil
}

func (f *fakeCluster) CallWebhook(_ context.Context, in activities.WebhookInput) (activities.WebhookResult, error) {
	c := f.get(in.Payload.Namespace, in.Payload.Name)
	res := activities.WebhookResult{Name: in.Hook.Name, Type: in.Hook.Type, Passed: true, StatusCode: 200, Attempts: 1}
	if in.Hook.Type == v1beta1.RollbackHook || c.closedGates[in.Hook.Type] {
		res.Passed, res.StatusCode, res.Reason = false, 403, "gate closed"
	}
	return res, nil
}

func (f *fakeCluster) SendAlerts(context.Context, activities.AlertInput) (activities.AlertResult, error) {
	return activities.AlertResult{}, nil
}
