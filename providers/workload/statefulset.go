package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// A StatefulSet target is rolled out in place, by its own controller: canaryflow only lowers
// spec.updateStrategy.rollingUpdate.partition (pods with an ordinal at or above it get the new template) and, on a
// rollback, puts the template recorded as stable back. Nothing is copied: a second StatefulSet would need storage
// of its own. Every write is a patch of an absolute value, so running it again changes nothing.
const (
	// StableTemplateAnnotation on a StatefulSet target holds the pod template (JSON) of its last promoted
	// revision, what a rollback restores.
	StableTemplateAnnotation = "canaryflow.io/stable-template"
	// StableRevisionAnnotation holds the revision (checksum) of that template.
	StableRevisionAnnotation = "canaryflow.io/stable-revision"
	// PodRevisionLabel is the StatefulSet controller's label naming the ControllerRevision a pod runs.
	PodRevisionLabel = "controller-revision-hash"
)

// StatefulSetState is a StatefulSet target as a partitioned rollout sees it.
type StatefulSetState struct {
	Replicas  int `json:"replicas"`
	Partition int `json:"partition"`
	// Revision is the checksum of the current pod template, StableRevision the one recorded as stable ("" before
	// the first rollout recorded one).
	Revision       string `json:"revision"`
	StableRevision string `json:"stableRevision,omitempty"`
	// CurrentRevision and UpdateRevision are the controller's (status): the ControllerRevisions of the pods below
	// the partition and of the template.
	CurrentRevision string `json:"currentRevision,omitempty"`
	UpdateRevision  string `json:"updateRevision,omitempty"`
	// UpdatedReplicas and ReadyReplicas are the controller's counts (status) of the pods on UpdateRevision and of
	// the Ready ones.
	UpdatedReplicas int `json:"updatedReplicas"`
	ReadyReplicas   int `json:"readyReplicas"`
	// Ready says that the pods match the partition asked about, as the StatefulSet controller counts them: the
	// status is current, there are Replicas pods, every one is Ready, and Replicas-partition of them run
	// UpdateRevision (the controller updates the highest ordinals first, so those are the ones at or above the
	// partition); at partition 0 the controller also calls UpdateRevision current. Reason says what is missing
	// when not. The status is all it reads: the worker's role has no right to read pods.
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"`
}

func (k *Client) getStatefulSet(ctx context.Context, c *v1beta1.Canary) (*appsv1.StatefulSet, error) {
	name := c.Spec.TargetRef.Name
	s, err := k.kube.AppsV1().StatefulSets(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, kubeobj.APIError("get", v1beta1.KindStatefulSet, c.Namespace, name, err)
	}
	if t := s.Spec.UpdateStrategy.Type; t != "" && t != appsv1.RollingUpdateStatefulSetStrategyType {
		return nil, kubeobj.Permanentf("StatefulSet %s/%s has spec.updateStrategy.type %s: a partitioned rollout needs RollingUpdate",
			c.Namespace, name, t)
	}
	return s, nil
}

func stsReplicas(s *appsv1.StatefulSet) int {
	if s.Spec.Replicas == nil {
		return 1
	}
	return int(*s.Spec.Replicas)
}

func stsPartition(s *appsv1.StatefulSet) int {
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return int(*ru.Partition)
	}
	return 0
}

// StatefulSetState reads the StatefulSet target and judges its pods, by the controller's status, against partition.
func (k *Client) StatefulSetState(ctx context.Context, c *v1beta1.Canary, partition int) (StatefulSetState, error) {
	s, err := k.getStatefulSet(ctx, c)
	if err != nil {
		return StatefulSetState{}, err
	}
	st := StatefulSetState{
		Replicas: stsReplicas(s), Partition: stsPartition(s), Revision: revision(&s.Spec.Template, nil),
		StableRevision: s.Annotations[StableRevisionAnnotation], CurrentRevision: s.Status.CurrentRevision,
		UpdateRevision: s.Status.UpdateRevision,
	}
	st.UpdatedReplicas, st.ReadyReplicas = int(s.Status.UpdatedReplicas), int(s.Status.ReadyReplicas)
	want := max(st.Replicas-partition, 0)
	switch {
	case s.Status.ObservedGeneration < s.Generation:
		st.Reason = "waiting for the StatefulSet controller to observe generation " + strconv.FormatInt(s.Generation, 10)
	case int(s.Status.Replicas) != st.Replicas:
		st.Reason = fmt.Sprintf("%d of %d pods exist", s.Status.Replicas, st.Replicas)
	case st.UpdatedReplicas < want:
		st.Reason = fmt.Sprintf("%d of %d pods on revision %s", st.UpdatedReplicas, want, st.UpdateRevision)
	case st.ReadyReplicas < st.Replicas:
		st.Reason = fmt.Sprintf("%d of %d pods ready", st.ReadyReplicas, st.Replicas)
	case partition == 0 && st.CurrentRevision != st.UpdateRevision:
		st.Reason = fmt.Sprintf("waiting for the controller to make %s current (still %s)", st.UpdateRevision, st.CurrentRevision)
	default:
		st.Ready = true
	}
	return st, nil
}

// patchStatefulSet applies a strategic merge patch to the StatefulSet target.
func (k *Client) patchStatefulSet(ctx context.Context, c *v1beta1.Canary, patch map[string]any) error {
	data, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encode patch of StatefulSet %s/%s: %w", c.Namespace, c.Spec.TargetRef.Name, err)
	}
	_, err = k.kube.AppsV1().StatefulSets(c.Namespace).Patch(ctx, c.Spec.TargetRef.Name, types.StrategicMergePatchType, data,
		metav1.PatchOptions{FieldManager: kubeobj.FieldManager})
	return kubeobj.APIError("patch", v1beta1.KindStatefulSet, c.Namespace, c.Spec.TargetRef.Name, err)
}

func partitionPatch(partition int) map[string]any {
	return map[string]any{"rollingUpdate": map[string]any{"partition": partition}}
}

// RecordStable records the StatefulSet's current pod template as the stable one (what a rollback restores) and
// raises the partition to the replica count, so that the next template change updates no pod until a rollout
// lowers it. It is the initialisation, and the end of a promotion once every pod runs the new template.
func (k *Client) RecordStable(ctx context.Context, c *v1beta1.Canary) error {
	s, err := k.getStatefulSet(ctx, c)
	if err != nil {
		return err
	}
	tmpl := s.Spec.Template.DeepCopy()
	tmpl.CreationTimestamp = metav1.Time{}
	data, err := json.Marshal(tmpl)
	if err != nil {
		return fmt.Errorf("encode the template of StatefulSet %s/%s: %w", c.Namespace, s.Name, err)
	}
	return k.patchStatefulSet(ctx, c, map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{
			StableTemplateAnnotation: string(data), StableRevisionAnnotation: revision(&s.Spec.Template, nil),
		}},
		"spec": map[string]any{"updateStrategy": partitionPatch(stsReplicas(s))},
	})
}

// SetPartition sets the StatefulSet's partition.
func (k *Client) SetPartition(ctx context.Context, c *v1beta1.Canary, partition int) error {
	return k.patchStatefulSet(ctx, c, map[string]any{"spec": map[string]any{"updateStrategy": partitionPatch(partition)}})
}

// Release undoes RecordStable when the Canary is deleted (spec.revertOnDeletion): the stable record goes and the
// partition goes to 0, so that template changes roll out on their own again. No pod changes when no rollout is
// open (every pod runs the template).
func (k *Client) Release(ctx context.Context, c *v1beta1.Canary) error {
	if _, err := k.getStatefulSet(ctx, c); err != nil {
		return err
	}
	return k.patchStatefulSet(ctx, c, map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{StableTemplateAnnotation: nil, StableRevisionAnnotation: nil}},
		"spec":     map[string]any{"updateStrategy": partitionPatch(0)},
	})
}

// RestoreStable puts the template recorded as stable back, whole, and sets the partition to 0, so that the
// controller returns every pod to the stable revision (pods below the old partition never left it).
func (k *Client) RestoreStable(ctx context.Context, c *v1beta1.Canary) error {
	s, err := k.getStatefulSet(ctx, c)
	if err != nil {
		return err
	}
	raw := s.Annotations[StableTemplateAnnotation]
	if raw == "" {
		return kubeobj.Permanentf("StatefulSet %s/%s has no %s annotation: nothing recorded to roll back to; restore its template by hand",
			c.Namespace, s.Name, StableTemplateAnnotation)
	}
	var tmpl corev1.PodTemplateSpec
	if err := json.Unmarshal([]byte(raw), &tmpl); err != nil {
		return kubeobj.Permanentf("StatefulSet %s/%s: annotation %s is not a pod template: %v", c.Namespace, s.Name, StableTemplateAnnotation, err)
	}
	// A JSON patch replaces the template as a whole: a merge would keep what the rolled-back template added.
	ops := []map[string]any{
		{"op": "test", "path": "/metadata/uid", "value": s.UID},
		{"op": "replace", "path": "/spec/template", "value": tmpl},
		{"op": "add", "path": "/spec/updateStrategy/rollingUpdate", "value": map[string]any{"partition": 0}},
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.MaxUnavailable != nil {
		ops[2]["value"] = map[string]any{"partition": 0, "maxUnavailable": ru.MaxUnavailable}
	}
	data, err := json.Marshal(ops)
	if err != nil {
		return fmt.Errorf("encode patch of StatefulSet %s/%s: %w", c.Namespace, s.Name, err)
	}
	_, err = k.kube.AppsV1().StatefulSets(c.Namespace).Patch(ctx, s.Name, types.JSONPatchType, data,
		metav1.PatchOptions{FieldManager: kubeobj.FieldManager})
	return kubeobj.APIError("patch", v1beta1.KindStatefulSet, c.Namespace, s.Name, err)
}
