package router

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

func rules(t *testing.T, u *unstructured.Unstructured) []map[string]any {
	t.Helper()
	list, _, err := unstructured.NestedSlice(u.Object, "spec", "rules")
	require.NoError(t, err)
	out := make([]map[string]any, len(list))
	for i, r := range list {
		out[i] = r.(map[string]any)
	}
	return out
}

// setCookies are the Set-Cookie values an HTTPRoute adds, wherever (rule or backendRef filters).
func setCookies(t *testing.T, u *unstructured.Unstructured) []string {
	t.Helper()
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["name"] == "Set-Cookie" {
				out = append(out, x["value"].(string))
			}
			for _, w := range x {
				walk(w)
			}
		case []any:
			for _, w := range x {
				walk(w)
			}
		}
	}
	walk(u.Object["spec"])
	sort.Strings(out)
	return out
}

func TestHTTPRouteCarriesFlagger144ServiceOptionsOnEveryRule(t *testing.T) {
	port := int32(8080)
	c := testCanary(func(c *v1beta1.Canary) {
		c.Spec.Service.Timeout = "30s"
		c.Spec.Service.BackendTimeout = "10s"
		c.Spec.Service.Rewrite = &v1beta1.HTTPRewrite{URI: "/version", Type: "ReplaceFullPath"}
		c.Spec.Service.Mirror = []v1beta1.HTTPRequestMirror{{BackendRef: v1beta1.MirrorBackendRef{Name: "shadow", Namespace: "qa", Port: &port}}}
		c.Spec.Analysis.Iterations = 5
		c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "1"}}}}
	})
	hr, err := httpRoute(c, 0, 100, false, nil)
	require.NoError(t, err)
	rs := rules(t, hr)
	require.Len(t, rs, 2, "A/B: the split rule and the primary rule")
	for _, r := range rs {
		require.Equal(t, map[string]any{"request": "30s", "backendRequest": "10s"}, r["timeouts"])
		require.Equal(t, []any{
			map[string]any{"type": "URLRewrite", "urlRewrite": map[string]any{"path": map[string]any{"type": "ReplaceFullPath", "replaceFullPath": "/version"}}},
			map[string]any{"type": "RequestMirror", "requestMirror": map[string]any{"backendRef": map[string]any{
				"group": "", "kind": "Service", "name": "shadow", "namespace": "qa", "port": int64(8080)}}},
		}, r["filters"])
	}
	pw, cw, mirrored := httpRouteSplit(c, hr.DeepCopy())
	require.Equal(t, []int{0, 100}, []int{pw, cw})
	require.False(t, mirrored, "a mirror to another Service is not the canary's blue/green mirroring")

	c.Spec.Service.Rewrite.Type = ""
	hr, err = httpRoute(c, 0, 100, false, nil)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"type": "ReplacePrefixMatch", "replacePrefixMatch": "/version"},
		rules(t, hr)[0]["filters"].([]any)[0].(map[string]any)["urlRewrite"].(map[string]any)["path"], "the default type")
}

func TestSessionCookiesCarryTheirAttributes(t *testing.T) {
	no := false
	c := testCanary(func(c *v1beta1.Canary) {
		c.Spec.Analysis.SessionAffinity = &v1beta1.SessionAffinity{CookieName: "canary", PrimaryCookieName: "primary",
			Domain: "example.com", Path: "/app", Secure: true, SameSite: "Lax", Partitioned: true, HTTPOnly: &no}
	})
	running, err := httpRoute(c, 90, 10, false, nil)
	require.NoError(t, err)
	cookies := setCookies(t, running)
	require.Len(t, cookies, 2)
	require.Regexp(t, `^canary=[0-9a-f]{16}; Max-Age=86400; Domain=example.com; Path=/app; Secure; SameSite=Lax; Partitioned$`, cookies[0])
	require.Regexp(t, `^primary=[0-9a-f]{16}; Max-Age=86400; Domain=example.com; Path=/app; Secure; SameSite=Lax; Partitioned$`, cookies[1])

	done, err := httpRoute(c, 100, 0, false, running)
	require.NoError(t, err)
	require.Regexp(t, `^canary=[0-9a-f]{16}; Max-Age=-1; Domain=example.com; Path=/app; Secure; SameSite=Lax; Partitioned$`, setCookies(t, done)[0],
		"the expiring cookie names the same Domain and Path, or the browser keeps the old one")

	yes := true
	c.Spec.Analysis.SessionAffinity.HTTPOnly = &yes
	running, err = httpRoute(c, 90, 10, false, nil)
	require.NoError(t, err)
	require.Contains(t, setCookies(t, running)[0], "; Secure; HttpOnly; SameSite=Lax")
}

func TestTraefikStickyCookieCarriesItsAttributes(t *testing.T) {
	no := false
	for _, tc := range []struct {
		name string
		sa   v1beta1.SessionAffinity
		want map[string]any
	}{
		{"Traefik's defaults: HttpOnly", v1beta1.SessionAffinity{CookieName: "c", MaxAge: 60},
			map[string]any{"name": "c", "maxAge": int64(60), "httpOnly": true}},
		{"every attribute", v1beta1.SessionAffinity{CookieName: "c", MaxAge: 60, Domain: "example.com", Path: "/app", Secure: true, SameSite: "Strict", HTTPOnly: &no},
			map[string]any{"name": "c", "maxAge": int64(60), "httpOnly": false, "secure": true, "sameSite": "strict", "path": "/app", "domain": "example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sa := tc.sa
			c := testCanary(func(c *v1beta1.Canary) { c.Spec.Analysis.SessionAffinity = &sa })
			got, _, _ := unstructured.NestedMap(map[string]any{"spec": traefikSpec(c, 90, 10, false)}, "spec", "weighted", "sticky", "cookie")
			require.Equal(t, tc.want, got)
		})
	}
}
