//go:build lab

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/rolloutclient"
)

// Flagger's Contour and Istio tutorial Canaries run the CanaryRollout workflow with the worker's activities under
// the worker's ClusterRole, while the real controller (contour serve, istiod) translates the router's objects:
// the weights it serves to Envoy over xDS follow the schedule step by step, through a promotion and through a
// rollback (the tutorial's load-test webhook failing). There is no Envoy here, so there is no traffic and no
// Envoy metric: the tutorials' builtin metrics are left out of the analysis, which the webhooks alone gate.

func TestContourTutorialCanaryThroughContour(t *testing.T) {
	ns := labtest.Namespace(t, "contour-e2e")
	ct := labtest.StartContour(t, ns)
	root := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "projectcontour.io/v1", "kind": "HTTPProxy",
		"metadata": map[string]any{"name": "app"},
		"spec": map[string]any{
			"virtualhost": map[string]any{"fqdn": "app.example.com"},
			"includes":    []any{map[string]any{"name": "podinfo"}},
		},
	}}
	proxies := schema.GroupVersionResource{Group: "projectcontour.io", Version: "v1", Resource: "httpproxies"}
	_, err := labtest.Dynamic(t).Resource(proxies).Namespace(ns).Create(context.Background(), root, metav1.CreateOptions{})
	require.NoError(t, err)
	observe := func(ctx context.Context) (string, error) {
		configs, err := ct.Routes(ctx)
		if err != nil {
			return "", err
		}
		// Contour names clusters <namespace>/<service>/<port>/<hash>.
		return firstRouteSplit(configs, "app.example.com", func(c string) string { return strings.Split(c, "/")[1] })
	}
	tutorialThroughTranslator(t, ns, "contour-canary.yaml", func(*v1beta1.Canary) {}, observe)
}

func TestIstioTutorialCanaryThroughIstiod(t *testing.T) {
	ns := labtest.Namespace(t, "istio-e2e")
	istiod := labtest.StartIstiod(t)
	observe := func(ctx context.Context) (string, error) {
		configs, err := istiod.Routes(ctx, ns, "9898")
		if err != nil {
			return "", err
		}
		// Istio names clusters outbound|<port>||<service>.<namespace>.svc.cluster.local.
		return firstRouteSplit(configs, "podinfo."+ns+".svc.cluster.local", func(c string) string {
			parts := strings.Split(c, "|")
			return strings.Split(parts[len(parts)-1], ".")[0]
		})
	}
	// The tutorial's VirtualService is bound to its public gateway; a sidecar sees it on the mesh gateway.
	tutorialThroughTranslator(t, ns, "istio-canary.yaml", func(c *v1beta1.Canary) { c.Spec.Service.Gateways, c.Spec.Service.Hosts = nil, nil }, observe)
}

// tutorialThroughTranslator initialises, promotes and rolls back the tutorial Canary in file, recording every
// split observe reads ("<primary>/<canary>") while each rollout runs.
func tutorialThroughTranslator(t *testing.T, ns, file string, adapt func(*v1beta1.Canary), observe func(context.Context) (string, error)) {
	restCfg, admin := labtest.Kube(t)
	tc := labtest.Temporal(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 1, 1)

	var failing atomic.Bool
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() && strings.HasSuffix(r.URL.Path, "/load-test") {
			http.Error(w, "load test failed", http.StatusInternalServerError)
		}
	}))
	defer hooks.Close()

	cfg := workloadtest.WorkerConfig(t, restCfg, labtest.Namespace(t, ns+"-worker"))
	wl, err := workload.New(cfg)
	require.NoError(t, err)
	routers, err := router.NewRegistry(cfg)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	queue := "translated-" + ns
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(&activities.Workloads{Kube: wl})
	w.RegisterActivity(&activities.Routing{Routers: routers})
	w.RegisterActivity(activities.NewAnalysis(activities.KubeSecrets{Client: cs}, "http://127.0.0.1:1", "lab", nil))
	require.NoError(t, w.Start())
	defer w.Stop()

	set, err := v1beta1.LoadFile(filepath.Join("..", "api", "v1beta1", "testdata", "flagger", file),
		v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
	require.NoError(t, err)
	c := *set.Canaries()[0]
	c.Namespace = ns
	adapt(&c)
	a := c.Spec.Analysis
	a.Interval, a.Threshold, a.StepWeight, a.MaxWeight, a.Metrics = "10s", 1, 25, 50, nil
	for i := range a.Webhooks {
		a.Webhooks[i].URL = hooks.URL + "/" + a.Webhooks[i].Name
	}
	require.Empty(t, c.Validate(catalog.Capabilities(), v1beta1.RefCheck{}))

	rollout := func(image string) (workflows.RolloutResult, []string) {
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
		var mu sync.Mutex
		var seen []string
		watchCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for watchCtx.Err() == nil {
				if s, err := observe(watchCtx); err == nil {
					mu.Lock()
					if len(seen) == 0 || seen[len(seen)-1] != s {
						seen = append(seen, s)
					}
					mu.Unlock()
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		start := time.Now()
		run, err := rolloutclient.Client{Temporal: tc, TaskQueue: queue}.Release(ctx, workflows.RolloutInput{Canary: c}, workflows.ActionSignal{By: "e2e"})
		require.NoError(t, err)
		var res workflows.RolloutResult
		require.NoError(t, run.Get(ctx, &res))
		// The last split must be seen too: keep watching until it is.
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			last := ""
			if len(seen) > 0 {
				last = seen[len(seen)-1]
			}
			mu.Unlock()
			if last == "100/0" {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		stop()
		<-done
		t.Logf("%s %s: %s in %s; the translator served %v", file, image, res.Phase, time.Since(start).Round(time.Second), seen)
		return res, seen
	}

	res, _ := rollout("")
	require.Equal(t, workflows.PhaseInitialized, res.Phase, res.Reason)

	res, seen := rollout("6.0.1")
	require.Equal(t, workflows.PhaseSucceeded, res.Phase, res.Reason)
	require.True(t, isSubsequence([]string{"75/25", "50/50", "100/0"}, seen), "promotion steps as served: %v", seen)

	failing.Store(true)
	res, seen = rollout("6.0.2")
	require.Equal(t, workflows.PhaseFailed, res.Phase, res.Reason)
	require.True(t, isSubsequence([]string{"75/25", "100/0"}, seen), "rollback as served: %v", seen)
	require.NotContains(t, seen, "50/50", "no step past the failed check")
}

// firstRouteSplit reads the first route of the virtual host whose domains mention host from Envoy route
// configurations (protojson, proto field names) as "<primary>/<canary>" weights; service names a cluster's
// Service.
func firstRouteSplit(configs []map[string]any, host string, service func(string) string) (string, error) {
	for _, rc := range configs {
		vhosts, _ := rc["virtual_hosts"].([]any)
		for _, vh := range vhosts {
			v := vh.(map[string]any)
			if !strings.Contains(fmt.Sprint(v["domains"]), host) {
				continue
			}
			routes, _ := v["routes"].([]any)
			if len(routes) == 0 {
				return "", fmt.Errorf("no routes for %s", host)
			}
			route, _ := routes[0].(map[string]any)["route"].(map[string]any)
			w := map[string]int{}
			if wc, ok := route["weighted_clusters"].(map[string]any); ok {
				for _, c := range wc["clusters"].([]any) {
					cm := c.(map[string]any)
					n, _ := cm["weight"].(float64)
					w[service(fmt.Sprint(cm["name"]))] = int(n)
				}
			} else if c, ok := route["cluster"]; ok {
				w[service(fmt.Sprint(c))] = 100
			}
			return fmt.Sprintf("%d/%d", w["podinfo-primary"], w["podinfo-canary"]), nil
		}
	}
	return "", fmt.Errorf("no virtual host %s", host)
}

// isSubsequence reports whether want appears in got in order (other entries may come between).
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
