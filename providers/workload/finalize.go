package workload

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// Finalize undoes Initialize for a deleted Canary (spec.revertOnDeletion): the target gets the primary's replicas
// back (a DaemonSet is released onto its nodes, a KEDA ScaledObject is no longer paused), the apex Service selects
// the target's pods again, and the primary workload, its autoscaler, its config copies and the primary and canary
// Services are deleted. Only objects that
// carry canaryflow's marker are touched; nothing left is success.
func (k *Client) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	ns := c.Namespace
	t, err := k.getTarget(ctx, c)
	if err != nil {
		return err
	}
	p, err := k.getPrimary(ctx, c)
	if err != nil {
		return err
	}
	// Restore the target first, so that traffic has pods to go to before anything is removed.
	if t.ds != nil {
		if parked(t) {
			if err := k.setDaemonSetParked(ctx, c, false); err != nil {
				return err
			}
		}
	} else {
		want := int32(0)
		if p != nil {
			want = p.replicas()
		}
		if want <= 0 {
			if want, err = k.canaryReplicas(ctx, c, t); err != nil {
				return err
			}
		}
		if t.replicas() != want {
			if err := k.setTargetReplicas(ctx, c, want); err != nil {
				return err
			}
		}
		if usesScaledObject(c) {
			if err := k.setTargetScaledObjectPaused(ctx, c, false); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}

	apex, primarySvc, canarySvc := c.ServiceNames()
	svc, err := k.kube.CoreV1().Services(ns).Get(ctx, apex, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return kubeobj.APIError("get", "Service", ns, apex, err)
	case kubeobj.IsManaged(svc) && svc.Spec.Selector[t.key] != t.value:
		if err := k.applyService(ctx, services(c, t, t.value)[0]); err != nil {
			return err
		}
	}

	del := func(kind, name string, get func() (metav1.Object, error), remove func() error) error {
		m, err := get()
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return kubeobj.APIError("get", kind, ns, name, err)
		}
		if !kubeobj.IsManaged(m) {
			return nil
		}
		if err := remove(); err != nil && !apierrors.IsNotFound(err) {
			return kubeobj.APIError("delete", kind, ns, name, err)
		}
		return nil
	}
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	for _, name := range []string{primarySvc, canarySvc} {
		if err := del("Service", name, func() (metav1.Object, error) { return k.kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{}) },
			func() error { return k.kube.CoreV1().Services(ns).Delete(ctx, name, opts) }); err != nil {
			return err
		}
	}
	if ref := c.Spec.AutoscalerRef; ref != nil && ref.Kind == v1beta1.ScaledObjectKind {
		name := primaryValue(ref.Name)
		sos, err := k.scaledObjects(ns)
		if err != nil {
			return err
		}
		if err := del("ScaledObject", name, func() (metav1.Object, error) { return sos.Get(ctx, name, metav1.GetOptions{}) },
			func() error { return sos.Delete(ctx, name, opts) }); err != nil {
			return err
		}
	} else if ref != nil {
		name := primaryValue(ref.Name)
		hpas := k.kube.AutoscalingV2().HorizontalPodAutoscalers(ns)
		if err := del("HorizontalPodAutoscaler", name, func() (metav1.Object, error) { return hpas.Get(ctx, name, metav1.GetOptions{}) },
			func() error { return hpas.Delete(ctx, name, opts) }); err != nil {
			return err
		}
	}
	if p != nil {
		name := primaryName(c)
		var err error
		if p.dep != nil {
			err = k.kube.AppsV1().Deployments(ns).Delete(ctx, name, opts)
		} else {
			err = k.kube.AppsV1().DaemonSets(ns).Delete(ctx, name, opts)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return kubeobj.APIError("delete", c.Spec.TargetRef.Kind, ns, name, err)
		}
	}
	// Config copies: every ConfigMap and Secret canaryflow made for this Canary.
	sel := metav1.ListOptions{LabelSelector: kubeobj.ManagedByLabel + "=" + kubeobj.ManagedByValue}
	owner := ns + "/" + c.Name
	cms, err := k.kube.CoreV1().ConfigMaps(ns).List(ctx, sel)
	if err != nil {
		return kubeobj.APIError("list", "ConfigMaps", ns, "", err)
	}
	for _, cm := range cms.Items {
		if cm.Annotations[kubeobj.CanaryAnnotation] == owner {
			if err := k.kube.CoreV1().ConfigMaps(ns).Delete(ctx, cm.Name, opts); err != nil && !apierrors.IsNotFound(err) {
				return kubeobj.APIError("delete", kindConfigMap, ns, cm.Name, err)
			}
		}
	}
	secrets, err := k.kube.CoreV1().Secrets(ns).List(ctx, sel)
	if err != nil {
		return kubeobj.APIError("list", "Secrets", ns, "", err)
	}
	for _, s := range secrets.Items {
		if s.Annotations[kubeobj.CanaryAnnotation] == owner {
			if err := k.kube.CoreV1().Secrets(ns).Delete(ctx, s.Name, opts); err != nil && !apierrors.IsNotFound(err) {
				return kubeobj.APIError("delete", kindSecret, ns, s.Name, err)
			}
		}
	}
	return nil
}
