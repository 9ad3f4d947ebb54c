//go:build lab

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/metrics/promtest"
)

// apisixExporter serves APISIX's request metrics (apisix_http_status, apisix_http_latency in ms) for every route
// the translator serves in one namespace, under the route names APISIX's prometheus plugin labels series with
// (prefer_name). Counters grow at 50 requests a second per route, every request takes 12 to 20 ms; routes failing
// names answer 20% 5xx, the others none.
type apisixExporter struct {
	ap *labtest.APISIXTranslator
	ns string

	mu      sync.Mutex
	last    time.Time
	ok, bad map[string]float64 // counts by route
	failing func(route string) bool
}

func (e *apisixExporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	routes, err := e.ap.Routes(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	dt := now.Sub(e.last).Seconds()
	if e.last.IsZero() {
		dt = 0
	}
	e.last = now
	var names []string
	for name := range routes {
		if strings.HasPrefix(name, e.ns+"_") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var status, latency strings.Builder
	for _, name := range names {
		errFrac := 0.0
		if e.failing != nil && e.failing(name) {
			errFrac = 0.2
		}
		e.ok[name] += 50 * dt * (1 - errFrac)
		e.bad[name] += 50 * dt * errFrac
		l := fmt.Sprintf(`route=%q,matched_uri="/*",matched_host="app.example.com",service="",consumer="",node="10.244.0.9"`, name)
		fmt.Fprintf(&status, "apisix_http_status{code=\"200\",%s} %g\n", l, e.ok[name])
		fmt.Fprintf(&status, "apisix_http_status{code=\"503\",%s} %g\n", l, e.bad[name])
		all := e.ok[name] + e.bad[name]
		for _, le := range []string{"1", "2", "5", "10", "20", "50", "100", "200", "500"} {
			v := 0.0
			if le == "20" || le == "50" || le == "100" || le == "200" || le == "500" {
				v = all // every request takes 12 to 20 ms
			}
			fmt.Fprintf(&latency, "apisix_http_latency_bucket{type=\"request\",le=%q,%s} %g\n", le, l, v)
		}
		fmt.Fprintf(&latency, "apisix_http_latency_bucket{type=\"request\",le=\"+Inf\",%s} %g\n", l, all)
		fmt.Fprintf(&latency, "apisix_http_latency_count{type=\"request\",%s} %g\n", l, all)
		fmt.Fprintf(&latency, "apisix_http_latency_sum{type=\"request\",%s} %g\n", l, all*16)
	}
	fmt.Fprintf(w, "# TYPE apisix_http_status counter\n%s# TYPE apisix_http_latency histogram\n%s", status.String(), latency.String())
}

func (e *apisixExporter) setFailing(f func(route string) bool) {
	e.mu.Lock()
	e.failing = f
	e.mu.Unlock()
}

// apisixWeights records every distinct primary/canary weight pair the translator gives the canary route (through
// its traffic-split plugin), polling until stop.
type apisixWeights struct {
	mu   sync.Mutex
	seen [][2]int
}

func (w *apisixWeights) watch(ctx context.Context, ap *labtest.APISIXTranslator, route string) {
	for ctx.Err() == nil {
		if routes, err := ap.Routes(ctx); err == nil {
			if r, ok := routes[route]; ok {
				if p, c, ok := trafficSplit(r); ok {
					w.mu.Lock()
					if n := len(w.seen); n == 0 || w.seen[n-1] != [2]int{p, c} {
						w.seen = append(w.seen, [2]int{p, c})
					}
					w.mu.Unlock()
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (w *apisixWeights) take() [][2]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	if n := len(out); n > 0 {
		w.seen = [][2]int{out[n-1]}
	}
	return out
}

// trafficSplit reads an APISIX route's split: the weight of its own upstream (the primary) and of the one other
// weighted upstream (the canary).
func trafficSplit(r map[string]any) (primary, canary int, ok bool) {
	plugins, _ := r["plugins"].(map[string]any)
	ts, _ := plugins["traffic-split"].(map[string]any)
	rules, _ := ts["rules"].([]any)
	if len(rules) != 1 {
		return 0, 0, false
	}
	wups, _ := rules[0].(map[string]any)["weighted_upstreams"].([]any)
	for _, u := range wups {
		m, _ := u.(map[string]any)
		w, _ := m["weight"].(float64)
		if _, named := m["upstream_id"]; named {
			canary = int(w)
		} else {
			primary = int(w)
		}
	}
	return primary, canary, len(wups) == 2
}

// TestAPISIXSeedCanaryPromotesAndRollsBack runs the seed APISIX Canary (Flagger's tutorial, adapted: steps of 25
// up to 50, threshold 2) with the real worker (its ServiceAccount from deploy/), the starter and the real
// apisix-ingress-controller translating the objects the router writes. There is no APISIX data plane (it needs
// OpenResty), so no traffic flows: the builtin metrics are served for the routes the translator derived, by a
// local exporter a private Prometheus scrapes. 6.0.1 is promoted while the translator's traffic-split follows
// 100/0 → 75/25 → 50/50 → 100/0; 6.0.2 starts failing once it gets traffic and is rolled back to 100/0.
func TestAPISIXSeedCanaryPromotesAndRollsBack(t *testing.T) {
	ap := labtest.APISIX(t)
	env := labtest.Lab(t)
	ns := labtest.Namespace(t, "e2e-apisix")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	canaryRoute, templateRoute := ns+"_podinfo-podinfo-canary_method", ns+"_podinfo_method"
	// While 6.0.1 rolls out, the template's route (requests the canary route does not take) fails: the builtin
	// queries must not count it.
	exp := &apisixExporter{ap: ap, ns: ns, ok: map[string]float64{}, bad: map[string]float64{},
		failing: func(route string) bool { return route == templateRoute }}
	srv := httptest.NewServer(exp)
	defer srv.Close()
	prom := promtest.Start(t, strings.TrimPrefix(srv.URL, "http://"))

	s, err := StartOnQueue(ctx, env, Narrator(t), "e2e-"+ns)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", s.LogTail("worker", 60))
		}
		s.Close()
	})

	require.NoError(t, s.ApplyPodinfo(ctx, ns, "6.0.0"))
	template := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
		"metadata": map[string]any{"name": "podinfo", "namespace": ns},
		"spec": map[string]any{"http": []any{map[string]any{
			"name":     "method",
			"match":    map[string]any{"hosts": []any{"app.example.com"}, "methods": []any{"GET"}, "paths": []any{"/*"}},
			"plugins":  []any{map[string]any{"name": "prometheus", "enable": true, "config": map[string]any{"prefer_name": true}}},
			"backends": []any{map[string]any{"serviceName": "podinfo", "servicePort": int64(80)}},
		}}},
	}}
	routes := s.Dynamic.Resource(schema.GroupVersionResource{Group: "apisix.apache.org", Version: "v2", Resource: "apisixroutes"}).Namespace(ns)
	_, err = routes.Create(ctx, template, metav1.CreateOptions{})
	require.NoError(t, err)
	file := seedCanary(t, s, ns, prom)

	var seen apisixWeights
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go seen.watch(wctx, ap, canaryRoute)

	r := s.Starter(ctx, "rollout", "-f", file, "--wait", "--timeout", "3m", "--by", "e2e")
	require.Equal(t, 0, r.Code, r.Output)
	require.Eventually(t, func() bool { return fmt.Sprint(seen.take()) == "[[100 0]]" }, 30*time.Second, 200*time.Millisecond,
		"after initialisation the translator sends all traffic of the canary route to the primary")

	r = s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.1"), "--wait", "--timeout", "5m", "--by", "e2e")
	require.Equal(t, 0, r.Code, r.Output)
	require.NoError(t, expectLines("starter rollout 6.0.1", r.Output, "Advance podinfo."+ns+" canary weight 25",
		"Advance podinfo."+ns+" canary weight 50", "check request-success-rate", "promoted revision"))
	img, _, err := s.Image(ctx, ns, "podinfo-primary")
	require.NoError(t, err)
	require.Equal(t, PodinfoImage("6.0.1"), img)
	require.Eventually(t, func() bool {
		seen.mu.Lock()
		defer seen.mu.Unlock()
		return len(seen.seen) > 0 && seen.seen[len(seen.seen)-1] == [2]int{100, 0}
	}, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, [][2]int{{100, 0}, {75, 25}, {50, 50}, {100, 0}}, seen.take(), "the translator's traffic-split at each step")

	// 6.0.2 answers 20% errors as soon as the translator gives it traffic; the template's route is healthy now.
	exp.setFailing(func(route string) bool {
		if route != canaryRoute {
			return false
		}
		seen.mu.Lock()
		defer seen.mu.Unlock()
		for _, w := range seen.seen {
			if w[1] > 0 {
				return true
			}
		}
		return false
	})
	r = s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.2"), "--wait", "--timeout", "5m", "--by", "e2e")
	require.Equal(t, 1, r.Code, r.Output)
	require.NoError(t, expectLines("starter rollout 6.0.2", r.Output, "Advance podinfo."+ns+" canary weight 25",
		"Halt podinfo."+ns+" advancement success rate", "phase Failed"))
	_, replicas, err := s.Image(ctx, ns, "podinfo")
	require.NoError(t, err)
	require.Zero(t, replicas, "the canary is scaled to zero")
	img, _, err = s.Image(ctx, ns, "podinfo-primary")
	require.NoError(t, err)
	require.Equal(t, PodinfoImage("6.0.1"), img, "the primary keeps the promoted version")
	require.Eventually(t, func() bool {
		seen.mu.Lock()
		defer seen.mu.Unlock()
		return len(seen.seen) > 0 && seen.seen[len(seen.seen)-1] == [2]int{100, 0}
	}, 30*time.Second, 200*time.Millisecond)
	require.Equal(t, [][2]int{{100, 0}, {75, 25}, {100, 0}}, seen.take(), "the translator's traffic-split: one step, then rolled back")

	live, err := routes.Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, template.Object["spec"], live.Object["spec"], "the user's ApisixRoute is never modified")
}

// seedCanary writes api/v1beta1/testdata/flagger/apisix-canary.yaml adapted to the lab: namespace ns, metrics from
// prom, steps of 25 up to 50, threshold 2, and no webhooks (they call Flagger's load tester inside a cluster,
// through a data plane the lab does not have).
func seedCanary(t *testing.T, s *Stack, ns, prom string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.Root, "api", "v1beta1", "testdata", "flagger", "apisix-canary.yaml"))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	u := &unstructured.Unstructured{Object: doc}
	u.SetNamespace(ns)
	require.NoError(t, unstructured.SetNestedField(doc, prom, "spec", "metricsServer"))
	for field, v := range map[string]int64{"stepWeight": 25, "maxWeight": 50, "threshold": 2} {
		require.NoError(t, unstructured.SetNestedField(doc, v, "spec", "analysis", field))
	}
	unstructured.RemoveNestedField(doc, "spec", "analysis", "webhooks")
	interval, _, _ := unstructured.NestedString(doc, "spec", "analysis", "interval")
	require.Equal(t, "10s", interval, "the seed already analyses every 10s")
	out, err := yaml.Marshal(doc)
	require.NoError(t, err)
	path := filepath.Join(s.Dir, "apisix-canary.yaml")
	require.NoError(t, os.WriteFile(path, out, 0o644))
	return path
}
