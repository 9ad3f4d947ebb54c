package router

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

func init() {
	Register("apisix", func(c Clients) Router {
		return &APISIX{
			routes: &crd{kind: "ApisixRoute", resource: "apisixroutes", dyn: c.Dynamic, disc: c.Discovery,
				candidates: []schema.GroupVersion{{Group: "apisix.apache.org", Version: "v2"}}},
			kube: c.Kube,
		}
	}, v1beta1.Traffic{Weights: true, Match: true, Mirror: true})
}

// apisixPriority is the priority Flagger gives the canary route, so that it wins over the user's route for the
// same hosts and paths.
const apisixPriority = 10000

// APISIX routes as Flagger does: the user's ApisixRoute (spec.routeRef, apisix.apache.org/v2) is a template that
// is never modified; the router writes "<routeRef>-<apex>-canary", a copy of the template's HTTP rule that routes
// to the apex Service, with a higher priority and two weighted backends, the primary and the canary Services. The
// apisix-ingress-controller turns them into a route whose upstream is the primary and whose traffic-split plugin
// sends the canary's weight to the canary.
//
// Beyond Flagger: with spec.analysis.match (A/B testing) each match becomes a rule of that route carrying it as
// match.exprs, so only matching requests reach the split and the others fall through to the template, i.e. to the
// apex Service and the primary; with mirroring the rule gets APISIX's proxy-mirror plugin pointed at the canary
// Service. Session affinity is refused at validation: APISIX's traffic-split has no sticky cookie.
type APISIX struct {
	routes *crd // ApisixRoutes: the user's template and the canary route
	kube   kubernetes.Interface
}

// apisixRouteName is Flagger's name of the canary route.
func apisixRouteName(c *v1beta1.Canary) string {
	return routeRefName(c) + "-" + apexName(c) + "-canary"
}

func routeRefName(c *v1beta1.Canary) string {
	if c.Spec.RouteRef == nil {
		return ""
	}
	return c.Spec.RouteRef.Name
}

// apisixMirroring reports whether this canary mirrors traffic; only then is a proxy-mirror plugin on the canary
// route canaryflow's (Reconcile refuses a template that has its own).
func apisixMirroring(c *v1beta1.Canary) bool { return c.Spec.Analysis != nil && c.Spec.Analysis.Mirror }

// template reads the user's ApisixRoute and returns it with the HTTP rule that routes to the apex Service.
func (a *APISIX) template(ctx context.Context, c *v1beta1.Canary) (*unstructured.Unstructured, map[string]any, error) {
	name := routeRefName(c)
	if name == "" {
		return nil, nil, kubeobj.Permanentf("Canary %s/%s: spec.routeRef is required with provider apisix: name the ApisixRoute to copy for the canary", c.Namespace, c.Name)
	}
	ri, _, err := a.routes.client(c.Namespace)
	if err != nil {
		return nil, nil, err
	}
	tpl, err := ri.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, kubeobj.Permanentf("ApisixRoute %s/%s (spec.routeRef of Canary %s) not found: create it, with an HTTP rule whose backend is the Service %s",
			c.Namespace, name, c.Name, apexName(c))
	}
	if err != nil {
		return nil, nil, kubeobj.APIError("get", "ApisixRoute", c.Namespace, name, err)
	}
	if kubeobj.IsManaged(tpl) {
		return nil, nil, kubeobj.Permanentf("ApisixRoute %s/%s (spec.routeRef of Canary %s) was made by canaryflow: name the user's ApisixRoute instead",
			c.Namespace, name, c.Name)
	}
	rules, _, _ := unstructured.NestedSlice(tpl.Object, "spec", "http")
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		backends, _, _ := unstructured.NestedSlice(rule, "backends")
		for _, b := range backends {
			if m, _ := b.(map[string]any); m["serviceName"] == apexName(c) {
				if len(backends) != 1 {
					return nil, nil, kubeobj.Permanentf("ApisixRoute %s/%s: HTTP rule %v has %d backends: canaryflow (like Flagger) needs exactly one, the Service %s",
						c.Namespace, name, rule["name"], len(backends), apexName(c))
				}
				if apisixMirroring(c) && apisixPlugin(rule, "proxy-mirror") != nil {
					return nil, nil, kubeobj.Permanentf("ApisixRoute %s/%s: HTTP rule %v already has a proxy-mirror plugin, and spec.analysis.mirror needs that plugin for the canary: remove one of them",
						c.Namespace, name, rule["name"])
				}
				return tpl, rule, nil
			}
		}
	}
	return nil, nil, kubeobj.Permanentf("ApisixRoute %s/%s (spec.routeRef of Canary %s) has no HTTP rule whose backend is the Service %s: route it there (spec.http[].backends[].serviceName)",
		c.Namespace, name, c.Name, apexName(c))
}

// apisixPlugin returns the plugin entry named name of an HTTP rule, or nil.
func apisixPlugin(rule map[string]any, name string) map[string]any {
	plugins, _, _ := unstructured.NestedSlice(rule, "plugins")
	for _, p := range plugins {
		if m, _ := p.(map[string]any); m["name"] == name {
			return m
		}
	}
	return nil
}

// apisixRules derives the canary route's HTTP rules from the template's rule: one rule, or one per A/B match.
// The backends start at 100/0 without mirroring.
func apisixRules(c *v1beta1.Canary, rule map[string]any) ([]any, error) {
	_, primary, canary := c.ServiceNames()
	base := runtime.DeepCopyJSONValue(rule).(map[string]any)
	// The rule routes to the primary and the canary only, as Flagger's copy does (its type has no upstreams).
	delete(base, "upstreams")
	priority := int64(apisixPriority)
	if p := int64(num(rule["priority"])); p >= priority {
		priority = p + 1
	}
	base["priority"] = priority
	backend, _ := rule["backends"].([]any)[0].(map[string]any)
	p := runtime.DeepCopyJSONValue(backend).(map[string]any)
	p["serviceName"], p["weight"] = primary, int64(100)
	cb := map[string]any{"serviceName": canary, "servicePort": backend["servicePort"], "weight": int64(0)}
	for _, f := range []string{"resolveGranularity", "subset"} {
		if v, ok := backend[f]; ok {
			cb[f] = v
		}
	}
	base["backends"] = []any{p, cb}

	if !isAB(c) {
		return []any{base}, nil
	}
	var out []any
	for i, m := range c.Spec.Analysis.Match {
		exprs, err := apisixExprs(i, m)
		if err != nil {
			return nil, err
		}
		r := runtime.DeepCopyJSONValue(base).(map[string]any)
		if i > 0 {
			r["name"] = fmt.Sprintf("%v-%d", base["name"], i+1)
		}
		match, _ := r["match"].(map[string]any)
		if match == nil {
			match = map[string]any{}
			r["match"] = match
		}
		had, _ := match["exprs"].([]any)
		match["exprs"] = append(had, exprs...)
		out = append(out, r)
	}
	return out, nil
}

// apisixExprs writes one of Flagger's request matches as ApisixRoute match.exprs, all of which must hold:
// headers (cookies are the Cookie header) by scope Header, query parameters by Query, the URI by Path, the
// method by the nginx variable request_method. Prefix and suffix become anchored regular expressions (APISIX
// matches them with PCRE).
func apisixExprs(i int, m v1beta1.HTTPMatchRequest) ([]any, error) {
	field := func(f string) string { return fmt.Sprintf("spec.analysis.match[%d].%s", i, f) }
	expr := func(scope, name string, sm v1beta1.StringMatch, f string) (any, error) {
		op, value := "Equal", sm.Exact
		switch {
		case sm.Exact != "":
		case sm.Regex != "":
			op, value = "RegexMatch", sm.Regex
		case sm.Prefix != "":
			op, value = "RegexMatch", "^"+regexp.QuoteMeta(sm.Prefix)
		case sm.Suffix != "":
			op, value = "RegexMatch", regexp.QuoteMeta(sm.Suffix)+"$"
		default:
			return nil, kubeobj.Permanentf("%s: empty match: give exact, prefix, suffix or regex", field(f))
		}
		subject := map[string]any{"scope": scope}
		if name != "" {
			subject["name"] = name
		}
		return map[string]any{"subject": subject, "op": op, "value": value}, nil
	}
	for f, unsupported := range map[string]bool{
		"scheme": m.Scheme != nil, "authority": m.Authority != nil, "port": m.Port != 0, "sourceLabels": len(m.SourceLabels) > 0,
		"gateways": len(m.Gateways) > 0, "ignoreUriCase": m.IgnoreURICase, "withoutHeaders": len(m.WithoutHeaders) > 0,
		"sourceNamespace": m.SourceNamespace != "",
	} {
		if unsupported {
			return nil, kubeobj.Permanentf("%s: provider apisix matches headers, cookies (the cookie header), queryParams, uri and method only", field(f))
		}
	}
	var out []any
	for _, kv := range []struct {
		scope, field string
		from         map[string]v1beta1.StringMatch
	}{{"Header", "headers", m.Headers}, {"Query", "queryParams", m.QueryParams}} {
		keys := make([]string, 0, len(kv.from))
		for k := range kv.from {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			e, err := expr(kv.scope, k, kv.from[k], kv.field+"."+k)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	if m.URI != nil {
		e, err := expr("Path", "", *m.URI, "uri")
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if m.Method != nil {
		e, err := expr("Variable", "request_method", *m.Method, "method")
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, kubeobj.Permanentf("spec.analysis.match[%d]: no condition: give headers, queryParams, uri or method", i)
	}
	return out, nil
}

// apisixSetSplit writes the weights, and the proxy-mirror plugin when mirror is not nil, into every rule of the
// canary route that routes to the primary.
func apisixSetSplit(c *v1beta1.Canary, rules []any, pw, cw int, mirror map[string]any) {
	_, primary, canary := c.ServiceNames()
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		backends, _ := rule["backends"].([]any)
		routesHere := false
		for _, b := range backends {
			m, _ := b.(map[string]any)
			switch m["serviceName"] {
			case primary:
				m["weight"], routesHere = int64(pw), true
			case canary:
				m["weight"] = int64(cw)
			}
		}
		if !routesHere || !apisixMirroring(c) {
			continue
		}
		plugins, _ := rule["plugins"].([]any)
		kept := make([]any, 0, len(plugins)+1)
		for _, p := range plugins {
			if m, _ := p.(map[string]any); m["name"] != "proxy-mirror" {
				kept = append(kept, p)
			}
		}
		if mirror != nil {
			kept = append(kept, map[string]any{"name": "proxy-mirror", "enable": true, "config": mirror})
		}
		if len(kept) == 0 {
			delete(rule, "plugins")
		} else {
			rule["plugins"] = kept
		}
	}
}

// apisixSplit reads the split of the canary route and the proxy-mirror plugin config (nil when not mirrored).
func apisixSplit(c *v1beta1.Canary, u *unstructured.Unstructured) (pw, cw int, mirror map[string]any) {
	_, primary, canary := c.ServiceNames()
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		backends, _, _ := unstructured.NestedSlice(rule, "backends")
		found := false
		for _, b := range backends {
			m, _ := b.(map[string]any)
			switch m["serviceName"] {
			case primary:
				pw, found = num(m["weight"]), true
			case canary:
				cw = num(m["weight"])
			}
		}
		if !found {
			continue
		}
		if p := apisixPlugin(rule, "proxy-mirror"); p != nil && apisixMirroring(c) && p["enable"] != false {
			mirror, _ = p["config"].(map[string]any)
		}
		return pw, cw, mirror
	}
	return 0, 0, nil
}

// apisixObject is the canary route: the template's labels and annotations (as Flagger copies them) under
// canaryflow's marker, with rules, and the template's ingress class.
func apisixObject(c *v1beta1.Canary, tpl *unstructured.Unstructured, rules []any) *unstructured.Unstructured {
	annotations := map[string]string{}
	for k, v := range tpl.GetAnnotations() {
		if k != "kubectl.kubernetes.io/last-applied-configuration" {
			annotations[k] = v
		}
	}
	labels, annotations := kubeobj.Marker(c, tpl.GetLabels(), annotations)
	spec := map[string]any{"http": rules}
	// The controller that serves the template's class must serve the copy too (a field newer than Flagger's type).
	if class, ok, _ := unstructured.NestedString(tpl.Object, "spec", "ingressClassName"); ok && class != "" {
		spec["ingressClassName"] = class
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetName(apisixRouteName(c))
	u.SetNamespace(c.Namespace)
	u.SetLabels(labels)
	u.SetAnnotations(annotations)
	return u
}

// mirrorConfig is the proxy-mirror plugin config that copies the share of requests spec.analysis.mirrorWeight
// asks for to the canary Service. It names the Service's cluster IP: APISIX sends mirrored requests through
// nginx's resolver, which has no DNS search path, so a short Service name would not resolve.
func (a *APISIX) mirrorConfig(ctx context.Context, c *v1beta1.Canary) (map[string]any, error) {
	_, _, canary := c.ServiceNames()
	svc, err := a.kube.CoreV1().Services(c.Namespace).Get(ctx, canary, metav1.GetOptions{})
	if err != nil {
		return nil, kubeobj.APIError("get", "Service", c.Namespace, canary, err)
	}
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == "None" {
		return nil, kubeobj.Permanentf("Service %s/%s has no cluster IP for APISIX to mirror to: canaryflow creates it with one; recreate it", c.Namespace, canary)
	}
	return apisixMirror(c, "http://"+net.JoinHostPort(ip, strconv.Itoa(int(c.Spec.Service.Port)))), nil
}

// apisixMirror is the proxy-mirror config for host with the spec's share of mirrored requests.
func apisixMirror(c *v1beta1.Canary, host string) map[string]any {
	return map[string]any{"host": host, "sample_ratio": float64(mirrorPercent(c)) / 100}
}

// Reconcile makes the canary route a copy of the template's current rule (and A/B matches), keeping its current
// split; a new route starts at 100/0.
func (a *APISIX) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	tpl, rule, err := a.template(ctx, c)
	if err != nil {
		return err
	}
	live, err := a.routes.get(ctx, c.Namespace, apisixRouteName(c))
	if err != nil {
		return err
	}
	rules, err := apisixRules(c, rule)
	if err != nil {
		return err
	}
	if live != nil {
		if pw, cw, mirror := apisixSplit(c, live); pw+cw == 100 {
			if mirror != nil {
				mirror = apisixMirror(c, fmt.Sprint(mirror["host"]))
			}
			apisixSetSplit(c, rules, pw, cw, mirror)
		}
	}
	return a.routes.apply(ctx, apisixObject(c, tpl, rules), true)
}

// SetRoutes writes the split into the canary route: a read and an apply (three requests when mirroring starts,
// to read the canary Service's cluster IP).
func (a *APISIX) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	live, err := a.routes.get(ctx, c.Namespace, apisixRouteName(c))
	if err != nil {
		return err
	}
	if live == nil {
		return a.notReconciled(c)
	}
	var mirror map[string]any
	if mirrored {
		// The cluster IP is read once, when mirroring starts; a Service keeps its cluster IP for life.
		if _, _, mirror = apisixSplit(c, live); mirror != nil {
			mirror = apisixMirror(c, fmt.Sprint(mirror["host"]))
		} else if mirror, err = a.mirrorConfig(ctx, c); err != nil {
			return err
		}
	}
	spec, _, _ := unstructured.NestedMap(live.Object, "spec")
	rules, _ := spec["http"].([]any)
	apisixSetSplit(c, rules, primaryWeight, canaryWeight, mirror)
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	obj.SetName(live.GetName())
	obj.SetNamespace(live.GetNamespace())
	obj.SetLabels(live.GetLabels())
	obj.SetAnnotations(live.GetAnnotations())
	return a.routes.apply(ctx, obj, false)
}

// GetRoutes reads the split back from the canary route.
func (a *APISIX) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	live, err := a.routes.get(ctx, c.Namespace, apisixRouteName(c))
	if err != nil {
		return 0, 0, false, err
	}
	if live == nil {
		return 0, 0, false, a.notReconciled(c)
	}
	pw, cw, mirror := apisixSplit(c, live)
	return pw, cw, mirror != nil, nil
}

// Finalize deletes the canary route, which Flagger leaves to Kubernetes' garbage collector through its owner
// reference; the user's ApisixRoute then routes to the apex Service, which the workload finalisation points at
// the target's pods.
func (a *APISIX) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	return a.routes.remove(ctx, c.Namespace, apisixRouteName(c))
}

func (a *APISIX) notReconciled(c *v1beta1.Canary) error {
	return kubeobj.Permanentf("ApisixRoute %s/%s not found: the router of Canary %s/%s must be reconciled first",
		c.Namespace, apisixRouteName(c), c.Namespace, c.Name)
}
