package router

import (
	"context"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// The SMI TrafficSplit versions Flagger writes.
const (
	smiV1alpha1 = v1beta1.SMIV1alpha1
	smiV1alpha2 = v1beta1.SMIV1alpha2
	smiV1alpha3 = v1beta1.SMIV1alpha3
)

func init() {
	// One router for the three names: the version each selects is v1beta1.SMIVersion's, Flagger's factory's
	// (linkerd v1alpha1, the version linkerd-smi stores; osm v1alpha2, the only one OSM serves; smi the one named).
	for _, provider := range []string{"linkerd", "osm", "smi"} {
		Register(provider, func(c Clients) Router {
			s := &SMI{splits: map[string]*crd{}}
			for _, v := range []string{smiV1alpha1, smiV1alpha2, smiV1alpha3} {
				s.splits[v] = &crd{kind: "TrafficSplit", resource: "trafficsplits", dyn: c.Dynamic, disc: c.Discovery,
					candidates: []schema.GroupVersion{{Group: "split.smi-spec.io", Version: v}}}
			}
			return s
		}, v1beta1.Traffic{Weights: true, Honours: []string{"spec.service.hosts"}})
	}
}

// SMI routes as Flagger's SMI routers do, for Linkerd (through linkerd-smi), Open Service Mesh and any other SMI
// mesh: a TrafficSplit named after the apex Service (split.smi-spec.io) whose root service is the apex Service
// (or spec.service.hosts[0], as Flagger reads it) and whose backends are the canary and the primary Services,
// weighted. v1alpha1 weights are Kubernetes quantities, written as strings ("90") like Flagger's; later versions
// take numbers. SMI has no header matching in a TrafficSplit, no mirroring and no sticky sessions, so A/B testing,
// mirroring and session affinity are refused at validation.
//
// Unlike Flagger, Finalize deletes the TrafficSplit, so the mesh routes the apex Service straight to the pods it
// selects (the target's, once the workload is finalised), and a bare "smi" or an unknown version is an error
// instead of a silent fallback to Istio.
type SMI struct {
	splits map[string]*crd // TrafficSplits by API version
}

// split is the TrafficSplit client of the version c's provider selects.
func (s *SMI) split(c *v1beta1.Canary) (*crd, error) {
	v, err := v1beta1.SMIVersion(c.Spec.Provider)
	if err != nil {
		return nil, kubeobj.Permanentf("Canary %s/%s: spec.provider: %w", c.Namespace, c.Name, err)
	}
	return s.splits[v], nil
}

// smiHost is the TrafficSplit's root service, as Flagger picks it.
func smiHost(c *v1beta1.Canary) string {
	if len(c.Spec.Service.Hosts) > 0 {
		return c.Spec.Service.Hosts[0]
	}
	return apexName(c)
}

// smiSpec is the TrafficSplit spec for a split, the canary first as Flagger writes it.
func smiSpec(c *v1beta1.Canary, version string, primaryWeight, canaryWeight int) map[string]any {
	_, primary, canary := c.ServiceNames()
	weight := func(w int) any {
		if version == smiV1alpha1 {
			return resource.NewQuantity(int64(w), resource.DecimalExponent).String()
		}
		return int64(w)
	}
	return map[string]any{
		"service": smiHost(c),
		"backends": []any{
			map[string]any{"service": canary, "weight": weight(canaryWeight)},
			map[string]any{"service": primary, "weight": weight(primaryWeight)},
		},
	}
}

// smiWeight reads a backend weight: a number, or a quantity string (v1alpha1).
func smiWeight(v any) int {
	if s, ok := v.(string); ok {
		q, err := resource.ParseQuantity(s)
		if err != nil {
			return 0
		}
		return int(q.Value())
	}
	return num(v)
}

func smiRoutes(c *v1beta1.Canary, u *unstructured.Unstructured) (primaryWeight, canaryWeight int) {
	_, primary, canary := c.ServiceNames()
	backends, _, _ := unstructured.NestedSlice(u.Object, "spec", "backends")
	for _, b := range backends {
		m, _ := b.(map[string]any)
		switch m["service"] {
		case primary:
			primaryWeight = smiWeight(m["weight"])
		case canary:
			canaryWeight = smiWeight(m["weight"])
		}
	}
	return primaryWeight, canaryWeight
}

// Reconcile makes the TrafficSplit exist with the spec's root service, keeping its current split; a new one
// starts at 100/0.
func (s *SMI) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	ts, err := s.split(c)
	if err != nil {
		return err
	}
	live, err := ts.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return err
	}
	pw, cw := 100, 0
	if live != nil {
		if p, q := smiRoutes(c, live); p+q == 100 {
			pw, cw = p, q
		}
	}
	return ts.apply(ctx, newObject(c, smiSpec(c, ts.candidates[0].Version, pw, cw)), true)
}

// SetRoutes writes the split: a read (the TrafficSplit must have been reconciled) and an apply.
func (s *SMI) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, _ bool) error {
	ts, err := s.split(c)
	if err != nil {
		return err
	}
	live, err := ts.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return err
	}
	if live == nil {
		return notReconciled("TrafficSplit", c)
	}
	return ts.apply(ctx, newObject(c, smiSpec(c, ts.candidates[0].Version, primaryWeight, canaryWeight)), false)
}

// GetRoutes reads the split back from the TrafficSplit.
func (s *SMI) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	ts, err := s.split(c)
	if err != nil {
		return 0, 0, false, err
	}
	live, err := ts.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return 0, 0, false, err
	}
	if live == nil {
		return 0, 0, false, notReconciled("TrafficSplit", c)
	}
	pw, cw := smiRoutes(c, live)
	return pw, cw, false, nil
}

// Finalize deletes the TrafficSplit (Flagger leaves it to the garbage collector through its owner reference).
func (s *SMI) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	ts, err := s.split(c)
	if err != nil {
		return err
	}
	return ts.remove(ctx, c.Namespace, apexName(c))
}
