package loadtester_test

// Against the lab: a cmd task's hey really sends the rate it asks for through Traefik to podinfo, as
// Prometheus counts it; it is not started twice and stops by itself.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/loadtester"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

func until(t *testing.T, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", limit, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestCmdTaskSendsTheRequestedRateToPodinfoInTheLab(t *testing.T) {
	_, cs := labtest.Kube(t)
	ns := labtest.Namespace(t, "loadtest")
	host := ns + ".lab"
	ctx := context.Background()
	lbl := map[string]string{"app": "podinfo"}
	one := int32(1)
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Labels: lbl},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: lbl},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "podinfod", Image: "ghcr.io/stefanprodan/podinfo:6.0.1", Command: []string{"./podinfo", "--port=9898"},
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 9898}},
			}}}}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "podinfo-canary"},
		Spec: corev1.ServiceSpec{Selector: lbl, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}}},
		metav1.CreateOptions{})
	require.NoError(t, err)
	// A weighted TraefikService, as canaryflow's router writes: Traefik's metrics name the canary Service
	// <namespace>-podinfo-canary-80@kubernetescrd.
	_, err = labtest.Dynamic(t).Resource(schema.GroupVersionResource{Group: "traefik.io", Version: "v1alpha1", Resource: "traefikservices"}).
		Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService", "metadata": map[string]any{"name": "podinfo", "namespace": ns},
		"spec": map[string]any{"weighted": map[string]any{"services": []any{
			map[string]any{"name": "podinfo-canary", "port": int64(80), "weight": int64(100)}}}},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = labtest.Dynamic(t).Resource(schema.GroupVersionResource{Group: "traefik.io", Version: "v1alpha1", Resource: "ingressroutes"}).
		Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRoute", "metadata": map[string]any{"name": "podinfo", "namespace": ns},
		"spec": map[string]any{"entryPoints": []any{"web"}, "routes": []any{map[string]any{
			"kind": "Rule", "match": "Host(`" + host + "`)",
			"services": []any{map[string]any{"name": "podinfo", "kind": "TraefikService"}}}}},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	traefik := labtest.TraefikURL(t)
	direct := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	until(t, 90*time.Second, func() error {
		req, _ := http.NewRequest(http.MethodGet, traefik+"/version", nil)
		req.Host = host
		resp, err := direct.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})

	prom, err := metrics.NewPrometheus(metrics.Config{Address: labtest.PrometheusURL(t)})
	require.NoError(t, err)
	total := fmt.Sprintf(`sum(traefik_service_requests_total{service=~"%s-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd"})`, ns)
	count := func() float64 {
		v, err := prom.RunQuery(ctx, total)
		if err != nil {
			return 0
		}
		return v
	}
	// The readiness probe above counts too; start from what Prometheus has now.
	var before float64
	until(t, 30*time.Second, func() error {
		if before = count(); before < 1 {
			return fmt.Errorf("no series yet for %s", ns)
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond)
	before = count()

	s := loadtester.New(loadtester.Config{Allow: []string{"hey"}, MaxDuration: time.Minute})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	defer s.Runner().Stop()
	// 2 workers × 5 requests/s for 10 s: 10 requests/s, about 100 requests.
	cmd := fmt.Sprintf("hey -z 10s -q 5 -c 2 -host %s %s/", host, traefik)
	post := func() (int, string) {
		b, _ := json.Marshal(loadtester.Payload{Name: "podinfo", Namespace: ns, Metadata: map[string]string{"type": "cmd", "cmd": cmd}})
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(b))
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	start := time.Now()
	code, body := post()
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "started", body)
	time.Sleep(2 * time.Second)
	code, body = post()
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "already running", body, "the same canary and command run once")
	require.Equal(t, 1, s.Runner().Started())

	until(t, 30*time.Second, func() error {
		if r := s.Runner().Running(); len(r) > 0 {
			return fmt.Errorf("still running: %v", r)
		}
		return nil
	})
	ran := time.Since(start)
	require.GreaterOrEqual(t, ran, 10*time.Second)

	// Prometheus sees the requests hey sent: 10/s for 10 s.
	var got float64
	until(t, 30*time.Second, func() error {
		got = count() - before
		if got < 85 {
			return fmt.Errorf("Prometheus counts %v new requests", got)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // more scrapes: nothing is sent after hey stopped
	got = count() - before
	t.Logf("hey ran %v; Prometheus counted %v requests (%.1f/s)", ran.Round(time.Millisecond), got, got/10)
	require.InDelta(t, 100, got, 15, "10 requests/s for 10 s")
}
