package activities_test

// Against the lab's real Traefik and Prometheus: the traefik builtin checks judge live podinfo traffic.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

var (
	labIngressRoutes   = schema.GroupVersionResource{Group: "traefik.io", Version: "v1alpha1", Resource: "ingressroutes"}
	labTraefikServices = schema.GroupVersionResource{Group: "traefik.io", Version: "v1alpha1", Resource: "traefikservices"}
	// labHTTP talks to loopback only (Traefik), never through a proxy.
	labHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32}}
)

// labCanary deploys podinfo as the canary of target "podinfo" in ns (Deployment podinfo, Service podinfo-canary)
// behind an IngressRoute for host, and waits until Traefik serves it.
func labCanary(t *testing.T, cs kubernetes.Interface, ns, host string) {
	t.Helper()
	ctx := context.Background()
	lbl := map[string]string{"app": "podinfo"}
	one := int32(1)
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Labels: lbl},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: lbl},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "podinfod", Image: "ghcr.io/stefanprodan/podinfo:6.0.1",
				Command: []string{"./podinfo", "--port=9898", "--level=info"},
				Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}},
			}}}},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo-canary"},
		Spec: corev1.ServiceSpec{Selector: lbl,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	// As canaryflow's Traefik router does: a weighted TraefikService over the canary Service (Traefik names its
	// children <namespace>-<service>-<port>@kubernetescrd in metrics, which the builtin queries select).
	_, err = labtest.Dynamic(t).Resource(labTraefikServices).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService",
		"metadata": map[string]any{"name": "podinfo", "namespace": ns},
		"spec": map[string]any{"weighted": map[string]any{"services": []any{
			map[string]any{"name": "podinfo-canary", "port": int64(80), "weight": int64(100)},
		}}},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = labtest.Dynamic(t).Resource(labIngressRoutes).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute",
		"metadata": map[string]any{"name": "podinfo", "namespace": ns},
		"spec": map[string]any{"entryPoints": []any{"web"}, "routes": []any{map[string]any{
			"kind": "Rule", "match": "Host(`" + host + "`)",
			"services": []any{map[string]any{"name": "podinfo", "kind": "TraefikService"}},
		}}},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	base := labtest.TraefikURL(t)
	waitFor(t, 90*time.Second, func() error {
		if code := labGet(base+"/version", host); code != http.StatusOK {
			return fmt.Errorf("Traefik answers %d for %s", code, host)
		}
		return nil
	})
}

func labGet(u, host string) int {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0
	}
	req.Host = host
	resp, err := labHTTP.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// labTraffic sends n requests to host through Traefik with 4 workers; path(i) chooses each request's path.
func labTraffic(base, host string, n int, path func(i int) string) (sent int64) {
	var count atomic.Int64
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if labGet(base+path(i), host) != 0 {
					count.Add(1)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return count.Load()
}

// The traefik builtin checks on live traffic: a healthy podinfo passes both; 10% of canary requests to
// /status/500 fail the success rate; canary requests to /delay/1 fail request-duration (max 500 ms).
func TestTraefikBuiltinChecksOnLiveTraffic(t *testing.T) {
	_, cs := labtest.Kube(t)
	prom := labtest.PrometheusURL(t)
	base := labtest.TraefikURL(t)
	scenarios := []struct {
		name string
		n    int
		path func(i int) string
	}{
		{"healthy", 400, func(int) string { return "/" }},
		{"errors", 400, func(i int) string {
			if i%10 == 9 {
				return "/status/500"
			}
			return "/"
		}},
		{"slow", 24, func(int) string { return "/delay/1" }},
	}
	ns := map[string]string{}
	for _, s := range scenarios {
		ns[s.name] = labtest.Namespace(t, "metrics-"+s.name)
		labCanary(t, cs, ns[s.name], ns[s.name]+".lab")
	}

	prom8s, err := metrics.NewPrometheus(metrics.Config{Address: prom})
	require.NoError(t, err)
	sent := make([]int64, len(scenarios))
	// Send each scenario's traffic (all scenarios at once) and wait until Prometheus has scraped all of it.
	round := func(n func(total int) int) {
		var wg sync.WaitGroup
		for i, s := range scenarios {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sent[i] += labTraffic(base, ns[s.name]+".lab", n(s.n), s.path)
			}()
		}
		wg.Wait()
		for i, s := range scenarios {
			q := fmt.Sprintf(`sum(traefik_service_requests_total{service=~"%s-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd"})`, ns[s.name])
			waitFor(t, 30*time.Second, func() error {
				v, err := prom8s.RunQuery(context.Background(), q)
				// The readiness probe of labCanary is counted too.
				if err != nil || int64(v) < sent[i] {
					return fmt.Errorf("%s: Prometheus counts %v of %d requests (%v)", s.name, v, sent[i], err)
				}
				return nil
			})
		}
	}
	// A small first round with the same mix makes every series (2xx and 5xx) exist before the measured traffic:
	// rate() cannot count what a series held when it first appeared.
	round(func(total int) int { return max(total/20, 2) })
	time.Sleep(1500 * time.Millisecond)
	round(func(total int) int { return total })

	a := &activities.Analysis{DefaultMetricsServer: prom}
	check := func(name string) activities.MetricChecksResult {
		ref := activities.CanaryRef{Namespace: ns[name], Name: "podinfo", Target: "podinfo", Service: "podinfo", Provider: "traefik"}
		r, err := a.RunMetricChecks(context.Background(), activities.MetricChecksInput{Canary: ref, Metrics: builtinChecks("1m")})
		require.NoError(t, err)
		return r
	}

	healthy := check("healthy")
	t.Logf("healthy: %s; %s", healthy.Results[0].Message, healthy.Results[1].Message)
	require.Equal(t, activities.VerdictPass, healthy.Results[0].Verdict, healthy.Results[0].Message)
	require.Equal(t, activities.VerdictPass, healthy.Results[1].Verdict, healthy.Results[1].Message)
	require.InDelta(t, 100, *healthy.Results[0].Value, 0.001)

	errs := check("errors")
	t.Logf("errors: %s; %s", errs.Results[0].Message, errs.Results[1].Message)
	require.Equal(t, activities.VerdictFail, errs.Results[0].Verdict)
	require.InDelta(t, 90, *errs.Results[0].Value, 1)
	require.Contains(t, errs.Results[0].Message, "< 99")

	slow := check("slow")
	t.Logf("slow: %s; %s", slow.Results[0].Message, slow.Results[1].Message)
	require.Equal(t, activities.VerdictPass, slow.Results[0].Verdict)
	require.Equal(t, activities.VerdictFail, slow.Results[1].Verdict)
	require.Greater(t, *slow.Results[1].Value, 1000.0)
	require.Contains(t, slow.Results[1].Message, "> 500")
}
