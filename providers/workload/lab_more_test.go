//go:build lab

package workload_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

func requirePermanent(t *testing.T, err error, mentions ...string) {
	t.Helper()
	require.Error(t, err)
	var p interface{ Permanent() bool }
	require.ErrorAs(t, err, &p)
	require.True(t, p.Permanent(), "not retryable: %v", err)
	for _, m := range mentions {
		require.Contains(t, err.Error(), m)
	}
}

func TestBadInputIsRefusedWithoutWritingAnything(t *testing.T) {
	ctx := context.Background()
	_, admin := labtest.Kube(t)
	k, err := workload.New(workloadtest.WorkerConfig(t, labtest.RestConfig(t), labtest.Namespace(t, "cf-worker")))
	require.NoError(t, err)

	for _, tc := range []struct {
		name     string
		setup    func(ns string)
		canary   func(*v1beta1.Canary)
		mentions []string
	}{
		{"missing target", func(string) {}, nil, []string{"Deployment", "/podinfo (spec.targetRef", "not found"}},
		{"target without a selector label", func(ns string) {
			d := workloadtest.Podinfo(ns, "podinfo", "6.0.0", 1)
			d.Spec.Selector.MatchLabels = map[string]string{"tier": "web"}
			d.Spec.Template.Labels = map[string]string{"tier": "web"}
			_, err := admin.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
			require.NoError(t, err)
		}, func(c *v1beta1.Canary) { c.Spec.AutoscalerRef = nil }, []string{"/podinfo: spec.selector.matchLabels must contain one of app, name, app.kubernetes.io/name"}},
		{"a Service named like ours that is someone else's", func(ns string) {
			workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 1, 0)
			_, err := admin.CoreV1().Services(ns).Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "podinfo-canary"},
				Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(80)}}},
			}, metav1.CreateOptions{})
			require.NoError(t, err)
		}, func(c *v1beta1.Canary) { c.Spec.AutoscalerRef = nil }, []string{"Service ", "/podinfo-canary exists and is not managed by canaryflow", "rename spec.service.name"}},
		{"an autoscaler that does not exist", func(ns string) {
			workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 1, 0)
		}, nil, []string{"HorizontalPodAutoscaler", "/podinfo (spec.autoscalerRef) not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := labtest.Namespace(t, "wl-bad")
			tc.setup(ns)
			c := podinfoCanary(ns, tc.canary)
			err := k.Initialize(ctx, c)
			requirePermanent(t, err, append(tc.mentions, ns)...)
			// Nothing half-made: no object carries canaryflow's marker.
			sel := metav1.ListOptions{LabelSelector: kubeobj.ManagedByLabel + "=" + kubeobj.ManagedByValue}
			deps, err := admin.AppsV1().Deployments(ns).List(ctx, sel)
			require.NoError(t, err)
			require.Empty(t, deps.Items)
			svcs, err := admin.CoreV1().Services(ns).List(ctx, sel)
			require.NoError(t, err)
			require.Empty(t, svcs.Items)
			cms, err := admin.CoreV1().ConfigMaps(ns).List(ctx, sel)
			require.NoError(t, err)
			require.Empty(t, cms.Items)
			secs, err := admin.CoreV1().Secrets(ns).List(ctx, sel)
			require.NoError(t, err)
			require.Empty(t, secs.Items)
		})
	}
}

func TestDaemonSetIsParkedOnNoNodeAndReleased(t *testing.T) {
	ctx := context.Background()
	_, admin := labtest.Kube(t)
	k, err := workload.New(workloadtest.WorkerConfig(t, labtest.RestConfig(t), labtest.Namespace(t, "cf-worker")))
	require.NoError(t, err)
	ns := labtest.Namespace(t, "wl-ds")
	d := workloadtest.Podinfo(ns, "agent", "6.0.0", 1)
	_, err = admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "agent-config"}, Data: map[string]string{"color": "blue"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = admin.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: d.ObjectMeta,
		Spec:       appsv1.DaemonSetSpec{Selector: d.Spec.Selector, Template: d.Spec.Template},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	c := podinfoCanary(ns, func(c *v1beta1.Canary) {
		c.Name = "agent"
		c.Spec.TargetRef = v1beta1.LocalObjectReference{Kind: "DaemonSet", Name: "agent"}
		c.Spec.AutoscalerRef = nil
	})

	twice(t, admin, ns, func() error { return k.Initialize(ctx, c) })
	p, err := admin.AppsV1().DaemonSets(ns).Get(ctx, "agent-primary", metav1.GetOptions{})
	require.NoError(t, err)
	requireManaged(t, p, c)
	require.Equal(t, map[string]string{"app": "agent-primary"}, p.Spec.Selector.MatchLabels)
	require.Equal(t, "agent-config-primary", p.Spec.Template.Spec.Volumes[0].ConfigMap.Name)
	waitReady(t, k, c, true)
	before, _, err := k.Revisions(ctx, c)
	require.NoError(t, err)

	twice(t, admin, ns, func() error { return k.ScaleToZero(ctx, c) })
	ds, err := admin.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "true", ds.Spec.Template.Spec.NodeSelector[workload.ScaleToZeroNodeSelector])
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ds, err := admin.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
		require.NoError(ct, err)
		require.True(ct, ds.Status.ObservedGeneration == ds.Generation && ds.Status.DesiredNumberScheduled == 0 && ds.Status.CurrentNumberScheduled == 0,
			"the parked DaemonSet still runs pods: %+v", ds.Status)
	}, 60*time.Second, 200*time.Millisecond)
	after, primary, err := k.Revisions(ctx, c)
	require.NoError(t, err)
	require.Equal(t, before, after, "parking does not change the revision")
	require.Equal(t, after, primary)

	twice(t, admin, ns, func() error { return k.ScaleFromZero(ctx, c) })
	ds, err = admin.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotContains(t, ds.Spec.Template.Spec.NodeSelector, workload.ScaleToZeroNodeSelector)
	waitReady(t, k, c, false)

	require.NoError(t, k.ScaleToZero(ctx, c))
	require.NoError(t, k.Finalize(ctx, c))
	ds, err = admin.AppsV1().DaemonSets(ns).Get(ctx, "agent", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotContains(t, ds.Spec.Template.Spec.NodeSelector, workload.ScaleToZeroNodeSelector, "finalize releases the target")
	_, err = admin.AppsV1().DaemonSets(ns).Get(ctx, "agent-primary", metav1.GetOptions{})
	require.Error(t, err)
}
