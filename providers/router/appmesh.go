package router

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

func init() {
	Register("appmesh", func(c Clients) Router {
		gv := []schema.GroupVersion{{Group: "appmesh.k8s.aws", Version: "v1beta2"}}
		return &AppMesh{
			nodes:    &crd{kind: "VirtualNode", resource: "virtualnodes", dyn: c.Dynamic, disc: c.Discovery, candidates: gv},
			routers:  &crd{kind: "VirtualRouter", resource: "virtualrouters", dyn: c.Dynamic, disc: c.Discovery, candidates: gv},
			services: &crd{kind: "VirtualService", resource: "virtualservices", dyn: c.Dynamic, disc: c.Discovery, candidates: gv},
			kube:     c.Kube,
		}
	}, v1beta1.Traffic{Weights: true, Match: true, Honours: []string{"spec.service.timeout", "spec.service.retries",
		"spec.service.hosts", "spec.service.backends", "spec.service.match"}})
}

// appmeshAccessLogAnnotation "enabled" on the Canary makes the VirtualNodes' Envoy log every request to stdout,
// as Flagger does.
const appmeshAccessLogAnnotation = "appmesh.flagger.app/accesslog"

// appmeshMaxMatches bounds spec.analysis.match: the A/B routes take priorities 10 to 19, below the fallback's 20.
const appmeshMaxMatches = 10

// AppMesh routes as Flagger's appmesh:v1beta2 router does, with the App Mesh controller's CRDs
// (appmesh.k8s.aws/v1beta2): VirtualNodes "<apex>-primary" and "<apex>-canary" selecting the pods of the primary
// and canary Services and discovered by their DNS names; a VirtualRouter and a VirtualService "<apex>" whose
// route splits traffic between the two nodes; and a VirtualRouter and VirtualService "<apex>-canary" sending all
// to the canary node. spec.service.timeout, retries (default: gateway-error, 250 ms per try, as Flagger),
// backends (VirtualService names or ARNs), hosts (the App Mesh gateway annotations), the URI prefix of
// spec.service.match[0] and the Canary's appmesh.flagger.app/accesslog annotation are written as Flagger writes
// them.
//
// A/B testing: each of spec.analysis.match is a route of its own ("<apex>-a", "<apex>-a-2", …, priorities from
// 10) carrying the split, matching headers (exact, prefix, suffix, regex), withoutHeaders (inverted), exact query
// parameters, the method and the URI; route "<apex>-b" (priority 20) sends every other request to the primary.
// Flagger writes one "-a" route ANDing the headers of every match. Mirroring and session affinity are refused at
// validation: App Mesh routes have neither. Finalize deletes all six objects (Flagger leaves them to the garbage
// collector); the mesh's clients then need a VirtualService of their own for the apex name.
type AppMesh struct {
	nodes, routers, services *crd
	kube                     kubernetes.Interface
}

// appmeshPort is the port the nodes listen on: the container port (spec.service.targetPort when a number),
// else spec.service.port, as Flagger picks it.
func appmeshPort(c *v1beta1.Canary) int64 {
	if p := c.Spec.Service.TargetPort.IntValue(); p > 0 {
		return int64(p)
	}
	return int64(c.Spec.Service.Port)
}

func appmeshProtocol(c *v1beta1.Canary) string {
	if strings.Contains(c.Spec.Service.PortName, "grpc") {
		return "grpc"
	}
	return "http"
}

func appmeshTimeout(c *v1beta1.Canary) map[string]any {
	d, err := time.ParseDuration(c.Spec.Service.Timeout)
	if c.Spec.Service.Timeout == "" || err != nil {
		return nil
	}
	return map[string]any{"perRequest": map[string]any{"unit": "ms", "value": d.Milliseconds()}}
}

func appmeshRetryPolicy(c *v1beta1.Canary) map[string]any {
	r := c.Spec.Service.Retries
	if r == nil {
		return nil
	}
	timeout := int64(250)
	if d, err := time.ParseDuration(r.PerTryTimeout); err == nil {
		timeout = d.Milliseconds()
	}
	attempts := int64(1)
	if r.Attempts > 0 {
		attempts = int64(r.Attempts)
	}
	events := []any{"gateway-error"}
	if r.RetryOn != "" {
		events = nil
		for _, e := range strings.Split(r.RetryOn, ",") {
			events = append(events, strings.TrimSpace(e))
		}
	}
	return map[string]any{"maxRetries": attempts, "perRetryTimeout": map[string]any{"unit": "ms", "value": timeout},
		"httpRetryEvents": events}
}

// appmeshPrefix is the route prefix: spec.service.match[0].uri.prefix, else "/" (App Mesh's routes match one
// prefix each).
func appmeshPrefix(c *v1beta1.Canary) string {
	if m := c.Spec.Service.Match; len(m) > 0 && m[0].URI != nil && m[0].URI.Prefix != "" {
		return m[0].URI.Prefix
	}
	return "/"
}

// appmeshRoute is an HTTP route with match, sending weights to the nodes (nil weights: all to the primary).
func appmeshRoute(c *v1beta1.Canary, name string, match map[string]any, targets []any) map[string]any {
	http := map[string]any{"match": match, "action": map[string]any{"weightedTargets": targets}}
	if t := appmeshTimeout(c); t != nil {
		http["timeout"] = t
	}
	if r := appmeshRetryPolicy(c); r != nil {
		http["retryPolicy"] = r
	}
	return map[string]any{"name": name, "httpRoute": http}
}

func appmeshTargets(c *v1beta1.Canary, primaryWeight, canaryWeight int) []any {
	_, primary, canary := c.ServiceNames()
	return []any{
		map[string]any{"virtualNodeRef": map[string]any{"name": canary}, "weight": int64(canaryWeight)},
		map[string]any{"virtualNodeRef": map[string]any{"name": primary}, "weight": int64(primaryWeight)},
	}
}

// appmeshRoutes is the apex VirtualRouter's routes for a split.
func appmeshRoutes(c *v1beta1.Canary, primaryWeight, canaryWeight int) ([]any, error) {
	apex, primary, _ := c.ServiceNames()
	prefix := map[string]any{"prefix": appmeshPrefix(c)}
	if !isAB(c) {
		return []any{appmeshRoute(c, apex, prefix, appmeshTargets(c, primaryWeight, canaryWeight))}, nil
	}
	matches := c.Spec.Analysis.Match
	if len(matches) > appmeshMaxMatches {
		return nil, kubeobj.Permanentf("spec.analysis.match: provider appmesh takes at most %d matches, not %d", appmeshMaxMatches, len(matches))
	}
	var routes []any
	for i, m := range matches {
		match, err := appmeshMatch(c, i, m)
		if err != nil {
			return nil, err
		}
		name := apex + "-a"
		if i > 0 {
			name = fmt.Sprintf("%s-a-%d", apex, i+1)
		}
		r := appmeshRoute(c, name, match, appmeshTargets(c, primaryWeight, canaryWeight))
		r["priority"] = int64(10 + i)
		routes = append(routes, r)
	}
	b := appmeshRoute(c, apex+"-b", prefix, []any{map[string]any{"virtualNodeRef": map[string]any{"name": primary}, "weight": int64(100)}})
	b["priority"] = int64(20)
	return append(routes, b), nil
}

// appmeshMatch writes one of Flagger's request matches as an App Mesh HTTP route match, all of whose conditions
// must hold.
func appmeshMatch(c *v1beta1.Canary, i int, m v1beta1.HTTPMatchRequest) (map[string]any, error) {
	field := func(f string) string { return fmt.Sprintf("spec.analysis.match[%d].%s", i, f) }
	for f, unsupported := range map[string]bool{
		"scheme": m.Scheme != nil, "authority": m.Authority != nil, "port": m.Port != 0,
		"sourceLabels": len(m.SourceLabels) > 0, "gateways": len(m.Gateways) > 0, "ignoreUriCase": m.IgnoreURICase,
		"sourceNamespace": m.SourceNamespace != "",
	} {
		if unsupported {
			return nil, kubeobj.Permanentf("%s: provider appmesh matches headers, cookies (the cookie header), withoutHeaders, queryParams (exact), uri and method only", field(f))
		}
	}
	match := map[string]any{"prefix": appmeshPrefix(c)}
	var headers []any
	for _, kv := range []struct {
		from   map[string]v1beta1.StringMatch
		f      string
		invert bool
	}{{m.Headers, "headers", false}, {m.WithoutHeaders, "withoutHeaders", true}} {
		keys := make([]string, 0, len(kv.from))
		for k := range kv.from {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sm := kv.from[k]
			hm := map[string]any{}
			switch {
			case sm.Exact != "":
				hm["exact"] = sm.Exact
			case sm.Prefix != "":
				hm["prefix"] = sm.Prefix
			case sm.Suffix != "":
				hm["suffix"] = sm.Suffix
			case sm.Regex != "":
				hm["regex"] = sm.Regex
			default:
				return nil, kubeobj.Permanentf("%s.%s: empty match: give exact, prefix, suffix or regex", field(kv.f), k)
			}
			h := map[string]any{"name": k, "match": hm}
			if kv.invert {
				h["invert"] = true
			}
			headers = append(headers, h)
		}
	}
	if len(headers) > 0 {
		match["headers"] = headers
	}
	keys := make([]string, 0, len(m.QueryParams))
	for k := range m.QueryParams {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var query []any
	for _, k := range keys {
		if m.QueryParams[k].Exact == "" {
			return nil, kubeobj.Permanentf("%s.%s: App Mesh matches query parameters exactly only", field("queryParams"), k)
		}
		query = append(query, map[string]any{"name": k, "match": map[string]any{"exact": m.QueryParams[k].Exact}})
	}
	if len(query) > 0 {
		match["queryParameters"] = query
	}
	if m.Method != nil {
		if m.Method.Exact == "" {
			return nil, kubeobj.Permanentf("%s: App Mesh matches methods exactly only", field("method"))
		}
		match["method"] = strings.ToUpper(m.Method.Exact)
	}
	if u := m.URI; u != nil {
		switch {
		case u.Prefix != "":
			match["prefix"] = u.Prefix
		case u.Exact != "":
			delete(match, "prefix")
			match["path"] = map[string]any{"exact": u.Exact}
		case u.Regex != "":
			delete(match, "prefix")
			match["path"] = map[string]any{"regex": u.Regex}
		default:
			return nil, kubeobj.Permanentf("%s: App Mesh matches a URI by prefix, exact path or regex", field("uri"))
		}
	}
	if len(match) == 1 && match["prefix"] == appmeshPrefix(c) {
		return nil, kubeobj.Permanentf("spec.analysis.match[%d]: no condition: give headers, withoutHeaders, queryParams, uri or method", i)
	}
	return match, nil
}

func appmeshListener(c *v1beta1.Canary) map[string]any {
	return map[string]any{"portMapping": map[string]any{"port": appmeshPort(c), "protocol": appmeshProtocol(c)}}
}

// node is a VirtualNode for the pods of Service svc, reached at its DNS name.
func (a *AppMesh) node(ctx context.Context, c *v1beta1.Canary, svc string) (*unstructured.Unstructured, error) {
	s, err := a.kube.CoreV1().Services(c.Namespace).Get(ctx, svc, metav1.GetOptions{})
	if err != nil {
		return nil, kubeobj.APIError("get", "Service", c.Namespace, svc, err)
	}
	selector := map[string]any{}
	for k, v := range s.Spec.Selector {
		selector[k] = v
	}
	listener := appmeshListener(c)
	if t := appmeshTimeout(c); t != nil {
		listener["timeout"] = map[string]any{"http": t}
	}
	spec := map[string]any{
		"listeners":        []any{listener},
		"serviceDiscovery": map[string]any{"dns": map[string]any{"hostname": fmt.Sprintf("%s.%s.svc.cluster.local.", svc, c.Namespace)}},
		"podSelector":      map[string]any{"matchLabels": selector},
	}
	var backends []any
	for _, b := range c.Spec.Service.Backends {
		if strings.HasPrefix(b, "arn:aws") {
			backends = append(backends, map[string]any{"virtualService": map[string]any{"virtualServiceARN": b}})
		} else {
			backends = append(backends, map[string]any{"virtualService": map[string]any{"virtualServiceRef": map[string]any{"name": b}}})
		}
	}
	if len(backends) > 0 {
		spec["backends"] = backends
	}
	if c.Annotations[appmeshAccessLogAnnotation] == "enabled" {
		spec["logging"] = map[string]any{"accessLog": map[string]any{"file": map[string]any{"path": "/dev/stdout"}}}
	}
	u := newObject(c, spec)
	u.SetName(svc)
	withFluxAnnotations(u)
	return u, nil
}

// router is a VirtualRouter named name with routes.
func appmeshRouter(c *v1beta1.Canary, name string, routes []any) *unstructured.Unstructured {
	u := newObject(c, map[string]any{"listeners": []any{appmeshListener(c)}, "routes": routes})
	u.SetName(name)
	return u
}

// service is the VirtualService named name provided by the VirtualRouter of that name; the apex one carries the
// App Mesh gateway annotations for spec.service.hosts, as Flagger writes them.
func appmeshService(c *v1beta1.Canary, name string) *unstructured.Unstructured {
	u := newObject(c, map[string]any{"provider": map[string]any{"virtualRouter": map[string]any{"virtualRouterRef": map[string]any{"name": name}}}})
	u.SetName(name)
	if name == apexName(c) && len(c.Spec.Service.Hosts) > 0 {
		a := u.GetAnnotations()
		a["gateway.appmesh.k8s.aws/expose"] = "true"
		a["gateway.appmesh.k8s.aws/domain"] = strings.Join(c.Spec.Service.Hosts, ",") + ","
		if c.Spec.Service.Timeout != "" {
			a["gateway.appmesh.k8s.aws/timeout"] = c.Spec.Service.Timeout
		}
		if r := c.Spec.Service.Retries; r != nil && r.Attempts > 0 {
			a["gateway.appmesh.k8s.aws/retries"] = strconv.Itoa(r.Attempts)
		}
		u.SetAnnotations(a)
	}
	return u
}

// appmeshSplit reads the split of the apex VirtualRouter's first route.
func appmeshSplit(c *v1beta1.Canary, u *unstructured.Unstructured) (primaryWeight, canaryWeight int) {
	_, primary, canary := c.ServiceNames()
	routes, _, _ := unstructured.NestedSlice(u.Object, "spec", "routes")
	if len(routes) == 0 {
		return 0, 0
	}
	targets, _, _ := unstructured.NestedSlice(routes[0].(map[string]any), "httpRoute", "action", "weightedTargets")
	for _, t := range targets {
		m, _ := t.(map[string]any)
		name, _, _ := unstructured.NestedString(m, "virtualNodeRef", "name")
		switch name {
		case primary:
			primaryWeight = num(m["weight"])
		case canary:
			canaryWeight = num(m["weight"])
		}
	}
	return primaryWeight, canaryWeight
}

// Reconcile writes the two VirtualNodes, the two VirtualRouters and the two VirtualServices, keeping the apex
// router's current split; a new one starts at 100/0.
func (a *AppMesh) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	apex, primary, canary := c.ServiceNames()
	live, err := a.routers.get(ctx, c.Namespace, apex)
	if err != nil {
		return err
	}
	pw, cw := 100, 0
	if live != nil {
		if p, q := appmeshSplit(c, live); p+q == 100 {
			pw, cw = p, q
		}
	}
	routes, err := appmeshRoutes(c, pw, cw)
	if err != nil {
		return err
	}
	// Every object is read before the first write, so one of someone else's is refused with nothing written.
	for _, o := range []struct {
		r    *crd
		name string
	}{{a.nodes, primary}, {a.nodes, canary}, {a.routers, canary}, {a.services, apex}, {a.services, canary}} {
		if _, err := o.r.get(ctx, c.Namespace, o.name); err != nil {
			return err
		}
	}
	for _, svc := range []string{primary, canary} {
		n, err := a.node(ctx, c, svc)
		if err != nil {
			return err
		}
		if err := a.nodes.apply(ctx, n, true); err != nil {
			return err
		}
	}
	canaryRoutes := []any{appmeshRoute(c, canary, map[string]any{"prefix": appmeshPrefix(c)}, appmeshTargets(c, 0, 100))}
	if err := a.routers.apply(ctx, appmeshRouter(c, canary, canaryRoutes), true); err != nil {
		return err
	}
	if err := a.routers.apply(ctx, appmeshRouter(c, apex, routes), true); err != nil {
		return err
	}
	for _, name := range []string{canary, apex} {
		if err := a.services.apply(ctx, appmeshService(c, name), true); err != nil {
			return err
		}
	}
	return nil
}

// SetRoutes writes the split into the apex VirtualRouter: a read and an apply.
func (a *AppMesh) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, _ bool) error {
	live, err := a.routers.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return err
	}
	if live == nil {
		return notReconciled("VirtualRouter", c)
	}
	routes, err := appmeshRoutes(c, primaryWeight, canaryWeight)
	if err != nil {
		return err
	}
	return a.routers.apply(ctx, appmeshRouter(c, apexName(c), routes), false)
}

// GetRoutes reads the split back from the apex VirtualRouter.
func (a *AppMesh) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	live, err := a.routers.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return 0, 0, false, err
	}
	if live == nil {
		return 0, 0, false, notReconciled("VirtualRouter", c)
	}
	pw, cw := appmeshSplit(c, live)
	return pw, cw, false, nil
}

// Finalize deletes the VirtualServices, then the VirtualRouters they name, then the VirtualNodes those route to.
func (a *AppMesh) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	apex, primary, canary := c.ServiceNames()
	for _, step := range []struct {
		r     *crd
		names []string
	}{{a.services, []string{apex, canary}}, {a.routers, []string{apex, canary}}, {a.nodes, []string{primary, canary}}} {
		for _, name := range step.names {
			if err := step.r.remove(ctx, c.Namespace, name); err != nil {
				return err
			}
		}
	}
	return nil
}
