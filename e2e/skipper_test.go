//go:build lab

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/providers/metrics/promtest"
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/rolloutclient"
)

// Flagger's Skipper tutorial Canary (skipper-canary.yaml; interval 10s, two steps, threshold 1) runs the
// CanaryRollout workflow with the worker's activities under the worker's ClusterRole, against a real Skipper
// reading the lab's Ingresses, with live traffic through it all along and the builtin skipper queries on a
// Prometheus scraping Skipper's route metrics. Promoted once; rolled back once, when a quarter of the requests
// fail (which only the canary route's share counts).
func TestSkipperTutorialCanaryEndToEndThroughSkipper(t *testing.T) {
	restCfg, admin := labtest.Kube(t)
	tc := labtest.Temporal(t)
	ns := labtest.Namespace(t, "skipper-e2e")
	workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 1, 1)
	ing := labtest.TutorialIngress(ns)
	ing.Annotations = map[string]string{"kubernetes.io/ingress.class": "skipper"}
	_, err := admin.NetworkingV1().Ingresses(ns).Create(context.Background(), ing, metav1.CreateOptions{})
	require.NoError(t, err)
	// On a cold cache Skipper builds here, or waits for make test's prebuild of it: minutes the rollouts'
	// deadline must not count.
	sk := labtest.StartSkipper(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	prom := promtest.Start(t, sk.MetricsTarget())

	var hookCalls atomic.Int32
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hookCalls.Add(1) }))
	defer hooks.Close()

	cfg := workloadtest.WorkerConfig(t, restCfg, labtest.Namespace(t, "skipper-e2e-worker"))
	wl, err := workload.New(cfg)
	require.NoError(t, err)
	routers, err := router.NewRegistry(cfg)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	queue := "skipper-" + ns
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(&activities.Workloads{Kube: wl})
	w.RegisterActivity(&activities.Routing{Routers: routers})
	w.RegisterActivity(activities.NewAnalysis(activities.KubeSecrets{Client: cs}, prom, "lab", nil))
	require.NoError(t, w.Start())
	defer w.Stop()

	load := startSkipperLoad(t, sk.URL, "app.example.com")

	set, err := v1beta1.LoadFile(filepath.Join("..", "api", "v1beta1", "testdata", "flagger", "skipper-canary.yaml"),
		v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
	require.NoError(t, err)
	c := *set.Canaries()[0]
	c.Namespace = ns
	a := c.Spec.Analysis
	a.Interval, a.Threshold, a.StepWeight, a.MaxWeight = "10s", 1, 25, 50
	for i := range a.Metrics {
		a.Metrics[i].Interval = "10s" // so failing requests leave the window within a step
	}
	for i := range a.Webhooks {
		a.Webhooks[i].URL = hooks.URL + "/" + a.Webhooks[i].Name
	}
	require.Empty(t, c.Validate(catalog.Capabilities(), v1beta1.RefCheck{}))

	rollout := func(image string) workflows.RolloutResult {
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
		load.reset()
		start := time.Now()
		run, err := rolloutclient.Client{Temporal: tc, TaskQueue: queue}.Release(ctx, workflows.RolloutInput{Canary: c}, workflows.ActionSignal{By: "e2e"})
		require.NoError(t, err)
		var res workflows.RolloutResult
		require.NoError(t, run.Get(ctx, &res))
		t.Logf("%s %s: %s in %s; versions served through Skipper meanwhile %v", c.Spec.Analysis.Strategy(), image, res.Phase,
			time.Since(start).Round(time.Second), load.versions())
		return res
	}
	check := func(res workflows.RolloutResult, name string) float64 {
		for _, ch := range res.Status.LastChecks {
			if ch.Metric == name {
				require.NotNil(t, ch.Value, "%s: %s", name, ch.Message)
				return *ch.Value
			}
		}
		t.Fatalf("no check %s in %+v", name, res.Status.LastChecks)
		return 0
	}

	res := rollout("")
	require.Equal(t, workflows.PhaseInitialized, res.Phase, res.Reason)

	res = rollout("6.0.1")
	require.Equal(t, workflows.PhaseSucceeded, res.Phase, res.Reason)
	require.Positive(t, load.versions()["6.0.1"], "the canary served live traffic during the analysis")
	require.InDelta(t, 100, check(res, "request-success-rate"), 0.01)
	require.Less(t, check(res, "request-duration"), 500.0)
	load.waitOnly(t, "6.0.1", "after promotion the primary serves the new version")

	load.failing(true)
	res = rollout("6.0.2")
	require.Equal(t, workflows.PhaseFailed, res.Phase, res.Reason)
	require.Less(t, check(res, "request-success-rate"), 99.0)
	require.Positive(t, load.versions()["6.0.2"], "the failing canary got its share before the rollback")
	load.failing(false)
	load.waitOnly(t, "6.0.1", "after the rollback the primary alone serves, still the promoted version")

	require.Positive(t, hookCalls.Load(), "the tutorial's gate, pre-rollout and rollout webhooks were called")
	user, err := admin.NetworkingV1().Ingresses(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "podinfo", user.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name, "the user's Ingress still routes to the apex")
}

// skipperLoad sends requests through Skipper all along, as the tutorial's load tester does: GET /version (whose
// answer names the podinfo version that served it) and, while failing, one request in four to /status/500.
type skipperLoad struct {
	bad  atomic.Bool
	mu   sync.Mutex
	seen map[string]int
}

func (l *skipperLoad) failing(on bool) { l.bad.Store(on) }

func (l *skipperLoad) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = map[string]int{}
}

func (l *skipperLoad) versions() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.seen {
		out[k] = v
	}
	return out
}

// waitOnly waits until a fresh batch of answers all come from version.
func (l *skipperLoad) waitOnly(t *testing.T, version, what string) {
	t.Helper()
	require.Eventually(t, func() bool {
		l.reset()
		time.Sleep(time.Second)
		v := l.versions()
		return len(v) == 1 && v[version] > 10
	}, 30*time.Second, 100*time.Millisecond, "%s: %v", what, l.versions())
}

func startSkipperLoad(t *testing.T, url, host string) *skipperLoad {
	l := &skipperLoad{seen: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for n := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := n; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				path := "/version"
				if l.bad.Load() && i%4 == 0 {
					path = "/status/500"
				}
				req, _ := http.NewRequest(http.MethodGet, url+path, nil)
				req.Host = host
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				var body struct{ Version string }
				if path == "/version" && resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil {
					l.mu.Lock()
					l.seen[body.Version]++
					l.mu.Unlock()
				}
				resp.Body.Close()
			}
		}()
	}
	return l
}
