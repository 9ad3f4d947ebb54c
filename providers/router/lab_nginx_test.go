//go:build lab

package router_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

func nginxCanary(ns string, mod func(*v1beta1.Canary)) *v1beta1.Canary {
	return canary(ns, "nginx", func(c *v1beta1.Canary) {
		c.Spec.Service.Port = 80
		c.Spec.IngressRef = &v1beta1.LocalObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "Ingress", Name: "podinfo"}
		if mod != nil {
			mod(c)
		}
	})
}

// What the ingress-nginx controller (v1.11.0) derives from the nginx router's canary Ingress: the primary backend
// (the user's Ingress, on the apex Service) gets the canary backend as its alternative, whose traffic shaping
// policy carries the weight at 100/0, 90/10 and 50/50, and the header and cookie of the A/B seed. The router runs
// under the worker's ClusterRole; the user's Ingress is never written.
func TestNGINXOnTheIngressNginxController(t *testing.T) {
	e := newEnv(t, "nginx")
	ctx := context.Background()
	c := nginxCanary(e.ns, nil)
	e.rollout(t, c)
	user, err := e.admin.NetworkingV1().Ingresses(e.ns).Create(ctx, labtest.TutorialIngress(e.ns), metav1.CreateOptions{})
	require.NoError(t, err)
	ctrl := labtest.StartIngressNginx(t, e.ns, "--sync-rate-limit=10") // Flagger's 0.3 syncs a second would slow the test, not change it
	rt, err := e.routers.Get("nginx")
	require.NoError(t, err)

	primary, canaryBackend := e.ns+"-podinfo-80", e.ns+"-podinfo-canary-80"
	// policy waits until the primary backend has the canary backend as its only alternative with this policy.
	policy := func(t *testing.T, what string, want labtest.NginxTrafficShaping) map[string]labtest.NginxBackend {
		t.Helper()
		want.WeightTotal = 100
		return ctrl.WaitBackends(t, 30*time.Second, what, func(b map[string]labtest.NginxBackend) bool {
			p, cb := b[primary], b[canaryBackend]
			return len(p.AlternativeBackends) == 1 && p.AlternativeBackends[0] == canaryBackend &&
				cb.NoServer && cb.TrafficShapingPolicy == want
		})
	}

	t.Run("weights", func(t *testing.T) {
		require.NoError(t, rt.Reconcile(ctx, c))
		b := policy(t, "100/0", labtest.NginxTrafficShaping{Weight: 0})
		require.NotEmpty(t, b[canaryBackend].Endpoints, "the canary backend resolves the canary Service to its pod")
		require.NotEmpty(t, b[primary].Endpoints)
		for _, w := range []int{10, 50} {
			require.NoError(t, rt.SetRoutes(ctx, c, 100-w, w, false))
			policy(t, "weight", labtest.NginxTrafficShaping{Weight: w})
			pw, cw, mirrored, err := rt.GetRoutes(ctx, c)
			require.NoError(t, err)
			require.Equal(t, []any{100 - w, w, false}, []any{pw, cw, mirrored})
		}
		require.NoError(t, rt.SetRoutes(ctx, c, 100, 0, false))
		policy(t, "back to 100/0", labtest.NginxTrafficShaping{Weight: 0})

		conf := ctrl.NginxConf(t)
		require.Contains(t, conf, "server_name app.example.com")
		require.Contains(t, conf, `set $ingress_name   "podinfo";`, "requests are reported under the user's Ingress, which the builtin queries select")
		require.NotContains(t, conf, `set $ingress_name   "podinfo-canary";`, "the canary Ingress adds no location of its own")
	})

	t.Run("A/B seed", func(t *testing.T) {
		ab := nginxCanary(e.ns, func(c *v1beta1.Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 10
			c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{
				{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}},
				{Headers: map[string]v1beta1.StringMatch{"cookie": {Regex: "^(.*?;)?(canary=always)(;.*)?$"}}},
			}
		})
		require.NoError(t, rt.Reconcile(ctx, ab))
		require.NoError(t, rt.SetRoutes(ctx, ab, 0, 100, false))
		policy(t, "the seed's header and cookie", labtest.NginxTrafficShaping{Header: "x-canary", HeaderValue: "insider", Cookie: "canary"})
		pw, cw, _, err := rt.GetRoutes(ctx, ab)
		require.NoError(t, err)
		require.Equal(t, []int{0, 100}, []int{pw, cw})

		prefix := nginxCanary(e.ns, func(c *v1beta1.Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 10
			c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"user-agent": {Prefix: "curl/7."}}}}
		})
		require.NoError(t, rt.SetRoutes(ctx, prefix, 0, 100, false))
		policy(t, "a header pattern", labtest.NginxTrafficShaping{Header: "user-agent", HeaderPattern: `^curl/7\.`})

		require.NoError(t, rt.SetRoutes(ctx, ab, 100, 0, false))
		policy(t, "the reset at 0", labtest.NginxTrafficShaping{})
	})

	t.Run("user's Ingress untouched", func(t *testing.T) {
		now, err := e.admin.NetworkingV1().Ingresses(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, user.ResourceVersion, now.ResourceVersion)
	})

	// Why nginx registers neither mirroring nor session affinity: ingress-nginx takes mirror-target and the
	// affinity cookie from the main Ingress only. On the canary Ingress they change nothing, with either canary
	// behaviour; the same annotations on the main Ingress (the user's, which canaryflow does not write) do.
	t.Run("mirroring and affinity come from the main Ingress only", func(t *testing.T) {
		patch := func(name string, annotations map[string]string) {
			t.Helper()
			ing, err := e.admin.NetworkingV1().Ingresses(e.ns).Get(ctx, name, metav1.GetOptions{})
			require.NoError(t, err)
			for k, v := range annotations {
				ing.Annotations[k] = v
			}
			_, err = e.admin.NetworkingV1().Ingresses(e.ns).Update(ctx, ing, metav1.UpdateOptions{})
			require.NoError(t, err)
		}
		const p = "nginx.ingress.kubernetes.io/"
		mirrorAndAffinity := map[string]string{
			p + "mirror-target": "http://podinfo-canary." + e.ns + ".svc.cluster.local:80$request_uri",
			p + "affinity":      "cookie", p + "session-cookie-name": "flagger-cookie", p + "session-cookie-max-age": "21600",
		}
		for i, behaviour := range []string{"sticky", "legacy"} {
			weight := 20 + i // a weight change in the same update shows the controller has read it
			a := map[string]string{p + "canary-weight": strconv.Itoa(weight), p + "affinity-canary-behavior": behaviour}
			for k, v := range mirrorAndAffinity {
				a[k] = v
			}
			patch("podinfo-canary", a)
			b := policy(t, "the annotated canary Ingress", labtest.NginxTrafficShaping{Weight: weight})
			require.Empty(t, b[canaryBackend].SessionAffinity.Cookie.Name, behaviour)
			require.Empty(t, b[primary].SessionAffinity.Cookie.Name, behaviour)
			require.NotContains(t, ctrl.NginxConf(t), "mirror ", behaviour)
		}

		patch("podinfo", mirrorAndAffinity)
		b := ctrl.WaitBackends(t, 30*time.Second, "affinity from the main Ingress", func(b map[string]labtest.NginxBackend) bool {
			return b[primary].SessionAffinity.Cookie.Name == "flagger-cookie"
		})
		require.Equal(t, "cookie", b[primary].SessionAffinity.Name)
		require.Eventually(t, func() bool { return strings.Contains(ctrl.NginxConf(t), "mirror /_mirror-") }, 30*time.Second, 200*time.Millisecond,
			"mirror-target on the main Ingress renders a mirror location")
	})

	t.Run("finalize", func(t *testing.T) {
		require.NoError(t, rt.Finalize(ctx, c))
		ctrl.WaitBackends(t, 30*time.Second, "no canary backend", func(b map[string]labtest.NginxBackend) bool {
			_, ok := b[canaryBackend]
			return len(b[primary].AlternativeBackends) == 0 && !ok
		})
		_, err := e.admin.NetworkingV1().Ingresses(e.ns).Get(ctx, "podinfo-canary", metav1.GetOptions{})
		require.Error(t, err)
	})
}
