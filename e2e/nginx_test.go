//go:build lab

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canaryflow/canaryflow/workflows/rolloutclient"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/providers/metrics/promtest"
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
	"github.com/canaryflow/canaryflow/workflows"
)

// The seed NGINX Canaries (nginx-canary.yaml, nginx-ab-testing.yaml; interval 10s, fewer steps, threshold 1) run
// the CanaryRollout workflow with the worker's activities under the worker's ClusterRole, against the lab with
// the ingress-nginx controller translating the nginx router's Ingresses. Each is promoted once and rolled back
// once; what the controller configures nginx with is recorded all along and must follow the schedule exactly.
//
// There is no nginx data plane (its canary split is Lua needing libraries Debian lacks), so the builtin
// request-success-rate and request-duration queries read the controller's own Prometheus metrics, fed through its
// metrics socket with requests shaped as nginx's monitor.lua reports them: healthy canary requests for a
// promotion, half of them failing for a rollback, and beside them primary requests that all fail, which the
// queries must not count.
func TestNGINXSeedCanariesOnTheIngressNginxController(t *testing.T) {
	restCfg, admin := labtest.Kube(t)
	tc := labtest.Temporal(t)
	ns := labtest.Namespace(t, "nginx-e2e")
	workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 1, 1)
	_, err := admin.NetworkingV1().Ingresses(ns).Create(context.Background(), labtest.TutorialIngress(ns), metav1.CreateOptions{})
	require.NoError(t, err)
	// The controller starts with the Ingress there (its first configuration has the primary backend). On a cold
	// cache it builds here, or waits for make test's prebuild of it: minutes the rollouts' deadline must not count.
	ctrl := labtest.StartIngressNginx(t, ns, "--sync-rate-limit=10")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	prom := promtest.Start(t, ctrl.MetricsTarget())

	var hookCalls atomic.Int32
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hookCalls.Add(1) }))
	defer hooks.Close()

	// The worker, wired as worker/register.go wires it, with the worker's ClusterRole.
	cfg := workloadtest.WorkerConfig(t, restCfg, labtest.Namespace(t, "nginx-e2e-worker"))
	wl, err := workload.New(cfg)
	require.NoError(t, err)
	routers, err := router.NewRegistry(cfg)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	queue := "nginx-" + ns
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(&activities.Workloads{Kube: wl})
	w.RegisterActivity(&activities.Routing{Routers: routers})
	w.RegisterActivity(activities.NewAnalysis(activities.KubeSecrets{Client: cs}, prom, "lab", nil))
	require.NoError(t, w.Start())
	defer w.Stop()

	canaryBackend := ns + "-podinfo-canary-80"
	feed := startMonitorFeed(t, ctrl, ns, canaryBackend)
	seen := watchCanaryPolicy(ctx, t, ctrl, ns+"-podinfo-80", canaryBackend)

	seed := func(file string, adapt func(a *v1beta1.CanaryAnalysis)) v1beta1.Canary {
		set, err := v1beta1.LoadFile(filepath.Join("..", "api", "v1beta1", "testdata", "flagger", file), v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
		require.NoError(t, err)
		c := *set.Canaries()[0]
		c.Namespace = ns
		a := c.Spec.Analysis
		a.Interval, a.Threshold = "10s", 1
		for i := range a.Metrics {
			a.Metrics[i].Interval = "10s" // so a failing canary's requests leave the window within one step
		}
		for i := range a.Webhooks {
			a.Webhooks[i].URL = hooks.URL + "/" + a.Webhooks[i].Name
		}
		adapt(a)
		require.Empty(t, c.Validate(catalog.Capabilities(), v1beta1.RefCheck{}))
		return c
	}
	rollout := func(c v1beta1.Canary, image string) workflows.RolloutResult {
		t.Helper()
		if image != "" {
			require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
				d, err := admin.AppsV1().Deployments(ns).Get(ctx, "podinfo", metav1.GetOptions{})
				if err != nil {
					return err
				}
				d.Spec.Template.Spec.Containers[0].Image = "ghcr.io/stefanprodan/podinfo:" + image
				_, err = admin.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{})
				return err
			}))
		}
		seen.reset()
		start := time.Now()
		run, err := rolloutclient.Client{Temporal: tc, TaskQueue: queue}.Release(ctx, workflows.RolloutInput{Canary: c}, workflows.ActionSignal{By: "e2e"})
		require.NoError(t, err)
		var res workflows.RolloutResult
		require.NoError(t, run.Get(ctx, &res))
		t.Logf("%s %s: %s in %s, controller configured %v", c.Spec.Analysis.Strategy(), image, res.Phase, time.Since(start).Round(time.Second), seen.states())
		return res
	}
	check := func(res workflows.RolloutResult, name string) activities.CheckResult {
		for _, c := range res.Status.LastChecks {
			if c.Metric == name {
				require.NotNil(t, c.Value, "%s: %s", name, c.Message)
				return c
			}
		}
		t.Fatalf("no check %s in %+v", name, res.Status.LastChecks)
		return activities.CheckResult{}
	}

	// healthyAgain waits until the failing requests have left the builtin query's window.
	healthyAgain := func() {
		a := &activities.Analysis{DefaultMetricsServer: prom}
		ref := activities.CanaryRef{Namespace: ns, Name: "podinfo", Target: "podinfo", Service: "podinfo", Ingress: "podinfo", Provider: "nginx"}
		require.Eventually(t, func() bool {
			r, err := a.RunMetricChecks(ctx, activities.MetricChecksInput{Canary: ref, Metrics: []v1beta1.CanaryMetric{{Name: "request-success-rate",
				Interval: "10s", OnNoData: v1beta1.NoDataFail, ThresholdRange: &v1beta1.CanaryThresholdRange{Min: ptr.To(99.0)}}}})
			return err == nil && r.Results[0].Verdict == activities.VerdictPass
		}, 60*time.Second, 500*time.Millisecond)
	}

	canary := seed("nginx-canary.yaml", func(a *v1beta1.CanaryAnalysis) { a.StepWeight, a.MaxWeight = 25, 50 })
	res := rollout(canary, "")
	require.Equal(t, workflows.PhaseInitialized, res.Phase, res.Reason)
	seen.expect(t, []string{"no canary backend", "weight 0"})

	res = rollout(canary, "6.0.1")
	require.Equal(t, workflows.PhaseSucceeded, res.Phase, res.Reason)
	seen.expect(t, []string{"weight 0", "weight 25", "weight 50", "weight 0"})
	require.InDelta(t, 100, *check(res, "request-success-rate").Value, 0.01, "the primary's failing requests are not counted")
	require.InDelta(t, 20, *check(res, "request-duration").Value, 0.5, "the canary's requests take 20 ms")

	feed.failing(true)
	res = rollout(canary, "6.0.2")
	require.Equal(t, workflows.PhaseFailed, res.Phase, res.Reason)
	seen.expect(t, []string{"weight 0", "weight 25", "weight 0"})
	require.Less(t, *check(res, "request-success-rate").Value, 99.0)
	feed.failing(false)
	healthyAgain()

	ab := seed("nginx-ab-testing.yaml", func(a *v1beta1.CanaryAnalysis) { a.Iterations = 2 })
	abOn := "header x-canary=insider, cookie canary"
	res = rollout(ab, "6.0.3")
	require.Equal(t, workflows.PhaseSucceeded, res.Phase, res.Reason)
	seen.expect(t, []string{"weight 0", abOn, "weight 0"})

	feed.failing(true)
	res = rollout(ab, "6.0.4")
	require.Equal(t, workflows.PhaseFailed, res.Phase, res.Reason)
	seen.expect(t, []string{"weight 0", abOn, "weight 0"})

	require.Positive(t, hookCalls.Load(), "the seeds' pre-rollout and rollout webhooks were called")
	user, err := admin.NetworkingV1().Ingresses(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "podinfo", user.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name, "the user's Ingress still routes to the apex")
}

// monitorFeed reports, every 100 ms, ten canary requests and ten primary requests to the controller's metrics
// socket, with the labels nginx sets for the user's Ingress location (ingress and service "podinfo", path "/";
// canary = the alternative backend that served the request, empty for the primary).
type monitorFeed struct {
	bad atomic.Bool
}

func (f *monitorFeed) failing(on bool) { f.bad.Store(on) }

func startMonitorFeed(t *testing.T, ctrl *labtest.IngressNginx, ns, canaryBackend string) *monitorFeed {
	f := &monitorFeed{}
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	req := func(canary, status string, seconds float64) labtest.NginxRequest {
		return labtest.NginxRequest{Host: "app.example.com", Status: status, Method: "GET", Path: "/", Namespace: ns,
			Ingress: "podinfo", Service: "podinfo", Canary: canary, RequestLength: 80, ResponseLength: 400,
			RequestTime: seconds, UpstreamLatency: 0.001, UpstreamHeaderTime: seconds, UpstreamResponseTime: seconds}
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var batch []labtest.NginxRequest
			for i := range 10 {
				status := "200"
				if f.bad.Load() && i%2 == 0 {
					status = "503"
				}
				batch = append(batch, req(canaryBackend, status, 0.02), req("", "500", 3))
			}
			_ = ctrl.Observe(batch) // the controller may not listen yet; the next tick retries
		}
	}()
	return f
}

// policyLog records each distinct rule the controller gives the canary backend, in order.
type policyLog struct {
	mu  sync.Mutex
	log []string
}

func (p *policyLog) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.log); n > 0 {
		p.log = p.log[n-1:] // the state the next rollout starts from
	}
}

func (p *policyLog) states() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.log...)
}

// watchCanaryPolicy polls the controller's backends every 50 ms (its sync limit here is 10 a second) and
// records the canary backend's rule whenever it changes.
func watchCanaryPolicy(ctx context.Context, t *testing.T, ctrl *labtest.IngressNginx, primary, canary string) *policyLog {
	p := &policyLog{}
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			list, err := ctrl.Backends(ctx)
			if err != nil {
				continue
			}
			byName := map[string]labtest.NginxBackend{}
			for _, b := range list {
				byName[b.Name] = b
			}
			p.record(backendState(byName, primary, canary))
		}
	}()
	return p
}

// expect waits until the states recorded since the last reset are want (the controller applies a change
// within a second or so of the rollout writing it).
func (p *policyLog) expect(t *testing.T, want []string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !slices.Equal(p.states(), want) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	require.Equal(t, want, p.states(), "what ingress-nginx configured, in order")
}

func (p *policyLog) record(state string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.log); n == 0 || p.log[n-1] != state {
		p.log = append(p.log, state)
	}
}

// backendState says how the primary backend sends requests to the canary backend.
func backendState(b map[string]labtest.NginxBackend, primary, canary string) string {
	p, ok := b[primary]
	switch {
	case !ok:
		return "no primary backend"
	case len(p.AlternativeBackends) == 0:
		return "no canary backend"
	case len(p.AlternativeBackends) != 1 || p.AlternativeBackends[0] != canary:
		return fmt.Sprintf("primary alternatives %v", p.AlternativeBackends)
	}
	return describePolicy(b[canary].TrafficShapingPolicy)
}

func describePolicy(tp labtest.NginxTrafficShaping) string {
	var parts []string
	if tp.Header != "" {
		parts = append(parts, fmt.Sprintf("header %s=%s%s", tp.Header, tp.HeaderValue, tp.HeaderPattern))
	}
	if tp.Cookie != "" {
		parts = append(parts, "cookie "+tp.Cookie)
	}
	if len(parts) == 0 || tp.Weight != 0 {
		parts = append(parts, fmt.Sprintf("weight %d", tp.Weight))
	}
	return strings.Join(parts, ", ")
}
