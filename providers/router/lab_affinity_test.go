//go:build lab

package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

// get sends one GET /version with Host host and cookie (if any); it returns the version and the Set-Cookie headers.
func get(t *testing.T, url, host, cookie string) (string, []string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	req, _ := http.NewRequest(http.MethodGet, url+"/version", nil)
	req.Host = host
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct{ Version string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return body.Version, resp.Header.Values("Set-Cookie")
}

// stickyCookie waits until a canary answer hands out the affinity cookie and returns it as "name=value".
func stickyCookie(t *testing.T, url, host, name string) string {
	t.Helper()
	var cookie string
	require.Eventually(t, func() bool {
		v, sets := get(t, url, host, "")
		for _, s := range sets {
			if v == "6.0.1" && strings.HasPrefix(s, name+"=") {
				cookie, _, _ = strings.Cut(s, ";")
				return true
			}
		}
		return false
	}, 60*time.Second, 50*time.Millisecond, "no canary answer set the %s cookie", name)
	return cookie
}

// A client routed to the canary gets the cookie and sticks there; at weight 0 the cookie routes to the primary.
func TestSessionAffinityIsLive(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-sticky")
	host := e.ns + ".sticky.lab"
	base := canary(e.ns, "traefik", func(c *v1beta1.Canary) {
		onLabGateway(t, c, host)
		c.Spec.Analysis.SessionAffinity = &v1beta1.SessionAffinity{CookieName: "canary", MaxAge: 600}
	})
	e.rollout(t, base)
	e.ingressRoute(t, host)

	for _, tc := range []struct{ provider, url string }{
		{"traefik", labtest.TraefikURL(t)},
		{"gatewayapi", labtest.GatewayURL(t)},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			c := clone(t, base)
			c.Spec.Provider = tc.provider
			rt, err := e.routers.Get(tc.provider)
			require.NoError(t, err)
			require.NoError(t, rt.Reconcile(ctx, c))
			require.NoError(t, rt.SetRoutes(ctx, c, 50, 50, false))
			requireSplit(t, tc.url, host, nil, 50)
			var cookie string
			if tc.provider == "traefik" {
				cookie = stickyCookie(t, tc.url, host, "canary")
			} else {
				// Flagger's Gateway API affinity sets the cookie with a ResponseHeaderModifier filter on the canary's
				// backendRef. Traefik v3.6 accepts the route (Accepted, ResolvedRefs) but does not run
				// backendRef-level filters, so here the cookie is taken from the route, and only the routing of
				// clients that carry it is proven live.
				u, err := labtest.Dynamic(t).Resource(labtest.HTTPRoutes).Namespace(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
				require.NoError(t, err)
				cookie = u.GetAnnotations()["canaryflow.io/session-cookie"]
				require.Regexp(t, `^canary=[0-9a-f]{16}$`, cookie)
				require.Contains(t, fmt.Sprint(u.Object["spec"]), "value:"+cookie+"; Max-Age=600")
			}
			for range 200 {
				v, _ := get(t, tc.url, host, cookie)
				require.Equal(t, "6.0.1", v, "a client with the cookie stays on the canary")
			}
			require.NoError(t, rt.SetRoutes(ctx, c, 100, 0, false))
			require.Eventually(t, func() bool {
				v, _ := get(t, tc.url, host, cookie)
				return v == "6.0.0"
			}, 60*time.Second, 100*time.Millisecond)
			for range 200 {
				v, _ := get(t, tc.url, host, cookie)
				require.Equal(t, "6.0.0", v, "at weight 0 the cookie routes nowhere special")
			}
		})
	}
}
