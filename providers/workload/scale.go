package workload

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// The target is scaled with partial applies that own only spec.replicas (a Deployment) or only the scale-to-zero
// node selector key (a DaemonSet): canaryflow never takes the rest of the user's workload.

func (k *Client) setTargetReplicas(ctx context.Context, c *v1beta1.Canary, replicas int32) error {
	obj := map[string]any{
		"apiVersion": "apps/v1", "kind": KindDeployment,
		"metadata": map[string]any{"name": c.Spec.TargetRef.Name, "namespace": c.Namespace},
		"spec":     map[string]any{"replicas": replicas},
	}
	return k.applyWorkload(ctx, KindDeployment, c.Namespace, c.Spec.TargetRef.Name, obj)
}

// setDaemonSetParked parks a DaemonSet target on no node (parked) or releases it.
func (k *Client) setDaemonSetParked(ctx context.Context, c *v1beta1.Canary, parked bool) error {
	spec := map[string]any{}
	if parked {
		spec["nodeSelector"] = map[string]string{ScaleToZeroNodeSelector: "true"}
	}
	obj := map[string]any{
		"apiVersion": "apps/v1", "kind": KindDaemonSet,
		"metadata": map[string]any{"name": c.Spec.TargetRef.Name, "namespace": c.Namespace},
		"spec":     map[string]any{"template": map[string]any{"spec": spec}},
	}
	return k.applyWorkload(ctx, KindDaemonSet, c.Namespace, c.Spec.TargetRef.Name, obj)
}

func parked(t *target) bool {
	_, ok := t.template().Spec.NodeSelector[ScaleToZeroNodeSelector]
	return ok
}

// ScaleToZero scales the target (the canary) to zero. A HorizontalPodAutoscaler of the target is left as it is:
// its controller does not scale a workload whose replicas are 0 (it reports ScalingDisabled), which is also how
// Flagger keeps it down. A KEDA ScaledObject would scale it up again, so it is paused first (as Flagger does).
func (k *Client) ScaleToZero(ctx context.Context, c *v1beta1.Canary) error {
	t, err := k.getTarget(ctx, c)
	if err != nil {
		return err
	}
	if t.ds != nil {
		if parked(t) {
			return nil
		}
		return k.setDaemonSetParked(ctx, c, true)
	}
	if usesScaledObject(c) {
		if err := k.setTargetScaledObjectPaused(ctx, c, true); err != nil {
			return err
		}
	}
	if t.dep.Spec.Replicas != nil && *t.dep.Spec.Replicas == 0 {
		return nil
	}
	return k.setTargetReplicas(ctx, c, 0)
}

// canaryReplicas is Flagger's rule for scaling the canary up: the target's own replicas when it declares some,
// else (without an autoscaler) the primary's, else the autoscaler's minReplicas, and at least 1.
func (k *Client) canaryReplicas(ctx context.Context, c *v1beta1.Canary, t *target) (int32, error) {
	if t.dep.Spec.Replicas != nil && *t.dep.Spec.Replicas > 0 {
		return *t.dep.Spec.Replicas, nil
	}
	replicas := int32(1)
	if usesScaledObject(c) {
		so, err := k.getTargetScaledObject(ctx, c)
		if err != nil {
			return 0, err
		}
		return max(replicas, scaledObjectMinReplicas(so)), nil
	}
	if ref := c.Spec.AutoscalerRef; ref != nil {
		hpa, err := k.kube.AutoscalingV2().HorizontalPodAutoscalers(c.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, kubeobj.APIError("get", "HorizontalPodAutoscaler", c.Namespace, ref.Name, err)
		}
		if err == nil && hpa.Spec.MinReplicas != nil && *hpa.Spec.MinReplicas > 1 {
			replicas = *hpa.Spec.MinReplicas
		}
		return replicas, nil
	}
	p, err := k.getPrimary(ctx, c)
	if err != nil {
		return 0, err
	}
	if p != nil && p.replicas() > 0 {
		replicas = p.replicas()
	}
	return replicas, nil
}

// ScaleFromZero scales the target up to serve as the canary (see canaryReplicas), after lifting the pause of its
// KEDA ScaledObject. Already up is success.
func (k *Client) ScaleFromZero(ctx context.Context, c *v1beta1.Canary) error {
	t, err := k.getTarget(ctx, c)
	if err != nil {
		return err
	}
	if t.ds != nil {
		if !parked(t) {
			return nil
		}
		return k.setDaemonSetParked(ctx, c, false)
	}
	if usesScaledObject(c) {
		if err := k.setTargetScaledObjectPaused(ctx, c, false); err != nil {
			return err
		}
	}
	if t.dep.Spec.Replicas != nil && *t.dep.Spec.Replicas > 0 {
		return nil
	}
	n, err := k.canaryReplicas(ctx, c, t)
	if err != nil {
		return err
	}
	return k.setTargetReplicas(ctx, c, n)
}

// IsReady reports whether the canary (the target) or the primary has finished rolling out, with Flagger's
// messages; see activities.WorkloadClient.
func (k *Client) IsReady(ctx context.Context, c *v1beta1.Canary, primary bool) (bool, string, error) {
	name, threshold := c.Spec.TargetRef.Name, readyThreshold(c, primary)
	if primary {
		name = primaryName(c)
	}
	w, found, err := k.getWorkload(ctx, c.Spec.TargetRef.Kind, c.Namespace, name)
	if err != nil {
		return false, "", err
	}
	if !found {
		return false, "", kubeobj.Permanentf("%s %s/%s not found", c.Spec.TargetRef.Kind, c.Namespace, name)
	}
	if w.dep != nil {
		ok, reason := deploymentReady(w.dep, threshold)
		return ok, reason, nil
	}
	ok, reason := daemonSetReady(w.ds, threshold)
	return ok, reason, nil
}

// need is the number of replicas that must be ready out of desired at threshold percent (rounded up).
func need(desired int32, threshold int) int32 {
	return int32((int64(desired)*int64(threshold) + 99) / 100)
}

func deploymentReady(d *appsv1.Deployment, threshold int) (bool, string) {
	st := d.Status
	if d.Generation > st.ObservedGeneration {
		return false, "waiting for rollout to finish: observed deployment generation less than desired generation"
	}
	for _, cond := range st.Conditions {
		if cond.Type == appsv1.DeploymentProgressing && cond.Status == corev1.ConditionFalse && cond.Reason == "ProgressDeadlineExceeded" {
			return false, fmt.Sprintf("deployment %q exceeded its progress deadline", d.Name)
		}
	}
	desired := int32(1)
	if d.Spec.Replicas != nil {
		desired = *d.Spec.Replicas
	}
	n := need(desired, threshold)
	switch {
	case st.UpdatedReplicas < n:
		return false, fmt.Sprintf("waiting for rollout to finish: %d out of %d new replicas have been updated", st.UpdatedReplicas, desired)
	case threshold >= 100 && st.Replicas > st.UpdatedReplicas:
		return false, fmt.Sprintf("waiting for rollout to finish: %d old replicas are pending termination", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < n:
		return false, fmt.Sprintf("waiting for rollout to finish: %d of %d updated replicas are available", st.AvailableReplicas, st.UpdatedReplicas)
	}
	return true, ""
}

func daemonSetReady(d *appsv1.DaemonSet, threshold int) (bool, string) {
	st := d.Status
	if d.Generation > st.ObservedGeneration {
		return false, "waiting for rollout to finish: observed daemonset generation less than desired generation"
	}
	n := need(st.DesiredNumberScheduled, threshold)
	switch {
	case st.UpdatedNumberScheduled < n:
		return false, fmt.Sprintf("waiting for rollout to finish: %d out of %d new pods have been updated", st.UpdatedNumberScheduled, st.DesiredNumberScheduled)
	case st.NumberAvailable < n:
		return false, fmt.Sprintf("waiting for rollout to finish: %d of %d updated pods are available", st.NumberAvailable, st.UpdatedNumberScheduled)
	}
	return true, ""
}
