//go:build lab

package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

func canary(ns, provider string, mod func(*v1beta1.Canary)) *v1beta1.Canary {
	c := &v1beta1.Canary{}
	c.Name, c.Namespace = "podinfo", ns
	c.Spec.Provider = provider
	c.Spec.TargetRef = v1beta1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"}
	c.Spec.Service = v1beta1.CanaryService{Port: 9898, TargetPort: intstr.FromString("http")}
	c.Spec.Analysis = &v1beta1.CanaryAnalysis{Interval: "10s", StepWeight: 10}
	if mod != nil {
		mod(c)
	}
	c.SetDefaults()
	return c
}

// env is one lab namespace with the worker's clients, counted.
type env struct {
	ns      string
	admin   kubernetes.Interface
	kube    *workload.Client
	routers *router.Registry
	count   *workloadtest.Counter
}

func newEnv(t *testing.T, prefix string) *env {
	t.Helper()
	_, admin := labtest.Kube(t)
	e := &env{ns: labtest.Namespace(t, prefix), admin: admin, count: &workloadtest.Counter{}}
	cfg := e.count.Count(workloadtest.WorkerConfig(t, labtest.RestConfig(t), labtest.Namespace(t, "cf-worker")))
	var err error
	e.kube, err = workload.New(cfg)
	require.NoError(t, err)
	e.routers, err = router.NewRegistry(cfg)
	require.NoError(t, err)
	return e
}

// rollout makes the primary run podinfo 6.0.0 and the target (the canary) 6.0.1, both ready.
// onLabGateway attaches the Canary's routes to the lab's Gateway listener, for host.
func onLabGateway(t *testing.T, c *v1beta1.Canary, host string) {
	gwNS, gwName, listener := labtest.Gateway(t)
	c.Spec.Service.GatewayRefs = []v1beta1.ParentReference{{Name: gwName, Namespace: &gwNS, SectionName: &listener}}
	c.Spec.Service.Hosts = []string{host}
}

// ingressRoute creates the user's IngressRoute "podinfo": requests for host go to the TraefikService podinfo,
// which the traefik router manages.
func (e *env) ingressRoute(t *testing.T, host string) {
	t.Helper()
	_, err := labtest.Dynamic(t).Resource(labtest.IngressRoutes).Namespace(e.ns).Create(context.Background(),
		labtest.IngressRoute(e.ns, "podinfo", host, map[string]any{"name": "podinfo", "kind": "TraefikService"}), metav1.CreateOptions{})
	require.NoError(t, err)
}

func (e *env) rollout(t *testing.T, c *v1beta1.Canary) {
	t.Helper()
	ctx := context.Background()
	workloadtest.CreatePodinfo(t, e.admin, e.ns, "podinfo", "6.0.0", 1, 0)
	require.NoError(t, e.kube.Initialize(ctx, c))
	e.waitReady(t, c, true)
	labtest.SetImage(t, e.admin, e.ns, "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
	e.waitReady(t, c, false)
}

func (e *env) waitReady(t *testing.T, c *v1beta1.Canary, primary bool) {
	t.Helper()
	// EventuallyWithT: an attempt's error is retried (a require in Eventually's condition would end only its
	// goroutine), and the last attempt's reason is reported at the deadline.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ok, reason, err := e.kube.IsReady(context.Background(), c, primary)
		require.NoError(ct, err)
		require.True(ct, ok, "never ready: %s", reason)
	}, 90*time.Second, 200*time.Millisecond)
}

// split sends n GET /version requests to url with Host host (and header, if any) and counts the answers per
// version. Bounded: 8 at a time, 5 s each.
func split(t *testing.T, url, host string, header http.Header, n int) map[string]int {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}}
	var mu sync.Mutex
	out := map[string]int{}
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				req, _ := http.NewRequest(http.MethodGet, url+"/version", nil)
				req.Host = host
				for k, v := range header {
					req.Header[k] = v
				}
				v := "error"
				if resp, err := hc.Do(req); err == nil {
					var body struct{ Version string }
					if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil {
						v = body.Version
					} else {
						v = fmt.Sprint("status ", resp.StatusCode)
					}
					resp.Body.Close()
				}
				mu.Lock()
				out[v]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// requireSplit waits (bounded) until the router applied the split, then requires that 2,000 requests go to the
// canary (6.0.1) within ±3 points of canaryWeight.
func requireSplit(t *testing.T, url, host string, header http.Header, canaryWeight int) {
	t.Helper()
	near := func(got map[string]int, n int, tolerance float64) bool {
		pct := 100 * float64(got["6.0.1"]) / float64(n)
		return got["6.0.0"]+got["6.0.1"] == n && math.Abs(pct-float64(canaryWeight)) <= tolerance
	}
	var last map[string]int
	deadline := time.Now().Add(2 * time.Minute)
	for {
		last = split(t, url, host, header, 100)
		if near(last, 100, 5) {
			break
		}
		require.True(t, time.Now().Before(deadline), "the split never reached %d%% canary; last batch %v", canaryWeight, last)
		time.Sleep(250 * time.Millisecond)
	}
	got := split(t, url, host, header, 2000)
	t.Logf("canary weight %d: %v", canaryWeight, got)
	require.True(t, near(got, 2000, 3), "2,000 requests at canary weight %d split %v", canaryWeight, got)
}

var weights = [][2]int{{0, 100}, {10, 90}, {50, 50}, {90, 10}, {100, 0}}

// stepCost counts the API requests of one analysis step: set the weights, check the canary is ready.
func (e *env) stepCost(t *testing.T, rt router.Router, c *v1beta1.Canary, pw, cw int) []string {
	t.Helper()
	ctx := context.Background()
	e.count.Take()
	require.NoError(t, rt.SetRoutes(ctx, c, pw, cw, false))
	ok, _, err := e.kube.IsReady(ctx, c, false)
	require.NoError(t, err)
	require.True(t, ok)
	return e.count.Take()
}

func TestTraefikSplitsLiveTraffic(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-traefik")
	c := canary(e.ns, "traefik", nil)
	e.rollout(t, c)
	rt, err := e.routers.Get("traefik")
	require.NoError(t, err)
	require.NoError(t, rt.Reconcile(ctx, c))

	host := e.ns + ".traefik.lab"
	e.ingressRoute(t, host)

	for _, w := range weights {
		require.NoError(t, rt.SetRoutes(ctx, c, w[0], w[1], false))
		pw, cw, m, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, [2]int{pw, cw}, w)
		require.False(t, m)
		requireSplit(t, labtest.TraefikURL(t), host, nil, w[1])
	}
	reqs := e.stepCost(t, rt, c, 80, 20)
	t.Logf("one analysis step with traefik: %d API requests: %v", len(reqs), reqs)
	require.LessOrEqual(t, len(reqs), 4)
	requireSplit(t, labtest.TraefikURL(t), host, nil, 20)
}

func TestTraefikABSendsMatchingRequestsToTheCanaryOnly(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-traefik-ab")
	c := canary(e.ns, "traefik", func(c *v1beta1.Canary) {
		c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 5
		c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}}}
	})
	e.rollout(t, c)
	rt, err := e.routers.Get("traefik")
	require.NoError(t, err)
	err = rt.Reconcile(ctx, c)
	require.ErrorContains(t, err, "no IngressRoute in namespace "+e.ns+" routes to TraefikService podinfo", "A/B needs the user's route")

	host := e.ns + ".traefik.lab"
	e.ingressRoute(t, host)
	// A route of the user's that already bears the clone's name (here one straight to the canary, for tests) is
	// left alone, and the error says which name to change: the clone's is "<ingressroute>-canary".
	routes := labtest.Dynamic(t).Resource(labtest.IngressRoutes).Namespace(e.ns)
	_, err = routes.Create(ctx, labtest.IngressRoute(e.ns, "podinfo-canary", "canary."+host, map[string]any{"name": "podinfo-canary", "port": int64(9898)}), metav1.CreateOptions{})
	require.NoError(t, err)
	err = rt.Reconcile(ctx, c)
	require.ErrorContains(t, err, "IngressRoute "+e.ns+"/podinfo-canary exists and is not managed by canaryflow")
	require.ErrorContains(t, err, "canaryflow names its A/B copy of IngressRoute podinfo so: rename or delete this one")
	require.NoError(t, routes.Delete(ctx, "podinfo-canary", metav1.DeleteOptions{}))

	require.NoError(t, rt.Reconcile(ctx, c))
	require.NoError(t, rt.Reconcile(ctx, c))
	require.NoError(t, rt.SetRoutes(ctx, c, 0, 100, false))
	pw, cw, _, err := rt.GetRoutes(ctx, c)
	require.NoError(t, err)
	require.Equal(t, []int{0, 100}, []int{pw, cw})
	requireSplit(t, labtest.TraefikURL(t), host, http.Header{"X-Canary": {"insider"}}, 100)
	requireSplit(t, labtest.TraefikURL(t), host, nil, 0)
	requireSplit(t, labtest.TraefikURL(t), host, http.Header{"X-Canary": {"outsider"}}, 0)

	require.NoError(t, rt.Finalize(ctx, c))
	_, err = labtest.Dynamic(t).Resource(labtest.IngressRoutes).Namespace(e.ns).Get(ctx, "podinfo-canary", metav1.GetOptions{})
	require.Error(t, err, "the clone is removed")
	_, err = labtest.Dynamic(t).Resource(labtest.IngressRoutes).Namespace(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err, "the user's route stays")
}

func TestGatewayAPISplitsLiveTrafficAndMatchesHeaders(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-gw")
	host := e.ns + ".gw.lab"
	c := canary(e.ns, "gatewayapi:v1", func(c *v1beta1.Canary) { onLabGateway(t, c, host) })
	e.rollout(t, c)
	rt, err := e.routers.Get(c.Spec.Provider)
	require.NoError(t, err)
	require.NoError(t, rt.Reconcile(ctx, c))
	hr, err := e.admin.Discovery().ServerResourcesForGroupVersion("gateway.networking.k8s.io/v1")
	require.NoError(t, err)
	require.NotEmpty(t, hr.APIResources)

	for _, w := range weights {
		require.NoError(t, rt.SetRoutes(ctx, c, w[0], w[1], false))
		pw, cw, _, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, [2]int{pw, cw}, w)
		requireSplit(t, labtest.GatewayURL(t), host, nil, w[1])
	}
	reqs := e.stepCost(t, rt, c, 80, 20)
	t.Logf("one analysis step with gatewayapi: %d API requests: %v", len(reqs), reqs)
	require.LessOrEqual(t, len(reqs), 4)

	// A/B: the canary gets every request with the header and none of the others.
	ab := clone(t, c)
	ab.Spec.Analysis.StepWeight, ab.Spec.Analysis.Iterations = 0, 5
	ab.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}}}
	require.NoError(t, rt.Reconcile(ctx, ab))
	require.NoError(t, rt.SetRoutes(ctx, ab, 0, 100, false))
	requireSplit(t, labtest.GatewayURL(t), host, http.Header{"X-Canary": {"insider"}}, 100)
	requireSplit(t, labtest.GatewayURL(t), host, nil, 0)
	requireSplit(t, labtest.GatewayURL(t), host, http.Header{"X-Canary": {"outsider"}}, 0)
}

func TestRouterObjectsAreOursIdempotentAndFinalized(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-obj")
	dyn := labtest.Dynamic(t)
	c := canary(e.ns, "traefik", func(c *v1beta1.Canary) {
		c.Spec.Service.GatewayRefs = []v1beta1.ParentReference{{Name: "lab-gateway"}}
		c.Spec.Analysis.SessionAffinity = &v1beta1.SessionAffinity{CookieName: "canary"}
	})
	workloadtest.CreatePodinfo(t, e.admin, e.ns, "podinfo", "6.0.0", 1, 0)
	require.NoError(t, e.kube.Initialize(ctx, c))

	for _, tc := range []struct {
		provider string
		gvr      schema.GroupVersionResource
	}{{"traefik", labtest.TraefikServices}, {"gatewayapi", labtest.HTTPRoutes}} {
		t.Run(tc.provider, func(t *testing.T) {
			c := clone(t, c)
			c.Spec.Provider = tc.provider
			rt, err := e.routers.Get(tc.provider)
			require.NoError(t, err)
			require.NoError(t, rt.Reconcile(ctx, c))
			require.NoError(t, rt.SetRoutes(ctx, c, 70, 30, false))
			before, err := dyn.Resource(tc.gvr).Namespace(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, kubeobj.ManagedByValue, before.GetLabels()[kubeobj.ManagedByLabel])
			require.NoError(t, rt.SetRoutes(ctx, c, 70, 30, false))
			require.NoError(t, rt.Reconcile(ctx, c), "a reconcile never moves traffic")
			after, err := dyn.Resource(tc.gvr).Namespace(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
			require.NoError(t, err)
			require.Equal(t, before.GetResourceVersion(), after.GetResourceVersion(), "running it again changed the object")
			pw, cw, _, err := rt.GetRoutes(ctx, c)
			require.NoError(t, err)
			require.Equal(t, []int{70, 30}, []int{pw, cw})

			// Mirroring (blue/green): all responses from the primary, requests copied to the canary.
			m := clone(t, c)
			m.Spec.Analysis.SessionAffinity, m.Spec.Analysis.StepWeight, m.Spec.Analysis.Iterations, m.Spec.Analysis.Mirror = nil, 0, 3, true
			require.NoError(t, rt.SetRoutes(ctx, m, 100, 0, true))
			pw, cw, mirrored, err := rt.GetRoutes(ctx, m)
			require.NoError(t, err)
			require.Equal(t, []any{100, 0, true}, []any{pw, cw, mirrored})
			require.Error(t, router.CheckSplit(m, 50, 50, true), "mirroring only with all traffic on the primary")

			require.NoError(t, rt.Finalize(ctx, c))
			require.NoError(t, rt.Finalize(ctx, c))
			fin, err := dyn.Resource(tc.gvr).Namespace(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
			require.NoError(t, err)
			require.NotContains(t, fmt.Sprint(fin.Object["spec"]), "podinfo-canary", "finalised routes point at the apex Service only")
		})
	}

	t.Run("kubernetes", func(t *testing.T) {
		rt, err := e.routers.Get("kubernetes")
		require.NoError(t, err)
		require.NoError(t, rt.Reconcile(ctx, c))
		require.NoError(t, rt.SetRoutes(ctx, c, 0, 100, false))
		svc, err := e.admin.CoreV1().Services(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, map[string]string{"app": "podinfo"}, svc.Spec.Selector)
		require.NoError(t, rt.SetRoutes(ctx, c, 0, 100, false))
		require.NoError(t, e.kube.Initialize(ctx, c), "re-initialising keeps the switch")
		again, err := e.admin.CoreV1().Services(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, svc.ResourceVersion, again.ResourceVersion)
		pw, cw, _, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, []int{0, 100}, []int{pw, cw})
		err = rt.SetRoutes(ctx, c, 50, 50, false)
		require.ErrorContains(t, err, "can only switch all traffic")
		e.count.Take()
		require.NoError(t, rt.SetRoutes(ctx, c, 100, 0, false))
		switchCost := e.count.Take()
		require.NoError(t, rt.SetRoutes(ctx, c, 100, 0, false))
		t.Logf("kubernetes router: a switch costs %d API requests %v, an unchanged split %d", len(switchCost), switchCost, len(e.count.Take()))
		svc, err = e.admin.CoreV1().Services(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, map[string]string{"app": "podinfo-primary"}, svc.Spec.Selector)
	})
}

func TestForeignRouterObjectIsRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-foreign")
	dyn := labtest.Dynamic(t)
	foreign := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService",
		"metadata": map[string]any{"name": "podinfo"},
		"spec": map[string]any{"weighted": map[string]any{"services": []any{
			map[string]any{"name": "somewhere", "port": int64(80), "weight": int64(1)},
		}}},
	}}
	_, err := dyn.Resource(labtest.TraefikServices).Namespace(e.ns).Create(ctx, foreign, metav1.CreateOptions{})
	require.NoError(t, err)
	c := canary(e.ns, "traefik", nil)
	rt, err := e.routers.Get("traefik")
	require.NoError(t, err)
	for name, op := range map[string]func() error{
		"reconcile":  func() error { return rt.Reconcile(ctx, c) },
		"set routes": func() error { return rt.SetRoutes(ctx, c, 90, 10, false) },
	} {
		err := op()
		require.Error(t, err, name)
		var p interface{ Permanent() bool }
		require.ErrorAs(t, err, &p)
		require.True(t, p.Permanent())
		require.Contains(t, err.Error(), "TraefikService "+e.ns+"/podinfo exists and is not managed by canaryflow")
	}
	got, err := dyn.Resource(labtest.TraefikServices).Namespace(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.True(t, strings.Contains(fmt.Sprint(got.Object["spec"]), "somewhere"), "left as it was")
}

func clone(t *testing.T, c *v1beta1.Canary) *v1beta1.Canary {
	t.Helper()
	b, err := json.Marshal(c)
	require.NoError(t, err)
	var out v1beta1.Canary
	require.NoError(t, json.Unmarshal(b, &out))
	return &out
}
