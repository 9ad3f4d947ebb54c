//go:build lab

package router

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// A router whose CRD is not installed fails for good, naming what is missing, and writes nothing. The lab has
// Traefik's and Gateway API's CRDs, so the router is pointed at an API group that no cluster serves.
func TestMissingCRDIsAPermanentErrorNamingIt(t *testing.T) {
	cfg, admin := labtest.Kube(t)
	ns := labtest.Namespace(t, "rt-nocrd")
	reg, err := NewRegistry(cfg)
	require.NoError(t, err)
	rt := &Traefik{crd: &crd{
		kind: "TraefikService", resource: "traefikservices", dyn: reg.clients.Dynamic, disc: reg.clients.Discovery,
		candidates: []schema.GroupVersion{{Group: "traefik.canaryflow.invalid", Version: "v1alpha1"}},
	}}
	c := testCanary(nil)
	c.Namespace = ns
	for name, op := range map[string]func() error{
		"reconcile":  func() error { return rt.Reconcile(context.Background(), c) },
		"set routes": func() error { return rt.SetRoutes(context.Background(), c, 90, 10, false) },
		"get routes": func() error { _, _, _, err := rt.GetRoutes(context.Background(), c); return err },
	} {
		err := op()
		require.Error(t, err, name)
		var p *kubeobj.PermanentError
		require.ErrorAs(t, err, &p, name)
		require.Contains(t, err.Error(), "the TraefikService CRD is not installed (looked for traefikservices in traefik.canaryflow.invalid/v1alpha1)")
	}
	svcs, err := admin.CoreV1().Services(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, svcs.Items)
}
