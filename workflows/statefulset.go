package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// The partitioned rollout of a StatefulSet target (v1beta1.KindStatefulSet). A second StatefulSet would need
// storage of its own, so there is no primary and no canary copy: the StatefulSet's own controller updates the pods
// whose ordinal is at or above spec.updateStrategy.rollingUpdate.partition, and the rollout lowers the partition
// one analysis step at a time (v1beta1.CanaryAnalysis.Partitions). Its Service selects every pod, so the share of
// traffic on the new revision follows the share of updated pods: the router is left alone, and CanaryWeight
// reports that share. The initialisation records the template as stable and raises the partition to the replica
// count; the promotion lowers it to 0, waits for every pod and records the new template as stable; a rollback
// puts the stable template back with partition 0 and waits until every pod runs it again.
//
// The steps share the Deployment path's analysis (gates, hooks, metric checks, signals); the functions of that
// path branch here at their top for a StatefulSet, a kind no run recorded before versionStatefulSet could have.

var sts *activities.StatefulSets

// readStatefulSet reads the StatefulSet target and judges its pods against partition.
func (r *rollout) readStatefulSet(opts workflow.ActivityOptions, partition int) (activities.StatefulSetState, error) {
	var st activities.StatefulSetState
	err := r.kube(opts, sts.ReadStatefulSet, activities.PartitionInput{Canary: r.c, Partition: partition}, &st)
	return st, err
}

// detectStatefulSet is detect for a StatefulSet: the template's revision against the one recorded as stable
// (the "primary" revision: none before the initialisation).
func (r *rollout) detectStatefulSet() (activities.RevisionResult, error) {
	workflow.GetVersion(r.ctx, versionStatefulSet, workflow.DefaultVersion, 1)
	var st activities.StatefulSetState
	if err := r.exec(initOptions(), sts.ReadStatefulSet, activities.PartitionInput{Canary: r.c}, &st); err != nil {
		return activities.RevisionResult{}, err
	}
	exists := st.StableRevision != ""
	return activities.RevisionResult{
		TargetRevision: st.Revision, PrimaryRevision: st.StableRevision, PrimaryExists: exists,
		Changed: exists && st.Revision != st.StableRevision,
	}, nil
}

// initialiseStatefulSet records the StatefulSet's template as stable and raises its partition to the replica
// count, so that a later template change updates no pod until a rollout lowers the partition.
func (r *rollout) initialiseStatefulSet() (*RolloutResult, error) {
	r.setPhase(PhaseInitializing)
	r.info("Initializing "+r.name()+": recording the template of StatefulSet "+r.c.Spec.TargetRef.Name+" as stable", "first rollout")
	var res activities.ActionResult
	if err := r.exec(initOptions(), sts.RecordStableStatefulSet, r.workloadIn(), &res); err != nil {
		return r.failInit(err)
	}
	r.setPhase(PhaseInitialized)
	r.setCondition(ConditionTrue, "Initialized", "StatefulSet initialization completed.")
	r.decide(activities.EventInitialized, v1beta1.SeverityInfo, true, "Initialization done! "+r.name(), "initialized")
	return r.result("initialized", false), nil
}

// setPartitionStatus records the partition in the status and reports the share of updated pods as the canary's
// weight (the share of the traffic the StatefulSet's Service sends to the new revision).
func (r *rollout) setPartitionStatus(partition int) {
	p := partition
	r.st.Partition = &p
	r.st.CanaryWeight = v1beta1.UpdatedShare(r.st.Replicas, partition)
	r.st.PrimaryWeight = 100 - r.st.CanaryWeight
	r.syncSearchAttributes()
}

// setPartition lowers (or raises) the StatefulSet's partition and records it.
func (r *rollout) setPartition(opts workflow.ActivityOptions, partition int) error {
	var res activities.ActionResult
	if err := r.kube(opts, sts.SetStatefulSetPartition, activities.PartitionInput{Canary: r.c, Partition: partition}, &res); err != nil {
		return err
	}
	r.setPartitionStatus(partition)
	return nil
}

// startStatefulSet is startCanary for a StatefulSet: nothing to scale, the plan of partitions is made from the
// replica count, and the rollout goes on from the partition the StatefulSet has (its replica count on a fresh
// revision; lower when a new revision arrived mid-rollout, whose updated pods the controller moves to it).
func (r *rollout) startStatefulSet() (outcome, error) {
	r.setPhase(PhaseProgressing)
	r.setCondition(ConditionUnknown, "Progressing", "New revision detected, progressing canary analysis.")
	r.decide(activities.EventNewRevision, v1beta1.SeverityInfo, true,
		fmt.Sprintf("New revision detected! Updating StatefulSet %s.%s by partition", r.c.Spec.TargetRef.Name, r.c.Namespace), "revision "+r.st.Revision)
	st, err := r.readStatefulSet(kubeOptions(), 0)
	if err != nil {
		return keepGoing, err
	}
	r.st.Replicas = st.Replicas
	r.st.Partitions = r.a.Partitions(st.Replicas)
	r.setPartitionStatus(min(st.Partition, st.Replicas))
	r.st.NotReadySince = time.Time{}
	if r.c.Spec.SkipAnalysis {
		r.info("Skipping analysis of "+r.name()+": promoting", "skipAnalysis")
		return toPromote{}, nil
	}
	return keepGoing, nil
}

// checkStatefulSetReady is checkCanaryReady for a StatefulSet: every pod at or above the partition runs the new
// revision and every pod is ready.
func (r *rollout) checkStatefulSetReady() (bool, string, error) {
	st, err := r.readStatefulSet(readyOptions(), r.partition())
	if errors.Is(err, errCanceled) {
		return false, "", err
	}
	if err != nil {
		st = activities.StatefulSetState{Reason: "readiness unknown: " + err.Error()}
	}
	if st.Ready {
		r.st.NotReadySince = time.Time{}
		return true, "", nil
	}
	if r.st.NotReadySince.IsZero() {
		r.st.NotReadySince = workflow.Now(r.ctx)
	}
	return false, st.Reason, nil
}

// partition is the partition last set (the replica count before any).
func (r *rollout) partition() int {
	if r.st.Partition == nil {
		return r.st.Replicas
	}
	return *r.st.Partition
}

// advanceStatefulSet is the strategy's part of a step: lower the partition to the next one of the plan, or, when
// only 0 is left, open the promotion gate.
func (r *rollout) advanceStatefulSet() (outcome, error) {
	next, more := -1, false
	for _, p := range r.st.Partitions {
		if p > 0 && p < r.partition() {
			next, more = p, true
			break
		}
	}
	if !more {
		return r.promotionGate()
	}
	open, err := r.gate(GateConfirmTrafficIncrease)
	if err != nil || !open {
		if err == nil {
			r.info(fmt.Sprintf("Halt %s advancement waiting for traffic increase approval", r.name()), "confirm-traffic-increase closed")
		}
		return keepGoing, err
	}
	msg := fmt.Sprintf("Advance %s partition %d (%d of %d pods updated)", r.name(), next, r.st.Replicas-next, r.st.Replicas)
	r.sayFirst(msg)
	if err := r.setPartition(kubeOptions(), next); err != nil {
		return keepGoing, err
	}
	r.decide(activities.EventAdvanced, v1beta1.SeverityInfo, false, msg, "checks passed")
	return keepGoing, nil
}

// waitStatefulSet polls the StatefulSet on a backing-off timer until its pods match partition, the progress
// deadline passes (false, with the reason) or stop says a signal needs handling (false, reason "").
func (r *rollout) waitStatefulSet(partition int, stop func() bool) (bool, string, error) {
	since := workflow.Now(r.ctx)
	deadline := r.c.ProgressDeadline()
	poll := readyPollFirst
	for {
		st, err := r.readStatefulSet(readyOptions(), partition)
		if errors.Is(err, errCanceled) {
			return false, "", err
		}
		if err != nil {
			st.Reason = "readiness unknown: " + err.Error()
		}
		if st.Ready {
			return true, "", nil
		}
		elapsed := workflow.Now(r.ctx).Sub(since)
		if elapsed >= deadline {
			return false, deadlineReason(activities.WorkloadCanary, &r.c, st.Reason), nil
		}
		if err := r.wait(min(poll, deadline-elapsed), false, stop); err != nil {
			return false, "", err
		}
		if stop() {
			return false, "", nil
		}
		poll = min(2*poll, readyPollMax)
	}
}

// promoteStatefulSet lowers the partition to 0, waits until every pod runs the new revision, records it as
// stable (the partition back at the replica count, ready for the next revision) and ends Succeeded.
func (r *rollout) promoteStatefulSet() (*RolloutResult, error) {
	r.st.PendingGate = ""
	r.setPhase(PhasePromoting)
	r.setCondition(ConditionUnknown, "Promoting", "Canary analysis completed, updating every pod of the StatefulSet.")
	aborted := func() bool {
		r.drain()
		return r.abort != nil
	}
	if aborted() {
		return r.rollback(r.abortReason(), activities.EventAborted)
	}
	msg := fmt.Sprintf("Advance %s partition 0 (%d of %d pods updated)", r.name(), r.st.Replicas, r.st.Replicas)
	r.sayFirst(msg)
	if err := r.setPartition(kubeOptions(), 0); err != nil {
		return r.fail(err)
	}
	r.decide(activities.EventAdvanced, v1beta1.SeverityInfo, false, msg, "promotion")
	ready, reason, err := r.waitStatefulSet(0, aborted)
	if err != nil {
		return r.fail(err)
	}
	if aborted() {
		return r.rollback(r.abortReason(), activities.EventAborted)
	}
	if !ready {
		return r.rollback(fmt.Sprintf("Rolling back %s progress deadline exceeded %s", r.name(), reason), activities.EventRolledBack)
	}
	r.setPhase(PhaseFinalising)
	var res activities.ActionResult
	if err := r.kube(kubeOptions(), sts.RecordStableStatefulSet, r.workloadIn(), &res); err != nil {
		return r.fail(err)
	}
	r.setPartitionStatus(r.st.Replicas)
	r.setPhase(PhaseSucceeded)
	r.setCondition(ConditionTrue, "Succeeded", "Canary analysis completed successfully, promotion finished.")
	if _, err := r.runHooks(v1beta1.PostRolloutHook); err != nil {
		if !errors.Is(err, errCanceled) {
			return r.fail(err)
		}
		// As for a Deployment: the release is out, a cancel now only stops the hooks.
		r.ctx, _ = workflow.NewDisconnectedContext(r.ctx)
		r.warn("Post-rollout hooks of "+r.name()+" stopped: the workflow was cancelled after the promotion finished", "cancelled")
	}
	r.decide(activities.EventPromoted, v1beta1.SeverityInfo, true, fmt.Sprintf("Promotion completed! StatefulSet %s.%s runs revision %s on every pod",
		r.c.Spec.TargetRef.Name, r.c.Namespace, r.st.Revision), "promoted")
	return r.result("promoted", false), nil
}

// rollbackStatefulSet puts the stable template back with partition 0, waits until every pod runs it again (within
// the progress deadline; the reason says when some do not yet), raises the partition to the replica count and
// ends Failed. Its writes retry until they succeed (cleanupOptions).
func (r *rollout) rollbackStatefulSet(reason string, ev activities.EventType) (*RolloutResult, error) {
	r.st.PendingGate = ""
	r.log.Error(reason, r.keyvals("rollback")...)
	r.say(reason)
	r.st.Message = reason
	r.warn(fmt.Sprintf("Canary failed! Restoring StatefulSet %s.%s to revision %s", r.c.Spec.TargetRef.Name, r.c.Namespace, r.st.PrimaryRevision), reason)
	var res activities.ActionResult
	if err := r.exec(cleanupOptions(), sts.RestoreStatefulSet, r.workloadIn(), &res); err != nil {
		return r.result(reason, false), fmt.Errorf("roll back %s: %w", r.name(), err)
	}
	// Every pod is headed back to the stable revision: report it as all of the traffic.
	zero := 0
	r.st.Partition, r.st.PrimaryWeight, r.st.CanaryWeight = &zero, 100, 0
	r.syncSearchAttributes()
	ready, why, err := r.waitStatefulSet(0, func() bool { return false })
	if err != nil {
		return r.result(reason, false), fmt.Errorf("roll back %s: %w", r.name(), err)
	}
	if !ready {
		// The stable template is back and the controller keeps going; raising the partition now would stop it.
		reason = fmt.Sprintf("%s; not every pod runs the stable revision yet: %s", reason, why)
	} else {
		if err := r.exec(cleanupOptions(), sts.RecordStableStatefulSet, r.workloadIn(), &res); err != nil {
			return r.result(reason, false), fmt.Errorf("roll back %s: %w", r.name(), err)
		}
		r.setPartitionStatus(r.st.Replicas)
	}
	r.setPhase(PhaseFailed)
	r.setCondition(ConditionFalse, "Failed", "Canary analysis failed, StatefulSet restored to its stable template.")
	if _, err := r.runHooks(v1beta1.PostRolloutHook); err != nil && !errors.Is(err, errCanceled) {
		return r.result(reason, false), err
	}
	r.st.Message = reason
	r.emit(r.event(ev, v1beta1.SeverityError, reason, r.st.LastChecks), true)
	return r.result(reason, false), nil
}

// revertStatefulSet ends a run whose StatefulSet template went back to the stable one: the controller returns the
// updated pods to it; once every pod runs it, the partition goes back to the replica count.
func (r *rollout) revertStatefulSet(rev activities.RevisionResult) (*RolloutResult, error) {
	msg := fmt.Sprintf("No new run for %s: the StatefulSet is back at its stable revision %s", r.name(), rev.TargetRevision)
	r.info(msg, "revision reverted")
	if err := r.setPartition(cleanupOptions(), 0); err != nil {
		return r.fail(err)
	}
	if ready, why, err := r.waitStatefulSet(0, func() bool { return false }); err != nil || !ready {
		if err == nil {
			err = errors.New(why)
		}
		return r.fail(err)
	}
	var res activities.ActionResult
	if err := r.exec(cleanupOptions(), sts.RecordStableStatefulSet, r.workloadIn(), &res); err != nil {
		return r.fail(err)
	}
	r.setPartitionStatus(r.st.Replicas)
	r.st.Revision = rev.TargetRevision
	r.st.FailedChecks, r.st.Iterations, r.st.PendingGate = 0, 0, ""
	r.setPhase(PhaseInitialized)
	r.setCondition(ConditionTrue, "Initialized", msg)
	return r.result("no new run: target reverted to the stable revision", true), nil
}
