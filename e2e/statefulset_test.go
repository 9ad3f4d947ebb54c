//go:build lab

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/workflows"
)

// TestStatefulSetPartitionedRollout rolls out a 5-replica StatefulSet (podinfo pods made Ready by kwok, replaced by
// the real kube-controller-manager's StatefulSet controller) through the real worker under its ServiceAccount:
// promoted through every partition, then rolled back at the second step on a failing metric, every pod back on
// the old revision.
func TestStatefulSetPartitionedRollout(t *testing.T) {
	env := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	t.Cleanup(cancel)
	// A task queue of its own: workers of other checkouts on the shared lab must not take these rollouts.
	queue := "e2e-sts-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	s, err := StartOnQueue(ctx, env, Narrator(t), queue)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", s.LogTail("worker", 80))
		}
		s.Close()
	})
	grantStatefulSetRights(ctx, t, s.Kube)
	tc := labtest.Temporal(t)

	t.Run("promoted through every partition", func(t *testing.T) {
		ns := labtest.Namespace(t, "sts-promote")
		db := newStatefulSetRun(ctx, t, s, tc, ns, queue, "vector(0)")
		db.initialise()
		before, _ := db.state()
		oldRev := before.Status.CurrentRevision
		seen := db.watchPartitions()
		// The user's path: the starter sets the image on the StatefulSet and follows the rollout to its end.
		r := s.Starter(ctx, "rollout", "-f", db.file(), "--set-image", "podinfod="+PodinfoImage("6.0.1"), "--wait", "--timeout", "8m", "--by", "e2e")
		require.Equal(t, 0, r.Code, r.Output)
		require.Contains(t, r.Output, "StatefulSet "+ns+"/db: set image podinfod="+PodinfoImage("6.0.1"))
		require.Equal(t, []int{5, 4, 3, 2, 1, 0, 5}, seen(), "partitions set, in order: one step at a time, then back at the replica count")
		set, pods := db.state()
		require.NotEqual(t, oldRev, set.Status.UpdateRevision)
		require.Equal(t, set.Status.UpdateRevision, set.Status.CurrentRevision)
		for _, p := range pods {
			require.Equal(t, set.Status.UpdateRevision, p.Labels[workload.PodRevisionLabel], "pod %s runs the new revision", p.Name)
			require.Equal(t, PodinfoImage("6.0.1"), p.Spec.Containers[0].Image, "pod %s", p.Name)
		}
	})

	t.Run("rolled back at the second step on a failing metric", func(t *testing.T) {
		ns := labtest.Namespace(t, "sts-rollback")
		// Five errors against a maximum of one: the first metric check (the second step, with one pod updated)
		// fails, and threshold 1 rolls back at once.
		db := newStatefulSetRun(ctx, t, s, tc, ns, queue, "vector(5)")
		db.initialise()
		oldRev := db.setImage("6.0.1")
		seen := db.watchPartitions()
		r := s.Starter(ctx, "rollout", "-f", db.file(), "--wait", "--timeout", "8m", "--by", "e2e")
		require.Equal(t, 1, r.Code, "a rolled-back release exits 1:\n%s", r.Output)
		require.Contains(t, r.Output, "failed checks threshold reached 1")
		require.Equal(t, []int{5, 4, 0, 5}, seen(), "one pod updated, then the stable template restored at partition 0, then raised")
		set, pods := db.state()
		require.Equal(t, oldRev, set.Status.UpdateRevision, "the template is the old one again")
		require.Equal(t, oldRev, set.Status.CurrentRevision)
		require.Equal(t, PodinfoImage("6.0.0"), set.Spec.Template.Spec.Containers[0].Image)
		for _, p := range pods {
			require.Equal(t, oldRev, p.Labels[workload.PodRevisionLabel], "pod %s is back on the old revision", p.Name)
			require.Equal(t, PodinfoImage("6.0.0"), p.Spec.Containers[0].Image, "pod %s", p.Name)
		}
	})
}

// grantStatefulSetRights binds the worker's ServiceAccount to the StatefulSet rules of deploy/rbac/clusterrole.yaml
// in a ClusterRole of this test's own: the lab is shared, and a checkout without those rules applying its
// clusterrole.yaml (as every e2e stack does) would take them away in the middle of the rollout.
func grantStatefulSetRights(ctx context.Context, t *testing.T, kube kubernetes.Interface) {
	const name = "canaryflow-e2e-statefulsets"
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"get", "patch"}},
	}}
	// Create, or set the rules of the one an earlier run left (the rules may have changed since).
	if _, err := kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		existing, err := kube.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
		require.NoError(t, err)
		existing.Rules = role.Rules
		_, err = kube.RbacV1().ClusterRoles().Update(ctx, existing, metav1.UpdateOptions{})
		require.NoError(t, err)
	} else {
		require.NoError(t, err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "canaryflow", Namespace: "canaryflow-system"}}}
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
}

// statefulSetRun is one StatefulSet "db" (5 podinfo pods) in its own namespace and its Canary.
type statefulSetRun struct {
	ctx      context.Context
	t        *testing.T
	s        *Stack
	tc       client.Client
	ns       string
	queue    string
	canary   v1beta1.Canary
	template v1beta1.MetricTemplate
}

func newStatefulSetRun(ctx context.Context, t *testing.T, s *Stack, tc client.Client, ns, queue, errorsQuery string) *statefulSetRun {
	replicas, grace := int32(5), int64(1)
	labels := map[string]string{"app": "db"}
	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, ServiceName: "db", Selector: &metav1.LabelSelector{MatchLabels: labels},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				// Replaced pods go at once (kwok ends them after the grace period), so a step takes seconds.
				Spec: corev1.PodSpec{TerminationGracePeriodSeconds: &grace, Containers: []corev1.Container{{
					Name: "podinfod", Image: PodinfoImage("6.0.0"),
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}},
				}}},
			},
		},
	}
	_, err := s.Kube.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{})
	require.NoError(t, err)

	maxErrors := 1.0
	c := v1beta1.Canary{}
	c.Name, c.Namespace = "db", ns
	c.Spec.TargetRef = v1beta1.LocalObjectReference{APIVersion: "apps/v1", Kind: v1beta1.KindStatefulSet, Name: "db"}
	c.Spec.Analysis = &v1beta1.CanaryAnalysis{
		Interval: "10s", Threshold: 1, StepWeight: 20, MaxWeight: 100,
		Metrics: []v1beta1.CanaryMetric{{Name: "errors", TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "errors", Namespace: ns},
			ThresholdRange: &v1beta1.CanaryThresholdRange{Max: &maxErrors}}},
	}
	mt := v1beta1.MetricTemplate{}
	mt.Name, mt.Namespace = "errors", ns
	mt.Spec.Provider = v1beta1.MetricTemplateProvider{Type: "prometheus", Address: s.Lab.PrometheusURL}
	mt.Spec.Query = errorsQuery
	r := &statefulSetRun{ctx: ctx, t: t, s: s, tc: tc, ns: ns, queue: queue, canary: c, template: mt}
	r.waitSettled()
	return r
}

// file writes the Canary and its MetricTemplate as a starter input file.
func (r *statefulSetRun) file() string {
	r.t.Helper()
	doc := fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: db, namespace: %[1]s}
spec:
  targetRef: {apiVersion: apps/v1, kind: StatefulSet, name: db}
  analysis:
    interval: 10s
    threshold: 1
    stepWeight: 20
    maxWeight: 100
    metrics:
      - name: errors
        templateRef: {name: errors, namespace: %[1]s}
        thresholdRange: {max: 1}
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: errors, namespace: %[1]s}
spec:
  provider: {type: prometheus, address: %[2]q}
  query: %[3]q
`, r.ns, r.template.Spec.Provider.Address, r.template.Spec.Query)
	path := filepath.Join(r.t.TempDir(), "db.yaml")
	require.NoError(r.t, os.WriteFile(path, []byte(doc), 0o600))
	return path
}

// state reads the StatefulSet and its pods.
func (r *statefulSetRun) state() (*appsv1.StatefulSet, []corev1.Pod) {
	r.t.Helper()
	set, err := r.s.Kube.AppsV1().StatefulSets(r.ns).Get(r.ctx, "db", metav1.GetOptions{})
	require.NoError(r.t, err)
	pods, err := r.s.Kube.CoreV1().Pods(r.ns).List(r.ctx, metav1.ListOptions{LabelSelector: "app=db"})
	require.NoError(r.t, err)
	return set, pods.Items
}

// waitSettled waits until the 5 pods are Ready and all on the current revision.
func (r *statefulSetRun) waitSettled() {
	r.t.Helper()
	var last string
	settled := func() bool {
		set, pods := r.state()
		st := set.Status
		last = fmt.Sprintf("ready %d, current %s, update %s, pods %d", st.ReadyReplicas, st.CurrentRevision, st.UpdateRevision, len(pods))
		if st.ReadyReplicas != 5 || st.CurrentRevision == "" || st.CurrentRevision != st.UpdateRevision || len(pods) != 5 {
			return false
		}
		for _, p := range pods {
			if p.Labels[workload.PodRevisionLabel] != st.CurrentRevision || p.DeletionTimestamp != nil {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(2 * time.Minute); !settled(); time.Sleep(500 * time.Millisecond) {
		require.True(r.t, time.Now().Before(deadline), "StatefulSet db never settled: %s", last)
	}
}

// rollout runs the Canary's rollout workflow on the test's task queue and returns its result.
func (r *statefulSetRun) rollout() workflows.RolloutResult {
	r.t.Helper()
	run, err := r.tc.ExecuteWorkflow(r.ctx, client.StartWorkflowOptions{
		ID: v1beta1.WorkflowID(r.ns, r.canary.Name), TaskQueue: r.queue, WorkflowExecutionTimeout: 10 * time.Minute,
	}, workflows.WorkflowName, workflows.RolloutInput{Canary: r.canary, Templates: []v1beta1.MetricTemplate{r.template}})
	require.NoError(r.t, err)
	var res workflows.RolloutResult
	require.NoError(r.t, run.Get(r.ctx, &res))
	return res
}

// initialise runs the first rollout: the template is recorded as stable and the partition raised to 5.
func (r *statefulSetRun) initialise() {
	r.t.Helper()
	res := r.rollout()
	require.Equal(r.t, workflows.PhaseInitialized, res.Phase, res.Reason)
	set, _ := r.state()
	require.Equal(r.t, int32(5), *set.Spec.UpdateStrategy.RollingUpdate.Partition)
	require.NotEmpty(r.t, set.Annotations[workload.StableTemplateAnnotation])
}

// setImage changes the template's image and returns the revision every pod ran before. With the partition at
// the replica count, the change updates no pod until the rollout lowers it.
func (r *statefulSetRun) setImage(version string) string {
	r.t.Helper()
	before, _ := r.state()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"podinfod","image":%q}]}}}}`, PodinfoImage(version))
	_, err := r.s.Kube.AppsV1().StatefulSets(r.ns).Patch(r.ctx, "db", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(r.t, err)
	require.Eventually(r.t, func() bool {
		set, _ := r.state()
		return set.Status.ObservedGeneration >= set.Generation && set.Status.UpdateRevision != before.Status.CurrentRevision
	}, time.Minute, 200*time.Millisecond, "the controller never saw the new template")
	_, pods := r.state()
	for _, p := range pods {
		require.Equal(r.t, before.Status.CurrentRevision, p.Labels[workload.PodRevisionLabel], "no pod is updated before the rollout: %s", p.Name)
	}
	return before.Status.CurrentRevision
}

// watchPartitions records every partition value the StatefulSet takes from now on (consecutive repeats once);
// the returned function stops the watch and returns them. A watch the API server closes is opened again from the
// last version seen, so no change is missed.
func (r *statefulSetRun) watchPartitions() func() []int {
	r.t.Helper()
	set, _ := r.state()
	ctx, stop := context.WithCancel(r.ctx)
	var mu sync.Mutex
	seen := []int{int(*set.Spec.UpdateStrategy.RollingUpdate.Partition)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rv := set.ResourceVersion
		for ctx.Err() == nil {
			w, err := r.s.Kube.AppsV1().StatefulSets(r.ns).Watch(ctx, metav1.ListOptions{
				FieldSelector: fields.OneTermEqualSelector("metadata.name", "db").String(), ResourceVersion: rv,
			})
			if err != nil {
				r.t.Logf("watch of StatefulSet db: %v", err)
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				s, ok := ev.Object.(*appsv1.StatefulSet)
				if !ok || ev.Type != watch.Modified {
					continue
				}
				rv = s.ResourceVersion
				if s.Spec.UpdateStrategy.RollingUpdate == nil || s.Spec.UpdateStrategy.RollingUpdate.Partition == nil {
					continue
				}
				p := int(*s.Spec.UpdateStrategy.RollingUpdate.Partition)
				mu.Lock()
				if seen[len(seen)-1] != p {
					seen = append(seen, p)
				}
				mu.Unlock()
			}
			w.Stop()
		}
	}()
	return func() []int {
		stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), seen...)
	}
}
