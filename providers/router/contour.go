package router

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

func init() {
	Register("contour", func(c Clients) Router {
		return &Contour{crd: &crd{kind: "HTTPProxy", resource: "httpproxies", dyn: c.Dynamic, disc: c.Discovery,
			candidates: []schema.GroupVersion{{Group: "projectcontour.io", Version: "v1"}}}}
	}, v1beta1.Traffic{Weights: true, Match: true, Mirror: true,
		Honours: []string{"spec.service.timeout", "spec.service.retries", "spec.service.match"}})
}

// Contour routes as Flagger's Contour router does: an HTTPProxy named after the apex Service (no virtualhost: a
// root HTTPProxy of the user's includes it) whose route on the path prefix weights the primary and canary
// Services, each with Linkerd's l5d-dst-override header, and carries spec.service's timeout (response, idle 5m)
// and retries. A/B testing puts routes with the header conditions of spec.analysis.match ahead of a route that
// keeps every other request on the primary. Mirroring goes beyond Flagger (see contourSpec).
//
// Two differences from Flagger, both where Flagger's object is one Contour refuses or misreads: each match of
// spec.analysis.match (which Istio's semantics OR) becomes a route of its own, because Contour ANDs the
// conditions of a route and allows one prefix per route, while Flagger puts every header, each with the
// prefix, into one route; and a regex match becomes a Contour regex condition, which Flagger drops (leaving an
// empty exact match).
type Contour struct {
	crd *crd
}

// contourPrefix is the route's path prefix: spec.service.match[0].uri.prefix, or "/" (Flagger's makePrefix).
// Any other service match cannot be expressed by this router and is refused rather than dropped.
func contourPrefix(c *v1beta1.Canary) (string, error) {
	m := c.Spec.Service.Match
	if len(m) == 0 {
		return "/", nil
	}
	only := v1beta1.HTTPMatchRequest{URI: m[0].URI}
	if len(m) > 1 || m[0].URI == nil || m[0].URI.Prefix == "" || asJSONString(only) != asJSONString(m[0]) {
		return "", kubeobj.Permanentf("spec.service.match of Canary %s/%s: provider contour routes by one path prefix only "+
			"(match: [{uri: {prefix: /path}}]), as Flagger's Contour router reads it", c.Namespace, c.Name)
	}
	return m[0].URI.Prefix, nil
}

func asJSONString(v any) string {
	j, _ := jsonValue(v)
	return fmt.Sprint(j)
}

// contourConditions turns spec.analysis.match into one condition list per match: the prefix and the first
// header on the first condition (Flagger's shape), every other header or query parameter in a condition of its
// own.
func contourConditions(c *v1beta1.Canary, prefix string) ([][]any, error) {
	var out [][]any
	for i, m := range c.Spec.Analysis.Match {
		path := fmt.Sprintf("spec.analysis.match[%d]", i)
		if m.URI != nil || m.Scheme != nil || m.Method != nil || m.Authority != nil || m.Port != 0 || len(m.SourceLabels) > 0 ||
			len(m.Gateways) > 0 || len(m.WithoutHeaders) > 0 || m.SourceNamespace != "" || m.IgnoreURICase {
			return nil, kubeobj.Permanentf("%s of Canary %s/%s: provider contour matches headers and query parameters only", path, c.Namespace, c.Name)
		}
		var conds []any
		for _, kv := range []struct {
			field, spec string
			from        map[string]v1beta1.StringMatch
		}{{"header", "headers", m.Headers}, {"queryParameter", "queryParams", m.QueryParams}} {
			names := make([]string, 0, len(kv.from))
			for n := range kv.from {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				cond, err := contourStringMatch(n, kv.from[n])
				if err != nil {
					return nil, kubeobj.Permanentf("%s.%s.%s of Canary %s/%s: %v", path, kv.spec, n, c.Namespace, c.Name, err)
				}
				conds = append(conds, map[string]any{kv.field: cond})
			}
		}
		if len(conds) == 0 {
			return nil, kubeobj.Permanentf("%s of Canary %s/%s: no header or query parameter to match", path, c.Namespace, c.Name)
		}
		conds[0].(map[string]any)["prefix"] = prefix
		out = append(out, conds)
	}
	return out, nil
}

// contourStringMatch is one header or query parameter condition. Prefix and suffix become "contains", as in
// Flagger's Contour router, whose tutorial relies on it (user-agent prefix "Mobile" or "Android" selects those
// devices, cookie suffix "insider" the cookie canary=insider); a team moving from Flagger keeps the same users on
// the canary.
func contourStringMatch(name string, m v1beta1.StringMatch) (map[string]any, error) {
	cond := map[string]any{"name": name}
	switch {
	case m.Exact != "":
		cond["exact"] = m.Exact
	case m.Regex != "":
		cond["regex"] = m.Regex
	case m.Prefix != "":
		cond["contains"] = m.Prefix
	case m.Suffix != "":
		cond["contains"] = m.Suffix
	default:
		return nil, fmt.Errorf("empty match")
	}
	return cond, nil
}

// contourService is one weighted Service of a route; weight 0 is left out, as Flagger's omitempty does.
func contourService(c *v1beta1.Canary, name string, weight int) map[string]any {
	s := map[string]any{
		"name": name,
		"port": int64(c.Spec.Service.Port),
		"requestHeadersPolicy": map[string]any{"set": []any{map[string]any{
			"name":  "l5d-dst-override",
			"value": fmt.Sprintf("%s.%s.svc.cluster.local:%d", name, c.Namespace, c.Spec.Service.Port),
		}}},
	}
	if weight != 0 {
		s["weight"] = int64(weight)
	}
	return s
}

// contourSpec is the HTTPProxy spec for a split. Mirroring (canaryflow's addition; Flagger's Contour router has
// none) makes the canary the route's mirror service: Contour copies the primary's requests to it, all of them or
// spec.analysis.mirrorWeight percent (the mirror service's weight).
func contourSpec(c *v1beta1.Canary, pw, cw int, mirrored bool) (map[string]any, error) {
	_, primary, canary := c.ServiceNames()
	prefix, err := contourPrefix(c)
	if err != nil {
		return nil, err
	}
	route := func(conditions []any, pw, cw int) map[string]any {
		r := map[string]any{
			"conditions": conditions,
			"services":   []any{contourService(c, primary, pw), contourService(c, canary, cw)},
		}
		s := c.Spec.Service
		if s.Timeout != "" {
			r["timeoutPolicy"] = map[string]any{"response": s.Timeout, "idle": "5m"}
		}
		if rt := s.Retries; rt != nil {
			p := map[string]any{"count": int64(rt.Attempts)}
			if rt.PerTryTimeout != "" {
				p["perTryTimeout"] = rt.PerTryTimeout
			}
			if rt.RetryOn != "" {
				p["retryOn"] = strs(strings.Split(rt.RetryOn, ","))
			}
			r["retryPolicy"] = p
		}
		return r
	}
	onPrefix := []any{map[string]any{"prefix": prefix}}
	if mirrored {
		r := route(onPrefix, 100, 0)
		mirror := contourService(c, canary, 0)
		mirror["mirror"] = true
		if p := mirrorPercent(c); p < 100 {
			mirror["weight"] = int64(p)
		}
		r["services"] = []any{contourService(c, primary, 100), mirror}
		return map[string]any{"routes": []any{r}}, nil
	}
	if !isAB(c) {
		return map[string]any{"routes": []any{route(onPrefix, pw, cw)}}, nil
	}
	conds, err := contourConditions(c, prefix)
	if err != nil {
		return nil, err
	}
	var routes []any
	for _, cs := range conds {
		routes = append(routes, route(cs, pw, cw))
	}
	return map[string]any{"routes": append(routes, route(onPrefix, 100, 0))}, nil
}

// contourSplit reads the weights of the first route, and whether the canary is its mirror.
func contourSplit(c *v1beta1.Canary, u *unstructured.Unstructured) (pw, cw int, mirrored bool) {
	_, primary, canary := c.ServiceNames()
	services, _, _ := unstructured.NestedSlice(u.Object, "spec", "routes")
	if len(services) == 0 {
		return 0, 0, false
	}
	list, _, _ := unstructured.NestedSlice(services[0].(map[string]any), "services")
	for _, s := range list {
		m, _ := s.(map[string]any)
		switch {
		case m["mirror"] == true:
			mirrored = true
		case m["name"] == primary:
			pw = num(m["weight"])
		case m["name"] == canary:
			cw = num(m["weight"])
		}
	}
	return pw, cw, mirrored
}

// Reconcile makes the HTTPProxy exist and match the spec, keeping its current split (100/0 when new). One that
// Flagger made for this Canary is taken over; any other not canaryflow's is refused.
func (r *Contour) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	live, err := r.crd.getOrFlaggers(ctx, c, apexName(c))
	if err != nil {
		return err
	}
	pw, cw, mirrored := 100, 0, false
	if live != nil {
		if p, w, m := contourSplit(c, live); p+w == 100 {
			pw, cw, mirrored = p, w, m
		}
	}
	spec, err := contourSpec(c, pw, cw, mirrored)
	if err != nil {
		return err
	}
	return r.crd.apply(ctx, contourObject(c, spec), true)
}

func contourObject(c *v1beta1.Canary, spec map[string]any) *unstructured.Unstructured {
	obj := newObject(c, spec)
	a := obj.GetAnnotations()
	for k, v := range fluxAnnotations {
		a[k] = v
	}
	obj.SetAnnotations(a)
	return obj
}

// SetRoutes writes the split: one apply request.
func (r *Contour) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	spec, err := contourSpec(c, primaryWeight, canaryWeight, mirrored)
	if err != nil {
		return err
	}
	return r.crd.apply(ctx, contourObject(c, spec), false)
}

// GetRoutes reads the split back.
func (r *Contour) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	live, err := r.crd.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return 0, 0, false, err
	}
	if live == nil {
		return 0, 0, false, notReconciled("HTTPProxy", c)
	}
	pw, cw, m := contourSplit(c, live)
	return pw, cw, m, nil
}

// Finalize points the HTTPProxy at the apex Service, which the workload finalisation points at the target's
// pods, so the user's root HTTPProxy that includes it keeps working. (Flagger leaves it to garbage collection
// with the Canary object, which canaryflow does not have in the cluster.)
func (r *Contour) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	live, err := r.crd.get(ctx, c.Namespace, apexName(c))
	if err != nil || live == nil {
		return err
	}
	prefix, err := contourPrefix(c)
	if err != nil {
		return err
	}
	spec := map[string]any{"routes": []any{map[string]any{
		"conditions": []any{map[string]any{"prefix": prefix}},
		"services":   []any{map[string]any{"name": apexName(c), "port": int64(c.Spec.Service.Port)}},
	}}}
	return r.crd.apply(ctx, contourObject(c, spec), true)
}
