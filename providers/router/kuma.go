package router

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

func init() {
	Register("kuma", func(c Clients) Router {
		return &Kuma{routes: &crd{kind: "TrafficRoute", resource: "trafficroutes", dyn: c.Dynamic, disc: c.Discovery,
			candidates: []schema.GroupVersion{{Group: "kuma.io", Version: "v1alpha1"}}}}
	}, v1beta1.Traffic{Weights: true})
}

// kumaMeshAnnotation on the Canary names the Kuma mesh of its TrafficRoute, as in Flagger (default "default").
const kumaMeshAnnotation = "kuma.io/mesh"

// Kuma routes as Flagger does with a Kuma TrafficRoute (kuma.io/v1alpha1, cluster-scoped): from every service
// to the apex Service's Kuma service "<apex>_<namespace>_svc_<port>", split between the primary's and the
// canary's Kuma services by weight. The mesh is the Canary's kuma.io/mesh annotation, or "default". Kuma's
// TrafficRoute has no header matching, mirroring or sticky sessions: those are refused at validation.
//
// Unlike Flagger, the TrafficRoute is named "<apex>.<namespace>", not "<apex>": a cluster-scoped name must say
// the namespace, or two Canaries of the same name in different namespaces would share (and overwrite) one
// TrafficRoute. Neither a Service nor a namespace name can hold a dot, so the name is unambiguous, and it is
// the form Kuma itself gives namespaced resources. A team moving from Flagger deletes Flagger's "<apex>"
// TrafficRoute once canaryflow's exists. Finalize deletes the TrafficRoute, which Flagger leaves to the garbage
// collector; Kuma then routes the apex Service to the pods it selects.
type Kuma struct {
	routes *crd
}

// kumaRouteName is the TrafficRoute of a Canary, unique in the cluster.
func kumaRouteName(c *v1beta1.Canary) string {
	return apexName(c) + "." + c.Namespace
}

// kumaService is Kuma's name of a Kubernetes Service port.
func kumaService(c *v1beta1.Canary, svc string) string {
	return fmt.Sprintf("%s_%s_svc_%d", svc, c.Namespace, c.Spec.Service.Port)
}

func kumaSpec(c *v1beta1.Canary, primaryWeight, canaryWeight int) map[string]any {
	apex, primary, canary := c.ServiceNames()
	dest := func(svc string, w int) any {
		return map[string]any{"weight": int64(w), "destination": map[string]any{"kuma.io/service": kumaService(c, svc)}}
	}
	return map[string]any{
		"sources":      []any{map[string]any{"match": map[string]any{"kuma.io/service": "*"}}},
		"destinations": []any{map[string]any{"match": map[string]any{"kuma.io/service": kumaService(c, apex)}}},
		"conf":         map[string]any{"split": []any{dest(primary, primaryWeight), dest(canary, canaryWeight)}},
	}
}

func kumaRoutes(c *v1beta1.Canary, u *unstructured.Unstructured) (primaryWeight, canaryWeight int) {
	split, _, _ := unstructured.NestedSlice(u.Object, "spec", "conf", "split")
	for _, s := range split {
		m, _ := s.(map[string]any)
		d, _ := m["destination"].(map[string]any)
		svc, _ := d["kuma.io/service"].(string)
		switch svc {
		case kumaService(c, apexName(c)+"-primary"):
			primaryWeight = num(m["weight"])
		case kumaService(c, apexName(c)+"-canary"):
			canaryWeight = num(m["weight"])
		}
	}
	return primaryWeight, canaryWeight
}

// kumaObject is the TrafficRoute with spec.service.apex metadata under canaryflow's marker. Flagger adds an
// annotation "<port>.service.kuma.io: http" when there is none; Kuma reads port protocols from Services only, so
// it is left out.
func kumaObject(c *v1beta1.Canary, primaryWeight, canaryWeight int) *unstructured.Unstructured {
	u := newObject(c, kumaSpec(c, primaryWeight, canaryWeight))
	u.SetName(kumaRouteName(c))
	u.SetNamespace("")
	mesh := strings.TrimSpace(c.Annotations[kumaMeshAnnotation])
	if mesh == "" {
		mesh = "default"
	}
	u.Object["mesh"] = mesh
	withFluxAnnotations(u)
	return u
}

// withFluxAnnotations adds the annotations Flagger puts on the TrafficRoute, RouteTable and VirtualNodes it writes
// from spec.service.apex metadata (fluxAnnotations), so that Flux neither reverts nor prunes them when that
// metadata is Flux's.
func withFluxAnnotations(u *unstructured.Unstructured) {
	a := u.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range fluxAnnotations {
		a[k] = v
	}
	u.SetAnnotations(a)
}

// get reads the TrafficRoute; one made by canaryflow for another Canary is refused too (it cannot be, given the
// name, unless someone copied it).
func (k *Kuma) get(ctx context.Context, c *v1beta1.Canary) (*unstructured.Unstructured, error) {
	ri, _, err := k.routes.client("")
	if err != nil {
		return nil, err
	}
	name := kumaRouteName(c)
	u, err := ri.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, kubeobj.APIError("get", "TrafficRoute", "", name, err)
	}
	if !kubeobj.IsManaged(u) {
		return nil, kubeobj.Permanentf("TrafficRoute %s (cluster-scoped) exists and is not managed by canaryflow (no label %s=%s): delete it or rename spec.service.name",
			name, kubeobj.ManagedByLabel, kubeobj.ManagedByValue)
	}
	if !kubeobj.MadeFor(u, c) {
		return nil, kubeobj.Permanentf("TrafficRoute %s was made by canaryflow for Canary %s, not %s/%s: delete it",
			u.GetName(), u.GetAnnotations()[kubeobj.CanaryAnnotation], c.Namespace, c.Name)
	}
	return u, nil
}

// Reconcile makes the TrafficRoute exist for the spec's port and mesh, keeping its current split; a new one
// starts at 100/0.
func (k *Kuma) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	live, err := k.get(ctx, c)
	if err != nil {
		return err
	}
	pw, cw := 100, 0
	if live != nil {
		if p, q := kumaRoutes(c, live); p+q == 100 {
			pw, cw = p, q
		}
	}
	return k.routes.apply(ctx, kumaObject(c, pw, cw), true)
}

// SetRoutes writes the split: a read and an apply.
func (k *Kuma) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, _ bool) error {
	live, err := k.get(ctx, c)
	if err != nil {
		return err
	}
	if live == nil {
		return k.notReconciled(c)
	}
	return k.routes.apply(ctx, kumaObject(c, primaryWeight, canaryWeight), false)
}

// GetRoutes reads the split back.
func (k *Kuma) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	live, err := k.get(ctx, c)
	if err != nil {
		return 0, 0, false, err
	}
	if live == nil {
		return 0, 0, false, k.notReconciled(c)
	}
	pw, cw := kumaRoutes(c, live)
	return pw, cw, false, nil
}

// Finalize deletes the TrafficRoute.
func (k *Kuma) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	if _, err := k.get(ctx, c); err != nil {
		return err
	}
	return k.routes.remove(ctx, "", kumaRouteName(c))
}

func (k *Kuma) notReconciled(c *v1beta1.Canary) error {
	return kubeobj.Permanentf("TrafficRoute %s not found: the router of Canary %s/%s must be reconciled first",
		kumaRouteName(c), c.Namespace, c.Name)
}
