//go:build lab

package lab_test

// Proof that the lab works end to end (issue 3): real Deployments roll out on
// the kwok node and their pods answer at their IPs; Traefik splits traffic by a
// TraefikService's weights; Prometheus computes the Traefik canary success rate;
// Temporal runs a workflow and serves its Web UI. Every test here needs the lab
// (labtest starts it when it is not up) and fails, never skips, without it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

const (
	podinfo600 = "ghcr.io/stefanprodan/podinfo:6.0.0"
	podinfo601 = "ghcr.io/stefanprodan/podinfo:6.0.1"
)

var (
	// httpc talks to loopback and to pod IPs in the lab's namespace; never through a proxy.
	httpc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}
)

func TestDeploymentRollsOutAndPodsAnswer(t *testing.T) {
	_, cs := labtest.Kube(t)
	ns := labtest.Namespace(t, "rollout")

	deploy(t, cs, ns, "podinfo", podinfo600, 2)
	waitAvailable(t, cs, ns, "podinfo", 60*time.Second)
	requireVersions(t, cs, ns, "podinfo", "6.0.0", 2)

	labtest.SetImage(t, cs, ns, "podinfo", podinfo601)
	waitAvailable(t, cs, ns, "podinfo", 60*time.Second)
	requireVersions(t, cs, ns, "podinfo", "6.0.1", 2)
}

func TestTraefikWeightedSplit(t *testing.T) {
	_, cs := labtest.Kube(t)
	dc := labtest.Dynamic(t)
	ns := labtest.Namespace(t, "split")
	ctx := context.Background()

	primaryAndCanary(t, cs, ns)
	requireVersions(t, cs, ns, "podinfo-primary", "6.0.0", 1)
	requireVersions(t, cs, ns, "podinfo-canary", "6.0.1", 1)
	host := ns + ".split.lab"
	ts := traefikService(ns, "podinfo", 90, 10)
	_, err := dc.Resource(labtest.TraefikServices).Namespace(ns).Create(ctx, ts, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = dc.Resource(labtest.IngressRoutes).Namespace(ns).Create(ctx, labtest.IngressRoute(ns, "podinfo", host, map[string]any{"name": "podinfo", "kind": "TraefikService", "port": int64(80)}), metav1.CreateOptions{})
	require.NoError(t, err)

	base := labtest.TraefikURL(t)
	waitRouted(t, base, host, 30*time.Second)

	counts := versionsThrough(t, base, host, 2000)
	share := 100 * float64(counts["6.0.1"]) / 2000
	t.Logf("90/10: %v (canary %.1f%%)", counts, share)
	require.Equal(t, 2000, counts["6.0.0"]+counts["6.0.1"], "every request answered by primary or canary: %v", counts)
	require.InDelta(t, 10, share, 3, "canary share at weights 90/10")

	// Change the weights to 50/50: effective within 5 s.
	cur, err := dc.Resource(labtest.TraefikServices).Namespace(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.NoError(t, unstructured.SetNestedSlice(cur.Object, traefikService(ns, "podinfo", 50, 50).Object["spec"].(map[string]any)["weighted"].(map[string]any)["services"].([]any), "spec", "weighted", "services"))
	_, err = dc.Resource(labtest.TraefikServices).Namespace(ns).Update(ctx, cur, metav1.UpdateOptions{})
	require.NoError(t, err)
	changed := time.Now()
	for {
		c := versionsThrough(t, base, host, 100)
		if c["6.0.1"] >= 40 && c["6.0.1"] <= 60 {
			break
		}
		require.Less(t, time.Since(changed), 5*time.Second, "weights 50/50 not effective after 5 s (last 100: %v)", c)
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(changed)
	counts = versionsThrough(t, base, host, 1000)
	t.Logf("50/50 effective after %v; then %v", took.Round(time.Millisecond), counts)
	require.InDelta(t, 50, 100*float64(counts["6.0.1"])/1000, 3, "canary share at weights 50/50")
}

func TestPrometheusTraefikSuccessRate(t *testing.T) {
	_, cs := labtest.Kube(t)
	dc := labtest.Dynamic(t)
	ns := labtest.Namespace(t, "metrics")
	ctx := context.Background()

	deploy(t, cs, ns, "podinfo-canary", podinfo601, 1)
	service(t, cs, ns, "podinfo-canary")
	waitAvailable(t, cs, ns, "podinfo-canary", 60*time.Second)
	requireVersions(t, cs, ns, "podinfo-canary", "6.0.1", 1)
	host := ns + ".metrics.lab"
	// As Flagger does: IngressRoute -> TraefikService -> Service, so that the
	// leaf service has Traefik's "<ns>-<service>-<port>" name (a Service named
	// directly by an IngressRoute gets a hashed router name instead).
	ts := traefikService(ns, "podinfo", 0, 100)
	_, err := dc.Resource(labtest.TraefikServices).Namespace(ns).Create(ctx, ts, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = dc.Resource(labtest.IngressRoutes).Namespace(ns).Create(ctx, labtest.IngressRoute(ns, "podinfo", host, map[string]any{"name": "podinfo", "kind": "TraefikService", "port": int64(80)}), metav1.CreateOptions{})
	require.NoError(t, err)
	base := labtest.TraefikURL(t)
	// Count every request through the route, the probes included: Prometheus
	// sees them all.
	var sent, ok atomic.Int64
	count := func(code int) {
		sent.Add(1)
		if code > 0 && code < 500 {
			ok.Add(1)
		}
	}
	waitFor(t, 30*time.Second, 100*time.Millisecond, "Traefik routes "+host, func() error {
		code := get(t, base+"/version", host)
		if code != http.StatusNotFound && code != 0 { // 404: no router yet, the service saw nothing
			count(code)
		}
		if code != http.StatusOK {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})

	prom := labtest.PrometheusURL(t)
	// Traefik names a Service backend "<namespace>-<service>-<port>@kubernetescrd".
	selector := fmt.Sprintf(`service=~"%s-%s-canary-[0-9a-zA-Z-]+@kubernetescrd"`, ns, "podinfo")
	// The builtin Traefik request-success-rate query (design.md, as Flagger's), interval 1m.
	query := fmt.Sprintf(`sum(rate(traefik_service_request_duration_seconds_bucket{%s,code!~"5..",le="+Inf"}[1m])) / `+
		`sum(rate(traefik_service_request_duration_seconds_bucket{%s,le="+Inf"}[1m])) * 100`, selector, selector)
	total := fmt.Sprintf(`sum(traefik_service_requests_total{%s})`, selector)

	// Every 10th request fails. A small first batch with the same mix makes both
	// series (2xx and 5xx) exist before the measured traffic.
	send := func(n int) {
		var wg sync.WaitGroup
		work := make(chan int)
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					path := "/"
					if i%10 == 9 {
						path = "/status/500"
					}
					count(get(t, base+path, host))
				}
			}()
		}
		for i := 0; i < n; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	send(20)
	waitPromValue(t, prom, total, float64(sent.Load()), 30*time.Second)
	time.Sleep(1500 * time.Millisecond) // one more scrape with the warm-up's totals
	send(1000)
	waitPromValue(t, prom, total, float64(sent.Load()), 30*time.Second)

	truth := 100 * float64(ok.Load()) / float64(sent.Load())
	got := promQuery(t, prom, query)
	t.Logf("success rate: Prometheus %.2f%%, true %.2f%% (%d/%d)", got, truth, ok.Load(), sent.Load())
	require.InDelta(t, 90, truth, 0.5, "podinfo answered /status/500 with 500 and / with 200")
	require.InDelta(t, truth, got, 1, "Prometheus' canary success rate")
}

// The lab Gateway (Traefik's kubernetesgateway provider) serves HTTPRoutes
// with weighted backendRefs on its own listener.
func TestGatewayAPIWeightedHTTPRoute(t *testing.T) {
	_, cs := labtest.Kube(t)
	dc := labtest.Dynamic(t)
	ns := labtest.Namespace(t, "gateway")
	ctx := context.Background()
	primaryAndCanary(t, cs, ns)
	gwNS, gwName, listener := labtest.Gateway(t)
	host := ns + ".gateway.lab"
	route := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "HTTPRoute",
		"metadata":   map[string]any{"name": "podinfo", "namespace": ns},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": gwName, "namespace": gwNS, "sectionName": listener}},
			"hostnames":  []any{host},
			"rules": []any{map[string]any{"backendRefs": []any{
				map[string]any{"name": "podinfo-primary", "port": int64(80), "weight": int64(80)},
				map[string]any{"name": "podinfo-canary", "port": int64(80), "weight": int64(20)},
			}}},
		},
	}}
	httpRoutes := labtest.HTTPRoutes
	_, err := dc.Resource(httpRoutes).Namespace(ns).Create(ctx, route, metav1.CreateOptions{})
	require.NoError(t, err)
	base := labtest.GatewayURL(t)
	waitFor(t, 30*time.Second, 100*time.Millisecond, "Gateway routes "+host, func() error {
		if c := versionsThrough(t, base, host, 10); c["error"] > 0 {
			return fmt.Errorf("answers %v", c)
		}
		return nil
	})
	counts := versionsThrough(t, base, host, 500)
	t.Logf("HTTPRoute 80/20: %v", counts)
	require.Equal(t, 500, counts["6.0.0"]+counts["6.0.1"], "answers %v", counts)
	require.InDelta(t, 20, 100*float64(counts["6.0.1"])/500, 3, "canary share through the Gateway")
}

func greet(_ workflow.Context, name string) (string, error) { return "hello " + name, nil }

func TestTemporalDevServerRunsWorkflowAndServesUI(t *testing.T) {
	c := labtest.Temporal(t)
	queue := "lab-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(greet, workflow.RegisterOptions{Name: "LabGreet"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        queue,
		TaskQueue: queue,
		// The search attributes lab-up registered.
		TypedSearchAttributes: temporal.NewSearchAttributes(
			searchattr.CanaryName.ValueSet("podinfo"), searchattr.CanaryNamespace.ValueSet("test"),
			searchattr.CanaryPhase.ValueSet("Progressing"), searchattr.CanaryWeight.ValueSet(10),
			searchattr.CanaryRevision.ValueSet("abc123"), searchattr.CanaryProvider.ValueSet("traefik"),
		),
	}, "LabGreet", "lab")
	require.NoError(t, err)
	var out string
	require.NoError(t, run.Get(ctx, &out))
	require.Equal(t, "hello lab", out)

	resp, err := httpc.Get(labtest.TemporalUIURL(t) + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// ---------------------------------------------------------------- helpers

func deploy(t *testing.T, cs kubernetes.Interface, ns, name, image string, replicas int32) {
	t.Helper()
	_, err := cs.AppsV1().Deployments(ns).Create(context.Background(), labtest.Podinfo(ns, name, name, image, replicas), metav1.CreateOptions{})
	require.NoError(t, err)
}

// primaryAndCanary deploys podinfo-primary (6.0.0) and podinfo-canary (6.0.1), one replica each with its Service,
// and waits until both are available.
func primaryAndCanary(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	for name, image := range map[string]string{"podinfo-primary": podinfo600, "podinfo-canary": podinfo601} {
		deploy(t, cs, ns, name, image, 1)
		service(t, cs, ns, name)
	}
	for _, name := range []string{"podinfo-primary", "podinfo-canary"} {
		waitAvailable(t, cs, ns, name, 60*time.Second)
	}
}

func service(t *testing.T, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	_, err := cs.CoreV1().Services(ns).Create(context.Background(), labtest.Service(ns, name, name), metav1.CreateOptions{})
	require.NoError(t, err)
}

// waitAvailable waits until a Deployment's rollout is complete: every replica
// updated and available, no old pod left.
func waitAvailable(t *testing.T, cs kubernetes.Interface, ns, name string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, 50*time.Millisecond, "deployment "+ns+"/"+name+" available", func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := *d.Spec.Replicas
		if d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want &&
			d.Status.AvailableReplicas == want && d.Status.Replicas == want {
			return nil
		}
		return fmt.Errorf("status %+v", d.Status)
	})
}

// waitFor polls fn until it returns nil; it fails the test with fn's last error
// after timeout.
func waitFor(t *testing.T, timeout, every time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, timeout, err)
		}
		time.Sleep(every)
	}
}

// requireVersions waits until the deployment has n running pods, none
// terminating, and each answers at its pod IP with the version want.
func requireVersions(t *testing.T, cs kubernetes.Interface, ns, name, want string, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, 100*time.Millisecond, "pods of "+ns+"/"+name+" answer version "+want, func() error {
		pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
			LabelSelector: labels.SelectorFromSet(map[string]string{"app": name}).String(),
		})
		if err != nil {
			return err
		}
		var live []corev1.Pod
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				live = append(live, p)
			}
		}
		if len(live) != n {
			return fmt.Errorf("%d live pods, want %d", len(live), n)
		}
		for _, p := range live {
			if p.Status.PodIP == "" {
				return fmt.Errorf("%s has no IP", p.Name)
			}
			v, err := podVersion(p.Status.PodIP)
			if err != nil || v != want {
				return fmt.Errorf("%s at %s: version %q, %v", p.Name, p.Status.PodIP, v, err)
			}
		}
		return nil
	})
}

func podVersion(ip string) (string, error) {
	resp, err := httpc.Get("http://" + ip + ":9898/version")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct {
		Version string `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", err
	}
	return v.Version, nil
}

// traefikService is a TraefikService weighted over <name>-primary and
// <name>-canary (a backend with weight 0 is left out).
func traefikService(ns, name string, primary, canary int64) *unstructured.Unstructured {
	var backends []labtest.Backend
	for _, b := range []labtest.Backend{{Service: name + "-primary", Weight: primary}, {Service: name + "-canary", Weight: canary}} {
		if b.Weight > 0 {
			backends = append(backends, b)
		}
	}
	return labtest.TraefikService(ns, name, backends...)
}

// get sends one GET with a Host header and returns the status code (0 on error).
func get(t *testing.T, u, host string) int {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	req.Host = host
	resp, err := httpc.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitRouted waits until Traefik serves the host with 200.
func waitRouted(t *testing.T, base, host string, timeout time.Duration) {
	t.Helper()
	// Fifty answers in a row, not one: every backend of a weighted split must be routed (a backend whose
	// endpoints Traefik has not read yet answers 503), and at 90/10 fifty requests reach the 10 % side with
	// 99.5 % likelihood. The controller-manager and Traefik take longer to catch up on a loaded machine.
	waitFor(t, timeout, 100*time.Millisecond, "Traefik routes "+host+" to every backend", func() error {
		for i := range 50 {
			if code := get(t, base+"/version", host); code != http.StatusOK {
				return fmt.Errorf("answer %d of 50: status %d", i+1, code)
			}
		}
		return nil
	})
}

// versionsThrough sends n requests through Traefik (8 at a time) and counts
// the versions that answered ("error" for failures).
func versionsThrough(t *testing.T, base, host string, n int) map[string]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	work := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				v := "error"
				req, _ := http.NewRequest(http.MethodGet, base+"/version", nil)
				req.Host = host
				if resp, err := httpc.Do(req); err == nil {
					var body struct {
						Version string `json:"version"`
					}
					if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil {
						v = body.Version
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				counts[v]++
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	return counts
}

// promQuery evaluates an instant query that must return one sample.
func promQuery(t *testing.T, base, q string) float64 {
	t.Helper()
	v, err := promValue(base, q)
	require.NoError(t, err, "query %s", q)
	return v
}

func promValue(base, q string) (float64, error) {
	resp, err := httpc.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", r.Error)
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("prometheus: %d samples", len(r.Data.Result))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

// waitPromValue waits until an instant query returns want (Prometheus has
// scraped every request).
func waitPromValue(t *testing.T, base, q string, want float64, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, 200*time.Millisecond, "query "+q, func() error {
		got, err := promValue(base, q)
		if err != nil {
			return err
		}
		if math.Abs(got-want) >= 0.5 {
			return fmt.Errorf("got %v, want %v", got, want)
		}
		return nil
	})
}

// When the node-lifecycle controller marks a node's pods NotReady (its lease expired during an API server
// outage), the lab's node reports them Ready again as a reconnecting kubelet would, so an outage test measures
// canaryflow, not a lab that never recovers. The controller's write is reproduced here on one pod.
func TestPodsMarkedNotReadyBecomeReadyAgain(t *testing.T) {
	_, cs := labtest.Kube(t)
	ns := labtest.Namespace(t, "reready")
	ctx := context.Background()
	deploy(t, cs, ns, "podinfo", podinfo600, 1)
	waitAvailable(t, cs, ns, "podinfo", 60*time.Second)
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	require.Len(t, pods.Items, 1)
	pod := &pods.Items[0]

	// What MarkPodsNotReady writes: the Ready condition False.
	for i, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			pod.Status.Conditions[i].Status = corev1.ConditionFalse
			pod.Status.Conditions[i].Reason = "NodeNotReady"
		}
	}
	_, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	require.NoError(t, err)

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		require.NoError(ct, err)
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = c.Status == corev1.ConditionTrue
			}
		}
		require.True(ct, ready, "the pod never became Ready again")
	}, 60*time.Second, 200*time.Millisecond)
	waitAvailable(t, cs, ns, "podinfo", 60*time.Second)
}

// terminationNet is the private lab of TestDeletedPodKeepsItsIPThroughItsGracePeriod.
var terminationNet = labtest.PrivateNet{
	Netns: "cflab-term", VethHost: "cfterm0", VethNS: "cfterm1",
	LinkHostIP: "10.247.255.1", LinkNSIP: "10.247.255.2", PodCIDR: "10.247.0.0/24",
}

// A deleted pod goes as a kubelet takes it down (lab/kwok/pod-terminate.yaml): not Ready at once, so Services stop
// sending it traffic, and gone with its IP only at the end of its grace period. Upstream kwok freed the IP at once
// and gave it to the next new pod while routers still sent the old pod's traffic there: another namespace's pod
// answered. On its own lab, so the pods created here are the only ones asking for IPs.
func TestDeletedPodKeepsItsIPThroughItsGracePeriod(t *testing.T) {
	env := labtest.PrivateLab(t, terminationNet)
	cs, err := kubernetes.NewForConfig(env.RestConfig())
	require.NoError(t, err)
	ns := env.Namespace(t, "term")
	ctx := context.Background()
	pod := func(name string, grace int64) *corev1.Pod {
		p := labtest.Podinfo(ns, name, name, podinfo600, 1).Spec.Template
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: p.Labels},
			Spec: func() corev1.PodSpec { s := p.Spec; s.TerminationGracePeriodSeconds = &grace; return s }()}
	}
	running := func(name string) *corev1.Pod {
		var got *corev1.Pod
		waitFor(t, 60*time.Second, 100*time.Millisecond, name+" running with an IP", func() error {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
				return fmt.Errorf("phase %s, IP %q", p.Status.Phase, p.Status.PodIP)
			}
			got = p
			return nil
		})
		return got
	}
	_, err = cs.CoreV1().Pods(ns).Create(ctx, pod("old", 15), metav1.CreateOptions{})
	require.NoError(t, err)
	old := running("old")

	require.NoError(t, cs.CoreV1().Pods(ns).Delete(ctx, "old", metav1.DeleteOptions{}))
	deleted := time.Now()
	waitFor(t, 10*time.Second, 100*time.Millisecond, "the deleted pod not Ready", func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "old", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", p.Status.Conditions)
	})
	// New pods while the old one terminates: none gets its IP (upstream kwok gave it to the first).
	for i := range 4 {
		name := fmt.Sprintf("new-%d", i)
		_, err := cs.CoreV1().Pods(ns).Create(ctx, pod(name, 1), metav1.CreateOptions{})
		require.NoError(t, err)
		require.NotEqual(t, old.Status.PodIP, running(name).Status.PodIP, "%s got the IP of a pod still terminating", name)
	}
	_, err = cs.CoreV1().Pods(ns).Get(ctx, "old", metav1.GetOptions{})
	require.NoError(t, err, "the pod is still terminating within its grace period")
	waitFor(t, 60*time.Second, 200*time.Millisecond, "the deleted pod gone", func() error {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, "old", metav1.GetOptions{})
		if err == nil {
			return errors.New("still there")
		}
		return nil
	})
	gone := time.Since(deleted)
	require.GreaterOrEqual(t, gone, 14*time.Second, "gone before its 15 s grace period ended")
	t.Logf("the deleted pod went after %s (grace period 15 s)", gone.Round(100*time.Millisecond))
}
