package workload

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

func statefulSetCanary() *v1beta1.Canary {
	c := &v1beta1.Canary{}
	c.Name, c.Namespace = "db", "test"
	c.Spec.TargetRef = v1beta1.LocalObjectReference{APIVersion: "apps/v1", Kind: v1beta1.KindStatefulSet, Name: "db"}
	return c
}

// statefulSet is db with 5 replicas at partition, the controller's revisions current and update, and a status
// counting pods pods, updated of them on update and ready of them Ready (the worker reads no pod: its role has
// no right to).
func statefulSet(partition int32, current, update string, pods, updated, ready int32) []runtime.Object {
	replicas := int32(5)
	maxUnavailable := intstr.FromInt32(2)
	labels := map[string]string{"app": "db"}
	return []runtime.Object{&appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "test", UID: "uid-db", Generation: 3},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "db:1"}}},
			},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: &partition, MaxUnavailable: &maxUnavailable}},
		},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 3, CurrentRevision: current, UpdateRevision: update,
			Replicas: pods, UpdatedReplicas: updated, ReadyReplicas: ready},
	}}
}

func TestStatefulSetStateIsReadyWhenThePodsPastThePartitionRunTheNewRevision(t *testing.T) {
	for _, tc := range []struct {
		name      string
		objs      []runtime.Object
		partition int
		ready     bool
		reason    string
	}{
		{"two pods updated", statefulSet(3, "a", "b", 5, 2, 5), 3, true, ""},
		{"a pod past the partition not updated yet", statefulSet(3, "a", "b", 5, 1, 5), 3,
			false, "1 of 2 pods on revision b"},
		{"an updated pod not ready yet", statefulSet(3, "a", "b", 5, 2, 4), 3, false, "4 of 5 pods ready"},
		{"a pod missing", statefulSet(3, "a", "b", 4, 2, 4), 3, false, "4 of 5 pods exist"},
		{"every pod updated, not yet current", statefulSet(0, "a", "b", 5, 5, 5), 0,
			false, "waiting for the controller to make b current (still a)"},
		{"rolled back: the stable revision is the update revision again, a pod still on the other",
			statefulSet(0, "a", "a", 5, 4, 5), 0, false, "4 of 5 pods on revision a"},
		{"every pod back on the stable revision", statefulSet(0, "a", "a", 5, 5, 5), 0, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := NewForClientset(fake.NewClientset(tc.objs...))
			st, err := k.StatefulSetState(context.Background(), statefulSetCanary(), tc.partition)
			require.NoError(t, err)
			require.Equal(t, tc.ready, st.Ready, st.Reason)
			require.Equal(t, tc.reason, st.Reason)
		})
	}
}

// The stable template is recorded with the partition raised to the replica count; restoring it replaces the
// template as a whole (what the rolled-back template added goes too) with partition 0, keeping maxUnavailable.
func TestRestoreStablePutsTheRecordedTemplateBackWhole(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(statefulSet(0, "a", "a", 5, 5, 5)...)
	k := NewForClientset(cs)
	c := statefulSetCanary()
	require.NoError(t, k.RecordStable(ctx, c))
	got, err := cs.AppsV1().StatefulSets("test").Get(ctx, "db", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, int32(5), *got.Spec.UpdateStrategy.RollingUpdate.Partition)
	stable := got.Spec.Template.DeepCopy()
	st, err := k.StatefulSetState(ctx, c, 5)
	require.NoError(t, err)
	require.Equal(t, st.Revision, st.StableRevision)

	// A new release: another image and a label the stable template does not have, then a step.
	got.Spec.Template.Spec.Containers[0].Image = "db:2"
	got.Spec.Template.Labels["release"] = "new"
	_, err = cs.AppsV1().StatefulSets("test").Update(ctx, got, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, k.SetPartition(ctx, c, 4))
	st, err = k.StatefulSetState(ctx, c, 4)
	require.NoError(t, err)
	require.NotEqual(t, st.StableRevision, st.Revision)
	require.Equal(t, 4, st.Partition)

	require.NoError(t, k.RestoreStable(ctx, c))
	got, err = cs.AppsV1().StatefulSets("test").Get(ctx, "db", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, *stable, got.Spec.Template)
	require.Equal(t, int32(0), *got.Spec.UpdateStrategy.RollingUpdate.Partition)
	require.Equal(t, intstr.FromInt32(2), *got.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable)
	st, err = k.StatefulSetState(ctx, c, 0)
	require.NoError(t, err)
	require.Equal(t, st.StableRevision, st.Revision)
}

func TestReleaseRemovesTheStableRecordAndThePartition(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(statefulSet(0, "a", "a", 5, 5, 5)...)
	k := NewForClientset(cs)
	c := statefulSetCanary()
	require.NoError(t, k.RecordStable(ctx, c))
	require.NoError(t, k.Release(ctx, c))
	got, err := cs.AppsV1().StatefulSets("test").Get(ctx, "db", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotContains(t, got.Annotations, StableTemplateAnnotation)
	require.NotContains(t, got.Annotations, StableRevisionAnnotation)
	require.Equal(t, int32(0), *got.Spec.UpdateStrategy.RollingUpdate.Partition)
}

func TestAStatefulSetWithoutRollingUpdatesIsRefused(t *testing.T) {
	objs := statefulSet(0, "a", "a", 5, 5, 5)
	objs[0].(*appsv1.StatefulSet).Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	k := NewForClientset(fake.NewClientset(objs...))
	_, err := k.StatefulSetState(context.Background(), statefulSetCanary(), 5)
	require.ErrorContains(t, err, "StatefulSet test/db has spec.updateStrategy.type OnDelete: a partitioned rollout needs RollingUpdate")
	var p interface{ Permanent() bool }
	require.ErrorAs(t, err, &p)
}
