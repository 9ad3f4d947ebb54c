//go:build lab

package router_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

func appmeshGVR(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "appmesh.k8s.aws", Version: "v1beta2", Resource: resource}
}

// appmeshWeights reads a VirtualRouter route's weighted targets by node name.
func appmeshWeights(t *testing.T, route any) map[string]int {
	t.Helper()
	targets, ok, _ := unstructured.NestedSlice(route.(map[string]any), "httpRoute", "action", "weightedTargets")
	require.True(t, ok, "an HTTP route: %v", route)
	out := map[string]int{}
	for _, tg := range targets {
		m := tg.(map[string]any)
		name, _, _ := unstructured.NestedString(m, "virtualNodeRef", "name")
		out[name] = int(m["weight"].(int64))
	}
	return out
}

// The appmesh:v1beta2 router's six objects on the API server with the App Mesh controller's CRDs: Flagger's
// names and shapes (nodes selecting the primary's and the canary's pods by their DNS names, the apex router and
// service splitting between them, the canary router and service sending all to the canary), timeout, retries,
// backends and gateway annotations; the weights at every step; A/B testing as one route per match and a fallback
// to the primary; an object of someone else refused; Finalize deleting all six.
func TestAppMeshObjectsOnTheAPIServer(t *testing.T) {
	labtest.CRDs(t, labtest.SharedCRDs(t, "appmesh")...)
	ctx := context.Background()
	e := newEnv(t, "rt-appmesh")
	c := canary(e.ns, "appmesh:v1beta2", func(c *v1beta1.Canary) {
		c.Spec.Service.TargetPort = intstr.FromInt32(9898)
		c.Spec.Service.Timeout = "15s"
		c.Spec.Service.Retries = &v1beta1.HTTPRetry{Attempts: 3, PerTryTimeout: "5s", RetryOn: "gateway-error,client-error"}
		c.Spec.Service.Backends = []string{"backend1", "arn:aws:appmesh:eu-west-1:123456789012:mesh/global/virtualService/backend2"}
		c.Spec.Service.Hosts = []string{"app.example.com"}
	})
	e.rollout(t, c)
	rt, err := e.routers.Get("appmesh:v1beta2")
	require.NoError(t, err)

	foreign := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualNode",
		"metadata": map[string]any{"name": "podinfo-canary", "namespace": e.ns},
		"spec":     map[string]any{"podSelector": map[string]any{"matchLabels": map[string]any{"app": "other"}}},
	}}
	remove := createForeign(t, appmeshGVR("virtualnodes"), foreign)
	requirePermanent(t, rt.Reconcile(ctx, c), "VirtualNode "+e.ns+"/podinfo-canary exists and is not managed by canaryflow")
	require.Nil(t, meshObject(t, appmeshGVR("virtualnodes"), e.ns, "podinfo-primary"), "a refused reconcile writes nothing")
	require.Nil(t, meshObject(t, appmeshGVR("virtualrouters"), e.ns, "podinfo"), "a refused reconcile writes nothing")
	remove()

	obj := func(resource, name string) *unstructured.Unstructured {
		return meshObject(t, appmeshGVR(resource), e.ns, name)
	}
	all := func() []*unstructured.Unstructured {
		return []*unstructured.Unstructured{
			obj("virtualnodes", "podinfo-primary"), obj("virtualnodes", "podinfo-canary"),
			obj("virtualrouters", "podinfo"), obj("virtualrouters", "podinfo-canary"),
			obj("virtualservices", "podinfo"), obj("virtualservices", "podinfo-canary"),
		}
	}
	meshRouterLifecycle(t, rt, c,
		func() (int, int) {
			for _, u := range all() {
				marked(t, u, c)
			}
			for name, sel := range map[string]string{"podinfo-primary": "podinfo-primary", "podinfo-canary": "podinfo"} {
				spec := obj("virtualnodes", name).Object["spec"].(map[string]any)
				require.Equal(t, map[string]any{"matchLabels": map[string]any{"app": sel}}, spec["podSelector"])
				require.Equal(t, map[string]any{"dns": map[string]any{"hostname": name + "." + e.ns + ".svc.cluster.local."}}, spec["serviceDiscovery"])
				require.Equal(t, []any{map[string]any{
					"portMapping": map[string]any{"port": int64(9898), "protocol": "http"},
					"timeout":     map[string]any{"http": map[string]any{"perRequest": map[string]any{"unit": "ms", "value": int64(15000)}}},
				}}, spec["listeners"])
				require.Equal(t, []any{
					map[string]any{"virtualService": map[string]any{"virtualServiceRef": map[string]any{"name": "backend1"}}},
					map[string]any{"virtualService": map[string]any{"virtualServiceARN": "arn:aws:appmesh:eu-west-1:123456789012:mesh/global/virtualService/backend2"}},
				}, spec["backends"])
			}
			for _, name := range []string{"podinfo", "podinfo-canary"} {
				vs := obj("virtualservices", name)
				ref, _, _ := unstructured.NestedString(vs.Object, "spec", "provider", "virtualRouter", "virtualRouterRef", "name")
				require.Equal(t, name, ref)
			}
			require.Equal(t, "app.example.com,", obj("virtualservices", "podinfo").GetAnnotations()["gateway.appmesh.k8s.aws/domain"])
			require.Equal(t, "3", obj("virtualservices", "podinfo").GetAnnotations()["gateway.appmesh.k8s.aws/retries"])
			require.NotContains(t, obj("virtualservices", "podinfo-canary").GetAnnotations(), "gateway.appmesh.k8s.aws/expose")

			canaryRoutes, _, _ := unstructured.NestedSlice(obj("virtualrouters", "podinfo-canary").Object, "spec", "routes")
			require.Len(t, canaryRoutes, 1)
			require.Equal(t, map[string]int{"podinfo-primary": 0, "podinfo-canary": 100}, appmeshWeights(t, canaryRoutes[0]))

			routes, _, _ := unstructured.NestedSlice(obj("virtualrouters", "podinfo").Object, "spec", "routes")
			require.Len(t, routes, 1)
			r := routes[0].(map[string]any)
			require.Equal(t, "podinfo", r["name"])
			http := r["httpRoute"].(map[string]any)
			require.Equal(t, map[string]any{"prefix": "/"}, http["match"])
			require.Equal(t, map[string]any{"maxRetries": int64(3), "perRetryTimeout": map[string]any{"unit": "ms", "value": int64(5000)},
				"httpRetryEvents": []any{"gateway-error", "client-error"}}, http["retryPolicy"])
			w := appmeshWeights(t, r)
			require.Len(t, w, 2)
			return w["podinfo-primary"], w["podinfo-canary"]
		},
		func() []string { return resourceVersions(all()...) },
		func() bool {
			for _, u := range all() {
				if u != nil {
					return false
				}
			}
			return true
		})

	ab := canary(e.ns, "appmesh:v1beta2", func(c *v1beta1.Canary) {
		c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 5
		c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{
			{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}},
			{Headers: map[string]v1beta1.StringMatch{"cookie": {Regex: "^(.*?;)?(canary=always)(;.*)?$"}}},
			{QueryParams: map[string]v1beta1.StringMatch{"v": {Exact: "2"}}, Method: &v1beta1.StringMatch{Exact: "GET"},
				URI: &v1beta1.StringMatch{Prefix: "/api"}, WithoutHeaders: map[string]v1beta1.StringMatch{"x-bot": {Prefix: "crawl"}}},
		}
	})
	require.NoError(t, rt.Reconcile(ctx, ab))
	require.NoError(t, rt.SetRoutes(ctx, ab, 0, 100, false))
	pw, cw, _, err := rt.GetRoutes(ctx, ab)
	require.NoError(t, err)
	require.Equal(t, []int{0, 100}, []int{pw, cw})
	routes, _, _ := unstructured.NestedSlice(obj("virtualrouters", "podinfo").Object, "spec", "routes")
	require.Len(t, routes, 4)
	for i, want := range []struct {
		name     string
		priority int64
		match    map[string]any
	}{
		{"podinfo-a", 10, map[string]any{"prefix": "/", "headers": []any{map[string]any{"name": "x-canary", "match": map[string]any{"exact": "insider"}}}}},
		{"podinfo-a-2", 11, map[string]any{"prefix": "/", "headers": []any{map[string]any{"name": "cookie", "match": map[string]any{"regex": "^(.*?;)?(canary=always)(;.*)?$"}}}}},
		{"podinfo-a-3", 12, map[string]any{"prefix": "/api", "method": "GET",
			"headers":         []any{map[string]any{"name": "x-bot", "match": map[string]any{"prefix": "crawl"}, "invert": true}},
			"queryParameters": []any{map[string]any{"name": "v", "match": map[string]any{"exact": "2"}}}}},
	} {
		r := routes[i].(map[string]any)
		require.Equal(t, want.name, r["name"])
		require.Equal(t, want.priority, r["priority"])
		require.Equal(t, want.match, r["httpRoute"].(map[string]any)["match"])
		require.Equal(t, map[string]int{"podinfo-primary": 0, "podinfo-canary": 100}, appmeshWeights(t, r))
	}
	b := routes[3].(map[string]any)
	require.Equal(t, "podinfo-b", b["name"])
	require.Equal(t, int64(20), b["priority"])
	require.Equal(t, map[string]int{"podinfo-primary": 100}, appmeshWeights(t, b), "every other request goes to the primary")

	require.NoError(t, rt.Finalize(ctx, ab))
	for _, u := range all() {
		require.Nil(t, u)
	}
}
