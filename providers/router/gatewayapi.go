package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// gatewayAPIHonours are the optional Canary fields the HTTPRoute carries (Flagger's Gateway API router's set).
var gatewayAPIHonours = []string{"spec.service.backendTimeout", "spec.service.mirror", "spec.service.rewrite", "spec.service.rewrite.type",
	"spec.service.headers", "spec.service.timeout", "spec.service.match", "spec.service.gatewayRefs", "spec.service.hosts",
	"spec.analysis.sessionAffinity.domain", "spec.analysis.sessionAffinity.path", "spec.analysis.sessionAffinity.sameSite",
	"spec.analysis.sessionAffinity.secure", "spec.analysis.sessionAffinity.httpOnly", "spec.analysis.sessionAffinity.partitioned"}

func init() {
	Register("gatewayapi", func(c Clients) Router {
		return &GatewayAPI{crd: &crd{
			kind: "HTTPRoute", resource: "httproutes", dyn: c.Dynamic, disc: c.Discovery,
			candidates: []schema.GroupVersion{{Group: "gateway.networking.k8s.io", Version: "v1"}, {Group: "gateway.networking.k8s.io", Version: "v1beta1"}},
		}}
	}, v1beta1.Traffic{Weights: true, Match: true, Mirror: true, SessionAffinity: true, Honours: gatewayAPIHonours})
}

// Annotations of the HTTPRoute that keep the session affinity cookie between calls (Flagger keeps them in the
// Canary's status, which canaryflow does not have in the cluster).
const (
	cookieAnnotation         = "canaryflow.io/session-cookie"
	previousCookieAnnotation = "canaryflow.io/previous-session-cookie"
)

// GatewayAPI routes with an HTTPRoute (gateway.networking.k8s.io/v1) named after the apex Service, attached to
// spec.service.gatewayRefs: weighted backendRefs, A/B header/query matches, a RequestMirror filter for mirroring
// and cookie-based session affinity, as Flagger writes them.
type GatewayAPI struct {
	crd *crd
}

// Reconcile makes the HTTPRoute exist and match the spec, keeping its current split.
func (g *GatewayAPI) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	live, err := g.crd.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return err
	}
	pw, cw, mirrored := 100, 0, false
	if live != nil {
		pw, cw, mirrored = httpRouteSplit(c, live)
		if pw+cw != 100 {
			pw, cw, mirrored = 100, 0, false
		}
	}
	obj, err := httpRoute(c, pw, cw, mirrored, live)
	if err != nil {
		return err
	}
	return g.crd.apply(ctx, obj, true)
}

// SetRoutes writes the split: one apply request, two with session affinity (its cookie is read back first).
func (g *GatewayAPI) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	var live *unstructured.Unstructured
	if sessionAffinity(c) != nil {
		var err error
		if live, err = g.crd.get(ctx, c.Namespace, apexName(c)); err != nil {
			return err
		}
	}
	obj, err := httpRoute(c, primaryWeight, canaryWeight, mirrored, live)
	if err != nil {
		return err
	}
	return g.crd.apply(ctx, obj, false)
}

// GetRoutes reads the split back.
func (g *GatewayAPI) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	live, err := g.crd.get(ctx, c.Namespace, apexName(c))
	if err != nil {
		return 0, 0, false, err
	}
	if live == nil {
		return 0, 0, false, notReconciled("HTTPRoute", c)
	}
	pw, cw, m := httpRouteSplit(c, live)
	return pw, cw, m, nil
}

// Finalize points the HTTPRoute at the apex Service, which the workload finalisation points at the target's pods.
func (g *GatewayAPI) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	live, err := g.crd.get(ctx, c.Namespace, apexName(c))
	if err != nil || live == nil {
		return err
	}
	svcMatches, err := gwMatches(c.Spec.Service.Match)
	if err != nil {
		return err
	}
	rule := gwRule(c, svcMatches, []any{gwBackend(apexName(c), c.Spec.Service.Port, 100, nil)})
	return g.crd.apply(ctx, newObject(c, gwSpec(c, []any{rule})), true)
}

func sessionAffinity(c *v1beta1.Canary) *v1beta1.SessionAffinity {
	if a := c.Spec.Analysis; a != nil && a.SessionAffinity != nil && a.SessionAffinity.CookieName != "" {
		return a.SessionAffinity
	}
	return nil
}

// httpRoute builds the whole HTTPRoute for a split. live (read only with session affinity) carries the cookie.
func httpRoute(c *v1beta1.Canary, pw, cw int, mirrored bool, live *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	_, primary, canary := c.ServiceNames()
	port := c.Spec.Service.Port
	svcMatches, err := gwMatches(c.Spec.Service.Match)
	if err != nil {
		return nil, err
	}
	if len(svcMatches) == 0 {
		svcMatches = []map[string]any{{"path": map[string]any{"type": "PathPrefix", "value": "/"}}}
	}
	var abMatches []map[string]any
	if a := c.Spec.Analysis; a != nil && len(a.Match) > 0 {
		if abMatches, err = gwMatches(a.Match); err != nil {
			return nil, err
		}
	}

	weighted := gwRule(c, svcMatches, []any{gwBackend(primary, port, pw, nil), gwBackend(canary, port, cw, nil)})
	if mirrored {
		mirror := map[string]any{"backendRef": map[string]any{"group": "", "kind": "Service", "name": canary, "port": int64(port)}}
		if p := mirrorPercent(c); p < 100 {
			mirror["percent"] = int64(p)
		}
		weighted["filters"] = append(weighted["filters"].([]any), map[string]any{"type": "RequestMirror", "requestMirror": mirror})
	}
	rules := []any{weighted}
	annotations := map[string]string{}

	switch sa := sessionAffinity(c); {
	case len(abMatches) > 0:
		// A/B: the split applies to matching requests; every other request goes to the primary.
		weighted["matches"] = toAny(mergeMatches(abMatches, svcMatches))
		rules = append(rules, gwRule(c, svcMatches, []any{gwBackend(primary, port, 100, nil)}))
	case sa != nil:
		var err error
		if rules, err = stickyRules(c, sa, cw, weighted, svcMatches, live, annotations); err != nil {
			return nil, err
		}
	}
	obj := newObject(c, gwSpec(c, rules))
	if len(annotations) > 0 {
		a := obj.GetAnnotations()
		for k, v := range annotations {
			a[k] = v
		}
		obj.SetAnnotations(a)
	}
	return obj, nil
}

// stickyRules is Flagger's cookie affinity: while the canary gets traffic, its responses set a cookie and a rule
// ahead of the weighted one sends requests carrying it to the canary; at weight 0 that rule sends them to the
// primary and expires the cookie. With primaryCookieName, primary responses set that cookie and a rule keeps
// those clients on the primary.
func stickyRules(c *v1beta1.Canary, sa *v1beta1.SessionAffinity, cw int, weighted map[string]any, svcMatches []map[string]any,
	live *unstructured.Unstructured, annotations map[string]string) ([]any, error) {
	_, primary, canary := c.ServiceNames()
	port := c.Spec.Service.Port
	var current, previous string
	if live != nil {
		current, previous = live.GetAnnotations()[cookieAnnotation], live.GetAnnotations()[previousCookieAnnotation]
	}
	attrs := cookieAttributes(sa)
	if cw == 0 {
		if current != "" {
			previous = current
		}
		if previous == "" {
			return []any{weighted}, nil
		}
		annotations[previousCookieAnnotation] = previous
		expire := gwRule(c, mergeMatches([]map[string]any{cookieMatch(previous)}, svcMatches), weighted["backendRefs"].([]any))
		// A browser deletes a cookie only when Path and Domain match the ones it was set with.
		expire["filters"] = append(expire["filters"].([]any), setCookie(previous+"; Max-Age=-1"+attrs))
		return []any{expire, weighted}, nil
	}
	if current == "" || !strings.HasPrefix(current, sa.CookieName+"=") {
		current = sa.CookieName + "=" + token()
	}
	annotations[cookieAnnotation] = current
	if previous != "" {
		annotations[previousCookieAnnotation] = previous
	}
	_, value, _ := strings.Cut(current, "=")
	age := fmt.Sprintf("; Max-Age=%d", sa.MaxAge) + attrs
	backends := []any{gwBackend(primary, port, 100-cw, nil), gwBackend(canary, port, cw, []any{setCookie(current + age)})}
	rules := []any{gwRule(c, mergeMatches([]map[string]any{cookieMatch(current)}, svcMatches),
		[]any{gwBackend(primary, port, 0, nil), gwBackend(canary, port, 100, nil)})}
	if sa.PrimaryCookieName != "" {
		pc := sa.PrimaryCookieName + "=" + value
		backends[0] = gwBackend(primary, port, 100-cw, []any{setCookie(pc + age)})
		rules = append(rules, gwRule(c, mergeMatches([]map[string]any{cookieMatch(pc)}, svcMatches),
			[]any{gwBackend(primary, port, 100, nil), gwBackend(canary, port, 0, nil)}))
	}
	weighted["backendRefs"] = backends
	return append(rules, weighted), nil
}

// cookieAttributes are the Set-Cookie attributes of spec.analysis.sessionAffinity after Max-Age, in the order
// of RFC 6265bis; HttpOnly is written only when asked for, as Flagger writes this cookie without it.
func cookieAttributes(sa *v1beta1.SessionAffinity) string {
	var b strings.Builder
	if sa.Domain != "" {
		b.WriteString("; Domain=" + sa.Domain)
	}
	if sa.Path != "" {
		b.WriteString("; Path=" + sa.Path)
	}
	if sa.Secure {
		b.WriteString("; Secure")
	}
	if sa.HTTPOnly != nil && *sa.HTTPOnly {
		b.WriteString("; HttpOnly")
	}
	if sa.SameSite != "" {
		b.WriteString("; SameSite=" + sa.SameSite)
	}
	if sa.Partitioned {
		b.WriteString("; Partitioned")
	}
	return b.String()
}

func token() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func cookieMatch(cookie string) map[string]any {
	return map[string]any{"headers": []any{map[string]any{
		"type": "RegularExpression", "name": "Cookie", "value": ".*" + regexp.QuoteMeta(cookie) + ".*",
	}}}
}

func setCookie(v string) map[string]any {
	return map[string]any{"type": "ResponseHeaderModifier", "responseHeaderModifier": map[string]any{
		"add": []any{map[string]any{"name": "Set-Cookie", "value": v}},
	}}
}

// httpRouteSplit reads the split of an HTTPRoute: the weights of the rule that names both Services (not a
// session affinity rule) and whether a rule mirrors to the canary.
func httpRouteSplit(c *v1beta1.Canary, u *unstructured.Unstructured) (pw, cw int, mirrored bool) {
	_, primary, canary := c.ServiceNames()
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	found := false
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		filters, _, _ := unstructured.NestedSlice(rule, "filters")
		for _, f := range filters {
			name, _, _ := unstructured.NestedString(f.(map[string]any), "requestMirror", "backendRef", "name")
			if name == canary {
				mirrored = true
			}
		}
		if isStickyRule(rule) || found {
			continue
		}
		backends, _, _ := unstructured.NestedSlice(rule, "backendRefs")
		var p, cc, n int
		for _, b := range backends {
			m, _ := b.(map[string]any)
			switch m["name"] {
			case primary:
				p, n = num(m["weight"]), n+1
			case canary:
				cc, n = num(m["weight"]), n+1
			}
		}
		if n == 2 {
			pw, cw, found = p, cc, true
		}
	}
	return pw, cw, mirrored
}

func isStickyRule(rule map[string]any) bool {
	matches, _, _ := unstructured.NestedSlice(rule, "matches")
	for _, m := range matches {
		headers, _, _ := unstructured.NestedSlice(m.(map[string]any), "headers")
		for _, h := range headers {
			if n, _, _ := unstructured.NestedString(h.(map[string]any), "name"); strings.EqualFold(n, "Cookie") {
				return true
			}
		}
	}
	return false
}

func gwSpec(c *v1beta1.Canary, rules []any) map[string]any {
	var parents []any
	for _, g := range c.Spec.Service.GatewayRefs {
		p := map[string]any{"name": g.Name}
		if g.Namespace != nil {
			p["namespace"] = *g.Namespace
		}
		if g.SectionName != nil {
			p["sectionName"] = *g.SectionName
		}
		if g.Group != nil {
			p["group"] = *g.Group
		}
		if g.Kind != nil {
			p["kind"] = *g.Kind
		}
		if g.Port != nil {
			p["port"] = int64(*g.Port)
		}
		parents = append(parents, p)
	}
	spec := map[string]any{"parentRefs": parents, "rules": rules}
	if len(c.Spec.Service.Hosts) > 0 {
		hosts := make([]any, len(c.Spec.Service.Hosts))
		for i, h := range c.Spec.Service.Hosts {
			hosts[i] = h
		}
		spec["hostnames"] = hosts
	}
	return spec
}

// gwRule is a rule with the spec's filters (headers, rewrite, mirrors) and timeouts.
func gwRule(c *v1beta1.Canary, matches []map[string]any, backends []any) map[string]any {
	s := c.Spec.Service
	filters := []any{}
	if h := s.Headers; h != nil {
		if h.Request != nil {
			filters = append(filters, map[string]any{"type": "RequestHeaderModifier", "requestHeaderModifier": headerOps(h.Request)})
		}
		if h.Response != nil {
			filters = append(filters, map[string]any{"type": "ResponseHeaderModifier", "responseHeaderModifier": headerOps(h.Response)})
		}
	}
	if rw := s.Rewrite; rw != nil && (rw.Authority != "" || rw.URI != "") {
		u := map[string]any{}
		if rw.Authority != "" {
			u["hostname"] = rw.Authority
		}
		if rw.URI != "" {
			if rw.Type == "ReplaceFullPath" {
				u["path"] = map[string]any{"type": "ReplaceFullPath", "replaceFullPath": rw.URI}
			} else {
				u["path"] = map[string]any{"type": "ReplacePrefixMatch", "replacePrefixMatch": rw.URI}
			}
		}
		filters = append(filters, map[string]any{"type": "URLRewrite", "urlRewrite": u})
	}
	for _, m := range s.Mirror {
		filters = append(filters, map[string]any{"type": "RequestMirror", "requestMirror": map[string]any{"backendRef": mirrorBackend(m.BackendRef)}})
	}
	rule := map[string]any{"matches": toAny(matches), "filters": filters, "backendRefs": backends}
	if s.Timeout != "" || s.BackendTimeout != "" {
		timeouts := map[string]any{}
		if s.Timeout != "" {
			timeouts["request"] = s.Timeout
		}
		if s.BackendTimeout != "" {
			timeouts["backendRequest"] = s.BackendTimeout
		}
		rule["timeouts"] = timeouts
	}
	return rule
}

// mirrorBackend is a spec.service.mirror backendRef as Gateway API writes it (group "" and kind Service when
// unset, its defaults).
func mirrorBackend(r v1beta1.MirrorBackendRef) map[string]any {
	b := map[string]any{"group": r.Group, "kind": r.Kind, "name": r.Name}
	if r.Kind == "" {
		b["kind"] = "Service"
	}
	if r.Namespace != "" {
		b["namespace"] = r.Namespace
	}
	if r.Port != nil {
		b["port"] = int64(*r.Port)
	}
	return b
}

func headerOps(o *v1beta1.HeaderOperations) map[string]any {
	list := func(m map[string]string) []any {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([]any, 0, len(keys))
		for _, k := range keys {
			out = append(out, map[string]any{"name": k, "value": m[k]})
		}
		return out
	}
	out := map[string]any{}
	if len(o.Set) > 0 {
		out["set"] = list(o.Set)
	}
	if len(o.Add) > 0 {
		out["add"] = list(o.Add)
	}
	if len(o.Remove) > 0 {
		r := make([]any, len(o.Remove))
		for i, n := range o.Remove {
			r[i] = n
		}
		out["remove"] = r
	}
	return out
}

func gwBackend(name string, port int32, weight int, filters []any) map[string]any {
	b := map[string]any{"group": "", "kind": "Service", "name": name, "port": int64(port), "weight": int64(weight)}
	if len(filters) > 0 {
		b["filters"] = filters
	}
	return b
}

// gwMatches maps Flagger's (Istio's) request matches onto HTTPRoute matches. Prefix and suffix header matches
// become regular expressions; what Gateway API cannot express is a permanent error.
func gwMatches(in []v1beta1.HTTPMatchRequest) ([]map[string]any, error) {
	var out []map[string]any
	for i, r := range in {
		m := map[string]any{}
		if u := r.URI; u != nil {
			switch {
			case u.Exact != "":
				m["path"] = map[string]any{"type": "Exact", "value": u.Exact}
			case u.Prefix != "":
				m["path"] = map[string]any{"type": "PathPrefix", "value": u.Prefix}
			case u.Regex != "":
				m["path"] = map[string]any{"type": "RegularExpression", "value": u.Regex}
			default:
				return nil, kubeobj.Permanentf("match[%d].uri: Gateway API matches paths by exact, prefix or regex only", i)
			}
		}
		if r.Method != nil {
			if r.Method.Exact == "" {
				return nil, kubeobj.Permanentf("match[%d].method: Gateway API matches methods exactly only", i)
			}
			m["method"] = r.Method.Exact
		}
		for _, kv := range []struct {
			field string
			from  map[string]v1beta1.StringMatch
		}{{"headers", r.Headers}, {"queryParams", r.QueryParams}} {
			if len(kv.from) == 0 {
				continue
			}
			names := make([]string, 0, len(kv.from))
			for n := range kv.from {
				names = append(names, n)
			}
			sort.Strings(names)
			var list []any
			for _, n := range names {
				typ, val, err := stringMatch(kv.from[n])
				if err != nil {
					return nil, kubeobj.Permanentf("match[%d].%s[%s]: %v", i, kv.field, n, err)
				}
				list = append(list, map[string]any{"type": typ, "name": n, "value": val})
			}
			m[kv.field] = list
		}
		if len(m) > 0 {
			out = append(out, m)
		}
	}
	return out, nil
}

func stringMatch(s v1beta1.StringMatch) (typ, value string, err error) {
	switch {
	case s.Exact != "":
		return "Exact", s.Exact, nil
	case s.Regex != "":
		return "RegularExpression", s.Regex, nil
	case s.Prefix != "":
		return "RegularExpression", "^" + regexp.QuoteMeta(s.Prefix) + ".*", nil
	case s.Suffix != "":
		return "RegularExpression", ".*" + regexp.QuoteMeta(s.Suffix) + "$", nil
	}
	return "", "", fmt.Errorf("empty string match")
}

// mergeMatches combines each analysis match with each service match (Flagger's rule): the service match's path
// and method with the analysis match's headers and query parameters.
func mergeMatches(analysis, service []map[string]any) []map[string]any {
	if len(service) == 0 {
		return analysis
	}
	var out []map[string]any
	for _, a := range analysis {
		for _, s := range service {
			m := map[string]any{}
			for k, v := range s {
				m[k] = v
			}
			for k, v := range a {
				if _, ok := m[k]; !ok || k == "headers" || k == "queryParams" {
					m[k] = v
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func toAny(ms []map[string]any) []any {
	out := make([]any, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}
