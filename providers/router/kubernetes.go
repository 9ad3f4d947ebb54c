package router

import (
	"context"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/workload"
)

func init() {
	Register("kubernetes", func(c Clients) Router { return &Kubernetes{kube: c.Kube, workloads: workload.NewForClientset(c.Kube)} }, v1beta1.Traffic{})
}

// Kubernetes routes with Services only: the apex Service selects either the primary's or the canary's pods
// (blue/green). It has no weights, matches, mirroring or affinity.
type Kubernetes struct {
	kube      kubernetes.Interface
	workloads *workload.Client
}

// apexSelectsPrimary reads the apex Service (made by the workload initialisation) and says which pods it selects.
func (k *Kubernetes) apexSelectsPrimary(ctx context.Context, c *v1beta1.Canary) (bool, error) {
	name := apexName(c)
	svc, err := k.kube.CoreV1().Services(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, kubeobj.Permanentf("Service %s/%s (the apex of Canary %s/%s) not found: the workloads must be initialised first",
			c.Namespace, name, c.Namespace, c.Name)
	}
	if err != nil {
		return false, err
	}
	if !kubeobj.IsManaged(svc) {
		return false, kubeobj.NotOurs("Service", c.Namespace, name, "delete it or rename spec.service.name")
	}
	for _, l := range workload.SelectorLabels {
		if v, ok := svc.Spec.Selector[l]; ok {
			return strings.HasSuffix(v, "-primary"), nil
		}
	}
	return false, kubeobj.Permanentf("Service %s/%s selects no pods by %s: re-initialise the canary",
		c.Namespace, name, strings.Join(workload.SelectorLabels, ", "))
}

// Reconcile checks that the apex Service exists and is canaryflow's; the Services themselves are the workload
// initialisation's to write, and their selector is SetRoutes'.
func (k *Kubernetes) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	_, err := k.apexSelectsPrimary(ctx, c)
	return err
}

// SetRoutes points the apex Service at the primary's pods (100/0) or the canary's (0/100).
func (k *Kubernetes) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	if mirrored || (primaryWeight != 100 && canaryWeight != 100) {
		return kubeobj.Permanentf("provider kubernetes can only switch all traffic (100/0 or 0/100), not %d/%d (Canary %s/%s)",
			primaryWeight, canaryWeight, c.Namespace, c.Name)
	}
	return k.workloads.SwitchApex(ctx, c, primaryWeight == 100)
}

// GetRoutes says which pods the apex Service selects.
func (k *Kubernetes) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	primary, err := k.apexSelectsPrimary(ctx, c)
	if err != nil {
		return 0, 0, false, err
	}
	if primary {
		return 100, 0, false, nil
	}
	return 0, 100, false, nil
}

// Finalize leaves the Services to the workload finalisation, which points the apex back at the target's pods.
func (k *Kubernetes) Finalize(context.Context, *v1beta1.Canary) error { return nil }
