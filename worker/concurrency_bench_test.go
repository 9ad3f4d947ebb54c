package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canaryflow/canaryflow/workflows/rolloutclient"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/workflows"
)

// benchCanary is the seed scenario's analysis: 10 s interval, 10 % steps up to 50 %, one metric check and one
// rollout webhook per step.
const benchCanary = `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: %s, namespace: %s}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  service: {port: 9898}
  analysis:
    interval: 10s
    threshold: 5
    stepWeight: 10
    maxWeight: 50
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1m
    webhooks:
    - name: load-test
      type: rollout
      url: http://loadtester.test/
      metadata: {cmd: "hey -z 1m -q 10 -c 2 http://podinfo.test/"}
`

// BenchmarkConcurrentRollouts runs CANARYFLOW_BENCH_ROLLOUTS (default 1,000) rollouts at once through one worker
// with the production worker options and a private Temporal dev server, and reports how late their analysis
// steps ran. It measures orchestration alone (Temporal, the workflow, the worker): the activities are
// activitiestest's in-memory stand-ins that answer at once, because the lab (one kwok node, a /24 pod CIDR, a
// podinfo process per pod) cannot host the pods of 1,000 canaries. design.md §4 sets the target: 1,000 concurrent rollouts on time on one 2-core machine.
//
// Reported: step-p50-s, step-p99-s and step-max-s are the gaps between a canary's consecutive weight increases
// (ideal: the 10 s interval); late-steps-% the share of gaps over 11 s; rollout-p50-s and rollout-max-s the time
// from a rollout's start to its promotion; start-s the time to start them all.
func BenchmarkConcurrentRollouts(b *testing.B) {
	n := benchRollouts(b, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cluster := activitiestest.NewCluster()
	const queue = "canaryflow-bench"
	tc, stop := benchWorker(ctx, b, cluster, queue)
	defer stop()

	b.ResetTimer()
	for round := range b.N {
		r := runRound(ctx, b, tc, cluster, queue, fmt.Sprintf("bench-%d", round), n)
		b.ReportMetric(r.start.Seconds(), "start-s")
		b.ReportMetric(quantile(r.gaps, 0.50), "step-p50-s")
		b.ReportMetric(quantile(r.gaps, 0.99), "step-p99-s")
		b.ReportMetric(quantile(r.gaps, 1), "step-max-s")
		late := 0
		for _, g := range r.gaps {
			if g > 11 {
				late++
			}
		}
		b.ReportMetric(100*float64(late)/float64(len(r.gaps)), "late-steps-%")
		b.ReportMetric(quantile(r.durations, 0.50), "rollout-p50-s")
		b.ReportMetric(quantile(r.durations, 1), "rollout-max-s")
		b.ReportMetric(float64(n), "rollouts")
	}
}

type roundResult struct {
	start     time.Duration
	gaps      []float64 // seconds between consecutive weight increases of a canary
	durations []float64 // seconds from start to promotion
}

// runRound starts n rollouts as the starter does (signal-with-start), waits for every one to end, and checks that
// each was promoted through 10, 20, …, 50 %.
func runRound(ctx context.Context, b *testing.B, tc client.Client, cluster *activitiestest.Cluster, queue, ns string, n int) roundResult {
	var res roundResult
	begin := time.Now()
	runs, started := releaseAll(ctx, b, tc, queue, benchCanary, ns, n, nil)
	res.start = time.Since(begin)
	errs := make([]error, n)
	var wg sync.WaitGroup
	results := make([]workflows.RolloutResult, n)
	ended := make([]time.Time, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = runs[i].Get(ctx, &results[i])
			ended[i] = time.Now()
		}()
	}
	wg.Wait()
	want := []string{"90/10", "80/20", "70/30", "60/40", "50/50", "100/0"}
	for i := range n {
		name := fmt.Sprintf("app-%04d", i)
		if errs[i] != nil || !results[i].Promoted {
			b.Fatalf("rollout %s/%s: promoted %v, error %v, result %+v", ns, name, results[i].Promoted, errs[i], results[i])
		}
		c := cluster.Get(ns, name)
		if !slices.Equal(c.Routes, want) {
			b.Fatalf("rollout %s/%s set the routes %v, want %v", ns, name, c.Routes, want)
		}
		for j := 1; j < 5; j++ { // gaps between the five weight increases
			res.gaps = append(res.gaps, c.RouteTimes[j].Sub(c.RouteTimes[j-1]).Seconds())
		}
		res.durations = append(res.durations, ended[i].Sub(started[i]).Seconds())
	}
	return res
}

// benchRollouts is CANARYFLOW_BENCH_ROLLOUTS, or def when it is not set.
func benchRollouts(b *testing.B, def int) int {
	v := os.Getenv("CANARYFLOW_BENCH_ROLLOUTS")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("CANARYFLOW_BENCH_ROLLOUTS=%q: want a positive number of rollouts", v)
	}
	return n
}

// benchWorker starts a private Temporal dev server and one worker on queue with the worker binary's options (its
// flags' defaults and CANARYFLOW_* variables), running the workflow with cluster's stand-in activities. stop ends
// both.
func benchWorker(ctx context.Context, b *testing.B, cluster *activitiestest.Cluster, queue string) (client.Client, func()) {
	srv, err := labbin.DevServer(ctx, quietSDKLogger{})
	if err != nil {
		b.Fatal(err)
	}
	tc := srv.Client()
	cfg, err := parseConfig(nil)
	if err != nil {
		_ = srv.Stop()
		b.Fatal(err)
	}
	w := worker.New(tc, queue, cfg.workerOptions())
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(cluster.Activities())
	if err := w.Start(); err != nil {
		_ = srv.Stop()
		b.Fatal(err)
	}
	return tc, func() { w.Stop(); _ = srv.Stop() }
}

// releaseAll releases n canaries app-0000… of namespace ns from spec (a Canary with %s for its name, namespace and
// target), 32 at a time, as the starter does (signal-with-start), calling prepare (when not nil) with each name
// first. It returns their runs and when each was released.
func releaseAll(ctx context.Context, b *testing.B, tc client.Client, queue, spec, ns string, n int, prepare func(name string)) ([]client.WorkflowRun, []time.Time) {
	started := make([]time.Time, n)
	runs := make([]client.WorkflowRun, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		name := fmt.Sprintf("app-%04d", i)
		set, err := v1beta1.Load(strings.NewReader(fmt.Sprintf(spec, name, ns, name)), "bench", v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
		if err != nil {
			b.Fatal(err)
		}
		c := set.Canaries()[0]
		if prepare != nil {
			prepare(name)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			started[i] = time.Now()
			runs[i], errs[i] = rolloutclient.Client{Temporal: tc, TaskQueue: queue}.Release(ctx, workflows.RolloutInput{Canary: *c}, workflows.ActionSignal{By: "bench"})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			b.Fatalf("release app-%04d of %s: %v", i, ns, err)
		}
	}
	return runs, started
}

// quantile returns the q-quantile (0…1) of xs by the nearest-rank method.
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	k := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(k, len(s)-1))]
}

// quietSDKLogger drops the SDK's logs so the benchmark prints only its figures.
type quietSDKLogger struct{}

func (quietSDKLogger) Debug(string, ...any) {}
func (quietSDKLogger) Info(string, ...any)  {}
func (quietSDKLogger) Warn(string, ...any)  {}
func (quietSDKLogger) Error(string, ...any) {}
