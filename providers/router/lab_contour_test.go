//go:build lab

package router_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

// The contour router's HTTPProxy, created on the lab API server with Contour's own CRDs (module
// github.com/projectcontour/contour v1.33.8), so the real schema validates it. Object level.

var httpProxies = schema.GroupVersionResource{Group: "projectcontour.io", Version: "v1", Resource: "httpproxies"}

// flaggerCanaries are Flagger's Canary objects (deploy/crds), the owners of the objects Flagger's routers write.
var flaggerCanaries = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}

func contourRouter(t *testing.T, prefix string) (*env, router.Router) {
	t.Helper()
	labtest.CRDs(t, labtest.ModuleFile(t, "github.com/projectcontour/contour@v1.33.8", "examples/contour/01-crds.yaml"))
	e := newEnv(t, prefix)
	rt, err := e.routers.Get("contour")
	require.NoError(t, err)
	return e, rt
}

// services reads the Services of an HTTPProxy route as name → weight (-1 when the weight is left out).
func services(t *testing.T, route any) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, s := range field(t, route, "services").([]any) {
		w, ok := s.(map[string]any)["weight"].(int64)
		if !ok {
			w = -1
		}
		out[field(t, s, "name").(string)] = w
	}
	return out
}

func TestContourHTTPProxyWeightsRetriesAndTimeouts(t *testing.T) {
	ctx := context.Background()
	e, rt := contourRouter(t, "rt-contour")
	c := canary(e.ns, "contour", func(c *v1beta1.Canary) {
		c.Spec.Service.Timeout = "15s"
		c.Spec.Service.Retries = &v1beta1.HTTPRetry{Attempts: 10, PerTryTimeout: "5s", RetryOn: "5xx,gateway-error"}
		c.Spec.Service.Match = []v1beta1.HTTPMatchRequest{{URI: &v1beta1.StringMatch{Prefix: "/podinfo"}}}
	})
	require.NoError(t, rt.Reconcile(ctx, c))
	hp := getObj(t, httpProxies, e.ns, "podinfo")
	require.Equal(t, kubeobj.ManagedByValue, hp.GetLabels()[kubeobj.ManagedByLabel])
	route := field(t, hp.Object, "spec", "routes", 0)
	require.Equal(t, map[string]int64{"podinfo-primary": 100, "podinfo-canary": -1}, services(t, route), "weight 0 is left out, as Flagger does")
	require.Equal(t, []any{map[string]any{"prefix": "/podinfo"}}, field(t, route, "conditions"))
	require.Equal(t, map[string]any{"response": "15s", "idle": "5m"}, field(t, route, "timeoutPolicy"))
	require.Equal(t, map[string]any{"count": int64(10), "perTryTimeout": "5s", "retryOn": []any{"5xx", "gateway-error"}}, field(t, route, "retryPolicy"))
	require.Equal(t, []any{map[string]any{"name": "l5d-dst-override", "value": "podinfo-canary." + e.ns + ".svc.cluster.local:9898"}},
		field(t, route, "services", 1, "requestHeadersPolicy", "set"))

	for _, tc := range []struct {
		pw, cw int
		want   map[string]int64
	}{
		{90, 10, map[string]int64{"podinfo-primary": 90, "podinfo-canary": 10}},
		{0, 100, map[string]int64{"podinfo-primary": -1, "podinfo-canary": 100}},
		{100, 0, map[string]int64{"podinfo-primary": 100, "podinfo-canary": -1}},
	} {
		require.NoError(t, rt.SetRoutes(ctx, c, tc.pw, tc.cw, false))
		require.Equal(t, tc.want, services(t, field(t, getObj(t, httpProxies, e.ns, "podinfo").Object, "spec", "routes", 0)))
		pw, cw, mirrored, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, []any{tc.pw, tc.cw, false}, []any{pw, cw, mirrored})
	}

	// Mirroring (beyond Flagger): the canary as the route's mirror service, at mirrorWeight percent.
	m := clone(t, c)
	m.Spec.Analysis.StepWeight, m.Spec.Analysis.Iterations, m.Spec.Analysis.Mirror, m.Spec.Analysis.MirrorWeight = 0, 5, true, 25
	require.NoError(t, rt.SetRoutes(ctx, m, 100, 0, true))
	mirror := field(t, getObj(t, httpProxies, e.ns, "podinfo").Object, "spec", "routes", 0, "services", 1)
	require.Equal(t, []any{"podinfo-canary", true, int64(25)}, []any{field(t, mirror, "name"), field(t, mirror, "mirror"), field(t, mirror, "weight")})
	pw, cw, mirrored, err := rt.GetRoutes(ctx, m)
	require.NoError(t, err)
	require.Equal(t, []any{100, 0, true}, []any{pw, cw, mirrored})
	require.NoError(t, rt.Reconcile(ctx, m), "a reconcile keeps the mirror")
	_, _, mirrored, err = rt.GetRoutes(ctx, m)
	require.NoError(t, err)
	require.True(t, mirrored)

	require.NoError(t, rt.SetRoutes(ctx, c, 60, 40, false))
	before := getObj(t, httpProxies, e.ns, "podinfo")
	require.NoError(t, rt.SetRoutes(ctx, c, 60, 40, false))
	require.NoError(t, rt.Reconcile(ctx, c), "a reconcile never moves traffic")
	require.Equal(t, before.GetResourceVersion(), getObj(t, httpProxies, e.ns, "podinfo").GetResourceVersion(), "running it again changed the HTTPProxy")

	require.NoError(t, rt.Finalize(ctx, c))
	require.NoError(t, rt.Finalize(ctx, c))
	fin := getObj(t, httpProxies, e.ns, "podinfo")
	require.Len(t, field(t, fin.Object, "spec", "routes"), 1)
	require.Equal(t, map[string]int64{"podinfo": -1}, services(t, field(t, fin.Object, "spec", "routes", 0)), "finalised: the apex Service alone")

	bad := clone(t, c)
	bad.Spec.Service.Match = []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x": {Exact: "y"}}}}
	require.ErrorContains(t, rt.Reconcile(ctx, bad), "provider contour routes by one path prefix only")
}

func TestContourABRoutesMatchingRequestsAndKeepsTheRestOnThePrimary(t *testing.T) {
	ctx := context.Background()
	e, rt := contourRouter(t, "rt-contour-ab")
	c := canary(e.ns, "contour", func(c *v1beta1.Canary) {
		c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 10
		c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{
			{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}},
			{Headers: map[string]v1beta1.StringMatch{"cookie": {Regex: "^(.*?;)?(canary=always)(;.*)?$"}, "user-agent": {Prefix: "Mozilla"}}},
		}
	})
	require.NoError(t, rt.Reconcile(ctx, c))
	require.NoError(t, rt.SetRoutes(ctx, c, 0, 100, false))
	routes := field(t, getObj(t, httpProxies, e.ns, "podinfo").Object, "spec", "routes").([]any)
	require.Len(t, routes, 3)
	require.Equal(t, []any{map[string]any{"prefix": "/", "header": map[string]any{"name": "x-canary", "exact": "insider"}}},
		field(t, routes[0], "conditions"), "a single header is Flagger's condition exactly")
	require.Equal(t, []any{
		map[string]any{"prefix": "/", "header": map[string]any{"name": "cookie", "regex": "^(.*?;)?(canary=always)(;.*)?$"}},
		map[string]any{"header": map[string]any{"name": "user-agent", "contains": "Mozilla"}},
	}, field(t, routes[1], "conditions"), "one prefix per route, the headers of one match ANDed")
	for _, r := range routes[:2] {
		require.Equal(t, map[string]int64{"podinfo-primary": -1, "podinfo-canary": 100}, services(t, r))
	}
	require.Equal(t, []any{map[string]any{"prefix": "/"}}, field(t, routes[2], "conditions"))
	require.Equal(t, map[string]int64{"podinfo-primary": 100, "podinfo-canary": -1}, services(t, routes[2]), "every other request to the primary")
	pw, cw, _, err := rt.GetRoutes(ctx, c)
	require.NoError(t, err)
	require.Equal(t, []int{0, 100}, []int{pw, cw})

	uri := clone(t, c)
	uri.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{{URI: &v1beta1.StringMatch{Prefix: "/beta"}}}
	require.ErrorContains(t, rt.SetRoutes(ctx, uri, 0, 100, false), "provider contour matches headers and query parameters only")
}

func TestContourRefusesAForeignHTTPProxyAndAdoptsFlaggers(t *testing.T) {
	ctx := context.Background()
	e, rt := contourRouter(t, "rt-contour-own")
	dyn := labtest.Dynamic(t)
	proxy := func(name string, owners []any) *unstructured.Unstructured {
		meta := map[string]any{"name": name}
		if owners != nil {
			meta["ownerReferences"] = owners
		}
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "projectcontour.io/v1", "kind": "HTTPProxy", "metadata": meta,
			"spec": map[string]any{"routes": []any{map[string]any{"services": []any{map[string]any{"name": "somewhere", "port": int64(80)}}}}},
		}}
	}
	_, err := dyn.Resource(httpProxies).Namespace(e.ns).Create(ctx, proxy("podinfo", nil), metav1.CreateOptions{})
	require.NoError(t, err)
	c := canary(e.ns, "contour", nil)
	for name, op := range map[string]func() error{
		"reconcile":  func() error { return rt.Reconcile(ctx, c) },
		"set routes": func() error { return rt.SetRoutes(ctx, c, 90, 10, false) },
		"finalize":   func() error { return rt.Finalize(ctx, c) },
	} {
		require.ErrorContains(t, op(), "HTTPProxy "+e.ns+"/podinfo exists and is not managed by canaryflow", name)
	}
	require.Equal(t, "somewhere", field(t, getObj(t, httpProxies, e.ns, "podinfo").Object, "spec", "routes", 0, "services", 0, "name"))

	// Flagger's HTTPProxy for this Canary (owned by the flagger.app Canary) is taken over, keeping its split. The
	// owner is a real Canary object (Flagger's CRD, deploy/crds): an owner that does not exist has its dependents
	// deleted by the controller-manager's garbage collector, in the middle of the test.
	root, err := labtest.RepoRoot()
	require.NoError(t, err)
	labtest.CRDs(t, filepath.Join(root, "deploy", "crds", "crd.yaml"))
	owner, err := dyn.Resource(flaggerCanaries).Namespace(e.ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "metadata": map[string]any{"name": "podinfo"},
		"spec": map[string]any{
			"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
			"service":   map[string]any{"port": int64(9898)},
			"analysis":  map[string]any{"interval": "1m", "threshold": int64(5), "maxWeight": int64(50), "stepWeight": int64(10)},
		},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	flaggers := proxy("other", []any{map[string]any{"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
		"uid": string(owner.GetUID()), "controller": true}})
	flaggers.Object["spec"] = map[string]any{"routes": []any{map[string]any{"services": []any{
		map[string]any{"name": "other-primary", "port": int64(9898), "weight": int64(70)},
		map[string]any{"name": "other-canary", "port": int64(9898), "weight": int64(30)},
	}}}}
	_, err = dyn.Resource(httpProxies).Namespace(e.ns).Create(ctx, flaggers, metav1.CreateOptions{})
	require.NoError(t, err)
	other := canary(e.ns, "contour", func(c *v1beta1.Canary) { c.Spec.Service.Name = "other" })
	require.NoError(t, rt.Reconcile(ctx, other))
	pw, cw, _, err := rt.GetRoutes(ctx, other)
	require.NoError(t, err)
	require.Equal(t, []int{70, 30}, []int{pw, cw}, "a migration from Flagger keeps the traffic where it was")
}

// envoyRoute is one route Contour derives for Envoy: its match and the weight of each Service's cluster.
type envoyRoute struct {
	name     string
	match    map[string]any
	weights  map[string]int            // Service name → weight
	clusters map[string]map[string]any // Service name → its weighted cluster
	route    map[string]any
	raw      map[string]any // the whole route
}

// envoyRoutes reads the routes of the virtual host for host from Contour's RDS answer.
func envoyRoutes(t *testing.T, ct *labtest.Contour, host string) ([]envoyRoute, error) {
	t.Helper()
	configs, err := ct.Routes(context.Background())
	if err != nil {
		return nil, err
	}
	// Contour names clusters <namespace>/<service>/<port>/<hash>.
	return routesOf(configs, host, func(cluster string) string { return strings.Split(cluster, "/")[1] })
}

// routesOf reads the routes of the virtual host whose domains mention host from Envoy route configurations
// (protojson, proto field names); service names the Service of a cluster.
func routesOf(configs []map[string]any, host string, service func(cluster string) string) ([]envoyRoute, error) {
	for _, rc := range configs {
		vhosts, _ := rc["virtual_hosts"].([]any)
		for _, vh := range vhosts {
			v := vh.(map[string]any)
			if !strings.Contains(fmt.Sprint(v["domains"]), host) {
				continue
			}
			var out []envoyRoute
			for _, r := range v["routes"].([]any) {
				rm := r.(map[string]any)
				er := envoyRoute{weights: map[string]int{}, clusters: map[string]map[string]any{}}
				er.raw = rm
				er.match, _ = rm["match"].(map[string]any)
				er.route, _ = rm["route"].(map[string]any)
				er.name, _ = rm["name"].(string)
				if wc, ok := er.route["weighted_clusters"].(map[string]any); ok {
					for _, c := range wc["clusters"].([]any) {
						cm := c.(map[string]any)
						w, _ := cm["weight"].(float64)
						er.weights[service(fmt.Sprint(cm["name"]))] = int(w)
						er.clusters[service(fmt.Sprint(cm["name"]))] = cm
					}
				} else if c, ok := er.route["cluster"]; ok {
					er.weights[service(fmt.Sprint(c))] = 100
				}
				out = append(out, er)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("no virtual host %s in %d route configurations", host, len(configs))
}

// waitEnvoyRoutes polls Contour's RDS until ok accepts the routes of host.
func waitEnvoyRoutes(t *testing.T, ct *labtest.Contour, host, what string, ok func([]envoyRoute) bool) []envoyRoute {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		last, err := envoyRoutes(t, ct, host)
		if err == nil && ok(last) {
			return last
		}
		require.True(t, time.Now().Before(deadline), "Contour never served %s for %s: last %+v (%v)", what, host, last, err)
		time.Sleep(500 * time.Millisecond)
	}
}

func proxyStatus(t *testing.T, ns, name string) string {
	t.Helper()
	u, err := labtest.Dynamic(t).Resource(httpProxies).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	s, _, _ := unstructured.NestedString(u.Object, "status", "currentStatus")
	d, _, _ := unstructured.NestedString(u.Object, "status", "description")
	return s + ": " + d
}

// What the real Contour (v1.33.8, `contour serve`) makes of the contour router's HTTPProxy: orphaned alone, as
// Flagger's is, valid once the user's root HTTPProxy includes it; the weighted clusters of each split, the retry
// and timeout policy, the mirror policy, and the A/B header routes ahead of the primary's, read back over RDS.
// No Envoy: no traffic.
func TestContourTranslatesOurHTTPProxy(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "contour-xds")
	c := canary(e.ns, "contour", func(c *v1beta1.Canary) {
		c.Spec.Service.Timeout = "15s"
		c.Spec.Service.Retries = &v1beta1.HTTPRetry{Attempts: 3, PerTryTimeout: "5s", RetryOn: "5xx"}
	})
	workloadtest.CreatePodinfo(t, e.admin, e.ns, "podinfo", "6.0.0", 1, 0)
	require.NoError(t, e.kube.Initialize(ctx, c))
	ct := labtest.StartContour(t, e.ns)
	rt, err := e.routers.Get("contour")
	require.NoError(t, err)
	require.NoError(t, rt.Reconcile(ctx, c))
	require.Eventually(t, func() bool { return strings.HasPrefix(proxyStatus(t, e.ns, "podinfo"), "orphaned") },
		60*time.Second, 200*time.Millisecond, "alone, the HTTPProxy is an orphan: %s", proxyStatus(t, e.ns, "podinfo"))

	root := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "projectcontour.io/v1", "kind": "HTTPProxy",
		"metadata": map[string]any{"name": "app"},
		"spec": map[string]any{
			"virtualhost": map[string]any{"fqdn": "app.example.com"},
			"includes":    []any{map[string]any{"name": "podinfo"}},
		},
	}}
	_, err = labtest.Dynamic(t).Resource(httpProxies).Namespace(e.ns).Create(ctx, root, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return strings.HasPrefix(proxyStatus(t, e.ns, "podinfo"), "valid") && strings.HasPrefix(proxyStatus(t, e.ns, "app"), "valid")
	}, 60*time.Second, 200*time.Millisecond, "included by a root, it is valid: %s / %s", proxyStatus(t, e.ns, "podinfo"), proxyStatus(t, e.ns, "app"))

	for _, w := range [][2]int{{100, 0}, {90, 10}, {50, 50}, {0, 100}} {
		require.NoError(t, rt.SetRoutes(ctx, c, w[0], w[1], false))
		routes := waitEnvoyRoutes(t, ct, "app.example.com", fmt.Sprintf("%d/%d", w[0], w[1]), func(rs []envoyRoute) bool {
			return len(rs) == 1 && rs[0].weights["podinfo-primary"] == w[0] && rs[0].weights["podinfo-canary"] == w[1]
		})
		require.Equal(t, "/", routes[0].match["prefix"])
		require.Equal(t, "15s", routes[0].route["timeout"], "spec.service.timeout is the route's response timeout")
		require.EqualValues(t, 3, field(t, routes[0].route, "retry_policy", "num_retries"))
		require.Equal(t, "5xx", field(t, routes[0].route, "retry_policy", "retry_on"))
	}

	m := clone(t, c)
	m.Spec.Analysis.StepWeight, m.Spec.Analysis.Iterations, m.Spec.Analysis.Mirror, m.Spec.Analysis.MirrorWeight = 0, 5, true, 50
	require.NoError(t, rt.SetRoutes(ctx, m, 100, 0, true))
	mirrored := waitEnvoyRoutes(t, ct, "app.example.com", "the mirror", func(rs []envoyRoute) bool {
		return len(rs) == 1 && rs[0].route["request_mirror_policies"] != nil
	})
	require.Equal(t, map[string]int{"podinfo-primary": 100}, onlyWeighted(mirrored[0].weights), "responses from the primary only")
	policy := field(t, mirrored[0].route, "request_mirror_policies", 0)
	require.Contains(t, fmt.Sprint(field(t, policy, "cluster")), "/podinfo-canary/", "requests copied to the canary")
	require.EqualValues(t, 50, field(t, policy, "runtime_fraction", "default_value", "numerator"), "at mirrorWeight percent")

	ab := clone(t, c)
	ab.Spec.Analysis.StepWeight, ab.Spec.Analysis.Iterations = 0, 10
	ab.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{
		{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}},
		{Headers: map[string]v1beta1.StringMatch{"cookie": {Suffix: "insider"}}},
	}
	require.NoError(t, rt.Reconcile(ctx, ab))
	require.NoError(t, rt.SetRoutes(ctx, ab, 0, 100, false))
	routes := waitEnvoyRoutes(t, ct, "app.example.com", "the A/B routes", func(rs []envoyRoute) bool { return len(rs) == 3 })
	t.Logf("Contour's A/B routes: %+v", routes)
	headerOf := func(r envoyRoute) string { return fmt.Sprint(r.match["headers"]) }
	var sawExact, sawContains, sawFallback bool
	for _, r := range routes {
		switch h := headerOf(r); {
		case strings.Contains(h, "x-canary") && strings.Contains(h, "exact:insider"):
			sawExact = true
			require.Equal(t, map[string]int{"podinfo-canary": 100}, onlyWeighted(r.weights))
		case strings.Contains(h, "cookie") && strings.Contains(h, "contains:insider"):
			sawContains = true
			require.Equal(t, map[string]int{"podinfo-canary": 100}, onlyWeighted(r.weights))
		case r.match["headers"] == nil:
			sawFallback = true
			require.Equal(t, map[string]int{"podinfo-primary": 100}, onlyWeighted(r.weights), "every other request to the primary")
		}
	}
	require.True(t, sawExact && sawContains && sawFallback, "routes %+v", routes)
	require.True(t, strings.HasPrefix(proxyStatus(t, e.ns, "podinfo"), "valid"), proxyStatus(t, e.ns, "podinfo"))
}

// onlyWeighted drops the clusters at weight 0.
func onlyWeighted(w map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range w {
		if v > 0 {
			out[k] = v
		}
	}
	return out
}
