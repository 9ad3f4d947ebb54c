package activities_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"
)

// shapeExporter serves, in Prometheus text format, series of exactly the shape each router/mesh exports, for a
// healthy canary (namespace "good": no errors, every request fast) and a failing one (namespace "bad": 10% 5xx,
// 30% of requests slow), next to decoys a wrong selector would pick up (the primary failing badly, other
// reporters/directions). Counters grow at 100 req/s from the exporter's start, so rates are exact.
type shapeExporter struct {
	start time.Time
	srv   *httptest.Server
}

type scenario struct {
	ns        string
	errFrac   float64
	slowFrac  float64
	fastSec   float64
	slowSec   float64
	perSecond float64
}

var (
	goodScenario  = scenario{ns: "good", errFrac: 0, slowFrac: 0, fastSec: 0.02, slowSec: 2, perSecond: 100}
	badScenario   = scenario{ns: "bad", errFrac: 0.10, slowFrac: 0.30, fastSec: 0.02, slowSec: 2, perSecond: 100}
	decoyScenario = scenario{errFrac: 1, slowFrac: 1, fastSec: 0.02, slowSec: 4, perSecond: 500}
)

func newShapeExporter() *shapeExporter {
	e := &shapeExporter{start: time.Now()}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	return e
}

func (e *shapeExporter) target() string { return strings.TrimPrefix(e.srv.URL, "http://") }

// family collects the samples of one metric family so they are written together, as the format requires.
type families struct {
	mu    sync.Mutex
	types map[string]string
	lines map[string][]string
}

func (f *families) add(family, typ, name string, labels map[string]string, v float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.types[family] = typ
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%q", k, labels[k]))
	}
	f.lines[family] = append(f.lines[family], fmt.Sprintf("%s{%s} %g", name, strings.Join(parts, ","), v))
}

func with(base map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(base)+len(kv)/2)
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// counterByCode writes a request counter split into 200 and 500 answers.
func (f *families) counterByCode(family, codeLabel string, labels map[string]string, s scenario, total float64, code200, code500 string) {
	f.add(family, "counter", family, with(labels, codeLabel, code200), total*(1-s.errFrac))
	if s.errFrac > 0 {
		f.add(family, "counter", family, with(labels, codeLabel, code500), total*s.errFrac)
	}
}

// histogram writes _bucket, _sum and _count for the scenario's latencies in the given unit (1 = seconds, 1000 = ms).
func (f *families) histogram(family string, labels map[string]string, s scenario, total, unit float64, buckets []float64) {
	fast, slow := s.fastSec*unit, s.slowSec*unit
	for _, le := range append(buckets, 0) {
		var n float64
		leStr := "+Inf"
		if le != 0 {
			leStr = fmt.Sprintf("%g", le)
		}
		if le == 0 || fast <= le {
			n += total * (1 - s.slowFrac)
		}
		if le == 0 || slow <= le {
			n += total * s.slowFrac
		}
		f.add(family, "histogram", family+"_bucket", with(labels, "le", leStr), n)
	}
	f.add(family, "histogram", family+"_sum", labels, total*((1-s.slowFrac)*fast+s.slowFrac*slow))
	f.add(family, "histogram", family+"_count", labels, total)
}

var (
	secondsBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	traefikBuckets = []float64{0.1, 0.3, 1.2, 5}
	msBuckets      = []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}
)

func (e *shapeExporter) serve(w http.ResponseWriter, _ *http.Request) {
	elapsed := time.Since(e.start).Seconds()
	f := &families{types: map[string]string{}, lines: map[string][]string{}}
	for _, s := range []scenario{goodScenario, badScenario} {
		ns := s.ns
		decoy := decoyScenario
		n := s.perSecond * elapsed
		dn := decoy.perSecond * elapsed
		// The request split by code inside one histogram, as Traefik and Skipper export it.
		codeHist := func(name string, labels map[string]string, sc scenario, total float64, buckets []float64) {
			f.histogram(name, with(labels, "code", "200"), sc, total*(1-sc.errFrac), 1, buckets)
			if sc.errFrac > 0 {
				f.histogram(name, with(labels, "code", "500"), sc, total*sc.errFrac, 1, buckets)
			}
		}

		// Traefik v3: leaf services <ns>-<svc>-<port>@kubernetescrd.
		tr := map[string]string{"method": "GET", "protocol": "http"}
		for _, v := range []struct {
			svc string
			sc  scenario
			n   float64
		}{{ns + "-podinfo-canary-80@kubernetescrd", s, n}, {ns + "-podinfo-primary-80@kubernetescrd", decoy, dn}} {
			codeHist("traefik_service_request_duration_seconds", with(tr, "service", v.svc), v.sc, v.n, traefikBuckets)
			f.counterByCode("traefik_service_requests_total", "code", with(tr, "service", v.svc), v.sc, v.n, "200", "500")
		}

		// APISIX: route ids <ns>_<apisixroute>_<rule>; the canary route is <route>-<target>-canary.
		for _, v := range []struct {
			route string
			sc    scenario
			n     float64
		}{{ns + "_podinfo-podinfo-canary_rule-1", s, n}, {ns + "_podinfo_rule-1", decoy, dn}} {
			l := map[string]string{"route": v.route, "matched_uri": "/*", "matched_host": "app.example.com", "service": "", "consumer": "", "node": "10.244.0.7"}
			f.counterByCode("apisix_http_status", "code", l, v.sc, v.n, "200", "503")
			f.histogram("apisix_http_latency", with(l, "type", "request"), v.sc, v.n, 1000, msBuckets)
			// upstream latency of the canary looks healthy even when requests are slow: the query must read type=request.
			f.histogram("apisix_http_latency", with(l, "type", "upstream"), goodScenario, v.n, 1000, msBuckets)
		}

		// ingress-nginx (v1.11): every request is counted under the location of the user's Ingress (ingress and
		// service as that Ingress names them: the apex); canary="<ns>-<canary service>-<port>" when the canary
		// backend served it, empty otherwise (e2e/nginx_test.go reads the controller's own collector).
		ng := map[string]string{"namespace": ns, "ingress": "podinfo", "service": "podinfo", "host": "app.example.com", "method": "GET", "path": "/",
			"controller_class": "k8s.io/ingress-nginx", "controller_namespace": "ingress-nginx", "controller_pod": "ingress-nginx-controller-1"}
		f.counterByCode("nginx_ingress_controller_requests", "status", with(ng, "canary", ns+"-podinfo-canary-80"), s, n, "200", "502")
		f.counterByCode("nginx_ingress_controller_requests", "status", with(ng, "canary", ""), decoy, dn, "200", "502")
		f.histogram("nginx_ingress_controller_response_duration_seconds", with(ng, "canary", ns+"-podinfo-canary-80", "status", "200"), s, n, 1, secondsBuckets)
		f.histogram("nginx_ingress_controller_response_duration_seconds", with(ng, "canary", "", "status", "200"), decoy, dn, 1, secondsBuckets)

		// Istio: destination-reported requests per workload.
		for _, v := range []struct {
			workload, reporter string
			sc                 scenario
			n                  float64
		}{{"podinfo", "destination", s, n}, {"podinfo-primary", "destination", decoy, dn}, {"podinfo", "source", decoy, dn}} {
			l := map[string]string{"reporter": v.reporter, "destination_workload": v.workload, "destination_workload_namespace": ns,
				"destination_service": "podinfo." + ns + ".svc.cluster.local", "source_workload": "ingressgateway", "request_protocol": "http"}
			f.counterByCode("istio_requests_total", "response_code", l, v.sc, v.n, "200", "500")
			f.histogram("istio_request_duration_milliseconds", l, v.sc, v.n, 1000, msBuckets)
		}

		// Linkerd: inbound responses classified per deployment.
		for _, v := range []struct {
			deploy, direction string
			sc                scenario
			n                 float64
		}{{"podinfo", "inbound", s, n}, {"podinfo-primary", "inbound", decoy, dn}, {"podinfo", "outbound", decoy, dn}} {
			l := map[string]string{"namespace": ns, "deployment": v.deploy, "direction": v.direction, "pod": v.deploy + "-7d9f8b6c5d-x2x4z"}
			f.add("response_total", "counter", "response_total", with(l, "classification", "success", "status_code", "200"), v.n*(1-v.sc.errFrac))
			if v.sc.errFrac > 0 {
				f.add("response_total", "counter", "response_total", with(l, "classification", "failure", "status_code", "500"), v.n*v.sc.errFrac)
			}
			f.histogram("response_latency_ms", l, v.sc, v.n, 1000, msBuckets)
		}

		// Open Service Mesh.
		for _, v := range []struct {
			name string
			sc   scenario
			n    float64
		}{{"podinfo", s, n}, {"podinfo-primary", decoy, dn}} {
			l := map[string]string{"destination_namespace": ns, "destination_kind": "Deployment", "destination_name": v.name,
				"source_namespace": "ingress", "source_kind": "Deployment", "source_name": "gateway"}
			f.counterByCode("osm_request_total", "response_code", l, v.sc, v.n, "200", "500")
			f.histogram("osm_request_duration_ms", l, v.sc, v.n, 1000, msBuckets)
		}

		// Envoy cluster stats as Contour, Gloo, Kuma and App Mesh label them.
		envoy := func(l map[string]string, sc scenario, total float64) {
			f.counterByCode("envoy_cluster_upstream_rq", "envoy_response_code", l, sc, total, "200", "503")
			f.histogram("envoy_cluster_upstream_rq_time", l, sc, total, 1000, msBuckets)
		}
		envoy(map[string]string{"envoy_cluster_name": ns + "_podinfo-canary_80"}, s, n)                        // contour
		envoy(map[string]string{"envoy_cluster_name": ns + "_podinfo-primary_80"}, decoy, dn)                  // contour primary
		envoy(map[string]string{"envoy_cluster_name": ns + "-podinfo-canaryupstream-80_" + ns}, s, n)          // gloo (the router's Upstream)
		envoy(map[string]string{"envoy_cluster_name": ns + "-podinfo-primaryupstream-80_" + ns}, decoy, dn)    // gloo primary
		envoy(map[string]string{"service": "podinfo-canary_" + ns + "_svc_80", "mesh": "default"}, s, n)       // kuma
		envoy(map[string]string{"service": "podinfo-primary_" + ns + "_svc_80", "mesh": "default"}, decoy, dn) // kuma primary
		envoy(map[string]string{"kubernetes_namespace": ns, "kubernetes_pod_name": "podinfo-7d9f8b6c5d-x2x4z",
			"envoy_cluster_name": "cds_ingress_appmesh_podinfo-canary_http_9898"}, s, n) // app mesh
		envoy(map[string]string{"kubernetes_namespace": ns, "kubernetes_pod_name": "podinfo-primary-6b7c8d9e0f-abcde",
			"envoy_cluster_name": "cds_ingress_appmesh_podinfo-primary_http_9898"}, decoy, dn) // app mesh primary

		// Skipper: route ids from the canary Ingress (non-word characters as "_").
		for _, v := range []struct {
			route string
			sc    scenario
			n     float64
		}{{"kube_" + ns + "__podinfo_canary__app_example_com____podinfo_canary", s, n}, {"kube_" + ns + "__podinfo__app_example_com____podinfo_primary", decoy, dn}} {
			codeHist("skipper_response_duration_seconds", map[string]string{"route": v.route, "method": "GET"}, v.sc, v.n, secondsBuckets)
			f.histogram("skipper_serve_route_duration_seconds", map[string]string{"route": v.route, "method": "GET", "code": "200"}, v.sc, v.n, 1, secondsBuckets)
		}

		// The application's own histogram (podinfo), scraped per pod (kubernetes and gatewayapi providers).
		for _, v := range []struct {
			pod string
			sc  scenario
			n   float64
		}{{"podinfo-7d9f8b6c5d-x2x4z", s, n}, {"podinfo-primary-6b7c8d9e0f-abcde", decoy, dn}} {
			l := map[string]string{"kubernetes_namespace": ns, "kubernetes_pod_name": v.pod, "method": "GET", "path": "root"}
			f.histogram("http_request_duration_seconds", with(l, "status", "200"), v.sc, v.n*(1-v.sc.errFrac), 1, secondsBuckets)
			if v.sc.errFrac > 0 {
				f.histogram("http_request_duration_seconds", with(l, "status", "500"), v.sc, v.n*v.sc.errFrac, 1, secondsBuckets)
			}
		}
	}
	names := make([]string, 0, len(f.lines))
	for k := range f.lines {
		names = append(names, k)
	}
	sort.Strings(names)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	for _, fam := range names {
		fmt.Fprintf(w, "# TYPE %s %s\n", fam, f.types[fam])
		for _, l := range f.lines[fam] {
			fmt.Fprintln(w, l)
		}
	}
}
