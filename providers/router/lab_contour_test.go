//go:build lab

package router_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/router"
)

// The contour router's HTTPProxy, created on the lab API server with Contour's own CRDs (module
// github.com/projectcontour/contour v1.33.8), so the real schema validates it. Object level.

var httpProxies = schema.GroupVersionResource{Group: "projectcontour.io", Version: "v1", Resource: "httpproxies"}

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

	// Flagger's HTTPProxy for this Canary (owned by the flagger.app Canary) is taken over, keeping its split.
	flaggers := proxy("other", []any{map[string]any{"apiVersion": "flagger.app/v1beta1", "kind": "Canary", "name": "podinfo",
		"uid": "00000000-0000-0000-0000-000000000001", "controller": true}})
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
