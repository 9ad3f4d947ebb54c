//go:build lab

package router_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

// Traefik hands out the sticky cookie with the attributes of spec.analysis.sessionAffinity (live).
func TestTraefikStickyCookieAttributesAreLive(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-cookie")
	host := e.ns + ".cookie.lab"
	no := false
	c := canary(e.ns, "traefik", func(c *v1beta1.Canary) {
		c.Spec.Analysis.SessionAffinity = &v1beta1.SessionAffinity{CookieName: "canary", MaxAge: 600,
			Domain: host, Path: "/", Secure: true, SameSite: "Strict", HTTPOnly: &no}
	})
	e.rollout(t, c)
	e.ingressRoute(t, host)
	rt, err := e.routers.Get("traefik")
	require.NoError(t, err)
	require.NoError(t, rt.Reconcile(ctx, c))
	require.NoError(t, rt.SetRoutes(ctx, c, 50, 50, false))
	var set string
	require.Eventually(t, func() bool {
		_, v, sets := fetch(labtest.TraefikURL(t), host, "/version")
		for _, s := range sets {
			if v == "6.0.1" && strings.HasPrefix(s, "canary=") {
				set = s
				return true
			}
		}
		return false
	}, 60*time.Second, 50*time.Millisecond, "no canary answer set the cookie")
	attrs := map[string]bool{}
	for _, a := range strings.Split(set, ";")[1:] {
		attrs[strings.TrimSpace(a)] = true
	}
	require.Equal(t, map[string]bool{"Path=/": true, "Domain=" + host: true, "Max-Age=600": true, "Secure": true, "SameSite=Strict": true}, attrs,
		"Set-Cookie: %s (no HttpOnly: httpOnly is false)", set)
}

// fetch sends GET path with Host host and returns the status, the version podinfo answered (if it did) and the
// Set-Cookie headers. It tolerates every failure (a route Traefik has not loaded yet answers 404), so callers poll.
func fetch(url, host, path string) (int, string, []string) {
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	req, _ := http.NewRequest(http.MethodGet, url+path, nil)
	req.Host = host
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error(), nil
	}
	defer resp.Body.Close()
	var body struct{ Version string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Version, resp.Header.Values("Set-Cookie")
}

// Flagger v1.44's Gateway API options: a ReplaceFullPath rewrite is live through Traefik, which loads the route
// with its request and backend timeouts; a RequestMirror to another Service and the cookie attributes are accepted by the real API
// server with the Gateway API CRDs (their CEL rules included) and read back, but not live: Traefik v3.6 refuses
// RequestMirror filters ("unsupported filter RequestMirror") and does not run backendRef filters.
func TestGatewayAPIFlagger144OptionsAreAcceptedAndTheRewriteIsLive(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-gw144")
	host := e.ns + ".gw144.lab"
	port := int32(9898)
	c := canary(e.ns, "gatewayapi", func(c *v1beta1.Canary) {
		onLabGateway(t, c, host)
		c.Spec.Service.Match = []v1beta1.HTTPMatchRequest{{URI: &v1beta1.StringMatch{Prefix: "/v2"}}}
		c.Spec.Service.Rewrite = &v1beta1.HTTPRewrite{URI: "/version", Type: "ReplaceFullPath"}
		c.Spec.Service.Timeout = "30s"
		c.Spec.Service.BackendTimeout = "10s"
	})
	e.rollout(t, c)
	rt, err := e.routers.Get("gatewayapi")
	require.NoError(t, err)
	require.NoError(t, rt.Reconcile(ctx, c))
	require.NoError(t, rt.SetRoutes(ctx, c, 100, 0, false))

	// Live: any path under /v2 is rewritten to /version as a whole (a prefix rewrite would give /version/anything,
	// which podinfo does not serve).
	require.Eventually(t, func() bool {
		status, v, _ := fetch(labtest.GatewayURL(t), host, "/v2/anything")
		return status == http.StatusOK && v == "6.0.0"
	}, 60*time.Second, 100*time.Millisecond, "GET /v2/anything never reached podinfo's /version")

	c.Spec.Service.Mirror = []v1beta1.HTTPRequestMirror{{BackendRef: v1beta1.MirrorBackendRef{Name: "podinfo-primary", Port: &port}}}
	c.Spec.Analysis.SessionAffinity = &v1beta1.SessionAffinity{CookieName: "canary", Domain: host, Path: "/v2",
		Secure: true, SameSite: "Lax", Partitioned: true, MaxAge: 86400}
	require.NoError(t, rt.Reconcile(ctx, c))
	require.NoError(t, rt.SetRoutes(ctx, c, 50, 50, false))
	u, err := labtest.Dynamic(t).Resource(labtest.HTTPRoutes).Namespace(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	weighted := rules[len(rules)-1].(map[string]any)
	require.Equal(t, map[string]any{"request": "30s", "backendRequest": "10s"}, weighted["timeouts"])
	var kinds []string
	for _, f := range weighted["filters"].([]any) {
		kinds = append(kinds, f.(map[string]any)["type"].(string))
	}
	require.Equal(t, []string{"URLRewrite", "RequestMirror"}, kinds)
	cookie := u.GetAnnotations()["canaryflow.io/session-cookie"]
	require.Contains(t, mustJSON(t, u.Object["spec"]), cookie+"; Max-Age=86400; Domain="+host+"; Path=/v2; Secure; SameSite=Lax; Partitioned")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}
