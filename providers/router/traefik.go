package router

import (
	"context"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/capability"
)

func init() {
	Register("traefik", func(c Clients) Router {
		return &Traefik{crd: &crd{
			kind: "TraefikService", resource: "traefikservices", dyn: c.Dynamic, disc: c.Discovery,
			candidates: []schema.GroupVersion{{Group: "traefik.io", Version: "v1alpha1"}, {Group: "traefik.containo.us", Version: "v1alpha1"}},
		}}
	})
	// A/B matching would need a second, higher-priority route next to the user's IngressRoute, which canaryflow
	// does not know: not declared.
	declare("traefik", capability.Set{Weights: true, Mirror: true, SessionAffinity: true})
}

// Traefik routes with a TraefikService named after the apex Service (traefik.io/v1alpha1, or
// traefik.containo.us/v1alpha1 where only the old group is installed): weighted round robin over the primary and
// canary Services, or mirroring of the primary to the canary. The user's IngressRoute points at it.
type Traefik struct {
	crd *crd
}

// traefikSpec is the TraefikService spec for a split. Services at weight 0 are left out (Traefik ignores them
// anyway), which is also what ends session affinity to the canary at weight 0: a sticky cookie naming a service
// that is not in the list no longer routes there.
func traefikSpec(c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) map[string]any {
	_, primary, canary := c.ServiceNames()
	port := int64(c.Spec.Service.Port)
	if mirrored {
		return map[string]any{"mirroring": map[string]any{
			"name": primary, "port": port,
			"mirrors": []any{map[string]any{"name": canary, "port": port, "percent": int64(mirrorPercent(c))}},
		}}
	}
	var services []any
	if primaryWeight > 0 {
		services = append(services, map[string]any{"name": primary, "port": port, "weight": int64(primaryWeight)})
	}
	if canaryWeight > 0 {
		services = append(services, map[string]any{"name": canary, "port": port, "weight": int64(canaryWeight)})
	}
	weighted := map[string]any{"services": services}
	if a := c.Spec.Analysis; a != nil && a.SessionAffinity != nil && a.SessionAffinity.CookieName != "" {
		weighted["sticky"] = map[string]any{"cookie": map[string]any{
			"name": a.SessionAffinity.CookieName, "maxAge": int64(a.SessionAffinity.MaxAge), "httpOnly": true,
		}}
	}
	return map[string]any{"weighted": weighted}
}

func traefikRoutes(c *v1beta1.Canary, u *unstructured.Unstructured) (primaryWeight, canaryWeight int, mirrored bool) {
	_, primary, canary := c.ServiceNames()
	if _, ok, _ := unstructured.NestedMap(u.Object, "spec", "mirroring"); ok {
		return 100, 0, true
	}
	services, _, _ := unstructured.NestedSlice(u.Object, "spec", "weighted", "services")
	for _, s := range services {
		m, _ := s.(map[string]any)
		switch m["name"] {
		case primary:
			primaryWeight = num(m["weight"])
		case canary:
			canaryWeight = num(m["weight"])
		}
	}
	return primaryWeight, canaryWeight, false
}

// Reconcile makes the TraefikService exist with the spec's ports and cookies, keeping its current split.
func (t *Traefik) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	u, err := t.crd.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return err
	}
	pw, cw, mirrored := 100, 0, false
	if u != nil {
		pw, cw, mirrored = traefikRoutes(c, u)
		if pw+cw != 100 {
			pw, cw, mirrored = 100, 0, false
		}
	}
	return t.crd.apply(ctx, newObject(c, traefikSpec(c, pw, cw, mirrored)), true)
}

// SetRoutes writes the split: one apply request.
func (t *Traefik) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	if err := checkSplit(c, primaryWeight, canaryWeight, mirrored); err != nil {
		return err
	}
	return t.crd.apply(ctx, newObject(c, traefikSpec(c, primaryWeight, canaryWeight, mirrored)), false)
}

// GetRoutes reads the split back.
func (t *Traefik) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	u, err := t.crd.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return 0, 0, false, err
	}
	if u == nil {
		return 0, 0, false, notReconciled("TraefikService", c)
	}
	pw, cw, m := traefikRoutes(c, u)
	return pw, cw, m, nil
}

// Finalize points the TraefikService at the apex Service, which the workload finalisation points at the target's
// pods, so the user's IngressRoute keeps working without canaryflow.
func (t *Traefik) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	u, err := t.crd.get(ctx, c.Namespace, apexName(c))
	if err != nil || u == nil {
		return err
	}
	spec := map[string]any{"weighted": map[string]any{"services": []any{
		map[string]any{"name": apexName(c), "port": int64(c.Spec.Service.Port), "weight": int64(100)},
	}}}
	return t.crd.apply(ctx, newObject(c, spec), true)
}
