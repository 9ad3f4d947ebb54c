//go:build lab

package workload_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

// A worker whose ServiceAccount holds only the namespaced Role (deploy/namespaced/rbac) of its team's namespace
// reads Secrets there, is refused them in any other namespace and cluster-wide, and can still initialise a canary
// in its own namespace: the Role is enough for a rollout and grants nothing beyond it.
func TestNamespacedRoleGrantsItsNamespaceOnly(t *testing.T) {
	ctx := context.Background()
	_, admin := labtest.Kube(t)
	mine, other := labtest.Namespace(t, "team-a"), labtest.Namespace(t, "team-b")
	cfg := workloadtest.NamespacedWorkerConfig(t, labtest.RestConfig(t), mine, mine)
	worker, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	for _, ns := range []string{mine, other} {
		_, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "token", Namespace: ns}, StringData: map[string]string{"t": "x"},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	got, err := worker.CoreV1().Secrets(mine).Get(ctx, "token", metav1.GetOptions{})
	require.NoError(t, err, "the Role grants Secrets of its own namespace")
	require.Equal(t, "x", string(got.Data["t"]))

	_, err = worker.CoreV1().Secrets(other).Get(ctx, "token", metav1.GetOptions{})
	require.True(t, apierrors.IsForbidden(err), "another namespace's Secret must be Forbidden, got %v", err)
	require.ErrorContains(t, err, `cannot get resource "secrets" in API group "" in the namespace "`+other+`"`)
	_, err = worker.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	require.True(t, apierrors.IsForbidden(err), "listing Secrets cluster-wide must be Forbidden, got %v", err)
	_, err = worker.AppsV1().Deployments(other).Create(ctx, workloadtest.Podinfo(other, "intruder", "6.0.0", 0), metav1.CreateOptions{})
	require.True(t, apierrors.IsForbidden(err), "writing in another namespace must be Forbidden, got %v", err)

	k, err := workload.New(cfg)
	require.NoError(t, err)
	workloadtest.CreatePodinfo(t, admin, mine, "podinfo", "6.0.0", 1, 0)
	c := podinfoCanary(mine, nil)
	c.Spec.AutoscalerRef = nil
	require.NoError(t, k.Initialize(ctx, c), "the namespaced Role is enough to initialise a canary")
	_, err = admin.AppsV1().Deployments(mine).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	require.NoError(t, err)

	workloadtest.CreatePodinfo(t, admin, other, "podinfo", "6.0.0", 1, 0)
	err = k.Initialize(ctx, podinfoCanary(other, func(c *v1beta1.Canary) { c.Spec.AutoscalerRef = nil }))
	require.Error(t, err)
	require.True(t, apierrors.IsForbidden(err), "initialising in another namespace must be Forbidden: %v", err)
	list, err := admin.AppsV1().Deployments(other).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, list.Items, 1, "nothing was written in the other namespace")
}
