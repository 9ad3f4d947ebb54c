//go:build lab

package workload_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

// A rollback after the promotion began puts the primary back on what it ran before: its pod template and its
// tracked config copies, under the worker's role. The record is kept in a Secret, so a Secret copy is safe there.
func TestRevertPromotionRestoresThePrimarysTemplateAndConfigs(t *testing.T) {
	ctx := context.Background()
	_, admin := labtest.Kube(t)
	k, err := workload.New(workloadtest.WorkerConfig(t, labtest.RestConfig(t), labtest.Namespace(t, "cf-worker")))
	require.NoError(t, err)
	ns := labtest.Namespace(t, "wlrevert")
	workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 2, 2)
	c := podinfoCanary(ns, nil)
	require.NoError(t, k.Initialize(ctx, c))
	_, before, err := k.Revisions(ctx, c)
	require.NoError(t, err)

	// A new revision: image and tracked ConfigMap change; it is promoted.
	labtest.SetImage(t, admin, ns, "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
	cfg, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "podinfo-config", metav1.GetOptions{})
	require.NoError(t, err)
	cfg.Data["color"] = "#ff0000"
	_, err = admin.CoreV1().ConfigMaps(ns).Update(ctx, cfg, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, k.Promote(ctx, c))
	require.NoError(t, k.Promote(ctx, c), "a retried promotion keeps the first record")
	target, promoted, err := k.Revisions(ctx, c)
	require.NoError(t, err)
	require.Equal(t, target, promoted)

	// Aborted: the primary goes back to `before`.
	twice(t, admin, ns, func() error { return k.RevertPromotion(ctx, c, before) })
	p, err := admin.AppsV1().Deployments(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "ghcr.io/stefanprodan/podinfo:6.0.0", p.Spec.Template.Spec.Containers[0].Image)
	require.Equal(t, int32(2), *p.Spec.Replicas, "the rest of the primary is kept")
	require.Equal(t, map[string]string{"app": "podinfo-primary"}, p.Spec.Selector.MatchLabels)
	requireManaged(t, p, c)
	cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "podinfo-config-primary", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "#34577c", cm.Data["color"], "the config copy is back too")
	_, primary, err := k.Revisions(ctx, c)
	require.NoError(t, err)
	require.Equal(t, before, primary)
	waitReady(t, k, c, true)

	// A revert to a revision the record does not hold is refused: the primary changed outside this rollout.
	err = k.RevertPromotion(ctx, c, "0123456789abcdef")
	var perm *kubeobj.PermanentError
	require.ErrorAs(t, err, &perm)
	require.ErrorContains(t, err, "records revision "+before)

	// The record goes with the canary's other objects.
	require.NoError(t, k.Finalize(ctx, c))
	_, err = admin.CoreV1().Secrets(ns).Get(ctx, "podinfo-primary-previous", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the record is deleted on finalisation: %v", err)
}
