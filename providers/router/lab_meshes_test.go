//go:build lab

package router_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/router"
)

// The routers of the meshes no control plane of which can be had here (Linkerd, OSM, Kuma, Gloo, App Mesh) are
// proven at object level: every object they write is created on the lab's API server with the upstream CRDs, so
// the real schema judges it, and read back as a user's kubectl would see it.

// meshObject reads an object as an admin; nil when it does not exist.
func meshObject(t *testing.T, gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	t.Helper()
	ri := labtest.Dynamic(t).Resource(gvr)
	var u *unstructured.Unstructured
	var err error
	if ns == "" {
		u, err = ri.Get(context.Background(), name, metav1.GetOptions{})
	} else {
		u, err = ri.Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	}
	if apierrors.IsNotFound(err) {
		return nil
	}
	require.NoError(t, err)
	return u
}

// createForeign creates obj as someone else would (no canaryflow marker) and returns a func deleting it.
func createForeign(t *testing.T, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) func() {
	t.Helper()
	ri := labtest.Dynamic(t).Resource(gvr)
	ns := obj.GetNamespace()
	var err error
	if ns == "" {
		_, err = ri.Create(context.Background(), obj, metav1.CreateOptions{})
	} else {
		_, err = ri.Namespace(ns).Create(context.Background(), obj, metav1.CreateOptions{})
	}
	require.NoError(t, err)
	return func() {
		if ns == "" {
			require.NoError(t, ri.Delete(context.Background(), obj.GetName(), metav1.DeleteOptions{}))
		} else {
			require.NoError(t, ri.Namespace(ns).Delete(context.Background(), obj.GetName(), metav1.DeleteOptions{}))
		}
	}
}

// requirePermanent asserts err is a permanent error containing msg.
func requirePermanent(t *testing.T, err error, msg string) {
	t.Helper()
	require.ErrorContains(t, err, msg)
	var p interface{ Permanent() bool }
	require.ErrorAs(t, err, &p)
	require.True(t, p.Permanent())
}

// meshRouterLifecycle drives a router through what a rollout asks of it and checks each answer against the
// objects on the API server: SetRoutes before Reconcile is refused, a new object starts at 100/0, every weight
// is written and read back (check reads the objects as a user would and returns the split they say), the same
// split again and a Reconcile change no object, a Reconcile keeps the split, Finalize removes everything (check
// is then not called; gone must report every object absent) and a second Finalize is a no-op.
func meshRouterLifecycle(t *testing.T, rt router.Router, c *v1beta1.Canary, check func() (int, int), versions func() []string, gone func() bool) {
	t.Helper()
	ctx := context.Background()
	requirePermanent(t, rt.SetRoutes(ctx, c, 90, 10, false), "must be reconciled first")
	_, _, _, err := rt.GetRoutes(ctx, c)
	requirePermanent(t, err, "must be reconciled first")

	require.NoError(t, rt.Reconcile(ctx, c))
	pw, cw, m, err := rt.GetRoutes(ctx, c)
	require.NoError(t, err)
	require.Equal(t, []any{100, 0, false}, []any{pw, cw, m}, "a new route starts at 100/0")
	p, q := check()
	require.Equal(t, []int{100, 0}, []int{p, q}, "the objects say 100/0")

	for _, w := range [][2]int{{90, 10}, {50, 50}, {0, 100}, {100, 0}, {70, 30}} {
		require.NoError(t, rt.SetRoutes(ctx, c, w[0], w[1], false))
		pw, cw, m, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, []any{w[0], w[1], false}, []any{pw, cw, m})
		p, q := check()
		require.Equal(t, []int{w[0], w[1]}, []int{p, q}, "the objects on the API server carry %d/%d", w[0], w[1])
	}
	before := versions()
	require.NoError(t, rt.SetRoutes(ctx, c, 70, 30, false))
	require.NoError(t, rt.Reconcile(ctx, c))
	require.Equal(t, before, versions(), "the same split again, and a reconcile, change no object")
	pw, cw, _, err = rt.GetRoutes(ctx, c)
	require.NoError(t, err)
	require.Equal(t, []int{70, 30}, []int{pw, cw}, "a reconcile keeps the current split")

	require.NoError(t, rt.Finalize(ctx, c))
	require.Eventually(t, gone, 30*time.Second, 100*time.Millisecond, "Finalize removes the router's objects")
	require.NoError(t, rt.Finalize(ctx, c), "nothing left to remove is success")
	_, _, _, err = rt.GetRoutes(ctx, c)
	requirePermanent(t, err, "must be reconciled first")
}

// resourceVersions lists the resource versions of objects (absent ones as "").
func resourceVersions(objs ...*unstructured.Unstructured) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		if o != nil {
			out[i] = o.GetResourceVersion()
		}
	}
	return out
}

// marked asserts an object carries canaryflow's marker for c.
func marked(t *testing.T, u *unstructured.Unstructured, c *v1beta1.Canary) {
	t.Helper()
	require.NotNil(t, u)
	require.True(t, kubeobj.MadeFor(u, c), "%s %s carries canaryflow's marker for %s/%s: %v %v", u.GetKind(), u.GetName(),
		c.Namespace, c.Name, u.GetLabels(), u.GetAnnotations())
}
