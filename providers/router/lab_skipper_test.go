//go:build lab

package router_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/metrics"
	"github.com/canaryflow/canaryflow/providers/metrics/promtest"
)

func skipperCanary(ns string) *v1beta1.Canary {
	return canary(ns, "skipper", func(c *v1beta1.Canary) {
		c.Spec.Service.Port = 80
		c.Spec.IngressRef = &v1beta1.LocalObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "Ingress", Name: "podinfo"}
	})
}

// skipperUserIngress is the Ingress of Flagger's Skipper tutorial: class skipper, host app.example.com to the apex
// Service, with a predicate of the user's own.
func skipperUserIngress(ns string) *networkingv1.Ingress {
	in := labtest.TutorialIngress(ns)
	in.Annotations = map[string]string{"kubernetes.io/ingress.class": "skipper", "zalando.org/skipper-predicate": `Method("GET")`}
	return in
}

// The skipper router's canary Ingress on the lab API server: Flagger's clone with a primary and a canary path,
// the weights annotation and the predicate at every weight; idempotent; a foreign "<ingress>-canary" refused;
// the user's Ingress never written; Finalize deletes the clone.
func TestSkipperCanaryIngressCarriesFlaggersWeightsAndPredicates(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-skipper")
	user, err := e.admin.NetworkingV1().Ingresses(e.ns).Create(ctx, skipperUserIngress(e.ns), metav1.CreateOptions{})
	require.NoError(t, err)
	c := skipperCanary(e.ns)
	rt, err := e.routers.Get("skipper")
	require.NoError(t, err)

	require.NoError(t, rt.Reconcile(ctx, c))
	ci, err := e.admin.NetworkingV1().Ingresses(e.ns).Get(ctx, "podinfo-canary", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, kubeobj.ManagedByValue, ci.Labels[kubeobj.ManagedByLabel])
	require.Equal(t, "podinfo", ci.Labels["app"], "the user's labels are copied")
	paths := ci.Spec.Rules[0].HTTP.Paths
	require.Len(t, paths, 2)
	require.Equal(t, []string{"podinfo-primary", "podinfo-canary"}, []string{paths[0].Backend.Service.Name, paths[1].Backend.Service.Name})
	require.Equal(t, int32(80), paths[1].Backend.Service.Port.Number)
	require.Equal(t, "app.example.com", ci.Spec.Rules[0].Host)
	require.Equal(t, "skipper", ci.Annotations["kubernetes.io/ingress.class"])

	for _, tc := range []struct {
		primary, canary int
		weights, pred   string
	}{
		{100, 0, `{"podinfo-canary":0,"podinfo-primary":100}`, `False() && Method("GET")`},
		{90, 10, `{"podinfo-canary":10,"podinfo-primary":90}`, `Weight(100) && Method("GET")`},
		{50, 50, `{"podinfo-canary":50,"podinfo-primary":50}`, `Weight(100) && Method("GET")`},
		{0, 100, `{"podinfo-canary":100,"podinfo-primary":0}`, `Weight(100) && Method("GET")`},
		{100, 0, `{"podinfo-canary":0,"podinfo-primary":100}`, `False() && Method("GET")`},
	} {
		require.NoError(t, rt.SetRoutes(ctx, c, tc.primary, tc.canary, false))
		ci, err := e.admin.NetworkingV1().Ingresses(e.ns).Get(ctx, "podinfo-canary", metav1.GetOptions{})
		require.NoError(t, err)
		require.Equal(t, tc.weights, ci.Annotations["zalando.org/backend-weights"])
		require.Equal(t, tc.pred, ci.Annotations["zalando.org/skipper-predicate"])
		pw, cw, mirrored, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, []any{tc.primary, tc.canary, false}, []any{pw, cw, mirrored})
	}

	require.NoError(t, rt.SetRoutes(ctx, c, 80, 20, false))
	before, err := e.admin.NetworkingV1().Ingresses(e.ns).Get(ctx, "podinfo-canary", metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, rt.SetRoutes(ctx, c, 80, 20, false))
	require.NoError(t, rt.Reconcile(ctx, c), "a reconcile never moves traffic")
	after, err := e.admin.NetworkingV1().Ingresses(e.ns).Get(ctx, "podinfo-canary", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, before.ResourceVersion, after.ResourceVersion, "running it again changed the canary Ingress")
	require.Error(t, rt.SetRoutes(ctx, c, 100, 0, true), "skipper cannot mirror")

	again, err := e.admin.NetworkingV1().Ingresses(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, user.ResourceVersion, again.ResourceVersion, "the user's Ingress is never written")

	require.NoError(t, rt.Finalize(ctx, c))
	require.NoError(t, rt.Finalize(ctx, c))
	_, err = e.admin.NetworkingV1().Ingresses(e.ns).Get(ctx, "podinfo-canary", metav1.GetOptions{})
	require.Error(t, err, "Finalize deletes the canary Ingress")

	// A "<ingress>-canary" of someone else's is refused and left alone.
	foreign := skipperUserIngress(e.ns)
	foreign.Name, foreign.Labels = "podinfo-canary", nil
	_, err = e.admin.NetworkingV1().Ingresses(e.ns).Create(ctx, foreign, metav1.CreateOptions{})
	require.NoError(t, err)
	for name, op := range map[string]func() error{
		"reconcile":  func() error { return rt.Reconcile(ctx, c) },
		"set routes": func() error { return rt.SetRoutes(ctx, c, 90, 10, false) },
		"finalize":   func() error { return rt.Finalize(ctx, c) },
	} {
		require.ErrorContains(t, op(), "Ingress "+e.ns+"/podinfo-canary exists and is not managed by canaryflow", name)
	}
	left, err := e.admin.NetworkingV1().Ingresses(e.ns).Get(ctx, "podinfo-canary", metav1.GetOptions{})
	require.NoError(t, err)
	require.NotContains(t, left.Annotations, "zalando.org/backend-weights")
}

func TestSkipperRefusesAnIngressWithoutTheApexService(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "rt-skipper-ref")
	in := skipperUserIngress(e.ns)
	in.Spec.Rules[0].HTTP.Paths[0].Backend.Service.Name = "elsewhere"
	_, err := e.admin.NetworkingV1().Ingresses(e.ns).Create(ctx, in, metav1.CreateOptions{})
	require.NoError(t, err)
	rt, err := e.routers.Get("skipper")
	require.NoError(t, err)
	require.ErrorContains(t, rt.Reconcile(ctx, skipperCanary(e.ns)), "has no path to Service podinfo")
}

// Live traffic through a real Skipper (v0.27.65) reading the lab's Ingresses: the split of each weight within a
// few requests, the user's Ingress alone at weight 0 (False()), and the builtin skipper queries, run on a
// Prometheus scraping Skipper's route metrics, selecting the canary route's requests.
func TestSkipperSplitsLiveTrafficAndTheBuiltinQueriesReadItsCanaryRoute(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "skipper-live")
	c := skipperCanary(e.ns)
	e.rollout(t, c)
	_, err := e.admin.NetworkingV1().Ingresses(e.ns).Create(ctx, skipperUserIngress(e.ns), metav1.CreateOptions{})
	require.NoError(t, err)
	sk := labtest.StartSkipper(t, e.ns)
	prom := promtest.Start(t, sk.MetricsTarget())
	rt, err := e.routers.Get("skipper")
	require.NoError(t, err)
	require.NoError(t, rt.Reconcile(ctx, c))
	requireSplit(t, sk.URL, "app.example.com", nil, 0)

	for _, w := range [][2]int{{90, 10}, {50, 50}, {0, 100}, {100, 0}} {
		require.NoError(t, rt.SetRoutes(ctx, c, w[0], w[1], false))
		requireSplit(t, sk.URL, "app.example.com", nil, w[1])
	}
	routes, err := sk.Routes(ctx)
	require.NoError(t, err)
	t.Logf("Skipper's routes at 100/0:\n%s", routes)

	// The canary route's success rate, with one request in four failing.
	require.NoError(t, rt.SetRoutes(ctx, c, 50, 50, false))
	requireSplit(t, sk.URL, "app.example.com", nil, 50)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	get := func(path string) {
		req, _ := http.NewRequest(http.MethodGet, sk.URL+path, nil)
		req.Host = "app.example.com"
		resp, err := hc.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}
	model := metrics.Model{Namespace: e.ns, Name: "podinfo", Target: "podinfo", Service: "podinfo", Ingress: "podinfo", Interval: "1m"}
	p, err := metrics.New(metrics.Config{Type: "prometheus", Address: prom})
	require.NoError(t, err)
	render := func(metric string) string {
		q, ok := metrics.BuiltinQuery("skipper", metric)
		require.True(t, ok)
		q, err := metrics.Render(q, model)
		require.NoError(t, err)
		return q
	}
	query := func(metric string) (float64, string, error) {
		q := render(metric)
		v, err := p.RunQuery(ctx, q)
		return v, q, err
	}
	// The queries select the canary Ingress's route to the canary Service by the id Skipper gives it, and no
	// other route (the user's Ingress, the canary Ingress's primary path).
	routes, err = sk.Routes(ctx)
	require.NoError(t, err)
	ids := regexp.MustCompile(`(?m)^(kube\w+):`).FindAllStringSubmatch(routes, -1)
	require.Len(t, ids, 3, routes)
	sr := render("request-success-rate")
	sel := regexp.MustCompile(`route=~"([^"]+)"`).FindStringSubmatch(sr)
	require.NotNil(t, sel, sr)
	re := regexp.MustCompile("^(?:" + sel[1] + ")$") // PromQL regexes are anchored
	var selected []string
	for _, id := range ids {
		if re.MatchString(id[1]) {
			selected = append(selected, id[1])
		}
	}
	require.Len(t, selected, 1, "%s selects %v of %v", sel[1], selected, ids)
	require.True(t, strings.HasSuffix(selected[0], "__podinfo_canary"), selected[0])

	var rate, duration float64
	var q string
	require.Eventually(t, func() bool {
		for range 30 {
			get("/version")
			get("/version")
			get("/version")
			get("/status/500")
		}
		if rate, q, err = query("request-success-rate"); err != nil || rate < 60 || rate > 90 {
			t.Logf("request-success-rate %v (%v)", rate, err)
			return false
		}
		duration, _, err = query("request-duration")
		return err == nil && duration >= 0
	}, 90*time.Second, time.Second, "the builtin skipper queries never saw the canary route's requests: %s", q)
	t.Logf("builtin skipper queries on the canary route: success rate %.1f%%, duration %.2f ms", rate, duration)
}
