package gitops

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
)

func canaryFinalizers(t *testing.T, dyn dynamic.Interface) []string {
	t.Helper()
	u, err := dyn.Resource(canaryGVR).Namespace(ns).Get(context.Background(), "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	return u.GetFinalizers()
}

// A Canary with revertOnDeletion gets canaryflow's finalizer, as Flagger puts its own there; without it, none (and
// one that loses the field loses the finalizer).
func TestTriggerKeepsTheFinalizerWithRevertOnDeletion(t *testing.T) {
	c := canaryObject(1, "")
	require.NoError(t, unstructured.SetNestedField(c.Object, true, "spec", "revertOnDeletion"))
	_, dyn, _ := started(t, []runtime.Object{deployment("podinfo", "podinfo:6.0.0", nil, nil, "")}, c)
	require.Eventually(t, func() bool { return slices.Contains(canaryFinalizers(t, dyn), Finalizer) }, 10*time.Second, 10*time.Millisecond)

	u, err := dyn.Resource(canaryGVR).Namespace(ns).Get(context.Background(), "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	unstructured.RemoveNestedField(u.Object, "spec", "revertOnDeletion")
	u.SetGeneration(2)
	u.SetResourceVersion("100") // as the API server would: the fake client keeps what it is given
	_, err = dyn.Resource(canaryGVR).Namespace(ns).Update(context.Background(), u, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !slices.Contains(canaryFinalizers(t, dyn), Finalizer) }, 10*time.Second, 10*time.Millisecond)

	// Without the field: the trigger looks (and initialises the canary) and adds no finalizer.
	_, dyn2, fr := started(t, []runtime.Object{deployment("podinfo", "podinfo:6.0.0", nil, nil, "")}, canaryObject(1, ""))
	waitReleases(t, fr, 1)
	require.Empty(t, canaryFinalizers(t, dyn2))
}

// Deleting a Canary that has the finalizer, during a rollout: the open rollout is aborted (its rollback awaited),
// then the finalisation runs with the Canary's spec, then the finalizer goes.
func TestDeletingACanaryAbortsItsRolloutFinalisesAndReleasesIt(t *testing.T) {
	c := canaryObject(1, "")
	require.NoError(t, unstructured.SetNestedField(c.Object, true, "spec", "revertOnDeletion"))
	c.SetFinalizers([]string{Finalizer, "example.com/other"})
	now := metav1.NewTime(time.Now())
	c.SetDeletionTimestamp(&now)
	kubeObjs := []runtime.Object{deployment("podinfo", "podinfo:6.0.1", nil, nil, "")}
	_, dyn, fr, _ := startedWith(t, &fakeRollouts{open: "run-1"}, kubeObjs, c)
	require.Eventually(t, func() bool { return !slices.Contains(canaryFinalizers(t, dyn), Finalizer) }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, []string{"abort canary/test/podinfo run-1 by " + SignalBy, "finalize finalize/test/podinfo"}, fr.deletionCalls())
	require.Equal(t, []string{"example.com/other"}, canaryFinalizers(t, dyn), "only canaryflow's finalizer is removed")
	require.True(t, fr.finalized[0].Canary.Spec.RevertOnDeletion)
	require.Equal(t, "podinfo", fr.finalized[0].Canary.Spec.TargetRef.Name)
	_, releases := fr.snapshot()
	require.Empty(t, releases, "a Canary being deleted is not released")
}
