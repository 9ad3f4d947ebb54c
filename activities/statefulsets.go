package activities

import (
	"context"
	"fmt"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/workload"
)

// StatefulSetClient is what the partitioned rollout of a StatefulSet target needs from Kubernetes (implemented
// by providers/workload). Every write sets an absolute value, so an activity run again changes nothing.
type StatefulSetClient interface {
	// StatefulSetState reads the StatefulSet and its pods and says whether they match partition (see
	// workload.StatefulSetState.Ready). It changes nothing.
	StatefulSetState(ctx context.Context, c *v1beta1.Canary, partition int) (workload.StatefulSetState, error)
	// RecordStable records the current template as the stable one and sets the partition to the replica count.
	RecordStable(ctx context.Context, c *v1beta1.Canary) error
	// SetPartition sets spec.updateStrategy.rollingUpdate.partition.
	SetPartition(ctx context.Context, c *v1beta1.Canary, partition int) error
	// RestoreStable puts the stable template back whole and sets the partition to 0.
	RestoreStable(ctx context.Context, c *v1beta1.Canary) error
	// Release removes the stable record and sets the partition to 0 (the Canary's deletion).
	Release(ctx context.Context, c *v1beta1.Canary) error
}

// StatefulSetState is a StatefulSet target as the rollout sees it (the provider's type, carried as is).
type StatefulSetState = workload.StatefulSetState

// StatefulSets holds the activities of a StatefulSet target's partitioned rollout.
type StatefulSets struct {
	Kube StatefulSetClient
	// Capabilities and Namespaces refuse a Canary this worker cannot run, as Workloads.DetectRevision does, in
	// ReadStatefulSet, the first activity of such a rollout.
	Capabilities *v1beta1.Capabilities
	Namespaces   []string
}

// PartitionInput names the StatefulSet canary and a partition: the one to judge the pods against, or to set.
type PartitionInput struct {
	Canary    v1beta1.Canary `json:"canary"`
	Partition int            `json:"partition"`
}

// ReadStatefulSet reads the StatefulSet target, its revisions and its pods against in.Partition. A Canary this
// worker cannot run is refused first, before anything is read or written.
func (s *StatefulSets) ReadStatefulSet(ctx context.Context, in PartitionInput) (StatefulSetState, error) {
	if err := refuseUnrunnable(s.Capabilities, s.Namespaces, &in.Canary); err != nil {
		return StatefulSetState{}, err
	}
	st, err := s.Kube.StatefulSetState(ctx, &in.Canary, in.Partition)
	if err != nil {
		return StatefulSetState{}, classify(err, "read StatefulSet of "+describe(&in.Canary))
	}
	return st, nil
}

// RecordStableStatefulSet records the StatefulSet's template as stable and raises its partition to the replica
// count (the initialisation, and the end of a promotion).
func (s *StatefulSets) RecordStableStatefulSet(ctx context.Context, in WorkloadInput) (ActionResult, error) {
	if err := s.Kube.RecordStable(ctx, &in.Canary); err != nil {
		return ActionResult{}, classify(err, "record the stable template of "+describe(&in.Canary))
	}
	return ActionResult{Summary: "recorded the template of StatefulSet " + in.Canary.Spec.TargetRef.Name + " as stable"}, nil
}

// SetStatefulSetPartition sets the StatefulSet's partition to in.Partition.
func (s *StatefulSets) SetStatefulSetPartition(ctx context.Context, in PartitionInput) (ActionResult, error) {
	if err := s.Kube.SetPartition(ctx, &in.Canary, in.Partition); err != nil {
		return ActionResult{}, classify(err, fmt.Sprintf("set the partition of %s to %d", describe(&in.Canary), in.Partition))
	}
	return ActionResult{Summary: fmt.Sprintf("partition of StatefulSet %s set to %d", in.Canary.Spec.TargetRef.Name, in.Partition)}, nil
}

// RestoreStatefulSet puts the stable template back and the partition to 0, so every pod returns to it.
func (s *StatefulSets) RestoreStatefulSet(ctx context.Context, in WorkloadInput) (ActionResult, error) {
	if err := s.Kube.RestoreStable(ctx, &in.Canary); err != nil {
		return ActionResult{}, classify(err, "restore the stable template of "+describe(&in.Canary))
	}
	return ActionResult{Summary: "restored the stable template of StatefulSet " + in.Canary.Spec.TargetRef.Name + ", partition 0"}, nil
}

// ReleaseStatefulSet hands the StatefulSet back to its own rolling updates when its Canary is deleted with
// spec.revertOnDeletion: no stable record, partition 0.
func (s *StatefulSets) ReleaseStatefulSet(ctx context.Context, in WorkloadInput) (ActionResult, error) {
	if err := s.Kube.Release(ctx, &in.Canary); err != nil {
		return ActionResult{}, classify(err, "release the StatefulSet of "+describe(&in.Canary))
	}
	return ActionResult{Summary: "released StatefulSet " + in.Canary.Spec.TargetRef.Name + ": partition 0, no stable record"}, nil
}
