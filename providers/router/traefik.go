package router

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

func init() {
	Register("traefik", func(c Clients) Router {
		groups := []schema.GroupVersion{{Group: "traefik.io", Version: "v1alpha1"}, {Group: "traefik.containo.us", Version: "v1alpha1"}}
		return &Traefik{
			crd:    &crd{kind: "TraefikService", resource: "traefikservices", dyn: c.Dynamic, disc: c.Discovery, candidates: groups},
			routes: &crd{kind: "IngressRoute", resource: "ingressroutes", dyn: c.Dynamic, disc: c.Discovery, candidates: groups},
		}
	}, v1beta1.Traffic{Weights: true, Match: true, Mirror: true, SessionAffinity: true,
		// The sticky cookie's attributes; Traefik v3.6's cookie has no Partitioned.
		Honours: []string{"spec.analysis.sessionAffinity.domain", "spec.analysis.sessionAffinity.path",
			"spec.analysis.sessionAffinity.sameSite", "spec.analysis.sessionAffinity.secure", "spec.analysis.sessionAffinity.httpOnly"}})
}

// Traefik routes with a TraefikService named after the apex Service (traefik.io/v1alpha1, or
// traefik.containo.us/v1alpha1 where only the old group is installed): weighted round robin over the primary and
// canary Services, or mirroring of the primary to the canary. The user's IngressRoute points at it.
//
// A/B testing (spec.analysis.match) goes beyond Flagger: every IngressRoute of the namespace that routes to that
// TraefikService gets a clone "<ingressroute>-canary" whose rules add the match (Header, HeaderRegexp, Query, …)
// and so win by Traefik's longest-rule priority; the clones route to the TraefikService "<apex>-ab", which carries
// the split, while "<apex>" keeps all other requests on the primary.
type Traefik struct {
	crd    *crd // TraefikServices
	routes *crd // IngressRoutes
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
		weighted["sticky"] = map[string]any{"cookie": traefikCookie(a.SessionAffinity)}
	}
	return map[string]any{"weighted": weighted}
}

// traefikCookie is the sticky cookie with spec.analysis.sessionAffinity's attributes; it is HttpOnly unless
// httpOnly: false says otherwise. Traefik's cookie has no Partitioned attribute (v1beta1.NotHonoured warns).
func traefikCookie(sa *v1beta1.SessionAffinity) map[string]any {
	cookie := map[string]any{"name": sa.CookieName, "maxAge": int64(sa.MaxAge), "httpOnly": true}
	if sa.HTTPOnly != nil {
		cookie["httpOnly"] = *sa.HTTPOnly
	}
	if sa.Secure {
		cookie["secure"] = true
	}
	if sa.SameSite != "" {
		cookie["sameSite"] = strings.ToLower(sa.SameSite) // Traefik's enum is lower case
	}
	if sa.Path != "" {
		cookie["path"] = sa.Path
	}
	if sa.Domain != "" {
		cookie["domain"] = sa.Domain
	}
	return cookie
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

func abName(c *v1beta1.Canary) string { return apexName(c) + "-ab" }

func isAB(c *v1beta1.Canary) bool { return c.Spec.Analysis != nil && len(c.Spec.Analysis.Match) > 0 }

// splitName is the TraefikService that carries the split: the apex's, or with A/B testing "<apex>-ab".
func splitName(c *v1beta1.Canary) string {
	if isAB(c) {
		return abName(c)
	}
	return apexName(c)
}

func traefikService(c *v1beta1.Canary, name string, spec map[string]any) *unstructured.Unstructured {
	u := newObject(c, spec)
	u.SetName(name)
	return u
}

// Reconcile makes the TraefikService exist with the spec's ports and cookies, keeping its current split; with
// A/B testing also the "<apex>-ab" TraefikService and the IngressRoute clones that send matching requests to it.
func (t *Traefik) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	live, err := t.crd.get(ctx, c.Namespace, splitName(c))
	if err != nil {
		return err
	}
	pw, cw, mirrored := 100, 0, false
	if live != nil {
		pw, cw, mirrored = traefikRoutes(c, live)
		if pw+cw != 100 {
			pw, cw, mirrored = 100, 0, false
		}
	}
	if !isAB(c) {
		return t.crd.apply(ctx, traefikService(c, apexName(c), traefikSpec(c, pw, cw, mirrored)), true)
	}
	if _, err := t.crd.get(ctx, c.Namespace, apexName(c)); err != nil {
		return err
	}
	if err := t.crd.apply(ctx, traefikService(c, apexName(c), traefikSpec(c, 100, 0, false)), true); err != nil {
		return err
	}
	if err := t.crd.apply(ctx, traefikService(c, abName(c), traefikSpec(c, pw, cw, false)), true); err != nil {
		return err
	}
	return t.reconcileRoutes(ctx, c)
}

// reconcileRoutes writes, for every IngressRoute of the namespace that routes to the apex TraefikService, a clone
// "<name>-canary" whose rules also require the A/B match and which routes to "<apex>-ab".
func (t *Traefik) reconcileRoutes(ctx context.Context, c *v1beta1.Canary) error {
	expr, err := traefikMatch(c.Spec.Analysis.Match)
	if err != nil {
		return err
	}
	ri, _, err := t.routes.client(c.Namespace)
	if err != nil {
		return err
	}
	list, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list IngressRoutes in %s: %w", c.Namespace, err)
	}
	listed := map[string]*unstructured.Unstructured{}
	for i := range list.Items {
		listed[list.Items[i].GetName()] = &list.Items[i]
	}
	cloned := 0
	for _, ir := range list.Items {
		if kubeobj.IsManaged(&ir) {
			continue
		}
		routes, _, _ := unstructured.NestedSlice(ir.Object, "spec", "routes")
		var clones []any
		for _, r := range routes {
			route, _ := r.(map[string]any)
			services, _, _ := unstructured.NestedSlice(route, "services")
			var to []any
			for _, sv := range services {
				m, _ := sv.(map[string]any)
				if m["kind"] == "TraefikService" && m["name"] == apexName(c) {
					m = runtime.DeepCopyJSONValue(m).(map[string]any)
					m["name"] = abName(c)
					to = append(to, m)
				}
			}
			if len(to) == 0 {
				continue
			}
			clone := runtime.DeepCopyJSONValue(route).(map[string]any)
			clone["match"] = fmt.Sprintf("(%v) && (%s)", route["match"], expr)
			clone["services"] = to
			if p, ok := route["priority"]; ok {
				clone["priority"] = int64(num(p) + 1)
			}
			clones = append(clones, clone)
		}
		if len(clones) == 0 {
			continue
		}
		spec := map[string]any{"routes": clones}
		for _, f := range []string{"entryPoints", "tls"} {
			if v, ok := ir.Object["spec"].(map[string]any)[f]; ok {
				spec[f] = runtime.DeepCopyJSONValue(v)
			}
		}
		name := ir.GetName() + "-canary"
		if old := listed[name]; old != nil && !kubeobj.IsManaged(old) { // the list holds the clone if it exists
			return kubeobj.NotOurs(t.routes.kind, c.Namespace, name, fmt.Sprintf(
				"canaryflow names its A/B copy of IngressRoute %s so: rename or delete this one", ir.GetName()))
		}
		if err := t.routes.apply(ctx, traefikService(c, name, spec), true); err != nil {
			return err
		}
		cloned++
	}
	if cloned == 0 {
		return kubeobj.Permanentf("A/B testing with traefik: no IngressRoute in namespace %s routes to TraefikService %s: create one "+
			"(services: [{name: %s, kind: TraefikService}]) so canaryflow can add the match next to it", c.Namespace, apexName(c), apexName(c))
	}
	return nil
}

// traefikMatch writes Flagger's request matches as a Traefik v3 rule: the conditions of one match joined by &&,
// the matches by ||.
func traefikMatch(in []v1beta1.HTTPMatchRequest) (string, error) {
	quote := func(s string) (string, error) {
		if strings.Contains(s, "`") {
			return "", kubeobj.Permanentf("match value %q contains a backtick, which a Traefik rule cannot hold", s)
		}
		return "`" + s + "`", nil
	}
	matcher := func(exact, re string, key string, m v1beta1.StringMatch) (string, error) {
		var fn, val string
		switch {
		case m.Exact != "":
			fn, val = exact, m.Exact
		case m.Regex != "":
			fn, val = re, m.Regex
		case m.Prefix != "":
			fn, val = re, "^"+regexp.QuoteMeta(m.Prefix)
		case m.Suffix != "":
			fn, val = re, regexp.QuoteMeta(m.Suffix)+"$"
		default:
			return "", kubeobj.Permanentf("empty match for %q", key)
		}
		v, err := quote(val)
		if err != nil {
			return "", err
		}
		if key == "" {
			return fmt.Sprintf("%s(%s)", fn, v), nil
		}
		k, err := quote(key)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s(%s, %s)", fn, k, v), nil
	}
	var ors []string
	for _, r := range in {
		var ands []string
		for _, kv := range []struct {
			exact, re string
			from      map[string]v1beta1.StringMatch
		}{{"Header", "HeaderRegexp", r.Headers}, {"Query", "QueryRegexp", r.QueryParams}} {
			keys := make([]string, 0, len(kv.from))
			for k := range kv.from {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				m, err := matcher(kv.exact, kv.re, k, kv.from[k])
				if err != nil {
					return "", err
				}
				ands = append(ands, m)
			}
		}
		if r.URI != nil {
			fn, re := "Path", "PathRegexp"
			if r.URI.Prefix != "" {
				fn = "PathPrefix"
				u := *r.URI
				u.Exact, u.Prefix = u.Prefix, ""
				r.URI = &u
			}
			m, err := matcher(fn, re, "", *r.URI)
			if err != nil {
				return "", err
			}
			ands = append(ands, m)
		}
		if r.Method != nil {
			m, err := matcher("Method", "", "", v1beta1.StringMatch{Exact: r.Method.Exact})
			if err != nil || r.Method.Exact == "" {
				return "", kubeobj.Permanentf("Traefik matches methods exactly only")
			}
			ands = append(ands, m)
		}
		if len(ands) > 0 {
			ors = append(ors, strings.Join(ands, " && "))
		}
	}
	if len(ors) == 0 {
		return "", kubeobj.Permanentf("spec.analysis.match has no condition Traefik can express")
	}
	if len(ors) == 1 {
		return ors[0], nil
	}
	return "(" + strings.Join(ors, ") || (") + ")", nil
}

// SetRoutes writes the split: one apply request.
func (t *Traefik) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	return t.crd.apply(ctx, traefikService(c, splitName(c), traefikSpec(c, primaryWeight, canaryWeight, mirrored)), false)
}

// GetRoutes reads the split back.
func (t *Traefik) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	u, err := t.crd.get(ctx, c.Namespace, splitName(c))
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
// pods, so the user's IngressRoute keeps working without canaryflow; the A/B objects are deleted.
func (t *Traefik) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	if err := t.crd.remove(ctx, c.Namespace, abName(c)); err != nil {
		return err
	}
	if ri, _, err := t.routes.client(c.Namespace); err == nil {
		list, err := ri.List(ctx, metav1.ListOptions{LabelSelector: kubeobj.ManagedSelector})
		if err != nil {
			return fmt.Errorf("list IngressRoutes in %s: %w", c.Namespace, err)
		}
		for _, ir := range list.Items {
			if kubeobj.MadeFor(&ir, c) { // listed as ours: delete it
				if err := ri.Delete(ctx, ir.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					return fmt.Errorf("delete IngressRoute %s/%s: %w", c.Namespace, ir.GetName(), err)
				}
			}
		}
	}
	u, err := t.crd.get(ctx, c.Namespace, apexName(c))
	if err != nil || u == nil {
		return err
	}
	spec := map[string]any{"weighted": map[string]any{"services": []any{
		map[string]any{"name": apexName(c), "port": int64(c.Spec.Service.Port), "weight": int64(100)},
	}}}
	return t.crd.apply(ctx, traefikService(c, apexName(c), spec), true)
}
