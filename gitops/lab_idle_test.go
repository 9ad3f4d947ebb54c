//go:build lab

package gitops

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/workload"
)

// requestCounter counts the requests a client makes to the API server, by "METHOD resource" (a watch counts once,
// when it is opened).
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *requestCounter) RoundTrip(next http.RoundTripper) http.RoundTripper {
	return countingTransport{c: c, next: next}
}

// countingTransport counts each request in c. It unwraps (utilnet.RoundTripperWrapper), so client-go can cancel
// the requests it wraps (watches, when the trigger stops).
type countingTransport struct {
	c    *requestCounter
	next http.RoundTripper
}

func (t countingTransport) WrappedRoundTripper() http.RoundTripper { return t.next }

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	what := r.Method + " " + parts[len(parts)-1]
	for i, p := range parts { // the resource: the segment after "namespaces/<ns>", or the last one
		if p == "namespaces" && i+2 < len(parts) {
			what = r.Method + " " + parts[i+2]
		}
	}
	if r.URL.Query().Get("watch") == "true" {
		what += " (watch)"
	}
	t.c.mu.Lock()
	t.c.n[what]++
	t.c.mu.Unlock()
	return t.next.RoundTrip(r)
}

func (c *requestCounter) take() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out, total := c.n, 0
	for _, v := range out {
		total += v
	}
	c.n = map[string]int{}
	return out, total
}

// An idle cluster with 100 initialised Canaries costs the trigger no request but its Lease renewals: every
// change arrives by watch, nothing is polled. The figure for BENCHMARKS.md (Flagger: 54 requests a minute per
// canary) comes from CANARYFLOW_LONG=1, which watches for 5 minutes (1 minute otherwise).
func TestIdleTriggerMakesNoRequestsButLeaseRenewals(t *testing.T) {
	const canaries = 100
	window := time.Minute
	if os.Getenv("CANARYFLOW_LONG") == "1" {
		window = 5 * time.Minute
	}
	root, err := labtest.RepoRoot()
	require.NoError(t, err)
	labtest.CRDs(t, filepath.Join(root, "deploy", "crds", "crd.yaml"))
	ns := labtest.Namespace(t, "gitops-idle")
	_, admin := labtest.Kube(t)
	dyn := labtest.Dynamic(t)
	ctx, cancel := context.WithTimeout(context.Background(), window+5*time.Minute)
	defer cancel()

	// 100 canaries as they are between releases: target and primary at the same revision (no pods: replicas 0).
	for i := range canaries {
		name := fmt.Sprintf("app-%03d", i)
		target := deployment(name, "podinfo:6.0.0", nil, nil, "")
		target.Namespace, target.ResourceVersion, target.Spec.Replicas = ns, "", ptr.To[int32](0)
		// The revision of the template as the API server stored it (with its defaults), as the workflow records it.
		target, err := admin.AppsV1().Deployments(ns).Create(ctx, target, metav1.CreateOptions{})
		require.NoError(t, err)
		rev, err := workload.Revision(ctx, noConfigs{}, ns, &target.Spec.Template)
		require.NoError(t, err)
		primary := deployment(name+"-primary", "podinfo:6.0.0", map[string]string{kubeobj.ManagedByLabel: kubeobj.ManagedByValue},
			map[string]string{workload.RevisionAnnotation: rev}, "")
		primary.Namespace, primary.ResourceVersion, primary.Spec.Replicas = ns, "", ptr.To[int32](0)
		_, err = admin.AppsV1().Deployments(ns).Create(ctx, primary, metav1.CreateOptions{})
		require.NoError(t, err)
		c := canaryObject(1, "")
		c.SetNamespace(ns)
		c.SetName(name)
		c.Object["spec"].(map[string]any)["targetRef"].(map[string]any)["name"] = name
		delete(c.Object, "status")
		delete(c.Object["metadata"].(map[string]any), "generation")
		_, err = dyn.Resource(canaryGVR).Namespace(ns).Create(ctx, c, metav1.CreateOptions{})
		require.NoError(t, err)
	}

	counter := &requestCounter{n: map[string]int{}}
	cfg := labtest.RestConfig(t)
	// As the worker's: no client timeout, which would cut every watch after it (labtest's is 30 s) and count a
	// re-opened watch each time.
	cfg.Timeout = 0
	cfg.Wrap(counter.RoundTrip)
	kube, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	counted, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	fr := &fakeRollouts{}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = Run(runCtx, Config{Kube: kube, Dynamic: counted, Rollouts: fr, Capabilities: catalog.Capabilities(),
			Namespaces: []string{ns}, LeaseNamespace: ns, Identity: "idle-test", Log: zaptest.NewLogger(t)})
	}()
	defer func() { stop(); <-done }()

	// The new leader looks at each canary once (one question to Temporal each) and releases nothing.
	require.Eventually(t, func() bool { n, _ := fr.snapshot(); return n == canaries }, 2*time.Minute, 100*time.Millisecond)
	_, started := fr.snapshot()
	require.Empty(t, started, "every target runs what its primary runs: nothing to release")
	start, startTotal := counter.take()
	t.Logf("start-up: %d requests (%v)", startTotal, sorted(start))

	time.Sleep(window) // the measurement window itself: nothing is waited for, requests are counted
	idle, total := counter.take()
	n, releases := fr.snapshot()
	require.Equal(t, canaries, n, "an idle cluster asks Temporal nothing more")
	require.Empty(t, releases, "an idle cluster starts no rollout")
	lease := idle["PUT leases"] + idle["GET leases"]
	t.Logf("idle over %s with %d canaries: %d requests (%.2f a minute; %.4f a minute per canary), of which %d Lease renewals: %v",
		window, canaries, total, float64(total)/window.Minutes(), float64(total)/window.Minutes()/canaries, lease, sorted(idle))
	// Renewals: one every retryPeriod; watches are re-opened by client-go every 5 to 10 minutes (5 informers).
	require.LessOrEqual(t, lease, int(window/retryPeriod)+2)
	require.LessOrEqual(t, total-lease, 5*int(window/(5*time.Minute)+1), "no request but renewals and watch re-opens")
}

func sorted(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(out)
	return out
}
