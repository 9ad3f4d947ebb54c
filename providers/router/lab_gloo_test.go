//go:build lab

package router_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

var (
	glooUpstreams   = schema.GroupVersionResource{Group: "gloo.solo.io", Version: "v1", Resource: "upstreams"}
	glooRouteTables = schema.GroupVersionResource{Group: "gateway.solo.io", Version: "v1", Resource: "routetables"}
)

// glooWeights reads the weights of a RouteTable route by upstream name.
func glooWeights(t *testing.T, route any) map[string]int {
	t.Helper()
	dests, ok, _ := unstructured.NestedSlice(route.(map[string]any), "routeAction", "multi", "destinations")
	require.True(t, ok, "a weighted route: %v", route)
	out := map[string]int{}
	for _, d := range dests {
		m := d.(map[string]any)
		name, _, _ := unstructured.NestedString(m, "destination", "upstream", "name")
		out[name] = int(m["weight"].(int64))
	}
	return out
}

// The gloo router's Upstreams and RouteTable on the API server with Gloo's CRDs: Flagger's names, Upstreams
// selecting the primary's and the canary's pods and copying spec.upstreamRef's settings, the route's weights at
// every step; A/B testing as one route per match and a last route to the primary; an object of someone else
// refused; Finalize deleting all three.
func TestGlooUpstreamsAndRouteTableOnTheAPIServer(t *testing.T) {
	labtest.CRDs(t, labtest.SharedCRDs(t, "gloo")...)
	ctx := context.Background()
	e := newEnv(t, "rt-gloo")
	primaryUp, canaryUp := e.ns+"-podinfo-primaryupstream-9898", e.ns+"-podinfo-canaryupstream-9898"

	// The user's Upstream whose settings the generated ones copy (Flagger's spec.upstreamRef).
	config := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
		"metadata": map[string]any{"name": "podinfo-config", "namespace": e.ns},
		"spec": map[string]any{
			"connectionConfig": map[string]any{"maxRequestsPerConnection": int64(100)},
			"useHttp2":         true,
			"static":           map[string]any{"hosts": []any{map[string]any{"addr": "example.org", "port": int64(80)}}},
		},
	}}
	createForeign(t, glooUpstreams, config)
	c := canary(e.ns, "gloo", func(c *v1beta1.Canary) {
		c.Spec.UpstreamRef = &v1beta1.CrossNamespaceObjectReference{Name: "podinfo-config"}
	})
	e.rollout(t, c)
	rt, err := e.routers.Get("gloo")
	require.NoError(t, err)

	foreignUp := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gloo.solo.io/v1", "kind": "Upstream",
		"metadata": map[string]any{"name": canaryUp, "namespace": e.ns},
		"spec":     map[string]any{"static": map[string]any{"hosts": []any{map[string]any{"addr": "example.org", "port": int64(80)}}}},
	}}
	remove := createForeign(t, glooUpstreams, foreignUp)
	requirePermanent(t, rt.Reconcile(ctx, c), "Upstream "+e.ns+"/"+canaryUp+" exists and is not managed by canaryflow")
	require.Nil(t, meshObject(t, glooUpstreams, e.ns, primaryUp), "a refused reconcile writes nothing")
	require.Nil(t, meshObject(t, glooRouteTables, e.ns, "podinfo"), "a refused reconcile writes nothing")
	remove()

	foreign := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.solo.io/v1", "kind": "RouteTable",
		"metadata": map[string]any{"name": "podinfo", "namespace": e.ns},
		"spec":     map[string]any{"routes": []any{map[string]any{"directResponseAction": map[string]any{"status": int64(200)}}}},
	}}
	remove = createForeign(t, glooRouteTables, foreign)
	requirePermanent(t, rt.Reconcile(ctx, c), "RouteTable "+e.ns+"/podinfo exists and is not managed by canaryflow")
	remove()

	table := func() *unstructured.Unstructured { return meshObject(t, glooRouteTables, e.ns, "podinfo") }
	up := func(name string) *unstructured.Unstructured { return meshObject(t, glooUpstreams, e.ns, name) }
	meshRouterLifecycle(t, rt, c,
		func() (int, int) {
			u := table()
			marked(t, u, c)
			routes, _, _ := unstructured.NestedSlice(u.Object, "spec", "routes")
			require.Len(t, routes, 1)
			require.Equal(t, true, routes[0].(map[string]any)["inheritablePathMatchers"])
			w := glooWeights(t, routes[0])
			require.Len(t, w, 2)
			for name, sel := range map[string]string{primaryUp: "podinfo-primary", canaryUp: "podinfo"} {
				u := up(name)
				marked(t, u, c)
				kube, _, _ := unstructured.NestedMap(u.Object, "spec", "kube")
				require.Equal(t, map[string]any{"app": sel}, kube["selector"], "the Upstream selects the pods of its Service")
				require.Equal(t, int64(9898), kube["servicePort"])
				require.Equal(t, e.ns, kube["serviceNamespace"])
				require.Equal(t, true, u.Object["spec"].(map[string]any)["useHttp2"], "copied from spec.upstreamRef")
				require.NotContains(t, u.Object["spec"], "static", "only Flagger's list of settings is copied")
			}
			return w[primaryUp], w[canaryUp]
		},
		func() []string { return resourceVersions(table(), up(primaryUp), up(canaryUp)) },
		func() bool { return table() == nil && up(primaryUp) == nil && up(canaryUp) == nil })

	// A/B testing: one route per match carrying the split, then every other request to the primary.
	ab := canary(e.ns, "gloo", func(c *v1beta1.Canary) {
		c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 5
		c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{
			{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}},
			{Headers: map[string]v1beta1.StringMatch{"cookie": {Regex: "^(.*?;)?(canary=always)(;.*)?$"}}},
			{QueryParams: map[string]v1beta1.StringMatch{"v": {Prefix: "2."}}, Method: &v1beta1.StringMatch{Exact: "GET"},
				WithoutHeaders: map[string]v1beta1.StringMatch{"x-bot": {Exact: "1"}}},
		}
	})
	require.NoError(t, rt.Reconcile(ctx, ab))
	require.NoError(t, rt.SetRoutes(ctx, ab, 0, 100, false))
	pw, cw, _, err := rt.GetRoutes(ctx, ab)
	require.NoError(t, err)
	require.Equal(t, []int{0, 100}, []int{pw, cw})
	routes, _, _ := unstructured.NestedSlice(table().Object, "spec", "routes")
	require.Len(t, routes, 4)
	for i, want := range []any{
		[]any{map[string]any{"headers": []any{map[string]any{"name": "x-canary", "value": "insider"}}}},
		[]any{map[string]any{"headers": []any{map[string]any{"name": "cookie", "value": "^(.*?;)?(canary=always)(;.*)?$", "regex": true}}}},
		[]any{map[string]any{
			"headers":         []any{map[string]any{"name": "x-bot", "value": "1", "invertMatch": true}},
			"queryParameters": []any{map[string]any{"name": "v", "value": `2\..*`, "regex": true}},
			"methods":         []any{"GET"},
		}},
	} {
		require.Equal(t, want, routes[i].(map[string]any)["matchers"], "route %d", i)
		require.Equal(t, map[string]int{primaryUp: 0, canaryUp: 100}, glooWeights(t, routes[i]))
	}
	last := routes[3].(map[string]any)
	require.NotContains(t, last, "matchers")
	require.Equal(t, map[string]any{"single": map[string]any{"upstream": map[string]any{"name": primaryUp, "namespace": e.ns}}},
		last["routeAction"], "every other request goes to the primary")

	uri := canary(e.ns, "gloo", func(c *v1beta1.Canary) {
		c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{{URI: &v1beta1.StringMatch{Prefix: "/api"}}}
	})
	requirePermanent(t, rt.SetRoutes(ctx, uri, 0, 100, false), "spec.analysis.match[0].uri: provider gloo matches headers")
	require.NoError(t, rt.Finalize(ctx, ab))
	require.Nil(t, table())
}
