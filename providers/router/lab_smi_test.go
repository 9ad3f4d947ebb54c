//go:build lab

package router_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

var smiCRD = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// smiCRDName is the CRD osm and linkerd-smi both define.
const smiCRDName = "trafficsplits.split.smi-spec.io"

// useSMICRD makes the TrafficSplit CRD on the lab's API server linkerd-smi's (mesh "linkerd") or OSM's ("osm").
// Both define trafficsplits.split.smi-spec.io with different versions, and a version stored once cannot be dropped
// by an update, so switching deletes the CRD (and every TrafficSplit) first. Only these tests use TrafficSplits;
// the test using them holds labtest.LockCRD, and its subtests run one after the other (no t.Parallel).
func useSMICRD(t *testing.T, mesh string) {
	t.Helper()
	files := labtest.SharedCRDs(t, mesh)
	ctx := context.Background()
	ri := labtest.Dynamic(t).Resource(smiCRD)
	const name = smiCRDName
	u, err := ri.Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		isLinkerd := u.GetLabels()["linkerd.io/extension"] == "smi"
		if isLinkerd == (mesh == "linkerd") {
			labtest.CRDs(t, files...)
			return
		}
		require.NoError(t, ri.Delete(ctx, name, metav1.DeleteOptions{}))
		require.Eventually(t, func() bool {
			_, err := ri.Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}, time.Minute, 100*time.Millisecond, "the %s CRD is never gone", name)
	} else {
		require.True(t, apierrors.IsNotFound(err), "%v", err)
	}
	labtest.CRDs(t, files...)
}

func trafficSplits(version string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "split.smi-spec.io", Version: version, Resource: "trafficsplits"}
}

// smiSplit reads a TrafficSplit's weights as the API server serves them in version, and checks what Flagger
// writes around them: the root service and the backends' order (canary first), and the weights' JSON type
// (v1alpha1 quantities as strings, numbers after).
func smiSplit(t *testing.T, version, ns, root string) (int, int) {
	t.Helper()
	u := meshObject(t, trafficSplits(version), ns, "podinfo")
	require.NotNil(t, u)
	svc, _, _ := unstructured.NestedString(u.Object, "spec", "service")
	require.Equal(t, root, svc)
	backends, _, _ := unstructured.NestedSlice(u.Object, "spec", "backends")
	require.Len(t, backends, 2)
	var w [2]int
	for i, want := range []string{"podinfo-canary", "podinfo-primary"} {
		b := backends[i].(map[string]any)
		require.Equal(t, want, b["service"])
		switch v := b["weight"].(type) {
		case string:
			require.Equal(t, "v1alpha1", version, "weights are strings in v1alpha1 only")
			n, err := strconv.Atoi(v)
			require.NoError(t, err)
			w[i] = n
		case int64:
			require.NotEqual(t, "v1alpha1", version, "v1alpha1 weights are quantity strings, as Flagger writes them")
			w[i] = int(v)
		default:
			t.Fatalf("weight %v of type %T", v, v)
		}
	}
	return w[1], w[0]
}

// The SMI routers' TrafficSplits on the API server with linkerd-smi's CRD (v1alpha1 and v1alpha2) and then OSM's
// (v1alpha2 only): each provider name writes the version Flagger's factory picks, with the weights every step
// sets, idempotently; an object of someone else is refused; Finalize deletes it. A version the CRD does not serve
// is a permanent error naming it, and a bare "smi" names the versions to choose from.
func TestSMITrafficSplitsOnTheAPIServer(t *testing.T) {
	labtest.LockCRD(t, smiCRDName) // e2e's mesh test needs linkerd-smi's while it runs
	ctx := context.Background()
	for _, tc := range []struct {
		crd, provider, version string
		hosts                  []string
	}{
		{"linkerd", "linkerd", "v1alpha1", nil},
		{"linkerd", "smi:v1alpha1:linkerd", "v1alpha1", []string{"podinfo.example"}},
		{"linkerd", "smi:v1alpha2", "v1alpha2", nil},
		{"osm", "osm", "v1alpha2", nil},
		{"osm", "smi:v1alpha2:osm", "v1alpha2", nil},
	} {
		t.Run(tc.provider+"/"+tc.crd, func(t *testing.T) {
			useSMICRD(t, tc.crd)
			e := newEnv(t, "rt-smi")
			c := canary(e.ns, tc.provider, func(c *v1beta1.Canary) { c.Spec.Service.Hosts = tc.hosts })
			rt, err := e.routers.Get(tc.provider)
			require.NoError(t, err)

			foreign := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "split.smi-spec.io/" + tc.version, "kind": "TrafficSplit",
				"metadata": map[string]any{"name": "podinfo", "namespace": e.ns},
				"spec":     map[string]any{"service": "podinfo", "backends": []any{map[string]any{"service": "podinfo-v2", "weight": int64(100)}}},
			}}
			remove := createForeign(t, trafficSplits(tc.version), foreign)
			requirePermanent(t, rt.Reconcile(ctx, c), "TrafficSplit "+e.ns+"/podinfo exists and is not managed by canaryflow")
			remove()

			root := "podinfo"
			if len(tc.hosts) > 0 {
				root = tc.hosts[0] // Flagger's root service when hosts are set
			}
			get := func() *unstructured.Unstructured { return meshObject(t, trafficSplits(tc.version), e.ns, "podinfo") }
			meshRouterLifecycle(t, rt, c,
				func() (int, int) {
					marked(t, get(), c)
					return smiSplit(t, tc.version, e.ns, root)
				},
				func() []string { return resourceVersions(get()) },
				func() bool { return get() == nil })
		})
	}

	t.Run("versions not served", func(t *testing.T) {
		useSMICRD(t, "osm")
		e := newEnv(t, "rt-smi")
		for provider, msg := range map[string]string{
			"linkerd":      "the TrafficSplit CRD is not installed (looked for trafficsplits in split.smi-spec.io/v1alpha1)",
			"smi:v1alpha3": "the TrafficSplit CRD is not installed (looked for trafficsplits in split.smi-spec.io/v1alpha3)",
			"smi":          `provider "smi" names no TrafficSplit version: use smi:v1alpha1, smi:v1alpha2 or smi:v1alpha3`,
			"smi:v1beta1":  `provider "smi:v1beta1" names no TrafficSplit version`,
		} {
			rt, err := e.routers.Get(provider)
			require.NoError(t, err)
			requirePermanent(t, rt.Reconcile(ctx, canary(e.ns, provider, nil)), msg)
		}
	})
}

// Linkerd's other mode, which Flagger's Linkerd tutorial uses now: provider gatewayapi with the apex Service as
// the HTTPRoute's parent (GAMMA), so the gatewayapi router serves Linkerd without a TrafficSplit. On the API
// server with Gateway API's CRDs, the HTTPRoute carries the tutorial's Service parentRef as written and each
// step's weights on the primary and canary backends.
func TestLinkerdGatewayAPIModeAttachesTheHTTPRouteToTheService(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-gamma")
	group, kind, port := "core", "Service", int32(9898)
	c := canary(e.ns, "gatewayapi:v1beta1", func(c *v1beta1.Canary) {
		c.Spec.Service.GatewayRefs = []v1beta1.ParentReference{{Name: "podinfo", Namespace: &e.ns, Group: &group, Kind: &kind, Port: &port}}
	})
	e.rollout(t, c)
	rt, err := e.routers.Get(c.Spec.Provider)
	require.NoError(t, err)
	require.NoError(t, rt.Reconcile(ctx, c))
	for _, w := range [][2]int{{90, 10}, {50, 50}, {0, 100}} {
		require.NoError(t, rt.SetRoutes(ctx, c, w[0], w[1], false))
		u := meshObject(t, labtest.HTTPRoutes, e.ns, "podinfo")
		require.NotNil(t, u)
		parents, _, _ := unstructured.NestedSlice(u.Object, "spec", "parentRefs")
		require.Equal(t, []any{map[string]any{"group": "core", "kind": "Service", "name": "podinfo", "namespace": e.ns, "port": int64(9898)}}, parents)
		rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
		require.Len(t, rules, 1)
		backends, _, _ := unstructured.NestedSlice(rules[0].(map[string]any), "backendRefs")
		got := map[string]int64{}
		for _, b := range backends {
			m := b.(map[string]any)
			got[m["name"].(string)] = m["weight"].(int64)
		}
		require.Equal(t, map[string]int64{"podinfo-primary": int64(w[0]), "podinfo-canary": int64(w[1])}, got)
	}
	require.NoError(t, rt.Finalize(ctx, c))
}
