package router

import (
	"context"
	"encoding/json"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/capability"
	"github.com/canaryflow/canaryflow/providers/workload"
)

func init() {
	Register("kubernetes", func(c Clients) Router { return &Kubernetes{kube: c.Kube} })
	declare("kubernetes", capability.Set{})
}

// Kubernetes routes with Services only: the apex Service selects either the primary's or the canary's pods
// (blue/green). It has no weights, matches, mirroring or affinity.
type Kubernetes struct {
	kube kubernetes.Interface
}

// apex reads the apex Service (made by the workload initialisation) and the selector label it switches.
func (k *Kubernetes) apex(ctx context.Context, c *v1beta1.Canary) (svc *corev1.Service, key, base string, err error) {
	name, _, _ := c.ServiceNames()
	svc, err = k.kube.CoreV1().Services(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, "", "", workload.Permanentf("Service %s/%s (the apex of Canary %s/%s) not found: the workloads must be initialised first",
			c.Namespace, name, c.Namespace, c.Name)
	}
	if err != nil {
		return nil, "", "", err
	}
	if !workload.IsManaged(svc) {
		return nil, "", "", workload.NotOurs("Service", c.Namespace, name, "delete it or rename spec.service.name")
	}
	for _, l := range workload.SelectorLabels {
		if v, ok := svc.Spec.Selector[l]; ok {
			return svc, l, strings.TrimSuffix(v, "-primary"), nil
		}
	}
	return nil, "", "", workload.Permanentf("Service %s/%s selects no pods by %s: re-initialise the canary",
		c.Namespace, name, strings.Join(workload.SelectorLabels, ", "))
}

// Reconcile checks that the apex Service exists and is canaryflow's; the Services themselves are the workload
// initialisation's to write, and their selector is SetRoutes'.
func (k *Kubernetes) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	_, _, _, err := k.apex(ctx, c)
	return err
}

// SetRoutes points the apex Service at the primary's pods (100/0) or the canary's (0/100).
func (k *Kubernetes) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	if err := checkSplit(c, primaryWeight, canaryWeight, mirrored); err != nil {
		return err
	}
	if mirrored || (primaryWeight != 100 && canaryWeight != 100) {
		return workload.Permanentf("provider kubernetes can only switch all traffic (100/0 or 0/100), not %d/%d%s (Canary %s/%s)",
			primaryWeight, canaryWeight, map[bool]string{true: " mirrored", false: ""}[mirrored], c.Namespace, c.Name)
	}
	svc, key, base, err := k.apex(ctx, c)
	if err != nil {
		return err
	}
	want := base
	if primaryWeight == 100 {
		want = base + "-primary"
	}
	if svc.Spec.Selector[key] == want {
		return nil
	}
	// A merge patch of the selector only: the rest of the Service stays as the workload initialisation applied it.
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"selector": map[string]string{key: want}}})
	_, err = k.kube.CoreV1().Services(c.Namespace).Patch(ctx, svc.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: workload.FieldManager})
	return err
}

// GetRoutes says which pods the apex Service selects.
func (k *Kubernetes) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	svc, key, base, err := k.apex(ctx, c)
	if err != nil {
		return 0, 0, false, err
	}
	if svc.Spec.Selector[key] == base {
		return 0, 100, false, nil
	}
	return 100, 0, false, nil
}

// Finalize leaves the Services to the workload finalisation, which points the apex back at the target's pods.
func (k *Kubernetes) Finalize(context.Context, *v1beta1.Canary) error { return nil }
