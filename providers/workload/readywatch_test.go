package workload

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// The watcher's own logic on a fake clientset (its informer sees the fake's updates as watch events); the lab test
// (lab_readywatch_test.go) proves it on a real API server.
func TestReadyWatcherAnswersOnTheUpdateThatMakesTheWorkloadReady(t *testing.T) {
	ctx := context.Background()
	two := int32(2)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo-primary", Namespace: "prod", Generation: 3},
		Spec:       appsv1.DeploymentSpec{Replicas: &two},
		Status:     appsv1.DeploymentStatus{ObservedGeneration: 3, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 1},
	}
	cs := fake.NewClientset(dep)
	rw := NewReadyWatcher(NewForClientset(cs))
	rw.Idle = 100 * time.Millisecond
	c := &v1beta1.Canary{}
	c.Name, c.Namespace = "podinfo", "prod"
	c.Spec.TargetRef = v1beta1.LocalObjectReference{Kind: KindDeployment, Name: "podinfo"}

	// Not ready until the context ends: not ready, with the reason, and no error.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	ok, reason, err := rw.AwaitReady(short, c, true)
	cancel()
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, "waiting for rollout to finish: 1 of 2 updated replicas are available", reason)

	type answer struct {
		ok  bool
		err error
	}
	done := make(chan answer, 1)
	go func() {
		ok, _, err := rw.AwaitReady(ctx, c, true)
		done <- answer{ok, err}
	}()
	require.Eventually(t, func() bool { return rw.Informers() == 1 }, 5*time.Second, 10*time.Millisecond)
	select {
	case a := <-done:
		t.Fatalf("answered %+v before the Deployment became ready", a)
	case <-time.After(200 * time.Millisecond):
	}
	ready := dep.DeepCopy()
	ready.Status.AvailableReplicas = 2
	_, err = cs.AppsV1().Deployments("prod").UpdateStatus(ctx, ready, metav1.UpdateOptions{})
	require.NoError(t, err)
	select {
	case a := <-done:
		require.NoError(t, a.err)
		require.True(t, a.ok)
	case <-time.After(10 * time.Second):
		t.Fatal("no answer after the Deployment became ready")
	}

	// The primary's threshold counts, as in IsReady: 50% of 2 is 1 available.
	half := 50
	c.Spec.Analysis = &v1beta1.CanaryAnalysis{PrimaryReadyThreshold: &half}
	ready.Status.AvailableReplicas = 1
	_, err = cs.AppsV1().Deployments("prod").UpdateStatus(ctx, ready, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		ok, _, err := rw.AwaitReady(ctx, c, true)
		return err == nil && ok
	}, 5*time.Second, 10*time.Millisecond)

	// With no wait open the informer stops after Idle.
	require.Eventually(t, func() bool { return rw.Informers() == 0 }, 5*time.Second, 10*time.Millisecond)

	// A Deployment that is not there is a permanent error.
	c.Spec.TargetRef.Name = "missing"
	_, _, err = rw.AwaitReady(ctx, c, false)
	var perm interface{ Permanent() bool }
	require.ErrorAs(t, err, &perm)
	require.EqualError(t, err, "Deployment prod/missing not found")
}
