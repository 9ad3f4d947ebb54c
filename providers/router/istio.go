package router

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

var istioHonours = []string{"spec.service.rewrite", "spec.service.headers", "spec.service.timeout", "spec.service.match",
	"spec.service.hosts", "spec.service.gateways", "spec.service.delegation", "spec.service.trafficPolicy",
	"spec.service.retries", "spec.service.rewrite.uriRegexRewrite", "spec.service.corsPolicy",
	"spec.analysis.sessionAffinity.domain", "spec.analysis.sessionAffinity.path", "spec.analysis.sessionAffinity.sameSite",
	"spec.analysis.sessionAffinity.secure", "spec.analysis.sessionAffinity.httpOnly", "spec.analysis.sessionAffinity.partitioned"}

func init() {
	Register("istio", func(c Clients) Router {
		// networking.istio.io serves v1, v1beta1 and v1alpha3 of the same objects (Flagger writes v1alpha3); the
		// newest served is taken so a cluster that dropped the old versions still works.
		groups := []schema.GroupVersion{{Group: "networking.istio.io", Version: "v1"},
			{Group: "networking.istio.io", Version: "v1beta1"}, {Group: "networking.istio.io", Version: "v1alpha3"}}
		return &Istio{
			vs: &crd{kind: "VirtualService", resource: "virtualservices", dyn: c.Dynamic, disc: c.Discovery, candidates: groups},
			dr: &crd{kind: "DestinationRule", resource: "destinationrules", dyn: c.Dynamic, disc: c.Discovery, candidates: groups},
		}
	}, v1beta1.Traffic{Weights: true, Match: true, Mirror: true, SessionAffinity: true, Honours: istioHonours})
}

// Flagger's names for what it writes into a VirtualService, kept so that a mesh moved from Flagger sees the same
// objects.
const (
	// stickyRouteName names the HTTP route that sends session-affinity cookies to the canary (or expires them).
	stickyRouteName = "sticky-route"
	// originalConfigAnnotation holds the spec of a VirtualService taken over, restored by Finalize.
	originalConfigAnnotation = "flagger.kubernetes.io/original-configuration"
	// lastAppliedAnnotation is kubectl's; when present it already holds the user's spec.
	lastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"
	// TakeOverAnnotation, set to "true" by its owner on a VirtualService canaryflow did not make, lets the istio
	// router take it over (Flagger does so without asking); Finalize gives it back with its original spec.
	TakeOverAnnotation = "canaryflow.io/take-over"
)

// Istio routes as Flagger's Istio router does: DestinationRules "<apex>-primary" and "<apex>-canary" (host and
// spec.service.trafficPolicy) and the VirtualService "<apex>" on spec.service.hosts and gateways (the mesh
// gateway when none), whose HTTP route weights the primary and canary hosts and carries spec.service's match,
// rewrite, timeout, retries, corsPolicy and headers. A/B testing puts a route with spec.analysis.match (merged with
// spec.service.match) ahead of a primary-only route; mirroring sets mirror and mirrorPercentage on the first route;
// session affinity adds Flagger's "sticky-route" on a cookie that canary responses set. TCP services
// (appProtocol tcp) get a weighted tcp route instead.
//
// A VirtualService that exists without canaryflow's marker is refused unless it carries TakeOverAnnotation or
// was made by Flagger for this Canary (an owner reference to it): then canaryflow takes it over, keeping its
// original spec in Flagger's original-configuration annotation, and Finalize restores it.
type Istio struct {
	vs *crd
	dr *crd
}

// Reconcile writes both DestinationRules and the VirtualService, keeping its current split (100/0 when new).
func (i *Istio) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	if err := istioCheck(c); err != nil {
		return err
	}
	_, primary, canary := c.ServiceNames()
	for _, host := range []string{canary, primary} {
		if err := i.reconcileRule(ctx, c, host); err != nil {
			return err
		}
	}
	live, taken, err := i.virtualService(ctx, c)
	if err != nil {
		return err
	}
	pw, cw, mirrored := 100, 0, false
	if live != nil && !taken {
		pw, cw, mirrored = istioSplit(c, live)
		if pw+cw != 100 {
			pw, cw, mirrored = 100, 0, false
		}
	}
	obj, err := istioVirtualService(c, pw, cw, mirrored, live)
	if err != nil {
		return err
	}
	if taken {
		return i.takeOver(ctx, c, live, obj)
	}
	return i.vs.apply(ctx, obj, true)
}

func istioCheck(c *v1beta1.Canary) error {
	s := c.Spec.Service
	if s.Delegation && (len(s.Hosts) > 0 || len(s.Gateways) > 0) {
		return kubeobj.Permanentf("VirtualService %s/%s: spec.service.delegation makes a delegate VirtualService, which has no hosts "+
			"or gateways: remove spec.service.hosts and spec.service.gateways (the root VirtualService names them)", c.Namespace, apexName(c))
	}
	return nil
}

// reconcileRule writes the DestinationRule of one host, as Flagger does: named after the host, with the
// Canary's traffic policy.
func (i *Istio) reconcileRule(ctx context.Context, c *v1beta1.Canary, host string) error {
	spec := map[string]any{"host": host}
	if tp := c.Spec.Service.TrafficPolicy; tp != nil {
		v, err := jsonValue(tp)
		if err != nil {
			return kubeobj.Permanentf("spec.service.trafficPolicy of Canary %s/%s: %v", c.Namespace, c.Name, err)
		}
		spec["trafficPolicy"] = v
	}
	if _, err := i.dr.getOrFlaggers(ctx, c, host); err != nil {
		return err
	}
	obj := newObject(c, spec)
	obj.SetName(host)
	return i.dr.apply(ctx, obj, true)
}

// getOrFlaggers reads an object like get, but also accepts one that Flagger made for the same Canary (an owner
// reference to the flagger.app Canary of that name), so a mesh moved from Flagger keeps its objects.
func (r *crd) getOrFlaggers(ctx context.Context, c *v1beta1.Canary, name string) (*unstructured.Unstructured, error) {
	ri, _, err := r.client(c.Namespace)
	if err != nil {
		return nil, err
	}
	u, err := ri.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, kubeobj.APIError("get", r.kind, c.Namespace, name, err)
	}
	if !kubeobj.IsManaged(u) && !madeByFlagger(u, c) {
		return nil, kubeobj.NotOurs(r.kind, c.Namespace, name, "delete it or rename spec.service.name")
	}
	return u, nil
}

// madeByFlagger reports whether Flagger wrote u for the Canary c.
func madeByFlagger(u *unstructured.Unstructured, c *v1beta1.Canary) bool {
	for _, o := range u.GetOwnerReferences() {
		if strings.HasPrefix(o.APIVersion, "flagger.app/") && o.Kind == "Canary" && o.Name == c.Name {
			return true
		}
	}
	return false
}

// virtualService reads the VirtualService; taken reports one canaryflow may take over and has not yet.
func (i *Istio) virtualService(ctx context.Context, c *v1beta1.Canary) (live *unstructured.Unstructured, taken bool, err error) {
	ri, _, err := i.vs.client(c.Namespace)
	if err != nil {
		return nil, false, err
	}
	u, err := ri.Get(ctx, apexName(c), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, kubeobj.APIError("get", "VirtualService", c.Namespace, apexName(c), err)
	}
	switch {
	case kubeobj.IsManaged(u):
		return u, false, nil
	case u.GetAnnotations()[TakeOverAnnotation] == "true" || madeByFlagger(u, c):
		return u, true, nil
	}
	return nil, false, kubeobj.NotOurs("VirtualService", c.Namespace, apexName(c), fmt.Sprintf(
		"delete it, rename spec.service.name, or annotate it %s: \"true\" to let canaryflow take it over (Finalize restores it)", TakeOverAnnotation))
}

// takeOver replaces the whole spec of a VirtualService canaryflow did not make (an update, so no field of the old
// spec survives, as with Flagger), keeping the old spec in Flagger's annotation unless kubectl's already holds it.
func (i *Istio) takeOver(ctx context.Context, c *v1beta1.Canary, live, obj *unstructured.Unstructured) error {
	next := live.DeepCopy()
	next.Object["spec"] = obj.Object["spec"]
	labels := next.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	for k, v := range obj.GetLabels() {
		labels[k] = v
	}
	annotations := next.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	if _, ok := annotations[lastAppliedAnnotation]; !ok {
		b, err := json.Marshal(live.Object["spec"])
		if err != nil {
			return kubeobj.Permanentf("VirtualService %s/%s: keep its spec: %v", c.Namespace, live.GetName(), err)
		}
		annotations[originalConfigAnnotation] = string(b)
	}
	for k, v := range obj.GetAnnotations() {
		annotations[k] = v
	}
	next.SetLabels(labels)
	next.SetAnnotations(annotations)
	ri, _, err := i.vs.client(c.Namespace)
	if err != nil {
		return err
	}
	_, err = ri.Update(ctx, next, metav1.UpdateOptions{FieldManager: kubeobj.FieldManager})
	return kubeobj.APIError("update", "VirtualService", c.Namespace, live.GetName(), err)
}

// SetRoutes writes the split: one apply request, two with session affinity (its cookie is read back first).
func (i *Istio) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	var live *unstructured.Unstructured
	if sessionAffinity(c) != nil {
		var err error
		if live, err = i.vs.get(ctx, c.Namespace, apexName(c)); err != nil {
			return err
		}
	}
	obj, err := istioVirtualService(c, primaryWeight, canaryWeight, mirrored, live)
	if err != nil {
		return err
	}
	return i.vs.apply(ctx, obj, false)
}

// GetRoutes reads the split back.
func (i *Istio) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	live, err := i.vs.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return 0, 0, false, err
	}
	if live == nil {
		return 0, 0, false, notReconciled("VirtualService", c)
	}
	pw, cw, m := istioSplit(c, live)
	if pw+cw == 0 {
		return 0, 0, false, kubeobj.Permanentf("VirtualService %s/%s has no route to %s: reconcile the router of Canary %s/%s again",
			c.Namespace, apexName(c), c.Namespace+"/"+apexName(c)+"-canary", c.Namespace, c.Name)
	}
	return pw, cw, m, nil
}

// Finalize gives a VirtualService taken over back its original spec (without canaryflow's marker); one canaryflow
// made is pointed at the apex Service, which the workload finalisation points at the target's pods, so hosts and
// gateways keep working. The DestinationRules, which nothing routes to any more, are deleted.
func (i *Istio) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	live, err := i.vs.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return err
	}
	if live != nil {
		if err := i.restore(ctx, c, live); err != nil {
			return err
		}
	}
	_, primary, canary := c.ServiceNames()
	for _, host := range []string{canary, primary} {
		if err := i.dr.remove(ctx, c.Namespace, host); err != nil {
			return err
		}
	}
	return nil
}

func (i *Istio) restore(ctx context.Context, c *v1beta1.Canary, live *unstructured.Unstructured) error {
	a := live.GetAnnotations()
	var stored map[string]any
	switch {
	case a[lastAppliedAnnotation] != "":
		var obj map[string]any
		if err := json.Unmarshal([]byte(a[lastAppliedAnnotation]), &obj); err != nil {
			return kubeobj.Permanentf("VirtualService %s/%s: annotation %s is not JSON: %v", c.Namespace, live.GetName(), lastAppliedAnnotation, err)
		}
		stored, _ = obj["spec"].(map[string]any)
	case a[originalConfigAnnotation] != "":
		if err := json.Unmarshal([]byte(a[originalConfigAnnotation]), &stored); err != nil {
			return kubeobj.Permanentf("VirtualService %s/%s: annotation %s is not JSON: %v", c.Namespace, live.GetName(), originalConfigAnnotation, err)
		}
	default:
		// Made by canaryflow: route everything to the apex Service.
		obj, err := istioVirtualService(c, 100, 0, false, nil)
		if err != nil {
			return err
		}
		apex := istioDestination(c, apexName(c), 100)
		for _, kind := range []string{"http", "tcp"} {
			routes, _ := obj.Object["spec"].(map[string]any)[kind].([]any)
			if len(routes) == 0 {
				continue
			}
			route := routes[len(routes)-1].(map[string]any)
			route["route"] = []any{apex}
			obj.Object["spec"].(map[string]any)[kind] = []any{route}
		}
		return i.vs.apply(ctx, obj, true)
	}
	next := live.DeepCopy()
	next.Object["spec"] = stored
	labels := next.GetLabels()
	delete(labels, kubeobj.ManagedByLabel)
	next.SetLabels(labels)
	for k := range a {
		if strings.HasPrefix(k, "canaryflow.io/") || k == originalConfigAnnotation {
			delete(a, k)
		}
	}
	next.SetAnnotations(a)
	ri, _, err := i.vs.client(c.Namespace)
	if err != nil {
		return err
	}
	_, err = ri.Update(ctx, next, metav1.UpdateOptions{FieldManager: kubeobj.FieldManager})
	return kubeobj.APIError("update", "VirtualService", c.Namespace, live.GetName(), err)
}

// istioVirtualService builds the whole VirtualService for a split. live (read with session affinity) carries
// the cookie.
func istioVirtualService(c *v1beta1.Canary, pw, cw int, mirrored bool, live *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	s := c.Spec.Service
	apex, primary, canary := c.ServiceNames()
	hosts := slices.Clone(s.Hosts)
	if !slices.Contains(hosts, apex) && !slices.Contains(hosts, "*") {
		hosts = append(hosts, apex)
	}
	gateways := slices.Clone(s.Gateways)
	if len(gateways) == 0 {
		gateways = []string{"mesh"}
	}
	spec := map[string]any{}
	if !s.Delegation { // a delegate VirtualService has neither
		spec["hosts"] = strs(hosts)
		spec["gateways"] = strs(gateways)
	}
	weighted := []any{istioDestination(c, primary, pw), istioDestination(c, canary, cw)}
	annotations := map[string]string{}

	if strings.EqualFold(s.AppProtocol, "tcp") {
		route := map[string]any{"route": weighted}
		var match []any
		for _, m := range s.Match {
			match = append(match, map[string]any{"port": int64(m.Port)})
		}
		if len(match) > 0 {
			route["match"] = match
		}
		spec["tcp"] = []any{route}
		return istioObject(c, spec, annotations), nil
	}

	svcMatch, err := istioMatches(s.Match)
	if err != nil {
		return nil, err
	}
	base, err := istioRoute(c, svcMatch)
	if err != nil {
		return nil, err
	}
	route := func(match []any, dest []any) map[string]any {
		r := runtime.DeepCopyJSON(base)
		if match != nil {
			r["match"] = match
		} else {
			delete(r, "match")
		}
		r["route"] = dest
		return r
	}
	first := route(svcMatch, weighted)
	http := []any{first}

	var ab []v1beta1.HTTPMatchRequest
	if a := c.Spec.Analysis; a != nil {
		ab = a.Match
	}
	switch sa := sessionAffinity(c); {
	case len(ab) > 0:
		abMatch, err := istioMatches(ab)
		if err != nil {
			return nil, err
		}
		first = route(mergeIstioMatches(abMatch, svcMatch), weighted)
		// Flagger writes the primary's weight on the fallback route; as its only destination it gets all
		// traffic whatever the weight, and 100 says so.
		http = []any{first, route(svcMatch, []any{istioDestination(c, primary, 100)})}
	case sa != nil:
		var current, previous string
		if live != nil {
			current, previous = live.GetAnnotations()[cookieAnnotation], live.GetAnnotations()[previousCookieAnnotation]
		}
		attrs := cookieAttributes(sa)
		if cw == 0 {
			if current != "" {
				previous = current
			}
			if previous != "" {
				annotations[previousCookieAnnotation] = previous
				sticky := route(mergeIstioMatches([]any{istioCookieMatch(previous)}, svcMatch), weighted)
				sticky["name"] = stickyRouteName
				addHeader(sticky, "Set-Cookie", previous+"; Max-Age=-1"+attrs)
				http = []any{sticky, first}
			}
			break
		}
		if current == "" || !strings.HasPrefix(current, sa.CookieName+"=") {
			current = sa.CookieName + "=" + token()
		}
		annotations[cookieAnnotation] = current
		if previous != "" {
			annotations[previousCookieAnnotation] = previous
		}
		age := fmt.Sprintf("; Max-Age=%d", sa.MaxAge) + attrs
		canaryDest := istioDestination(c, canary, cw)
		addHeader(canaryDest, "Set-Cookie", current+age)
		weighted = []any{istioDestination(c, primary, pw), canaryDest}
		sticky := route(mergeIstioMatches([]any{istioCookieMatch(current)}, svcMatch),
			[]any{istioDestination(c, primary, 0), istioDestination(c, canary, 100)})
		sticky["name"] = stickyRouteName
		http = []any{sticky}
		if sa.PrimaryCookieName != "" {
			_, value, _ := strings.Cut(current, "=")
			pc := sa.PrimaryCookieName + "=" + value
			addHeader(weighted[0].(map[string]any), "Set-Cookie", pc+age)
			pinned := route(mergeIstioMatches([]any{istioCookieMatch(pc)}, svcMatch),
				[]any{istioDestination(c, primary, 100), istioDestination(c, canary, 0)})
			pinned["name"] = stickyRouteName + "-primary"
			http = append(http, pinned)
		}
		first = route(svcMatch, weighted)
		http = append(http, first)
	}
	if mirrored {
		head := http[0].(map[string]any)
		head["mirror"] = map[string]any{"host": canary}
		if a := c.Spec.Analysis; a != nil && a.MirrorWeight > 0 {
			head["mirrorPercentage"] = map[string]any{"value": int64(a.MirrorWeight)}
		}
	}
	spec["http"] = http
	return istioObject(c, spec, annotations), nil
}

func istioObject(c *v1beta1.Canary, spec map[string]any, annotations map[string]string) *unstructured.Unstructured {
	obj := newObject(c, spec)
	a := obj.GetAnnotations()
	for k, v := range fluxAnnotations { // Flagger's, so Flux does not revert the VirtualService
		a[k] = v
	}
	for k, v := range annotations {
		a[k] = v
	}
	obj.SetAnnotations(a)
	return obj
}

// istioRoute is the HTTP route of spec.service without destinations: rewrite, timeout, retries, corsPolicy and
// headers, as Flagger copies them onto every route it writes.
func istioRoute(c *v1beta1.Canary, match []any) (map[string]any, error) {
	s := c.Spec.Service
	r := map[string]any{}
	if match != nil {
		r["match"] = match
	}
	if s.Rewrite != nil { // Flagger's GetIstioRewrite: the Gateway API type is not Istio's (validation warns)
		rw := map[string]any{}
		if s.Rewrite.URI != "" {
			rw["uri"] = s.Rewrite.URI
		}
		if s.Rewrite.Authority != "" {
			rw["authority"] = s.Rewrite.Authority
		}
		if s.Rewrite.URIRegexRewrite != nil {
			v, err := jsonValue(s.Rewrite.URIRegexRewrite)
			if err != nil {
				return nil, err
			}
			rw["uriRegexRewrite"] = v
		}
		r["rewrite"] = rw
	}
	if s.Timeout != "" {
		r["timeout"] = s.Timeout
	}
	for _, f := range []struct {
		name string
		set  bool
		v    any
	}{{"retries", s.Retries != nil, s.Retries}, {"corsPolicy", s.CorsPolicy != nil, s.CorsPolicy}, {"headers", s.Headers != nil, s.Headers}} {
		if !f.set {
			continue
		}
		j, err := jsonValue(f.v)
		if err != nil {
			return nil, kubeobj.Permanentf("spec.service.%s of Canary %s/%s: %v", f.name, c.Namespace, c.Name, err)
		}
		r[f.name] = j
	}
	return r, nil
}

// istioDestination is Flagger's makeDestination: the host, its port only with portDiscovery behind a gateway
// other than the mesh (or delegated), and the weight, 0 included.
func istioDestination(c *v1beta1.Canary, host string, weight int) map[string]any {
	s := c.Spec.Service
	dest := map[string]any{"host": host}
	if s.PortDiscovery && (len(s.Gateways) > 0 && s.Gateways[0] != "mesh" || s.Delegation) {
		dest["port"] = map[string]any{"number": int64(s.Port)}
	}
	return map[string]any{"destination": dest, "weight": int64(weight)}
}

// istioMatches is spec.*.match as Istio's HTTPMatchRequest (the same fields, taken from Istio by Flagger).
func istioMatches(in []v1beta1.HTTPMatchRequest) ([]any, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]any, 0, len(in))
	for _, m := range in {
		v, err := jsonValue(m)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// mergeIstioMatches is Flagger's mergeMatchConditions: every A/B match combined with every service match, the
// A/B match's headers and sourceLabels replacing the service match's.
func mergeIstioMatches(ab, svc []any) []any {
	if len(svc) == 0 {
		return ab
	}
	var out []any
	for _, a := range ab {
		am := a.(map[string]any)
		for _, d := range svc {
			m := runtime.DeepCopyJSONValue(d).(map[string]any)
			for _, k := range []string{"headers", "sourceLabels"} {
				if v, ok := am[k]; ok {
					m[k] = runtime.DeepCopyJSONValue(v)
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// istioCookieMatch is Flagger's: the Cookie header matching ".*<name>.*<value>.*".
func istioCookieMatch(cookie string) map[string]any {
	name, value, _ := strings.Cut(cookie, "=")
	return map[string]any{"headers": map[string]any{
		"Cookie": map[string]any{"regex": ".*" + regexp.QuoteMeta(name) + ".*" + regexp.QuoteMeta(value) + ".*"},
	}}
}

// addHeader adds a response header to a route or a destination, over the headers it has.
func addHeader(to map[string]any, name, value string) {
	h, _ := to["headers"].(map[string]any)
	if h == nil {
		h = map[string]any{}
	}
	resp, _ := h["response"].(map[string]any)
	if resp == nil {
		resp = map[string]any{}
	}
	add, _ := resp["add"].(map[string]any)
	if add == nil {
		add = map[string]any{}
	}
	add[name] = value
	resp["add"] = add
	h["response"] = resp
	to["headers"] = h
}

// istioSplit reads the split of a VirtualService as Flagger does: the weights of the first route that is not the
// sticky route and names the canary host, and whether that route mirrors.
func istioSplit(c *v1beta1.Canary, u *unstructured.Unstructured) (pw, cw int, mirrored bool) {
	_, primary, canary := c.ServiceNames()
	for _, kind := range []string{"http", "tcp"} {
		routes, _, _ := unstructured.NestedSlice(u.Object, "spec", kind)
		for _, r := range routes {
			route, _ := r.(map[string]any)
			if name, _ := route["name"].(string); strings.HasPrefix(name, stickyRouteName) {
				continue
			}
			dests, _ := route["route"].([]any)
			found := false
			for _, d := range dests {
				host, _, _ := unstructured.NestedString(d.(map[string]any), "destination", "host")
				found = found || host == canary
			}
			if !found {
				continue
			}
			for _, d := range dests {
				dm := d.(map[string]any)
				switch host, _, _ := unstructured.NestedString(dm, "destination", "host"); host {
				case primary:
					pw = num(dm["weight"])
				case canary:
					cw = num(dm["weight"])
				}
			}
			_, m := route["mirror"]
			return pw, cw, m
		}
	}
	return 0, 0, false
}

// jsonValue turns a spec value into the JSON value an unstructured object holds.
func jsonValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func strs(in []string) []any {
	out := make([]any, len(in))
	for i, s := range in {
		out[i] = s
	}
	return out
}
