//go:build lab

package router_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

var trafficRoutes = schema.GroupVersionResource{Group: "kuma.io", Version: "v1alpha1", Resource: "trafficroutes"}

// kumaSplit reads a TrafficRoute's split as a user would, checking the selectors Flagger writes around it.
func kumaSplit(t *testing.T, u *unstructured.Unstructured, ns, mesh string) (int, int) {
	t.Helper()
	require.Equal(t, mesh, u.Object["mesh"])
	svc := func(name string) string { return fmt.Sprintf("%s_%s_svc_9898", name, ns) }
	dests, _, _ := unstructured.NestedSlice(u.Object, "spec", "destinations")
	require.Equal(t, []any{map[string]any{"match": map[string]any{"kuma.io/service": svc("podinfo")}}}, dests)
	srcs, _, _ := unstructured.NestedSlice(u.Object, "spec", "sources")
	require.Equal(t, []any{map[string]any{"match": map[string]any{"kuma.io/service": "*"}}}, srcs)
	split, _, _ := unstructured.NestedSlice(u.Object, "spec", "conf", "split")
	require.Len(t, split, 2)
	var w [2]int
	for i, name := range []string{"podinfo-primary", "podinfo-canary"} {
		m := split[i].(map[string]any)
		require.Equal(t, map[string]any{"kuma.io/service": svc(name)}, m["destination"])
		w[i] = int(m["weight"].(int64))
	}
	return w[0], w[1]
}

// The kuma router's cluster-scoped TrafficRoute on the API server with Kuma's CRD: named "<apex>.<namespace>",
// so two Canaries of the same name in two namespaces get a TrafficRoute each (with Flagger's "<apex>" they would
// share one), in the Canary's kuma.io/mesh; every weight, idempotency, an object of someone else refused, and
// Finalize deleting only its own.
func TestKumaTrafficRoutesOnTheAPIServer(t *testing.T) {
	labtest.CRDs(t, labtest.SharedCRDs(t, "kuma")...)
	ctx := context.Background()
	a, b := newEnv(t, "rt-kuma"), newEnv(t, "rt-kuma")
	ca := canary(a.ns, "kuma", func(c *v1beta1.Canary) { c.Annotations = map[string]string{"kuma.io/mesh": "blue"} })
	cb := canary(b.ns, "kuma", nil)
	rta, err := a.routers.Get("kuma")
	require.NoError(t, err)
	rtb, err := b.routers.Get("kuma")
	require.NoError(t, err)

	foreign := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kuma.io/v1alpha1", "kind": "TrafficRoute", "mesh": "default",
		"metadata": map[string]any{"name": "podinfo." + a.ns},
		"spec":     map[string]any{"conf": map[string]any{"destination": map[string]any{"kuma.io/service": "elsewhere"}}},
	}}
	remove := createForeign(t, trafficRoutes, foreign)
	requirePermanent(t, rta.Reconcile(ctx, ca), "TrafficRoute podinfo."+a.ns+" (cluster-scoped) exists and is not managed by canaryflow")
	remove()

	// The other namespace's Canary of the same name has its own TrafficRoute all along.
	require.NoError(t, rtb.Reconcile(ctx, cb))
	require.NoError(t, rtb.SetRoutes(ctx, cb, 40, 60, false))
	getB := func() *unstructured.Unstructured { return meshObject(t, trafficRoutes, "", "podinfo."+b.ns) }

	get := func() *unstructured.Unstructured { return meshObject(t, trafficRoutes, "", "podinfo."+a.ns) }
	meshRouterLifecycle(t, rta, ca,
		func() (int, int) {
			u := get()
			marked(t, u, ca)
			return kumaSplit(t, u, a.ns, "blue")
		},
		func() []string { return resourceVersions(get()) },
		func() bool { return get() == nil })

	u := getB()
	marked(t, u, cb)
	pw, cw := kumaSplit(t, u, b.ns, "default")
	require.Equal(t, []int{40, 60}, []int{pw, cw}, "the other Canary's TrafficRoute is untouched by this one's steps and Finalize")
	require.NoError(t, rtb.Finalize(ctx, cb))
	require.Nil(t, getB())
}
