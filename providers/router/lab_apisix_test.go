//go:build lab

package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

var apisixRoutes = schema.GroupVersionResource{Group: "apisix.apache.org", Version: "v2", Resource: "apisixroutes"}

// apisixTemplate is the ApisixRoute of Flagger's APISIX tutorial: GET app.example.com/* to the apex Service, with
// APISIX's prometheus plugin naming series by route name.
func apisixTemplate(ns, name string, backends ...string) *unstructured.Unstructured {
	var bs []any
	for _, b := range backends {
		bs = append(bs, map[string]any{"serviceName": b, "servicePort": int64(9898)})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": map[string]any{"team": "podinfo"}},
		"spec": map[string]any{"http": []any{map[string]any{
			"name":     "method",
			"match":    map[string]any{"hosts": []any{"app.example.com"}, "methods": []any{"GET"}, "paths": []any{"/*"}},
			"plugins":  []any{map[string]any{"name": "prometheus", "enable": true, "config": map[string]any{"prefer_name": true}}},
			"backends": bs,
		}}},
	}}
}

func withRouteRef(c *v1beta1.Canary) {
	c.Spec.RouteRef = &v1beta1.LocalObjectReference{APIVersion: "apisix.apache.org/v2", Kind: "ApisixRoute", Name: "podinfo"}
}

// apisixView is what the translator made of one route: the weights of its traffic-split plugin by Service, its
// vars and its proxy-mirror plugin.
type apisixView struct {
	priority int
	weights  map[string]int // Service name → weight ("" when an upstream is unknown)
	nodes    map[string][]string
	vars     any
	mirror   map[string]any
	plugins  []string
}

// split reports whether the route sends primary percent to the primary's upstream and canary to the canary's.
func (v *apisixView) split(primary, canary int) bool {
	p, okP := v.weights["podinfo-primary"]
	c, okC := v.weights["podinfo-canary"]
	return okP && okC && p == primary && c == canary
}

// apisixRouteView reads the translator's route name and resolves its upstreams to Services.
func apisixRouteView(t *testing.T, ap *labtest.APISIXTranslator, name string) (*apisixView, error) {
	t.Helper()
	ctx := context.Background()
	routes, err := ap.Routes(ctx)
	if err != nil {
		return nil, err
	}
	r, ok := routes[name]
	if !ok {
		return nil, fmt.Errorf("no route %s among %d", name, len(routes))
	}
	ups, err := ap.Upstreams(ctx)
	if err != nil {
		return nil, err
	}
	service := func(id any) string {
		u := ups[fmt.Sprint(id)]
		if u == nil {
			return ""
		}
		// Upstream names are <namespace>_<service>_<port>.
		m := regexp.MustCompile(`^[^_]+_(.+)_\d+$`).FindStringSubmatch(fmt.Sprint(u["name"]))
		if m == nil {
			return fmt.Sprint(u["name"])
		}
		return m[1]
	}
	nodes := func(id any) []string {
		var out []string
		if u := ups[fmt.Sprint(id)]; u != nil {
			ns, _ := u["nodes"].([]any)
			for _, n := range ns {
				m, _ := n.(map[string]any)
				out = append(out, fmt.Sprint(m["host"]))
			}
		}
		sort.Strings(out)
		return out
	}
	v := &apisixView{priority: int(num(r["priority"])), weights: map[string]int{}, nodes: map[string][]string{}, vars: r["vars"]}
	plugins, _ := r["plugins"].(map[string]any)
	for p := range plugins {
		v.plugins = append(v.plugins, p)
	}
	sort.Strings(v.plugins)
	v.mirror, _ = plugins["proxy-mirror"].(map[string]any)
	def := service(r["upstream_id"])
	v.nodes[def] = nodes(r["upstream_id"])
	ts, _ := plugins["traffic-split"].(map[string]any)
	if ts == nil {
		v.weights[def] = 100
		return v, nil
	}
	rules, _ := ts["rules"].([]any)
	require.Len(t, rules, 1)
	wups, _ := rules[0].(map[string]any)["weighted_upstreams"].([]any)
	for _, w := range wups {
		m, _ := w.(map[string]any)
		if id, ok := m["upstream_id"]; ok {
			v.weights[service(id)] = int(num(m["weight"]))
			v.nodes[service(id)] = nodes(id)
		} else {
			v.weights[def] = int(num(m["weight"])) // the route's own upstream
		}
	}
	return v, nil
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// waitRoute polls the translator until its view of route name satisfies ok.
func waitRoute(t *testing.T, ap *labtest.APISIXTranslator, name string, ok func(*apisixView) bool) *apisixView {
	t.Helper()
	var last *apisixView
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if last, err = apisixRouteView(t, ap, name); err == nil && ok(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("route %s never as expected: last %+v (%v)\n%s", name, last, err, ap.LogTail(20))
	return nil
}

func podIPs(t *testing.T, e *env, app string) []string {
	t.Helper()
	pods, err := e.admin.CoreV1().Pods(e.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	require.NoError(t, err)
	var out []string
	for _, p := range pods.Items {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
			out = append(out, p.Status.PodIP)
		}
	}
	sort.Strings(out)
	return out
}

// The apisix router's objects, created on the API server with APISIX's CRDs, and what the real
// apisix-ingress-controller makes of them: the canary route wins over the template by priority, sends each step's
// weight to an upstream of the canary pods through APISIX's traffic-split plugin, carries the A/B matches as vars
// and the mirror as APISIX's proxy-mirror plugin (both checked against APISIX's plugin schema by the controller),
// and is gone after Finalize, leaving the user's route as it was.
func TestAPISIXTranslatorDerivesOurSplitsMatchesAndMirror(t *testing.T) {
	ctx := context.Background()
	ap := labtest.APISIX(t)
	e := newEnv(t, "rt-apisix")
	dyn := labtest.Dynamic(t)
	c := canary(e.ns, "apisix", withRouteRef)
	e.rollout(t, c)
	rt, err := e.routers.Get("apisix")
	require.NoError(t, err)

	err = rt.Reconcile(ctx, c)
	require.ErrorContains(t, err, "ApisixRoute "+e.ns+"/podinfo (spec.routeRef of Canary podinfo) not found")
	var perm *kubeobj.PermanentError
	require.ErrorAs(t, err, &perm)

	_, err = dyn.Resource(apisixRoutes).Namespace(e.ns).Create(ctx, apisixTemplate(e.ns, "podinfo", "podinfo", "other"), metav1.CreateOptions{})
	require.NoError(t, err)
	require.ErrorContains(t, rt.Reconcile(ctx, c), "HTTP rule method has 2 backends: canaryflow (like Flagger) needs exactly one, the Service podinfo")
	require.NoError(t, dyn.Resource(apisixRoutes).Namespace(e.ns).Delete(ctx, "podinfo", metav1.DeleteOptions{}))
	template := apisixTemplate(e.ns, "podinfo", "podinfo")
	_, err = dyn.Resource(apisixRoutes).Namespace(e.ns).Create(ctx, template, metav1.CreateOptions{})
	require.NoError(t, err)

	foreign := apisixTemplate(e.ns, "podinfo-podinfo-canary", "somewhere")
	_, err = dyn.Resource(apisixRoutes).Namespace(e.ns).Create(ctx, foreign, metav1.CreateOptions{})
	require.NoError(t, err)
	require.ErrorContains(t, rt.Reconcile(ctx, c), "ApisixRoute "+e.ns+"/podinfo-podinfo-canary exists and is not managed by canaryflow")
	require.NoError(t, dyn.Resource(apisixRoutes).Namespace(e.ns).Delete(ctx, "podinfo-podinfo-canary", metav1.DeleteOptions{}))

	require.NoError(t, rt.Reconcile(ctx, c))
	pw, cw, m, err := rt.GetRoutes(ctx, c)
	require.NoError(t, err)
	require.Equal(t, []any{100, 0, false}, []any{pw, cw, m}, "a new canary route starts at 100/0")

	canaryRoute := e.ns + "_podinfo-podinfo-canary_method"
	templateRoute := e.ns + "_podinfo_method"
	tpl := waitRoute(t, ap, templateRoute, func(v *apisixView) bool { return v.weights["podinfo"] == 100 })
	require.Less(t, tpl.priority, 10000)
	v := waitRoute(t, ap, canaryRoute, func(v *apisixView) bool { return v.split(100, 0) })
	require.Equal(t, 10000, v.priority, "Flagger's priority, above the template's")
	require.Equal(t, []string{"prometheus", "traffic-split"}, v.plugins, "the template's plugins are kept")
	require.Nil(t, v.vars)

	// The weights go to the upstreams of the right pods.
	require.Eventually(t, func() bool {
		v, err := apisixRouteView(t, ap, canaryRoute)
		return err == nil && len(v.nodes["podinfo-canary"]) > 0 &&
			fmt.Sprint(v.nodes["podinfo-canary"]) == fmt.Sprint(podIPs(t, e, "podinfo")) &&
			fmt.Sprint(v.nodes["podinfo-primary"]) == fmt.Sprint(podIPs(t, e, "podinfo-primary"))
	}, 30*time.Second, 200*time.Millisecond, "the primary and canary upstreams hold the pods of podinfo-primary and podinfo")

	// The builtin metrics select the canary route by the name APISIX labels its series with, not the template.
	q, ok := metrics.BuiltinQuery("apisix", "request-success-rate")
	require.True(t, ok)
	q, err = metrics.Render(q, metrics.Model{Namespace: e.ns, Target: "podinfo", Service: "podinfo", Route: "podinfo", Interval: "1m"})
	require.NoError(t, err)
	sel := regexp.MustCompile(`route=~"([^"]+)"`).FindStringSubmatch(q)
	require.NotNil(t, sel, q)
	re := regexp.MustCompile("^(?:" + sel[1] + ")$") // PromQL regexes are anchored
	require.True(t, re.MatchString(canaryRoute), "%s must select %s", sel[1], canaryRoute)
	require.False(t, re.MatchString(templateRoute), "%s must not select the template's %s", sel[1], templateRoute)

	for _, w := range [][2]int{{90, 10}, {50, 50}, {0, 100}} {
		require.NoError(t, rt.SetRoutes(ctx, c, w[0], w[1], false))
		pw, cw, m, err := rt.GetRoutes(ctx, c)
		require.NoError(t, err)
		require.Equal(t, []any{w[0], w[1], false}, []any{pw, cw, m})
		waitRoute(t, ap, canaryRoute, func(v *apisixView) bool { return v.split(w[0], w[1]) })
		if w[1] == 10 {
			routes, err := ap.Routes(ctx)
			require.NoError(t, err)
			t.Logf("the route APISIX would load at 90/10: %s", jsonString(routes[canaryRoute]))
		}
	}
	before, err := dyn.Resource(apisixRoutes).Namespace(e.ns).Get(ctx, "podinfo-podinfo-canary", metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, rt.SetRoutes(ctx, c, 0, 100, false))
	require.NoError(t, rt.Reconcile(ctx, c))
	after, err := dyn.Resource(apisixRoutes).Namespace(e.ns).Get(ctx, "podinfo-podinfo-canary", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, before.GetResourceVersion(), after.GetResourceVersion(), "the same split again, and a reconcile, change nothing")
	require.Equal(t, "podinfo", after.GetLabels()["team"], "the template's labels are copied, as Flagger does")
	pw, cw, _, err = rt.GetRoutes(ctx, c)
	require.NoError(t, err)
	require.Equal(t, []int{0, 100}, []int{pw, cw}, "a reconcile keeps the current split")
	reqs := e.stepCost(t, rt, c, 80, 20)
	t.Logf("one analysis step with apisix: %d API requests: %v", len(reqs), reqs)
	require.LessOrEqual(t, len(reqs), 4)

	// A/B testing: the seed's header and cookie matches, and one of every other kind, become one rule each.
	ab := canary(e.ns, "apisix", func(c *v1beta1.Canary) {
		withRouteRef(c)
		c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 5
		c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{
			{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}},
			{Headers: map[string]v1beta1.StringMatch{"cookie": {Regex: "^(.*?;)?(canary=always)(;.*)?$"}}},
			{QueryParams: map[string]v1beta1.StringMatch{"v": {Exact: "2"}}, URI: &v1beta1.StringMatch{Prefix: "/beta"},
				Method: &v1beta1.StringMatch{Exact: "GET"}, Headers: map[string]v1beta1.StringMatch{"user-agent": {Suffix: "(beta)"}}},
		}
	})
	require.NoError(t, rt.Reconcile(ctx, ab))
	require.NoError(t, rt.SetRoutes(ctx, ab, 0, 100, false))
	wantVars := map[string]string{
		canaryRoute:        `[["http_x_canary","==","insider"]]`,
		canaryRoute + "-2": `[["http_cookie","~~","^(.*?;)?(canary=always)(;.*)?$"]]`,
		canaryRoute + "-3": `[["http_user_agent","~~","\\(beta\\)$"],["arg_v","==","2"],["uri","~~","^/beta"],["request_method","==","GET"]]`,
	}
	for name, vars := range wantVars {
		v := waitRoute(t, ap, name, func(v *apisixView) bool {
			return v.split(0, 100) && jsonString(v.vars) == vars
		})
		require.Equal(t, 10000, v.priority)
	}
	// Every other request falls through to the template, i.e. to the apex Service.
	waitRoute(t, ap, templateRoute, func(v *apisixView) bool { return v.weights["podinfo"] == 100 && v.vars == nil })

	// Mirroring (blue/green): all responses from the primary, mirrorWeight percent copied to the canary Service.
	mirror := canary(e.ns, "apisix", func(c *v1beta1.Canary) {
		withRouteRef(c)
		c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 5
		c.Spec.Analysis.Mirror, c.Spec.Analysis.MirrorWeight = true, 50
	})
	require.NoError(t, rt.Reconcile(ctx, mirror))
	require.Eventually(t, func() bool {
		routes, err := ap.Routes(ctx)
		_, two := routes[canaryRoute+"-2"]
		_, three := routes[canaryRoute+"-3"]
		return err == nil && !two && !three
	}, 30*time.Second, 200*time.Millisecond, "without A/B matches the canary route has one rule again")
	require.NoError(t, rt.SetRoutes(ctx, mirror, 100, 0, true))
	pw, cw, m, err = rt.GetRoutes(ctx, mirror)
	require.NoError(t, err)
	require.Equal(t, []any{100, 0, true}, []any{pw, cw, m})
	svc, err := e.admin.CoreV1().Services(e.ns).Get(ctx, "podinfo-canary", metav1.GetOptions{})
	require.NoError(t, err)
	v = waitRoute(t, ap, canaryRoute, func(v *apisixView) bool { return v.mirror != nil && v.split(100, 0) })
	require.Equal(t, map[string]any{"host": "http://" + svc.Spec.ClusterIP + ":9898", "sample_ratio": 0.5}, v.mirror)
	t.Logf("mirrored: plugins %v, proxy-mirror %v", v.plugins, v.mirror)
	require.NoError(t, rt.SetRoutes(ctx, mirror, 0, 100, false))
	waitRoute(t, ap, canaryRoute, func(v *apisixView) bool { return v.mirror == nil && v.split(0, 100) })

	// The controller refuses a proxy-mirror config APISIX's schema refuses, so the one above passed it.
	probe := apisixTemplate(e.ns, "schema-probe", "podinfo")
	rules, _, _ := unstructured.NestedSlice(probe.Object, "spec", "http")
	rules[0].(map[string]any)["plugins"] = []any{map[string]any{"name": "proxy-mirror", "enable": true,
		"config": map[string]any{"host": "podinfo-canary:9898", "sample_ratio": 0.5}}}
	require.NoError(t, unstructured.SetNestedSlice(probe.Object, rules, "spec", "http"))
	_, err = dyn.Resource(apisixRoutes).Namespace(e.ns).Create(ctx, probe, metav1.CreateOptions{})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(ap.LogTail(1<<20), "\n") {
			if strings.Contains(line, e.ns+"/schema-probe") && strings.Contains(line, "plugin [proxy-mirror] config is invalid") {
				return true
			}
		}
		return false
	}, 30*time.Second, 200*time.Millisecond, "the controller never judged the probe's plugin")
	routes, err := ap.Routes(ctx)
	require.NoError(t, err)
	require.NotContains(t, routes, e.ns+"_schema-probe_method", "the probe's route is not served")

	require.NoError(t, rt.Finalize(ctx, mirror))
	_, err = dyn.Resource(apisixRoutes).Namespace(e.ns).Get(ctx, "podinfo-podinfo-canary", metav1.GetOptions{})
	require.Error(t, err, "the canary route is deleted")
	require.Eventually(t, func() bool {
		routes, err := ap.Routes(ctx)
		_, still := routes[canaryRoute]
		return err == nil && !still
	}, 30*time.Second, 200*time.Millisecond, "the translator drops the canary route")
	live, err := dyn.Resource(apisixRoutes).Namespace(e.ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, template.Object["spec"], live.Object["spec"], "the user's route is never modified")
	waitRoute(t, ap, templateRoute, func(v *apisixView) bool { return v.weights["podinfo"] == 100 })
	_, _, _, err = rt.GetRoutes(ctx, mirror)
	require.ErrorContains(t, err, "must be reconciled first")
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
