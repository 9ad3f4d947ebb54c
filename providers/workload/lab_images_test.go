//go:build lab

package workload_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

// A release reads the target's images (its previous revision) and sets its own under the worker's role, changing
// nothing else of the Deployment; a container the target does not have is a permanent error naming the ones it has.
func TestTargetImagesReadAndSetOnlyTheNamedContainers(t *testing.T) {
	ctx := context.Background()
	_, admin := labtest.Kube(t)
	k, err := workload.New(workloadtest.WorkerConfig(t, labtest.RestConfig(t), labtest.Namespace(t, "cf-worker")))
	require.NoError(t, err)
	ns := labtest.Namespace(t, "wlimages")
	workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 2, 0)
	c := podinfoCanary(ns, nil)

	imgs, err := k.TargetImages(ctx, c, []string{"podinfo"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"podinfo": "ghcr.io/stefanprodan/podinfo:6.0.0"}, imgs)

	require.NoError(t, k.SetTargetImages(ctx, c, map[string]string{"podinfo": "ghcr.io/stefanprodan/podinfo:6.0.1"}))
	require.NoError(t, k.SetTargetImages(ctx, c, map[string]string{"podinfo": "ghcr.io/stefanprodan/podinfo:6.0.1"}), "setting it again is harmless")
	d, err := admin.AppsV1().Deployments(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	ct := d.Spec.Template.Spec.Containers
	require.Len(t, ct, 1)
	require.Equal(t, "ghcr.io/stefanprodan/podinfo:6.0.1", ct[0].Image)
	require.Len(t, ct[0].Ports, 2, "the rest of the container is kept")
	require.Equal(t, int32(2), *d.Spec.Replicas)

	_, err = k.TargetImages(ctx, c, []string{"podinfod"})
	require.ErrorContains(t, err, "Deployment "+ns+"/podinfo has no container podinfod; its containers: podinfo")
	var perm interface{ Permanent() bool }
	require.ErrorAs(t, err, &perm)
	require.True(t, perm.Permanent(), "retrying cannot add a container")
}
