//go:build lab

package workload_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

type watched struct {
	ready  bool
	reason string
	err    error
	after  time.Duration
}

func watchInBackground(k *workload.Client, c *v1beta1.Canary, primary bool, d time.Duration) <-chan watched {
	out := make(chan watched, 1)
	start := time.Now()
	go func() {
		ok, reason, err := k.WatchReady(context.Background(), c, primary, start.Add(d))
		out <- watched{ok, reason, err, time.Since(start)}
	}()
	return out
}

// A readiness wait on a watch, under the worker's role: it answers when the Deployment gets ready (and not
// before), with IsReady's reason when its time passes first, and a permanent error when the Deployment is
// deleted under it.
func TestWatchReadyAnswersWhenTheDeploymentGetsReady(t *testing.T) {
	ctx := context.Background()
	_, admin := labtest.Kube(t)
	k, err := workload.New(workloadtest.WorkerConfig(t, labtest.RestConfig(t), labtest.Namespace(t, "cf-worker")))
	require.NoError(t, err)
	ns := labtest.Namespace(t, "wl-watch")
	d := workloadtest.Podinfo(ns, "podinfo", "6.0.0", 2)
	d.Spec.Template.Spec.NodeSelector = map[string]string{"canaryflow.test/nowhere": "true"} // its pods stay Pending
	_, err = admin.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{})
	require.NoError(t, err)
	c := podinfoCanary(ns, func(c *v1beta1.Canary) { c.Spec.AutoscalerRef = nil })

	// Its time passes first: not ready, with the reason IsReady gives.
	got := <-watchInBackground(k, c, false, 3*time.Second)
	require.NoError(t, got.err)
	require.False(t, got.ready)
	require.Contains(t, got.reason, "waiting for rollout to finish")
	require.GreaterOrEqual(t, got.after, 3*time.Second-100*time.Millisecond, "answered before its time")
	ready, reason, err := k.IsReady(ctx, c, false)
	require.NoError(t, err)
	require.False(t, ready)
	require.Equal(t, reason, got.reason)

	// The pods can be placed: the wait answers ready as the Deployment gets ready.
	wait := watchInBackground(k, c, false, 90*time.Second)
	_, err = admin.AppsV1().Deployments(ns).Patch(ctx, "podinfo", types.MergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"nodeSelector":null}}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	got = <-wait
	require.NoError(t, got.err)
	require.True(t, got.ready, got.reason)
	require.Less(t, got.after, 80*time.Second)
	ready, _, err = k.IsReady(ctx, c, false)
	require.NoError(t, err)
	require.True(t, ready, "the watch and a look agree")

	// Deleted while watched (not ready again: pods Pending): a permanent error that names it.
	_, err = admin.AppsV1().Deployments(ns).Patch(ctx, "podinfo", types.MergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"nodeSelector":{"canaryflow.test/nowhere":"true"}}}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ready, _, err := k.IsReady(ctx, c, false)
		return err == nil && !ready
	}, 30*time.Second, 100*time.Millisecond)
	wait = watchInBackground(k, c, false, 90*time.Second)
	require.NoError(t, admin.AppsV1().Deployments(ns).Delete(ctx, "podinfo", metav1.DeleteOptions{}))
	got = <-wait
	require.Error(t, got.err)
	var p interface{ Permanent() bool }
	require.True(t, errors.As(got.err, &p) && p.Permanent(), got.err.Error())
	// Deleted once watched, or before the wait's first read.
	require.Regexp(t, "Deployment "+ns+"/podinfo (was deleted|not found)", got.err.Error())
}
