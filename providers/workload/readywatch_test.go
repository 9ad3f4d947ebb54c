package workload

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// The watcher's own logic on a fake clientset (its informer sees the fake's updates as watch events); the lab test
// (lab_readywatch_test.go) proves it on a real API server.
func TestReadyWatcherAnswersOnTheUpdateThatMakesTheWorkloadReady(t *testing.T) {
	ctx := context.Background()
	dep := halfAvailable("podinfo-primary", 3)
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

// A role that grants get but not list (or not watch) on Deployments: the API server's refusal sends the waits of
// that namespace to polling, which answers from the Deployment itself, and the worker hears of it once.
func TestReadyWatcherPollsWhereDeploymentsCannotBeWatched(t *testing.T) {
	for _, verb := range []string{"list", "watch"} {
		t.Run("no "+verb, func(t *testing.T) {
			ctx := context.Background()
			dep := halfAvailable("podinfo", 1)
			cs := fake.NewClientset(dep)
			refused := apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "",
				fmt.Errorf("User \"system:serviceaccount:canaryflow:canaryflow\" cannot %s resource", verb))
			if verb == "list" {
				cs.PrependReactor("list", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, refused })
			} else {
				cs.PrependWatchReactor("deployments", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, refused })
			}
			rw := NewReadyWatcher(NewForClientset(cs))
			rw.PollEvery = 20 * time.Millisecond
			var mu sync.Mutex
			var denied []string
			rw.Denied = func(ns string, err error) {
				mu.Lock()
				defer mu.Unlock()
				denied = append(denied, ns+": "+err.Error())
			}
			c := &v1beta1.Canary{}
			c.Name, c.Namespace = "podinfo", "prod"
			c.Spec.TargetRef = v1beta1.LocalObjectReference{Kind: KindDeployment, Name: "podinfo"}

			done := make(chan error, 1)
			go func() {
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				defer cancel()
				ok, reason, err := rw.AwaitReady(wctx, c, false)
				if err == nil && !ok {
					err = fmt.Errorf("not ready: %s", reason)
				}
				done <- err
			}()
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(denied) == 1
			}, 10*time.Second, 10*time.Millisecond, "the refusal is reported")
			require.Contains(t, denied[0], "prod: ")
			require.Contains(t, denied[0], "cannot "+verb)
			require.Eventually(t, func() bool { return rw.Informers() == 0 }, 5*time.Second, 10*time.Millisecond,
				"the refused informer stops at once")

			ready := dep.DeepCopy()
			ready.Status.AvailableReplicas = 2
			_, err := cs.AppsV1().Deployments("prod").UpdateStatus(ctx, ready, metav1.UpdateOptions{})
			require.NoError(t, err)
			select {
			case err := <-done:
				require.NoError(t, err, "the poll saw the Deployment ready")
			case <-time.After(20 * time.Second):
				t.Fatal("no answer after the Deployment became ready")
			}
		})
	}
}

// halfAvailable is Deployment name of namespace prod at generation gen, rolled out to both of its 2 replicas of
// which 1 is available: not ready until the second becomes available.
func halfAvailable(name string, gen int64) *appsv1.Deployment {
	two := int32(2)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "prod", Generation: gen},
		Spec:       appsv1.DeploymentSpec{Replicas: &two},
		Status:     appsv1.DeploymentStatus{ObservedGeneration: gen, Replicas: 2, UpdatedReplicas: 2, AvailableReplicas: 1},
	}
}
