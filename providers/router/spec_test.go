package router

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

func testCanary(mod func(*v1beta1.Canary)) *v1beta1.Canary {
	c := &v1beta1.Canary{}
	c.Name, c.Namespace = "podinfo", "test"
	c.Spec.TargetRef = v1beta1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"}
	c.Spec.Service.Port = 9898
	c.Spec.Service.GatewayRefs = []v1beta1.ParentReference{{Name: "gw"}}
	c.Spec.Analysis = &v1beta1.CanaryAnalysis{Iterations: 0, StepWeight: 10}
	if mod != nil {
		mod(c)
	}
	c.SetDefaults()
	return c
}

func TestSpecsReadBackAsWritten(t *testing.T) {
	ab := func(c *v1beta1.Canary) {
		c.Spec.Analysis.Iterations = 5
		c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}}}
	}
	sticky := func(c *v1beta1.Canary) {
		c.Spec.Analysis.SessionAffinity = &v1beta1.SessionAffinity{CookieName: "flagger-cookie", PrimaryCookieName: "primary-cookie"}
	}
	mirror := func(c *v1beta1.Canary) {
		c.Spec.Analysis.Iterations, c.Spec.Analysis.Mirror, c.Spec.Analysis.MirrorWeight = 5, true, 50
	}
	for _, tc := range []struct {
		name     string
		mod      func(*v1beta1.Canary)
		pw, cw   int
		mirrored bool
	}{
		{"100/0", nil, 100, 0, false}, {"10/90", nil, 10, 90, false}, {"0/100", nil, 0, 100, false},
		{"ab 0/100", ab, 0, 100, false}, {"sticky 70/30", sticky, 70, 30, false}, {"sticky 100/0", sticky, 100, 0, false},
		{"mirrored", mirror, 100, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testCanary(tc.mod)
			hr, err := httpRoute(c, tc.pw, tc.cw, tc.mirrored, nil)
			require.NoError(t, err)
			hr = hr.DeepCopy() // only JSON types inside
			pw, cw, m := httpRouteSplit(c, hr)
			require.Equal(t, []int{tc.pw, tc.cw}, []int{pw, cw})
			require.Equal(t, tc.mirrored, m)

			ts := newObject(c, traefikSpec(c, tc.pw, tc.cw, tc.mirrored)).DeepCopy()
			pw, cw, m = traefikRoutes(c, ts)
			require.Equal(t, []int{tc.pw, tc.cw}, []int{pw, cw})
			require.Equal(t, tc.mirrored, m)
		})
	}
}

func TestHTTPRouteABSendsOnlyMatchingRequestsToTheSplit(t *testing.T) {
	c := testCanary(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Iterations = 5
		c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}, "user-agent": {Prefix: "curl/"}}}}
	})
	hr, err := httpRoute(c, 0, 100, false, nil)
	require.NoError(t, err)
	rules, _, _ := unstructured.NestedSlice(hr.Object, "spec", "rules")
	require.Len(t, rules, 2)
	first := rules[0].(map[string]any)
	require.Equal(t, []any{map[string]any{
		"path": map[string]any{"type": "PathPrefix", "value": "/"},
		"headers": []any{
			map[string]any{"type": "RegularExpression", "name": "user-agent", "value": `^curl/.*`},
			map[string]any{"type": "Exact", "name": "x-canary", "value": "insider"},
		},
	}}, first["matches"])
	second := rules[1].(map[string]any)
	require.Len(t, second["backendRefs"], 1, "the other requests go to the primary only")
}

func TestStickyCookieSurvivesRewritesAndExpiresAtZero(t *testing.T) {
	c := testCanary(func(c *v1beta1.Canary) {
		c.Spec.Analysis.SessionAffinity = &v1beta1.SessionAffinity{CookieName: "canary"}
	})
	first, err := httpRoute(c, 90, 10, false, nil)
	require.NoError(t, err)
	cookie := first.GetAnnotations()[cookieAnnotation]
	require.Regexp(t, `^canary=[0-9a-f]{16}$`, cookie)
	again, err := httpRoute(c, 80, 20, false, first)
	require.NoError(t, err)
	require.Equal(t, cookie, again.GetAnnotations()[cookieAnnotation], "the cookie is kept while the canary runs")
	done, err := httpRoute(c, 100, 0, false, again)
	require.NoError(t, err)
	require.Empty(t, done.GetAnnotations()[cookieAnnotation])
	require.Equal(t, cookie, done.GetAnnotations()[previousCookieAnnotation])
	rules, _, _ := unstructured.NestedSlice(done.Object, "spec", "rules")
	require.Len(t, rules, 2)
	require.Contains(t, rules[0].(map[string]any)["filters"].([]any)[0].(map[string]any)["responseHeaderModifier"].(map[string]any)["add"].([]any)[0].(map[string]any)["value"], "Max-Age=-1")
}

func TestRoutersRegisterWhatTheyImplement(t *testing.T) {
	caps := Capabilities()
	splits := map[string]v1beta1.Traffic{}
	for p, c := range caps {
		c.Honours = nil
		splits[p] = c
	}
	require.Equal(t, map[string]v1beta1.Traffic{
		"kubernetes": {},
		"traefik":    {Weights: true, Match: true, Mirror: true, SessionAffinity: true},
		"gatewayapi": {Weights: true, Match: true, Mirror: true, SessionAffinity: true},
		"apisix":     {Weights: true, Match: true, Mirror: true},
		// ingress-nginx takes mirroring and session affinity from the main Ingress only (lab_nginx_test.go).
		"nginx": {Weights: true, Match: true},
		// TrafficSplits carry weights only.
		"linkerd": {Weights: true}, "osm": {Weights: true}, "smi": {Weights: true},
		// A TrafficRoute carries weights only.
		"kuma": {Weights: true},
		// Gloo's route table: weighted destinations and matchers.
		"gloo": {Weights: true, Match: true},
		// App Mesh routes: weighted targets and matches.
		"appmesh": {Weights: true, Match: true},
		"istio":   {Weights: true, Match: true, Mirror: true, SessionAffinity: true},
		// Flagger's Skipper router has no A/B ("TODO: A/B testing") and no mirroring.
		"skipper": {Weights: true},
		// Mirroring goes beyond Flagger's Contour router (Contour's mirror service; lab_contour_test.go).
		"contour": {Weights: true, Match: true, Mirror: true},
	}, splits)
	require.Contains(t, caps["gatewayapi"].Honours, "spec.service.backendTimeout")
	require.Contains(t, caps["traefik"].Honours, "spec.analysis.sessionAffinity.sameSite")
	require.NotContains(t, caps["traefik"].Honours, "spec.analysis.sessionAffinity.partitioned", "Traefik v3.6's cookie has no Partitioned")
	require.Subset(t, caps["istio"].Honours, []string{"spec.service.gateways", "spec.service.delegation", "spec.service.trafficPolicy",
		"spec.service.retries", "spec.service.corsPolicy", "spec.service.rewrite.uriRegexRewrite"})
	require.Equal(t, []string{"apisix", "appmesh", "contour", "gatewayapi", "gloo", "istio", "kubernetes", "kuma", "linkerd", "nginx", "osm", "skipper", "smi", "traefik"}, Providers())
	_, err := NewRegistryForClients(Clients{}).Get("gatewayapi:v1")
	require.NoError(t, err, "a version suffix names the same router")
	_, err = NewRegistryForClients(Clients{}).Get("haproxy")
	require.ErrorContains(t, err, `no router for provider "haproxy" in this build: canaryflow has routers for `+strings.Join(Providers(), ", "))
}

func TestTraefikMatchRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match []v1beta1.HTTPMatchRequest
		want  string
	}{
		{"one header", []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}}},
			"Header(`x-canary`, `insider`)"},
		{"cookie regex and prefix", []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{
			"cookie": {Regex: "^(.*?;)?(canary=always)(;.*)?$"}, "user-agent": {Prefix: "Mozilla/5."},
		}}}, "HeaderRegexp(`cookie`, `^(.*?;)?(canary=always)(;.*)?$`) && HeaderRegexp(`user-agent`, `^Mozilla/5\\.`)"},
		{"two matches", []v1beta1.HTTPMatchRequest{
			{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}},
			{URI: &v1beta1.StringMatch{Prefix: "/beta"}, Method: &v1beta1.StringMatch{Exact: "GET"}, QueryParams: map[string]v1beta1.StringMatch{"v": {Exact: "2"}}},
		}, "(Header(`x-canary`, `insider`)) || (Query(`v`, `2`) && PathPrefix(`/beta`) && Method(`GET`))"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := traefikMatch(tc.match)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	_, err := traefikMatch([]v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x": {Exact: "a`b"}}}})
	require.ErrorContains(t, err, "backtick")
}

// The canary route keeps Flagger's priority unless the template's rule already has one as high, and A/B matches
// APISIX cannot express are refused naming the field instead of being dropped.
func TestAPISIXRulesOutrankTheTemplateAndRefuseUnexpressibleMatches(t *testing.T) {
	rule := func(priority int64) map[string]any {
		r := map[string]any{"name": "r", "backends": []any{map[string]any{"serviceName": "podinfo", "servicePort": int64(80)}},
			"upstreams": []any{map[string]any{"name": "external"}}}
		if priority > 0 {
			r["priority"] = priority
		}
		return r
	}
	for _, tc := range []struct{ template, want int64 }{{0, 10000}, {500, 10000}, {10000, 10001}, {20000, 20001}} {
		rules, err := apisixRules(testCanary(nil), rule(tc.template))
		require.NoError(t, err)
		require.Len(t, rules, 1)
		got := rules[0].(map[string]any)
		require.Equal(t, tc.want, got["priority"], "template priority %d", tc.template)
		require.NotContains(t, got, "upstreams", "the copy routes to the primary and the canary only")
		require.Equal(t, []any{
			map[string]any{"serviceName": "podinfo-primary", "servicePort": int64(80), "weight": int64(100)},
			map[string]any{"serviceName": "podinfo-canary", "servicePort": int64(80), "weight": int64(0)},
		}, got["backends"])
	}
	for field, m := range map[string]v1beta1.HTTPMatchRequest{
		"spec.analysis.match[0].withoutHeaders": {WithoutHeaders: map[string]v1beta1.StringMatch{"x": {Exact: "y"}}},
		"spec.analysis.match[0].authority":      {Authority: &v1beta1.StringMatch{Exact: "a"}},
		"spec.analysis.match[0].headers.x":      {Headers: map[string]v1beta1.StringMatch{"x": {}}},
		"spec.analysis.match[0]: no condition":  {},
	} {
		c := testCanary(func(c *v1beta1.Canary) {
			c.Spec.Analysis.Iterations = 5
			c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{m}
		})
		_, err := apisixRules(c, rule(0))
		require.ErrorContains(t, err, field)
	}
}
