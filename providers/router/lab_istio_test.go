//go:build lab

package router_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// The istio router's objects, created on the lab API server with Istio's own CRDs (istio.io/api), so the real
// schema (including its CEL rules on durations) validates every object. Object level: no istiod here.

var (
	virtualServices  = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}
	destinationRules = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
)

func istioCRDs(t *testing.T) {
	t.Helper()
	labtest.CRDs(t, labtest.ModuleFile(t, "istio.io/api@v1.32.0", "kubernetes/customresourcedefinitions.gen.yaml"))
}

// istioRouter returns the istio router of a fresh lab namespace, with the worker's RBAC.
func istioRouter(t *testing.T, prefix string) (*env, router.Router) {
	t.Helper()
	istioCRDs(t)
	e := newEnv(t, prefix)
	rt, err := e.routers.Get("istio")
	require.NoError(t, err)
	return e, rt
}

func getObj(t *testing.T, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	u, err := labtest.Dynamic(t).Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return u
}

// field reads a nested field of an object by JSON path segments (string keys, int indexes).
func field(t *testing.T, obj any, path ...any) any {
	t.Helper()
	cur := obj
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			require.True(t, ok, "at %v: not an object in %v", p, path)
			cur = m[k]
		case int:
			s, ok := cur.([]any)
			require.True(t, ok && k < len(s), "at %v: no element %d in %v", path, k, cur)
			cur = s[k]
		}
	}
	return cur
}

// weights reads the destinations of an Istio route as host → weight.
func routeWeights(t *testing.T, route any) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, d := range field(t, route, "route").([]any) {
		w, _ := field(t, d, "weight").(int64)
		out[field(t, d, "destination", "host").(string)] = w
	}
	return out
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestIstioWritesFlaggersObjectsWithEveryServiceOption(t *testing.T) {
	ctx := context.Background()
	e, rt := istioRouter(t, "rt-istio")
	c := canary(e.ns, "istio", func(c *v1beta1.Canary) {
		s := &c.Spec.Service
		s.Gateways = []string{"public-gateway.istio-system.svc.cluster.local"}
		s.Hosts = []string{"app.example.com"}
		s.TrafficPolicy = &v1beta1.FreeForm{"tls": map[string]any{"mode": "ISTIO_MUTUAL"}}
		s.Retries = &v1beta1.HTTPRetry{Attempts: 3, PerTryTimeout: "1s", RetryOn: "gateway-error,connect-failure"}
		s.Timeout = "30s"
		s.CorsPolicy = &v1beta1.CorsPolicy{AllowOrigins: []v1beta1.StringMatch{{Exact: "https://example.com"}}, AllowMethods: []string{"GET"}, MaxAge: "24h"}
		s.Headers = &v1beta1.Headers{Request: &v1beta1.HeaderOperations{Add: map[string]string{"x-some-header": "value"}}}
		s.Match = []v1beta1.HTTPMatchRequest{{URI: &v1beta1.StringMatch{Prefix: "/api"}}}
		s.Rewrite = &v1beta1.HTTPRewrite{URI: "/", Authority: "podinfo"}
		s.PortDiscovery = true
	})
	require.NoError(t, rt.Reconcile(ctx, c))

	for _, host := range []string{"podinfo-primary", "podinfo-canary"} {
		dr := getObj(t, destinationRules, e.ns, host)
		require.Equal(t, kubeobj.ManagedByValue, dr.GetLabels()[kubeobj.ManagedByLabel])
		require.Equal(t, host, field(t, dr.Object, "spec", "host"))
		require.Equal(t, "ISTIO_MUTUAL", field(t, dr.Object, "spec", "trafficPolicy", "tls", "mode"))
	}
	vs := getObj(t, virtualServices, e.ns, "podinfo")
	spec := vs.Object["spec"]
	require.Equal(t, []any{"app.example.com", "podinfo"}, field(t, spec, "hosts"), "the apex host is added, as Flagger does")
	require.Equal(t, []any{"public-gateway.istio-system.svc.cluster.local"}, field(t, spec, "gateways"))
	route := field(t, spec, "http", 0)
	require.Equal(t, map[string]int64{"podinfo-primary": 100, "podinfo-canary": 0}, routeWeights(t, route))
	require.Equal(t, int64(9898), field(t, route, "route", 0, "destination", "port", "number"), "portDiscovery behind a gateway names the port")
	require.Equal(t, "/api", field(t, route, "match", 0, "uri", "prefix"))
	require.Equal(t, map[string]any{"uri": "/", "authority": "podinfo"}, field(t, route, "rewrite"))
	require.Equal(t, "30s", field(t, route, "timeout"))
	require.Equal(t, map[string]any{"attempts": int64(3), "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure"}, field(t, route, "retries"))
	require.Equal(t, "24h", field(t, route, "corsPolicy", "maxAge"))
	require.Equal(t, "value", field(t, route, "headers", "request", "add", "x-some-header"))

	for _, w := range []int{10, 20, 50, 0} {
		require.NoError(t, rt.SetRoutes(ctx, c, 100-w, w, false))
		pw, cw, mirrored, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, []any{100 - w, w, false}, []any{pw, cw, mirrored})
		require.Equal(t, map[string]int64{"podinfo-primary": int64(100 - w), "podinfo-canary": int64(w)},
			routeWeights(t, field(t, getObj(t, virtualServices, e.ns, "podinfo").Object, "spec", "http", 0)))
	}

	// Idempotent, and a reconcile never moves traffic.
	require.NoError(t, rt.SetRoutes(ctx, c, 70, 30, false))
	before := getObj(t, virtualServices, e.ns, "podinfo")
	require.NoError(t, rt.SetRoutes(ctx, c, 70, 30, false))
	require.NoError(t, rt.Reconcile(ctx, c))
	after := getObj(t, virtualServices, e.ns, "podinfo")
	require.Equal(t, before.GetResourceVersion(), after.GetResourceVersion(), "running it again changed the VirtualService")

	// Finalize: the VirtualService keeps its hosts and gateways and routes to the apex Service; the
	// DestinationRules go.
	require.NoError(t, rt.Finalize(ctx, c))
	require.NoError(t, rt.Finalize(ctx, c))
	fin := getObj(t, virtualServices, e.ns, "podinfo")
	require.Equal(t, []any{"app.example.com", "podinfo"}, field(t, fin.Object, "spec", "hosts"))
	require.Len(t, field(t, fin.Object, "spec", "http"), 1)
	require.Equal(t, map[string]int64{"podinfo": 100}, routeWeights(t, field(t, fin.Object, "spec", "http", 0)))
	list, err := labtest.Dynamic(t).Resource(destinationRules).Namespace(e.ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, list.Items)
}

func TestIstioABMirrorAndSessionAffinityRoutes(t *testing.T) {
	ctx := context.Background()
	e, rt := istioRouter(t, "rt-istio-ab")
	svcMatch := []v1beta1.HTTPMatchRequest{{URI: &v1beta1.StringMatch{Prefix: "/"}}}

	t.Run("A/B", func(t *testing.T) {
		c := canary(e.ns, "istio", func(c *v1beta1.Canary) {
			c.Spec.Service.Match = svcMatch
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 10
			c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{
				{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}},
				{Headers: map[string]v1beta1.StringMatch{"cookie": {Regex: "^(.*?;)?(canary=always)(;.*)?$"}}},
			}
		})
		require.NoError(t, rt.Reconcile(ctx, c))
		require.NoError(t, rt.SetRoutes(ctx, c, 0, 100, false))
		http := field(t, getObj(t, virtualServices, e.ns, "podinfo").Object, "spec", "http").([]any)
		require.Len(t, http, 2)
		require.Equal(t, map[string]int64{"podinfo-primary": 0, "podinfo-canary": 100}, routeWeights(t, http[0]))
		require.JSONEq(t, `[{"uri":{"prefix":"/"},"headers":{"x-canary":{"exact":"insider"}}},
			{"uri":{"prefix":"/"},"headers":{"cookie":{"regex":"^(.*?;)?(canary=always)(;.*)?$"}}}]`,
			asJSON(t, field(t, http[0], "match")), "each A/B match merged with the service match")
		require.Equal(t, map[string]int64{"podinfo-primary": 100}, routeWeights(t, http[1]), "every other request to the primary")
		require.Equal(t, "/", field(t, http[1], "match", 0, "uri", "prefix"))
		pw, cw, _, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, []int{0, 100}, []int{pw, cw})
		require.NoError(t, rt.Finalize(ctx, c))
	})

	t.Run("mirror", func(t *testing.T) {
		c := canary(e.ns, "istio", func(c *v1beta1.Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 10
			c.Spec.Analysis.Mirror, c.Spec.Analysis.MirrorWeight = true, 50
		})
		require.NoError(t, rt.Reconcile(ctx, c))
		require.NoError(t, rt.SetRoutes(ctx, c, 100, 0, true))
		route := field(t, getObj(t, virtualServices, e.ns, "podinfo").Object, "spec", "http", 0)
		require.Equal(t, map[string]any{"host": "podinfo-canary"}, field(t, route, "mirror"))
		require.EqualValues(t, 50, field(t, route, "mirrorPercentage", "value"))
		pw, cw, mirrored, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, []any{100, 0, true}, []any{pw, cw, mirrored})
		require.NoError(t, rt.Reconcile(ctx, c), "a reconcile keeps the mirror")
		_, _, mirrored, err = rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.True(t, mirrored)
		require.NoError(t, rt.SetRoutes(ctx, c, 0, 100, false))
		_, hasMirror := field(t, getObj(t, virtualServices, e.ns, "podinfo").Object, "spec", "http", 0).(map[string]any)["mirror"]
		require.False(t, hasMirror, "switching to the canary ends the mirror")
		require.NoError(t, rt.Finalize(ctx, c))
	})

	t.Run("session affinity", func(t *testing.T) {
		c := canary(e.ns, "istio", func(c *v1beta1.Canary) {
			c.Spec.Service.Match = svcMatch
			c.Spec.Analysis.SessionAffinity = &v1beta1.SessionAffinity{CookieName: "flagger-cookie", MaxAge: 7200}
		})
		require.NoError(t, rt.Reconcile(ctx, c))
		require.NoError(t, rt.SetRoutes(ctx, c, 90, 10, false))
		vs := getObj(t, virtualServices, e.ns, "podinfo")
		http := field(t, vs.Object, "spec", "http").([]any)
		require.Len(t, http, 2)
		require.Equal(t, "sticky-route", field(t, http[0], "name"))
		require.Equal(t, map[string]int64{"podinfo-primary": 0, "podinfo-canary": 100}, routeWeights(t, http[0]))
		cookie := field(t, http[1], "route", 1, "headers", "response", "add", "Set-Cookie").(string)
		require.Regexp(t, `^flagger-cookie=[0-9a-f]+; Max-Age=7200$`, cookie, "canary responses set the cookie, as Flagger writes it")
		name, value, _ := cutCookie(cookie)
		require.Equal(t, ".*"+name+".*"+value+".*", field(t, http[0], "match", 0, "headers", "Cookie", "regex"))
		require.Equal(t, "/", field(t, http[0], "match", 0, "uri", "prefix"))
		require.Equal(t, map[string]int64{"podinfo-primary": 90, "podinfo-canary": 10}, routeWeights(t, http[1]))
		pw, cw, _, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, []int{90, 10}, []int{pw, cw})

		require.NoError(t, rt.SetRoutes(ctx, c, 80, 20, false))
		again := field(t, getObj(t, virtualServices, e.ns, "podinfo").Object, "spec", "http", 1, "route", 1, "headers", "response", "add", "Set-Cookie")
		require.Equal(t, cookie, again, "the cookie stays the same while the canary gets traffic")

		require.NoError(t, rt.SetRoutes(ctx, c, 100, 0, false))
		http = field(t, getObj(t, virtualServices, e.ns, "podinfo").Object, "spec", "http").([]any)
		require.Len(t, http, 2)
		require.Equal(t, "sticky-route", field(t, http[0], "name"))
		require.Equal(t, map[string]int64{"podinfo-primary": 100, "podinfo-canary": 0}, routeWeights(t, http[0]), "cookie holders back on the primary")
		require.Equal(t, name+"="+value+"; Max-Age=-1", field(t, http[0], "headers", "response", "add", "Set-Cookie"), "and their cookie expired")
		require.NoError(t, rt.Finalize(ctx, c))
	})
}

func cutCookie(setCookie string) (name, value, attrs string) {
	nv, attrs, _ := strings.Cut(setCookie, "; ")
	name, value, _ = strings.Cut(nv, "=")
	return name, value, attrs
}

func TestIstioDelegationAndTCP(t *testing.T) {
	ctx := context.Background()
	e, rt := istioRouter(t, "rt-istio-del")
	c := canary(e.ns, "istio", func(c *v1beta1.Canary) {
		c.Spec.Service.Delegation, c.Spec.Service.PortDiscovery = true, true
	})
	require.NoError(t, rt.Reconcile(ctx, c))
	spec := getObj(t, virtualServices, e.ns, "podinfo").Object["spec"].(map[string]any)
	require.NotContains(t, spec, "hosts", "a delegate VirtualService has no hosts")
	require.NotContains(t, spec, "gateways")
	require.Equal(t, int64(9898), field(t, spec, "http", 0, "route", 0, "destination", "port", "number"))
	bad := clone(t, c)
	bad.Spec.Service.Hosts = []string{"app.example.com"}
	require.ErrorContains(t, rt.Reconcile(ctx, bad), "delegation")
	require.NoError(t, rt.Finalize(ctx, c))

	tcp := canary(e.ns, "istio", func(c *v1beta1.Canary) {
		c.Spec.Service.Name = "tcpinfo"
		c.Spec.Service.AppProtocol = "tcp"
		c.Spec.Service.Match = []v1beta1.HTTPMatchRequest{{Port: 9898}}
	})
	require.NoError(t, rt.Reconcile(ctx, tcp))
	require.NoError(t, rt.SetRoutes(ctx, tcp, 60, 40, false))
	route := field(t, getObj(t, virtualServices, e.ns, "tcpinfo").Object, "spec", "tcp", 0)
	require.Equal(t, map[string]int64{"tcpinfo-primary": 60, "tcpinfo-canary": 40}, routeWeights(t, route))
	require.Equal(t, int64(9898), field(t, route, "match", 0, "port"))
	pw, cw, _, err := rt.GetRoutes(ctx, tcp)
	require.NoError(t, err)
	require.Equal(t, []int{60, 40}, []int{pw, cw})
}

func TestIstioRefusesForeignObjectsAndTakesOverAVirtualServiceWhenAsked(t *testing.T) {
	ctx := context.Background()
	e, rt := istioRouter(t, "rt-istio-own")
	dyn := labtest.Dynamic(t)
	c := canary(e.ns, "istio", nil)
	userSpec := map[string]any{
		"hosts": []any{"podinfo"},
		"http":  []any{map[string]any{"route": []any{map[string]any{"destination": map[string]any{"host": "podinfo"}}}, "timeout": "5s"}},
	}
	user := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "podinfo", "labels": map[string]any{"team": "a"}},
		"spec":     userSpec,
	}}
	_, err := dyn.Resource(virtualServices).Namespace(e.ns).Create(ctx, user, metav1.CreateOptions{})
	require.NoError(t, err)

	err = rt.Reconcile(ctx, c)
	require.ErrorContains(t, err, "VirtualService "+e.ns+"/podinfo exists and is not managed by canaryflow")
	require.ErrorContains(t, err, router.TakeOverAnnotation)
	var p interface{ Permanent() bool }
	require.ErrorAs(t, err, &p)
	require.True(t, p.Permanent())
	require.Equal(t, userSpec, getObj(t, virtualServices, e.ns, "podinfo").Object["spec"], "left as it was")
	require.Error(t, rt.SetRoutes(ctx, c, 90, 10, false))

	// The owner asks canaryflow to take it over.
	live := getObj(t, virtualServices, e.ns, "podinfo")
	live.SetAnnotations(map[string]string{router.TakeOverAnnotation: "true"})
	_, err = dyn.Resource(virtualServices).Namespace(e.ns).Update(ctx, live, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, rt.Reconcile(ctx, c))
	taken := getObj(t, virtualServices, e.ns, "podinfo")
	require.Equal(t, kubeobj.ManagedByValue, taken.GetLabels()[kubeobj.ManagedByLabel])
	require.JSONEq(t, asJSON(t, userSpec), taken.GetAnnotations()["flagger.kubernetes.io/original-configuration"],
		"the original spec kept where Flagger keeps it")
	require.Len(t, field(t, taken.Object, "spec", "http"), 1)
	require.NotContains(t, field(t, taken.Object, "spec", "http", 0).(map[string]any), "timeout", "no field of the old spec survives")
	require.NoError(t, rt.SetRoutes(ctx, c, 50, 50, false))
	require.NoError(t, rt.Reconcile(ctx, c))
	pw, cw, _, err := rt.GetRoutes(ctx, c)
	require.NoError(t, err)
	require.Equal(t, []int{50, 50}, []int{pw, cw})

	require.NoError(t, rt.Finalize(ctx, c))
	back := getObj(t, virtualServices, e.ns, "podinfo")
	require.Equal(t, userSpec, back.Object["spec"], "Finalize restores the original spec")
	require.NotContains(t, back.GetLabels(), kubeobj.ManagedByLabel, "and gives the VirtualService back")
	require.Equal(t, "a", back.GetLabels()["team"])
	require.NotContains(t, back.GetAnnotations(), "flagger.kubernetes.io/original-configuration")

	// A DestinationRule of someone else's is refused, and left alone.
	other := canary(e.ns, "istio", func(c *v1beta1.Canary) { c.Spec.Service.Name = "other" })
	dr := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
		"metadata": map[string]any{"name": "other-canary"},
		"spec":     map[string]any{"host": "elsewhere"},
	}}
	_, err = dyn.Resource(destinationRules).Namespace(e.ns).Create(ctx, dr, metav1.CreateOptions{})
	require.NoError(t, err)
	require.ErrorContains(t, rt.Reconcile(ctx, other), "DestinationRule "+e.ns+"/other-canary exists and is not managed by canaryflow")
	require.Equal(t, "elsewhere", field(t, getObj(t, destinationRules, e.ns, "other-canary").Object, "spec", "host"))
}

// What the real istiod (pilot-discovery) derives from the istio router's objects, read back over xDS as the
// sidecar of a pod in the namespace would get it (route "9898"): the weighted clusters of each split, the route's
// timeout and retries, the A/B header route ahead of the primary's, the mirror policy at mirrorWeight percent,
// and the sticky route with the Set-Cookie on the canary's cluster. No Envoy: no traffic.
func TestIstiodTranslatesOurVirtualService(t *testing.T) {
	ctx := context.Background()
	istioCRDs(t)
	e := newEnv(t, "istio-xds")
	c := canary(e.ns, "istio", func(c *v1beta1.Canary) {
		c.Spec.Service.Timeout = "30s"
		c.Spec.Service.Retries = &v1beta1.HTTPRetry{Attempts: 3, PerTryTimeout: "1s", RetryOn: "gateway-error,connect-failure"}
		c.Spec.Service.Match = []v1beta1.HTTPMatchRequest{{URI: &v1beta1.StringMatch{Prefix: "/api"}}}
		c.Spec.Service.Rewrite = &v1beta1.HTTPRewrite{URI: "/"}
		c.Spec.Service.Headers = &v1beta1.Headers{Request: &v1beta1.HeaderOperations{Set: map[string]string{"x-canary-by": "canaryflow"}}}
		c.Spec.Service.CorsPolicy = &v1beta1.CorsPolicy{AllowOrigins: []v1beta1.StringMatch{{Exact: "https://example.com"}}, AllowMethods: []string{"GET"}}
	})
	workloadtest.CreatePodinfo(t, e.admin, e.ns, "podinfo", "6.0.0", 1, 0)
	require.NoError(t, e.kube.Initialize(ctx, c))
	istiod := labtest.StartIstiod(t)
	rt, err := e.routers.Get("istio")
	require.NoError(t, err)
	require.NoError(t, rt.Reconcile(ctx, c))

	host := "podinfo." + e.ns + ".svc.cluster.local"
	service := func(cluster string) string { // outbound|9898||<service>.<ns>.svc.cluster.local
		parts := strings.Split(cluster, "|")
		return strings.Split(parts[len(parts)-1], ".")[0]
	}
	var last []map[string]any
	wait := func(t *testing.T, what string, ok func([]envoyRoute) bool) []envoyRoute {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			var routes []envoyRoute
			var err error
			if last, err = istiod.Routes(ctx, e.ns, "9898"); err == nil {
				if routes, err = routesOf(last, host, service); err == nil && ok(routes) {
					return routes
				}
			}
			require.True(t, time.Now().Before(deadline), "istiod never served %s: %v\n%s", what, err, asJSON(t, last))
			time.Sleep(500 * time.Millisecond)
		}
	}

	for _, w := range [][2]int{{90, 10}, {50, 50}, {0, 100}} {
		require.NoError(t, rt.SetRoutes(ctx, c, w[0], w[1], false))
		routes := wait(t, fmt.Sprintf("%d/%d", w[0], w[1]), func(rs []envoyRoute) bool {
			return len(rs) == 1 && rs[0].weights["podinfo-primary"] == w[0] && rs[0].weights["podinfo-canary"] == w[1]
		})
		require.Equal(t, "/api", routes[0].match["prefix"], "spec.service.match")
		require.Equal(t, "/", routes[0].route["prefix_rewrite"], "spec.service.rewrite")
		require.Contains(t, fmt.Sprint(field(t, routes[0].raw, "request_headers_to_add")), "x-canary-by", "spec.service.headers")
		require.Contains(t, asJSON(t, routes[0].raw["typed_per_filter_config"]), "https://example.com", "spec.service.corsPolicy")
		require.Equal(t, "30s", routes[0].route["timeout"])
		require.EqualValues(t, 3, field(t, routes[0].route, "retry_policy", "num_retries"))
		require.Contains(t, fmt.Sprint(field(t, routes[0].route, "retry_policy", "retry_on")), "gateway-error")
	}
	t.Logf("istiod's route at 0/100: %s", asJSON(t, last))

	m := clone(t, c)
	m.Spec.Analysis.StepWeight, m.Spec.Analysis.Iterations, m.Spec.Analysis.Mirror, m.Spec.Analysis.MirrorWeight = 0, 5, true, 50
	require.NoError(t, rt.SetRoutes(ctx, m, 100, 0, true))
	routes := wait(t, "the mirror", func(rs []envoyRoute) bool { return len(rs) == 1 && rs[0].route["request_mirror_policies"] != nil })
	policy := field(t, routes[0].route, "request_mirror_policies", 0)
	require.Contains(t, fmt.Sprint(field(t, policy, "cluster")), "podinfo-canary."+e.ns)
	fraction := field(t, policy, "runtime_fraction", "default_value").(map[string]any)
	per := map[any]float64{nil: 100, "HUNDRED": 100, "TEN_THOUSAND": 10000, "MILLION": 1000000}[fraction["denominator"]]
	require.InDelta(t, 50, 100*fraction["numerator"].(float64)/per, 0.01, "mirrored at mirrorWeight percent: %v", fraction)

	ab := clone(t, c)
	ab.Spec.Analysis.StepWeight, ab.Spec.Analysis.Iterations = 0, 10
	ab.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}}}
	require.NoError(t, rt.Reconcile(ctx, ab))
	require.NoError(t, rt.SetRoutes(ctx, ab, 0, 100, false))
	routes = wait(t, "the A/B routes", func(rs []envoyRoute) bool { return len(rs) == 2 })
	require.Contains(t, fmt.Sprint(routes[0].match["headers"]), "x-canary")
	require.Contains(t, fmt.Sprint(routes[0].match["headers"]), "insider")
	require.Equal(t, map[string]int{"podinfo-canary": 100}, onlyWeighted(routes[0].weights), "matching requests to the canary")
	require.Nil(t, routes[1].match["headers"])
	require.Equal(t, map[string]int{"podinfo-primary": 100}, onlyWeighted(routes[1].weights), "every other request to the primary")

	sticky := clone(t, c)
	sticky.Spec.Analysis.SessionAffinity = &v1beta1.SessionAffinity{CookieName: "flagger-cookie", MaxAge: 7200}
	require.NoError(t, rt.Reconcile(ctx, sticky))
	require.NoError(t, rt.SetRoutes(ctx, sticky, 90, 10, false))
	routes = wait(t, "the sticky routes", func(rs []envoyRoute) bool { return len(rs) == 2 && len(rs[1].weights) == 2 })
	require.Contains(t, fmt.Sprint(routes[0].match["headers"]), "flagger-cookie", "the sticky route matches the cookie")
	require.Equal(t, map[string]int{"podinfo-canary": 100}, onlyWeighted(routes[0].weights))
	require.Equal(t, map[string]int{"podinfo-primary": 90, "podinfo-canary": 10}, routes[1].weights)
	require.Regexp(t, `Set-Cookie.*flagger-cookie=[0-9a-f]+; Max-Age=7200`, fmt.Sprint(routes[1].clusters["podinfo-canary"]["response_headers_to_add"]),
		"canary responses set the cookie")
}
