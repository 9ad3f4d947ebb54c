//go:build lab

// Package scale measures many concurrent rollouts through the real worker binary (one or several processes) on
// real Kubernetes: the scale lab of lab/scale.sh (kwok nodes, pods Ready through kwok alone, no Traefik process,
// no Prometheus) with Temporal's dev server or its production server on PostgreSQL. make bench-scale runs it.
package scale

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/rolloutclient"
)

// scaleCanary is the benchmark's analysis: 10 s interval, 10 % steps up to 50 % (five steps), one metric check
// per step, routed by the Gateway API (HTTPRoute v1beta1 on the lab Gateway: the router Flagger v1.36.1 and
// canaryflow both write with the lab's CRDs; no gateway process reads them in the scale lab).
const scaleCanary = `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: %s, namespace: %s}
spec:
  provider: gatewayapi:v1beta1
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  service:
    port: 9898
    gatewayRefs: [{name: lab-gateway, namespace: default}]
  analysis:
    interval: 10s
    threshold: 5
    stepWeight: 10
    maxWeight: 50
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1m
`

const queue = "canaryflow-scale"

// BenchmarkScale starts CANARYFLOW_BENCH_ROLLOUTS (default 100) canaries at once on the scale lab (lab/scale.sh;
// make bench-scale), rolled out by CANARYFLOW_BENCH_CONTROLLER: canaryflow (CANARYFLOW_BENCH_WORKERS worker
// processes, default 1, on one task queue), flagger (Flagger v1.36.1, make lab-build's flagger component), or both
// (the default), one after the other on the same control plane, each in a namespace of its own, with a table of
// both and their ratio. Each canary is a 1-replica Deployment; every canary is initialised first, then every image
// changes at once. The metric checks ask a Prometheus-compatible endpoint of this benchmark that answers a healthy
// 100 to every query. Reported: the step gaps (time between a canary's consecutive weight increases, ideal 10 s)
// p50/p99/max, rollout durations, Kubernetes API requests of the controller (per analysis step, per rollout, per
// minute, and idle), the API server's requests from every client, history events per rollout, the controller's
// CPU and peak RSS and the Temporal server's (with PostgreSQL's).
func BenchmarkScale(b *testing.B) {
	n := envInt(b, "CANARYFLOW_BENCH_ROLLOUTS", 100)
	env := labtest.Lab(b)
	if env.ScaleNodes == 0 {
		b.Skip("BenchmarkScale needs the scale lab (lab/scale.sh): run make bench-scale")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 85*time.Minute)
	defer cancel()
	prom := newHealthyProm()
	defer prom.Close()
	run := benchRun{
		n: n, env: env, prom: prom, workers: envInt(b, "CANARYFLOW_BENCH_WORKERS", 1),
		idle: time.Duration(envInt(b, "CANARYFLOW_BENCH_IDLE_SECONDS", 60)) * time.Second,
	}
	cfg := env.RestConfig()
	cfg.QPS, cfg.Burst = 500, 1000
	var err error
	if run.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		b.Fatal(err)
	}
	if run.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		b.Fatal(err)
	}
	controllers := []string{"canaryflow", "flagger"}
	switch c := os.Getenv("CANARYFLOW_BENCH_CONTROLLER"); c {
	case "", "both":
	case "canaryflow", "flagger":
		controllers = []string{c}
	default:
		b.Fatalf("CANARYFLOW_BENCH_CONTROLLER=%q: want canaryflow, flagger or both", c)
	}
	b.ResetTimer()
	var results []figures
	for _, c := range controllers {
		var f figures
		if c == "canaryflow" {
			f = run.canaryflow(ctx, b)
		} else {
			f = run.flagger(ctx, b)
		}
		f.report(b, c)
		results = append(results, f)
	}
	// Printed, not logged: a benchmark's log is cut after a few lines.
	fmt.Println(table(controllers, results, run))
}

// benchRun is one benchmark run's setting, shared by both controllers.
type benchRun struct {
	n, workers int
	idle       time.Duration
	env        *labtest.Env
	prom       *healthyProm
	kube       kubernetes.Interface
	dyn        dynamic.Interface
}

// figures are one controller's results.
type figures struct {
	gaps, durations     []float64     // seconds
	events              float64       // history events per rollout (p50); canaryflow only
	allInitialised      time.Duration // the N canaries created at once, until the last is initialised
	allPromoted         time.Duration
	reqPerStep          float64 // -1: not measured
	reqPerRollout       float64
	reqPerMin, idlePerM float64
	apiserverPerMin     float64
	cpu, rss            float64 // the controller's CPU seconds in the rollouts and peak RSS (MiB)
	temporalCPU         float64
	temporalRSS         float64
}

func (f figures) report(b *testing.B, prefix string) {
	m := func(v float64, unit string) { b.ReportMetric(v, prefix+"-"+unit) }
	m(quantile(f.gaps, 0.50), "step-p50-s")
	m(quantile(f.gaps, 0.99), "step-p99-s")
	m(quantile(f.gaps, 1), "step-max-s")
	m(quantile(f.durations, 0.50), "rollout-p50-s")
	m(quantile(f.durations, 1), "rollout-max-s")
	m(f.allInitialised.Seconds(), "all-initialised-s")
	m(f.allPromoted.Seconds(), "all-promoted-s")
	if f.reqPerStep >= 0 {
		m(f.reqPerStep, "req/analysis-step")
	}
	m(f.reqPerRollout, "req/rollout")
	m(f.reqPerMin, "req/min")
	m(f.idlePerM, "idle-req/min")
	m(f.apiserverPerMin, "apiserver-req/min")
	m(f.cpu, "cpu-s")
	m(f.rss, "peak-rss-MiB")
	if f.events > 0 {
		m(f.events, "events/rollout")
		m(f.temporalCPU, "temporal-cpu-s")
		m(f.temporalRSS, "temporal-peak-rss-MiB")
	}
}

// table prints the controllers' figures side by side, in markdown, with Flagger's over canaryflow's.
func table(controllers []string, fs []figures, run benchRun) string {
	rows := []struct {
		name string
		v    func(f figures) float64
	}{
		{"step gap p50 (s)", func(f figures) float64 { return quantile(f.gaps, 0.5) }},
		{"step gap p99 (s)", func(f figures) float64 { return quantile(f.gaps, 0.99) }},
		{"step gap max (s)", func(f figures) float64 { return quantile(f.gaps, 1) }},
		{"rollout p50 (s)", func(f figures) float64 { return quantile(f.durations, 0.5) }},
		{"rollout max (s)", func(f figures) float64 { return quantile(f.durations, 1) }},
		{"all initialised, canaries created at once (s)", func(f figures) float64 { return f.allInitialised.Seconds() }},
		{"all promoted, from the release (s)", func(f figures) float64 { return f.allPromoted.Seconds() }},
		{"API requests per analysis step", func(f figures) float64 { return f.reqPerStep }},
		{"API requests per rollout", func(f figures) float64 { return f.reqPerRollout }},
		{"API requests per minute, rolling out", func(f figures) float64 { return f.reqPerMin }},
		{"API requests per minute, idle", func(f figures) float64 { return f.idlePerM }},
		{"controller CPU in the rollouts (s)", func(f figures) float64 { return f.cpu }},
		{"controller peak RSS (MiB)", func(f figures) float64 { return f.rss }},
		{"Temporal server (+ PostgreSQL) CPU (s)", func(f figures) float64 { return f.temporalCPU }},
		{"Temporal server (+ PostgreSQL) peak RSS (MiB)", func(f figures) float64 { return f.temporalRSS }},
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%d canaries, %d canaryflow worker(s), Temporal %s\n\n| figure | %s |", run.n, run.workers,
		run.env.TemporalServer, strings.Join(controllers, " | "))
	if len(fs) == 2 {
		sb.WriteString(" Flagger / canaryflow |")
	}
	sb.WriteString("\n|---|" + strings.Repeat("---|", len(fs)))
	if len(fs) == 2 {
		sb.WriteString("---|")
	}
	for _, r := range rows {
		fmt.Fprintf(&sb, "\n| %s |", r.name)
		for _, f := range fs {
			fmt.Fprintf(&sb, " %.2f |", r.v(f))
		}
		if len(fs) == 2 {
			if a, c := r.v(fs[0]), r.v(fs[1]); a > 0 {
				fmt.Fprintf(&sb, " %.1f× |", c/a)
			} else {
				sb.WriteString(" — |")
			}
		}
	}
	return sb.String()
}

// canaryflow runs the rollouts through the worker binary (run.workers processes) as the starter starts them.
func (run benchRun) canaryflow(ctx context.Context, b *testing.B) figures {
	// The workers read the canary metrics from visibility at the worker's default refresh, not the 1 s the e2e
	// tests use to see them change: this benchmark reads /metrics every second, and at 1 s each worker listed
	// every rollout run back to back, a large share of the Temporal server's CPU in every run before the fourth session.
	// 30s is the worker's default (defaultMetricsRefresh).
	refresh := "CANARYFLOW_METRICS_REFRESH=" + cmp.Or(os.Getenv("CANARYFLOW_METRICS_REFRESH"), "30s")
	// CANARYFLOW_BENCH_WORKER_ENV adds variables to the workers' environment only (say GOGC=50 for the Go runtime),
	// where a variable of the make command would reach the lab's Temporal server and control plane too.
	workerEnv := append([]string{refresh}, strings.Fields(os.Getenv("CANARYFLOW_BENCH_WORKER_ENV"))...)
	s, err := e2e.StartWith(ctx, run.env, b.Logf, e2e.Options{TaskQueue: queue, PrometheusURL: run.prom.URL, NoWorker: true,
		WorkerEnv: workerEnv})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	names := make([]string, run.workers)
	for i := range names {
		names[i] = fmt.Sprintf("worker-%d", i)
		if err := s.StartWorker(ctx, names[i]); err != nil {
			b.Fatal(err)
		}
	}
	count := func() int {
		total := 0
		for _, w := range names {
			c, err := s.KubeRequests(ctx, w)
			if err != nil {
				b.Fatal(err)
			}
			total += c
		}
		return total
	}
	byActivity := func() map[string]int {
		total := map[string]int{}
		for _, w := range names {
			by, err := s.KubeRequestsBy(ctx, w, "activity")
			if err != nil {
				b.Fatal(err)
			}
			for a, n := range by {
				total[a] += n
			}
		}
		return total
	}
	pids := func() []int {
		var out []int
		for _, w := range names {
			out = append(out, s.Pid(w))
		}
		return out
	}
	tc := labtest.Temporal(b)
	rc := rolloutclient.Client{Temporal: tc, TaskQueue: queue}
	ns := run.env.Namespace(b, "scale-cf")
	canaries := make([]workflows.RolloutInput, run.n)
	for i := range canaries {
		set, err := v1beta1.Load(strings.NewReader(canaryYAML(ns, i)), "bench", v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
		if err != nil {
			b.Fatal(err)
		}
		canaries[i] = workflows.RolloutInput{Canary: *set.Canaries()[0]}
	}
	run.deployments(ctx, b, ns)
	t0 := time.Now()
	if _, err := releaseAll(ctx, rc, canaries, workflows.PhaseInitialized); err != nil {
		b.Fatalf("canaryflow initialisation: %v", err)
	}
	initialised := time.Since(t0)
	b.Logf("canaryflow: %d canaries initialised in %s", run.n, initialised.Round(time.Second))

	run.newImage(ctx, b, ns)
	before := run.usage(ctx, b, count(), pids(), true)
	activitiesBefore := byActivity()
	begin := time.Now()
	// Every 10 s, not every second: count reads each worker's /metrics, which carries every canary's series, and a
	// read a second was 12.5% of the worker's CPU in a 1,000-canary release (a profile of the fourteenth session),
	// a cost of the measurement that Flagger's side, counted by a proxy, never paid.
	sampled := sampleEvery(ctx, 10*time.Second, func() int { return count() })
	runs, err := releaseAll(ctx, rc, canaries, workflows.PhaseSucceeded)
	if err != nil {
		b.Fatalf("canaryflow rollouts: %v", err)
	}
	f := figures{allInitialised: initialised, allPromoted: time.Since(begin)}
	samples := sampled()
	after := run.usage(ctx, b, count(), pids(), true)
	byType := byActivity()
	for a, n := range activitiesBefore {
		byType[a] -= n
	}
	var advances [][]time.Time
	var events []float64
	var calls activityCalls
	f.gaps, f.durations, events, advances, calls = histories(ctx, b, tc, runs)
	f.events = quantile(events, 0.5)
	saveAdvances(b, begin, advances)
	run.fill(&f, before, after, samples, advances)
	// Every canary has a window of its own between its first and last weight increase, whether or not they
	// overlap: the requests of the activities called in it.
	if v, ok := calls.perStep(byType); ok {
		f.reqPerStep = v
	}
	b.Logf("canaryflow: requests by activity over the rollouts %v; calls %v, in %d analysis steps %v", byType, calls.all,
		calls.steps, calls.inSteps)
	f.idlePerM = run.idleRate(ctx, count)
	b.Logf("canaryflow: %d rollouts promoted in %s; %d metric queries answered so far", run.n, f.allPromoted.Round(time.Second), run.prom.queries.Load())
	return f
}

// flagger runs the same rollouts through Flagger v1.36.1: Canary objects on the API server, Flagger's own
// analysis, its Kubernetes requests counted by a proxy in front of the API server.
func (run benchRun) flagger(ctx context.Context, b *testing.B) figures {
	kubectl := exec.CommandContext(ctx, labbin.Kubectl(), "--kubeconfig", run.env.Kubeconfig, "apply", "--server-side",
		"--force-conflicts", "-f", filepath.Join(labbin.Dir(), "..", "share", "crds", "flagger.yaml"))
	if out, err := kubectl.CombinedOutput(); err != nil {
		b.Fatalf("Flagger's CRDs (make lab-build builds the flagger component): %v\n%s", err, out)
	}
	proxy, err := newCountingProxy(run.env)
	if err != nil {
		b.Fatal(err)
	}
	defer proxy.Close()
	dir := b.TempDir()
	kubeconfig := filepath.Join(dir, "flagger.kubeconfig")
	if err := e2e.WriteKubeconfig(kubeconfig, proxy.URL, proxy.caFile, run.env.KubeToken); err != nil {
		b.Fatal(err)
	}
	ns := run.env.Namespace(b, "scale-fl")
	logf, err := os.Create(filepath.Join(dir, "flagger.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	// Flagger's defaults (client QPS 100, burst 250, threadiness 2), watching only the benchmark's namespace.
	cmd := exec.Command(filepath.Join(labbin.Dir(), "flagger"), "-kubeconfig", kubeconfig, "-mesh-provider", "gatewayapi:v1beta1",
		"-metrics-server", run.prom.URL, "-namespace", ns, "-log-level", "info", "-port", "0", "-enable-leader-election=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	pids := func() []int { return []int{cmd.Process.Pid} }

	run.deployments(ctx, b, ns)
	t0 := time.Now()
	if err := parallel(run.n, func(i int) error {
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(canaryYAML(ns, i)), &obj.Object); err != nil {
			return err
		}
		_, err := run.dyn.Resource(canaryGVR).Namespace(ns).Create(ctx, &obj, metav1.CreateOptions{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	if _, err := run.watchCanaries(ctx, ns, "Initialized", false); err != nil {
		b.Fatalf("Flagger initialisation: %v (log %s)", err, logf.Name())
	}
	initialised := time.Since(t0)
	b.Logf("flagger: %d canaries initialised in %s", run.n, initialised.Round(time.Second))

	run.newImage(ctx, b, ns)
	before := run.usage(ctx, b, proxy.count(), pids(), false)
	begin := time.Now()
	sampled := sampleEvery(ctx, time.Second, proxy.count)
	seen, err := run.watchCanaries(ctx, ns, "Succeeded", true)
	if err != nil {
		b.Fatalf("Flagger rollouts: %v (log %s)", err, logf.Name())
	}
	f := figures{allInitialised: initialised, allPromoted: time.Since(begin)}
	samples := sampled()
	after := run.usage(ctx, b, proxy.count(), pids(), false)
	var advances [][]time.Time
	for _, c := range seen {
		if len(c.advances) != 5 {
			b.Fatalf("Flagger canary %s: %d weight increases seen, want 5 (polled every second)", c.name, len(c.advances))
		}
		for j := 1; j < len(c.advances); j++ {
			f.gaps = append(f.gaps, c.advances[j].Sub(c.advances[j-1]).Seconds())
		}
		f.durations = append(f.durations, c.done.Sub(begin).Seconds())
		advances = append(advances, c.advances)
	}
	run.fill(&f, before, after, samples, advances)
	f.idlePerM = run.idleRate(ctx, proxy.count)
	b.Logf("flagger: %d rollouts promoted in %s", run.n, f.allPromoted.Round(time.Second))
	return f
}

var canaryGVR = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}

func canaryYAML(ns string, i int) string {
	name := fmt.Sprintf("app-%04d", i)
	return fmt.Sprintf(scaleCanary, name, ns, name)
}

// deployments creates the run's n Deployments in ns.
func (run benchRun) deployments(ctx context.Context, b *testing.B, ns string) {
	if err := parallel(run.n, func(i int) error {
		_, err := run.kube.AppsV1().Deployments(ns).Create(ctx, deployment(fmt.Sprintf("app-%04d", i)), metav1.CreateOptions{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
}

// newImage changes every Deployment's image, as a release does.
func (run benchRun) newImage(ctx context.Context, b *testing.B, ns string) {
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"podinfod","image":"ghcr.io/stefanprodan/podinfo:6.0.1"}]}}}}`)
	if err := parallel(run.n, func(i int) error {
		_, err := run.kube.AppsV1().Deployments(ns).Patch(ctx, fmt.Sprintf("app-%04d", i), types.StrategicMergePatchType,
			patch, metav1.PatchOptions{})
		return err
	}); err != nil {
		b.Fatal(err)
	}
}

// fill completes f from the usage before and after the rollouts, the request samples and the weight increases.
func (run benchRun) fill(f *figures, before, after usage, samples []sample, advances [][]time.Time) {
	req := float64(after.requests - before.requests)
	f.reqPerRollout = req / float64(run.n)
	f.reqPerMin = req / f.allPromoted.Minutes()
	f.apiserverPerMin = float64(after.apiserverRequests-before.apiserverRequests) / f.allPromoted.Minutes()
	f.cpu, f.rss = after.cpu-before.cpu, after.rss
	f.temporalCPU, f.temporalRSS = after.temporalCPU-before.temporalCPU, after.temporalRSS
	f.reqPerStep = -1
	if v, ok := requestsPerStep(samples, advances); ok {
		f.reqPerStep = v
	}
}

// idleRate counts the controller's requests per minute over run.idle after the rollouts (0 when idle is 0).
func (run benchRun) idleRate(ctx context.Context, count func() int) float64 {
	if run.idle <= 0 {
		return 0
	}
	from := count()
	select {
	case <-ctx.Done():
	case <-time.After(run.idle):
	}
	return float64(count()-from) / run.idle.Minutes()
}

// seenCanary is what polling a Flagger Canary's status saw: when its weight rose, when it reached the phase.
type seenCanary struct {
	name     string
	weight   int64
	advances []time.Time
	done     time.Time
}

// watchCanaries lists the Canaries of ns every second until every one is in phase, recording (when track says
// so) the moments their status.canaryWeight rose. A second's resolution: Flagger writes no finer record.
func (run benchRun) watchCanaries(ctx context.Context, ns, phase string, track bool) (map[string]*seenCanary, error) {
	seen := map[string]*seenCanary{}
	deadline := time.Now().Add(40 * time.Minute)
	for {
		list, err := run.dyn.Resource(canaryGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, err
		}
		now := time.Now()
		done := 0
		for _, item := range list.Items {
			c := seen[item.GetName()]
			if c == nil {
				c = &seenCanary{name: item.GetName()}
				seen[item.GetName()] = c
			}
			p, _, _ := unstructured.NestedString(item.Object, "status", "phase")
			w, _, _ := unstructured.NestedInt64(item.Object, "status", "canaryWeight")
			if track && w > c.weight {
				c.advances = append(c.advances, now)
			}
			c.weight = w
			if p == "Failed" {
				return nil, fmt.Errorf("canary %s/%s failed", ns, item.GetName())
			}
			if p == phase {
				if c.done.IsZero() {
					c.done = now
				}
				done++
			}
		}
		if done == run.n {
			return seen, nil
		}
		if now.After(deadline) {
			return nil, fmt.Errorf("%d of %d canaries reached %s within 40 minutes", done, run.n, phase)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}

func deployment(name string) *appsv1.Deployment {
	one := int32(1)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "podinfod", Image: "ghcr.io/stefanprodan/podinfo:6.0.0",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}},
				}}},
			},
		},
	}
}

// parallel runs fn for 0…n-1, 32 at a time, and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var first atomic.Value
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				first.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}

// releaseAll starts every rollout as the starter does (signal-with-start) and waits until each has ended in want.
func releaseAll(ctx context.Context, rc rolloutclient.Client, in []workflows.RolloutInput, want workflows.Phase) ([]client.WorkflowRun, error) {
	runs := make([]client.WorkflowRun, len(in))
	if err := parallel(len(in), func(i int) error {
		var err error
		runs[i], err = rc.Release(ctx, in[i], workflows.ActionSignal{By: "bench"})
		return err
	}); err != nil {
		return nil, err
	}
	err := parallel(len(in), func(i int) error {
		var res workflows.RolloutResult
		if err := runs[i].Get(ctx, &res); err != nil {
			return fmt.Errorf("%s: %w", runs[i].GetID(), err)
		}
		if res.Phase != want {
			return fmt.Errorf("%s ended %s (%s), want %s", runs[i].GetID(), res.Phase, res.Reason, want)
		}
		return nil
	})
	return runs, err
}

// saveAdvances writes, when CANARYFLOW_BENCH_ADVANCES names a file, every canary's weight increases as seconds
// since the release, one canary a line, so that a run's late steps can be placed in time (when in the release,
// beside how many other steps).
func saveAdvances(b *testing.B, begin time.Time, advances [][]time.Time) {
	path := os.Getenv("CANARYFLOW_BENCH_ADVANCES")
	if path == "" {
		return
	}
	var sb strings.Builder
	for _, c := range advances {
		for j, t := range c {
			if j > 0 {
				sb.WriteByte(' ')
			}
			fmt.Fprintf(&sb, "%.3f", t.Sub(begin).Seconds())
		}
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Errorf("CANARYFLOW_BENCH_ADVANCES: %v", err)
	}
}

// histories reads every run's history: the gaps between its consecutive canary weight increases, the time from
// its start to its last split, its number of events, the times of its weight increases, and the activities it
// called (activity tasks and local activities, by type), with those of the analysis steps apart.
func histories(ctx context.Context, b *testing.B, tc client.Client, runs []client.WorkflowRun) (gaps, durations, events []float64, advances [][]time.Time, calls activityCalls) {
	var mu sync.Mutex
	var all [][]time.Time
	calls = activityCalls{all: map[string]int{}, inSteps: map[string]int{}}
	err := parallel(len(runs), func(i int) error {
		it := tc.GetWorkflowHistory(ctx, runs[i].GetID(), runs[i].GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		var start, last time.Time
		var advances []time.Time
		prev, count := 0, 0
		// The calls after the first weight increase, up to the last: the analysis steps from the second to the
		// fifth, each its readiness read, its checks and its split, and nothing of the initialisation or promotion.
		called, sinceFirst, inSteps := map[string]int{}, map[string]int{}, map[string]int{}
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return err
			}
			count++
			if start.IsZero() {
				start = ev.GetEventTime().AsTime()
			}
			typ := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			if t, _, _, ok := workflows.LocalActivity(ev); ok {
				typ = t
			}
			if typ != "" {
				called[typ]++
				if len(advances) > 0 {
					sinceFirst[typ]++
				}
			}
			if split, ok := workflows.SplitSet(ev); ok {
				last = ev.GetEventTime().AsTime()
				if split.CanaryWeight > prev {
					advances = append(advances, last)
					if len(advances) == 5 {
						maps.Copy(inSteps, sinceFirst)
					}
				}
				prev = split.CanaryWeight
			}
		}
		if len(advances) != 5 {
			return fmt.Errorf("%s: %d weight increases in its history, want 5", runs[i].GetID(), len(advances))
		}
		mu.Lock()
		defer mu.Unlock()
		for j := 1; j < len(advances); j++ {
			gaps = append(gaps, advances[j].Sub(advances[j-1]).Seconds())
		}
		durations = append(durations, last.Sub(start).Seconds())
		events = append(events, float64(count))
		all = append(all, advances)
		for t, n := range called {
			calls.all[t] += n
		}
		for t, n := range inSteps {
			calls.inSteps[t] += n
		}
		calls.steps += len(advances) - 1
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return gaps, durations, events, all, calls
}

// activityCalls counts the activities the rollouts called, by type: all of them, and those of the analysis steps
// (steps of them).
type activityCalls struct {
	all, inSteps map[string]int
	steps        int
}

// perStep is what an analysis step costs in requests, from requests, the requests made by each activity type
// over the rollouts: each type's requests per call (every try of every attempt included) times its calls in the
// steps, over the steps. Unlike requestsPerStep it needs no moment when every canary is in its analysis, which
// hundreds of canaries started together never share.
func (c activityCalls) perStep(requests map[string]int) (float64, bool) {
	if c.steps == 0 {
		return 0, false
	}
	total := 0.0
	for t, n := range c.inSteps {
		total += float64(requests[t]) / float64(c.all[t]) * float64(n)
	}
	return total / float64(c.steps), true
}

// sample is the controller's request count at an instant.
type sample struct {
	at       time.Time
	requests int
}

// sampleEvery reads count every interval until the returned function is called, which returns the samples.
func sampleEvery(ctx context.Context, interval time.Duration, count func() int) func() []sample {
	var mu sync.Mutex
	var out []sample
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			c := count()
			mu.Lock()
			out = append(out, sample{time.Now(), c})
			mu.Unlock()
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() []sample {
		close(done)
		<-stopped
		mu.Lock()
		defer mu.Unlock()
		return out
	}
}

// requestsPerStep measures the workers' requests per analysis step over the window in which every canary was
// between its first and its last weight increase (so no initialisation, scale-up, promotion or finalisation
// falls in it): the requests counted in the window divided by the weight increases made in it.
func requestsPerStep(samples []sample, advances [][]time.Time) (float64, bool) {
	var from, to time.Time
	for i, a := range advances {
		if i == 0 || a[0].After(from) {
			from = a[0]
		}
		if i == 0 || a[len(a)-1].Before(to) {
			to = a[len(a)-1]
		}
	}
	// The samples just inside the window.
	first, last := -1, -1
	for i, sm := range samples {
		if first < 0 && !sm.at.Before(from) {
			first = i
		}
		if !sm.at.After(to) {
			last = i
		}
	}
	if first < 0 || last <= first {
		return 0, false
	}
	steps := 0
	for _, a := range advances {
		for _, t := range a {
			if !t.Before(samples[first].at) && t.Before(samples[last].at) {
				steps++
			}
		}
	}
	if steps == 0 {
		return 0, false
	}
	return float64(samples[last].requests-samples[first].requests) / float64(steps), true
}

// usage is what the benchmark reads at an instant: counters and the processes' CPU and peak RSS.
type usage struct {
	requests, apiserverRequests int
	cpu, temporalCPU            float64 // seconds
	rss, temporalRSS            float64 // MiB, peak (VmHWM), summed over processes
}

// usage reads the API server's request count, the CPU and peak RSS of the controller's processes (pids) and, with
// temporal, of the Temporal server (with PostgreSQL and its backends, when it is the production server); requests
// is the controller's own count.
func (run benchRun) usage(ctx context.Context, b *testing.B, requests int, pids []int, temporal bool) usage {
	u := usage{requests: requests, apiserverRequests: apiserverRequests(ctx, b, run.kube)}
	for _, p := range pids {
		cpu, rss := procUsage(p)
		u.cpu += cpu
		u.rss += rss
	}
	if !temporal {
		return u
	}
	for _, name := range []string{"temporal", "postgres"} {
		pid, err := run.env.PID(name)
		if err != nil {
			continue // no PostgreSQL beside the dev server
		}
		members, children := group(pid)
		for _, p := range members {
			cpu, rss := procUsage(p)
			u.temporalCPU += cpu
			u.temporalRSS += rss
		}
		// PostgreSQL's backends: their CPU, not their peak RSS, which counts the shared buffers each touched.
		for _, p := range children {
			cpu, _ := procUsage(p)
			u.temporalCPU += cpu
		}
	}
	return u
}

// procUsage returns a process's CPU time (user + system, seconds, with that of the children it has reaped:
// PostgreSQL's backends that ended, whose time moves to the postmaster when they exit) and peak RSS (MiB).
func procUsage(pid int) (cpu, rssMiB float64) {
	if pid <= 0 {
		return 0, 0
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			f := strings.Fields(string(stat)[i+2:])
			for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
				t, _ := strconv.ParseFloat(f[i], 64)
				cpu += t / 100 // USER_HZ
			}
		}
	}
	if status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		if m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status); m != nil {
			kb, _ := strconv.ParseFloat(string(m[1]), 64)
			rssMiB = kb / 1024
		}
	}
	return cpu, rssMiB
}

// group returns the processes of the process group led by pid (a lab component is a session leader), and pid's
// children outside it: PostgreSQL's backends are the postmaster's children, each in a session of its own.
func group(pid int) (members, children []int) {
	members = []int{pid}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == pid {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
			f := strings.Fields(string(stat)[i+2:])
			switch {
			case len(f) < 3:
			case f[2] == strconv.Itoa(pid): // pgrp
				members = append(members, p)
			case f[1] == strconv.Itoa(pid): // ppid
				children = append(children, p)
			}
		}
	}
	return members, children
}

// apiserverRequests sums the API server's apiserver_request_total (every client, every verb and code).
func apiserverRequests(ctx context.Context, b *testing.B, cs kubernetes.Interface) int {
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		b.Fatalf("API server /metrics: %v", err)
	}
	total := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		total += v
	}
	return int(total)
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	k := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(k, len(s)-1))]
}

// healthyProm answers every instant query of the Prometheus HTTP API with one sample of 100: a healthy success
// rate for any canary. It stands for the metrics server the benchmark has not (the scale lab runs no Traefik to
// scrape), so what is measured is the orchestration and the Kubernetes writes, not a query engine.
type healthyProm struct {
	*httptest.Server
	queries atomic.Int64
}

func newHealthyProm() *healthyProm {
	p := &healthyProm{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/api/v1/query") {
			http.NotFound(w, r)
			return
		}
		p.queries.Add(1)
		w.Header().Set("Content-Type", "application/json")
		now := float64(time.Now().UnixMilli()) / 1000
		// Flagger asks vector(1) to see that the server is up, and wants 1.
		value := "100"
		if strings.TrimSpace(r.FormValue("query")) == "vector(1)" {
			value = "1"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status": "success",
			"data": map[string]any{
				"resultType": "vector",
				"result":     []any{map[string]any{"metric": map[string]string{}, "value": []any{now, value}}},
			},
		})
	}))
	return p
}

// countingProxy is a TLS reverse proxy in front of the API server that counts the requests passing through it:
// how the benchmark counts Flagger's requests (canaryflow's worker counts its own).
type countingProxy struct {
	*httptest.Server
	caFile string
	n      atomic.Int64
}

func newCountingProxy(env *labtest.Env) (*countingProxy, error) {
	u, err := url.Parse(env.KubeServer)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(env.KubeCAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 100}
	rp.FlushInterval = -1 // watches stream their events at once
	p := &countingProxy{}
	p.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.n.Add(1)
		rp.ServeHTTP(w, r)
	}))
	p.StartTLS()
	dir, err := os.MkdirTemp("", "canaryflow-scale-proxy-")
	if err != nil {
		p.Close()
		return nil, err
	}
	p.caFile = filepath.Join(dir, "ca.crt")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Certificate().Raw})
	if err := os.WriteFile(p.caFile, cert, 0o644); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *countingProxy) count() int { return int(p.n.Load()) }
