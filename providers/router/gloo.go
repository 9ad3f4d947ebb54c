package router

import (
	"context"
	"fmt"
	"regexp"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

func init() {
	Register("gloo", func(c Clients) Router {
		return &Gloo{
			upstreams: &crd{kind: "Upstream", resource: "upstreams", dyn: c.Dynamic, disc: c.Discovery,
				candidates: []schema.GroupVersion{{Group: "gloo.solo.io", Version: "v1"}}},
			tables: &crd{kind: "RouteTable", resource: "routetables", dyn: c.Dynamic, disc: c.Discovery,
				candidates: []schema.GroupVersion{{Group: "gateway.solo.io", Version: "v1"}}},
			kube: c.Kube,
		}
	}, v1beta1.Traffic{Weights: true, Match: true})
}

// glooUpstreamConfig are the fields of spec.upstreamRef's Upstream that the generated Upstreams copy, as
// Flagger's do.
var glooUpstreamConfig = []string{"sslConfig", "circuitBreakers", "connectionConfig", "loadBalancerConfig", "useHttp2",
	"initialStreamWindowSize", "initialConnectionWindowSize", "httpProxyHostname"}

// Gloo routes as Flagger does with Gloo Edge: two Upstreams (gloo.solo.io/v1) for the primary and canary
// Services, "<namespace>-<apex>-primaryupstream-<port>" and "<namespace>-<apex>-canaryupstream-<port>" (so that
// Gloo's upstream discovery is not needed), copying the settings of spec.upstreamRef's Upstream when set, and a
// RouteTable "<apex>" (gateway.solo.io/v1) whose route sends the weights to them. The user's VirtualService
// delegates to the RouteTable; the route inherits its path matcher.
//
// A/B testing differs from Flagger on purpose: Flagger puts the headers of all of spec.analysis.match into one
// matcher (all must hold, across matches) and leaves other requests without a route in the table. Here each
// match is a route of its own (headers, cookies as the cookie header, query parameters, withoutHeaders as
// inverted header matchers, method), followed by a route sending every other request to the primary. Mirroring
// and session affinity are refused at validation: Gloo's route table has neither for weighted destinations.
// Finalize deletes the RouteTable and both Upstreams (Flagger leaves them to the garbage collector).
type Gloo struct {
	upstreams *crd
	tables    *crd
	kube      kubernetes.Interface
}

// glooUpstreamName is Flagger's name of the Upstream of the primary ("primary") or canary ("canary") Service.
func glooUpstreamName(c *v1beta1.Canary, role string) string {
	return fmt.Sprintf("%s-%s-%supstream-%d", c.Namespace, apexName(c), role, c.Spec.Service.Port)
}

// glooRoutes is the RouteTable's routes for a split: one weighted route, or with A/B testing one per match and
// a last one to the primary.
func glooRoutes(c *v1beta1.Canary, primaryWeight, canaryWeight int) ([]any, error) {
	dest := func(role string) map[string]any {
		return map[string]any{"upstream": map[string]any{"name": glooUpstreamName(c, role), "namespace": c.Namespace}}
	}
	weighted := func() map[string]any {
		return map[string]any{
			"inheritablePathMatchers": true,
			"routeAction": map[string]any{"multi": map[string]any{"destinations": []any{
				map[string]any{"destination": dest("primary"), "weight": int64(primaryWeight)},
				map[string]any{"destination": dest("canary"), "weight": int64(canaryWeight)},
			}}},
		}
	}
	if !isAB(c) {
		return []any{weighted()}, nil
	}
	var routes []any
	for i, m := range c.Spec.Analysis.Match {
		matcher, err := glooMatcher(i, m)
		if err != nil {
			return nil, err
		}
		r := weighted()
		r["matchers"] = []any{matcher}
		routes = append(routes, r)
	}
	return append(routes, map[string]any{
		"inheritablePathMatchers": true,
		"routeAction":             map[string]any{"single": dest("primary")},
	}), nil
}

// glooMatcher writes one of Flagger's request matches as a Gloo matcher, all of whose conditions must hold.
// Gloo (Envoy) matches regular expressions against the whole value, so prefix and suffix become anchored
// patterns.
func glooMatcher(i int, m v1beta1.HTTPMatchRequest) (map[string]any, error) {
	field := func(f string) string { return fmt.Sprintf("spec.analysis.match[%d].%s", i, f) }
	for f, unsupported := range map[string]bool{
		"uri": m.URI != nil, "scheme": m.Scheme != nil, "authority": m.Authority != nil, "port": m.Port != 0,
		"sourceLabels": len(m.SourceLabels) > 0, "gateways": len(m.Gateways) > 0, "ignoreUriCase": m.IgnoreURICase,
		"sourceNamespace": m.SourceNamespace != "",
	} {
		if unsupported {
			return nil, kubeobj.Permanentf("%s: provider gloo matches headers, cookies (the cookie header), queryParams, withoutHeaders and method only (the route inherits the VirtualService's path)", field(f))
		}
	}
	value := func(sm v1beta1.StringMatch, f string) (map[string]any, error) {
		switch {
		case sm.Exact != "":
			return map[string]any{"value": sm.Exact}, nil
		case sm.Regex != "":
			return map[string]any{"value": sm.Regex, "regex": true}, nil
		case sm.Prefix != "":
			return map[string]any{"value": regexp.QuoteMeta(sm.Prefix) + ".*", "regex": true}, nil
		case sm.Suffix != "":
			return map[string]any{"value": ".*" + regexp.QuoteMeta(sm.Suffix), "regex": true}, nil
		}
		return nil, kubeobj.Permanentf("%s: empty match: give exact, prefix, suffix or regex", field(f))
	}
	list := func(from map[string]v1beta1.StringMatch, f string, invert bool) ([]any, error) {
		keys := make([]string, 0, len(from))
		for k := range from {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var out []any
		for _, k := range keys {
			v, err := value(from[k], f+"."+k)
			if err != nil {
				return nil, err
			}
			v["name"] = k
			if invert {
				v["invertMatch"] = true
			}
			out = append(out, v)
		}
		return out, nil
	}
	matcher := map[string]any{}
	headers, err := list(m.Headers, "headers", false)
	if err != nil {
		return nil, err
	}
	without, err := list(m.WithoutHeaders, "withoutHeaders", true)
	if err != nil {
		return nil, err
	}
	if h := append(headers, without...); len(h) > 0 {
		matcher["headers"] = h
	}
	query, err := list(m.QueryParams, "queryParams", false)
	if err != nil {
		return nil, err
	}
	if len(query) > 0 {
		matcher["queryParameters"] = query
	}
	if m.Method != nil {
		if m.Method.Exact == "" {
			return nil, kubeobj.Permanentf("%s: Gloo matches methods exactly only", field("method"))
		}
		matcher["methods"] = []any{m.Method.Exact}
	}
	if len(matcher) == 0 {
		return nil, kubeobj.Permanentf("spec.analysis.match[%d]: no condition: give headers, queryParams, withoutHeaders or method", i)
	}
	return matcher, nil
}

// glooSplit reads the split of the RouteTable's first weighted route.
func glooSplit(c *v1beta1.Canary, u *unstructured.Unstructured) (primaryWeight, canaryWeight int) {
	routes, _, _ := unstructured.NestedSlice(u.Object, "spec", "routes")
	for _, r := range routes {
		dests, ok, _ := unstructured.NestedSlice(r.(map[string]any), "routeAction", "multi", "destinations")
		if !ok {
			continue
		}
		for _, d := range dests {
			m, _ := d.(map[string]any)
			name, _, _ := unstructured.NestedString(m, "destination", "upstream", "name")
			switch name {
			case glooUpstreamName(c, "primary"):
				primaryWeight = num(m["weight"])
			case glooUpstreamName(c, "canary"):
				canaryWeight = num(m["weight"])
			}
		}
		return primaryWeight, canaryWeight
	}
	return 0, 0
}

// upstream writes the Upstream of the primary or canary Service, selecting the Service's pods as Flagger's does
// (the caller has checked that an existing one is canaryflow's).
func (g *Gloo) upstream(ctx context.Context, c *v1beta1.Canary, role string, config map[string]any) error {
	svcName := apexName(c) + "-" + role
	svc, err := g.kube.CoreV1().Services(c.Namespace).Get(ctx, svcName, metav1.GetOptions{})
	if err != nil {
		return kubeobj.APIError("get", "Service", c.Namespace, svcName, err)
	}
	spec := map[string]any{}
	for k, v := range config {
		spec[k] = runtime.DeepCopyJSONValue(v)
	}
	selector := map[string]any{}
	for k, v := range svc.Spec.Selector {
		selector[k] = v
	}
	spec["kube"] = map[string]any{"serviceName": svcName, "serviceNamespace": c.Namespace,
		"servicePort": int64(c.Spec.Service.Port), "selector": selector}
	u := newObject(c, spec)
	u.SetName(glooUpstreamName(c, role))
	return g.upstreams.apply(ctx, u, true)
}

// upstreamConfig reads the settings of spec.upstreamRef's Upstream that the generated ones copy.
func (g *Gloo) upstreamConfig(ctx context.Context, c *v1beta1.Canary) (map[string]any, error) {
	ref := c.Spec.UpstreamRef
	if ref == nil || ref.Name == "" {
		return nil, nil
	}
	ns := ref.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	ri, _, err := g.upstreams.client(ns)
	if err != nil {
		return nil, err
	}
	u, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil, kubeobj.APIError("get", "Upstream (spec.upstreamRef)", ns, ref.Name, err)
	}
	out := map[string]any{}
	for _, f := range glooUpstreamConfig {
		if v, ok, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", f); ok {
			out[f] = v
		}
	}
	return out, nil
}

func (g *Gloo) table(c *v1beta1.Canary, primaryWeight, canaryWeight int) (*unstructured.Unstructured, error) {
	routes, err := glooRoutes(c, primaryWeight, canaryWeight)
	if err != nil {
		return nil, err
	}
	u := newObject(c, map[string]any{"routes": routes})
	withFluxAnnotations(u)
	return u, nil
}

// Reconcile writes both Upstreams and the RouteTable, keeping its current split; a new one starts at 100/0.
func (g *Gloo) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	live, err := g.tables.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return err
	}
	pw, cw := 100, 0
	if live != nil {
		if p, q := glooSplit(c, live); p+q == 100 {
			pw, cw = p, q
		}
	}
	table, err := g.table(c, pw, cw)
	if err != nil {
		return err
	}
	// Every object is read before the first write, so one of someone else's is refused with nothing written.
	for _, role := range []string{"primary", "canary"} {
		if _, err := g.upstreams.get(ctx, c.Namespace, glooUpstreamName(c, role)); err != nil {
			return err
		}
	}
	config, err := g.upstreamConfig(ctx, c)
	if err != nil {
		return err
	}
	for _, role := range []string{"primary", "canary"} {
		if err := g.upstream(ctx, c, role, config); err != nil {
			return err
		}
	}
	return g.tables.apply(ctx, table, true)
}

// SetRoutes writes the split into the RouteTable: a read and an apply.
func (g *Gloo) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, _ bool) error {
	live, err := g.tables.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return err
	}
	if live == nil {
		return notReconciled("RouteTable", c)
	}
	table, err := g.table(c, primaryWeight, canaryWeight)
	if err != nil {
		return err
	}
	return g.tables.apply(ctx, table, false)
}

// GetRoutes reads the split back from the RouteTable.
func (g *Gloo) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	live, err := g.tables.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return 0, 0, false, err
	}
	if live == nil {
		return 0, 0, false, notReconciled("RouteTable", c)
	}
	pw, cw := glooSplit(c, live)
	return pw, cw, false, nil
}

// Finalize deletes the RouteTable, then the Upstreams it routed to.
func (g *Gloo) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	if err := g.tables.remove(ctx, c.Namespace, apexName(c)); err != nil {
		return err
	}
	for _, role := range []string{"primary", "canary"} {
		if err := g.upstreams.remove(ctx, c.Namespace, glooUpstreamName(c, role)); err != nil {
			return err
		}
	}
	return nil
}
