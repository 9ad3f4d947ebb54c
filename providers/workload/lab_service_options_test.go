//go:build lab

package workload_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

const externalDNS = "external-dns.alpha.kubernetes.io/hostname"

// spec.service.headless, trafficDistribution and unmanagedMetadata on the real API server (Kubernetes v1.33):
// the three Services are headless and carry the traffic distribution, and a key listed as unmanaged is never
// written by canaryflow, so the value another controller gives it survives every Initialize.
func TestServicesAreHeadlessWithTrafficDistributionAndLeaveUnmanagedKeys(t *testing.T) {
	ctx := context.Background()
	_, admin := labtest.Kube(t)
	k, err := workload.New(workloadtest.WorkerConfig(t, labtest.RestConfig(t), labtest.Namespace(t, "cf-worker")))
	require.NoError(t, err)
	ns := labtest.Namespace(t, "wl-svcopts")
	workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 1, 0)
	c := podinfoCanary(ns, func(c *v1beta1.Canary) {
		c.Spec.AutoscalerRef = nil
		c.Spec.Service.Headless = true
		c.Spec.Service.TrafficDistribution = "PreferClose"
		c.Spec.Service.Apex.Annotations = map[string]string{"note": "apex", externalDNS: "from-the-canary-spec"}
		c.Spec.Service.Apex.Labels["team"] = "from-the-canary-spec"
		c.Spec.Service.UnmanagedMetadata = &v1beta1.UnmanagedMetadata{Annotations: []string{externalDNS}, Labels: []string{"team"}}
	})

	twice(t, admin, ns, func() error { return k.Initialize(ctx, c) })
	for _, name := range []string{"podinfo", "podinfo-primary", "podinfo-canary"} {
		svc, err := admin.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, name)
		require.NotNil(t, svc.Spec.TrafficDistribution, name)
		require.Equal(t, "PreferClose", *svc.Spec.TrafficDistribution, name)
	}
	apex, err := admin.CoreV1().Services(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "apex", apex.Annotations["note"])
	require.NotContains(t, apex.Annotations, externalDNS, "an unmanaged key is not written, even when the spec names it")
	require.NotContains(t, apex.Labels, "team")

	// Another controller owns the keys; canaryflow's next Initialize leaves them as they are.
	other := []byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"podinfo","labels":{"team":"payments"},` +
		`"annotations":{"` + externalDNS + `":"podinfo.example.com"}}}`)
	_, err = admin.CoreV1().Services(ns).Patch(ctx, "podinfo", types.ApplyPatchType, other, metav1.PatchOptions{FieldManager: "external-dns"})
	require.NoError(t, err)
	twice(t, admin, ns, func() error { return k.Initialize(ctx, c) })
	apex, err = admin.CoreV1().Services(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "podinfo.example.com", apex.Annotations[externalDNS])
	require.Equal(t, "payments", apex.Labels["team"])
	require.True(t, kubeobj.IsManaged(apex), "canaryflow's own marker is always written")

	// A Service's clusterIP cannot change: turning headless off is refused with the field to change, and nothing
	// is written.
	before := versions(t, admin, ns)
	c.Spec.Service.Headless = false
	requirePermanent(t, k.Initialize(ctx, c), "spec.service.headless", "headless=true", "delete the Service")
	require.Equal(t, before, versions(t, admin, ns))
}
