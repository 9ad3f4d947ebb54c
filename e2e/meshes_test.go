//go:build lab

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/providers/router"
)

// meshSplits polls a router's split of one Canary (as the worker wrote it on the API server) and records every
// change.
type meshSplits struct {
	mu   sync.Mutex
	seen [][2]int
}

func (m *meshSplits) watch(ctx context.Context, rt router.Router, c *v1beta1.Canary) {
	for ctx.Err() == nil {
		if p, q, _, err := rt.GetRoutes(ctx, c); err == nil {
			m.mu.Lock()
			if n := len(m.seen); n == 0 || m.seen[n-1] != [2]int{p, q} {
				m.seen = append(m.seen, [2]int{p, q})
			}
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (m *meshSplits) last() [2]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.seen) == 0 {
		return [2]int{-1, -1}
	}
	return m.seen[len(m.seen)-1]
}

// useLinkerdSMI makes the TrafficSplit CRD linkerd-smi's (OSM's shares its name and serves no v1alpha1; a stored
// version cannot be dropped by an update, so OSM's is deleted first).
func useLinkerdSMI(t *testing.T) {
	files := labtest.SharedCRDs(t, "linkerd")
	ri := labtest.Dynamic(t).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	ctx := context.Background()
	const name = "trafficsplits.split.smi-spec.io"
	labtest.LockCRD(t, name) // the router tests switch it to OSM's and back
	if u, err := ri.Get(ctx, name, metav1.GetOptions{}); err == nil && u.GetLabels()["linkerd.io/extension"] != "smi" {
		require.NoError(t, ri.Delete(ctx, name, metav1.DeleteOptions{}))
		require.Eventually(t, func() bool {
			_, err := ri.Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}, time.Minute, 100*time.Millisecond)
	}
	labtest.CRDs(t, files...)
}

// TestMeshSeedCanariesPromoteThroughTheirRouters runs Flagger's Linkerd, Kuma, Gloo and App Mesh tutorial Canaries
// (api/v1beta1/testdata/flagger) with the real worker (its ServiceAccount and ClusterRole from deploy/), the
// starter and the upstream CRDs on the lab's API server: each rollout of 6.0.1 moves its mesh objects through
// 100/0 → 75/25 → 50/50 → 100/0 and promotes. No mesh runs here, so nothing reads those objects and there is no
// traffic to measure: the seeds' metric checks and webhooks (Flagger's load tester inside a mesh) are left out,
// and the schedule is shortened to steps of 25 up to 50 every 10s.
func TestMeshSeedCanariesPromoteThroughTheirRouters(t *testing.T) {
	useLinkerdSMI(t)
	for _, p := range []string{"kuma", "gloo", "appmesh"} {
		labtest.CRDs(t, labtest.SharedCRDs(t, p)...)
	}
	env := labtest.Lab(t)
	// The subtests run in parallel, after this function returns: the context ends with the test, not here.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	s, err := StartOnQueue(ctx, env, Narrator(t), fmt.Sprintf("e2e-meshes-%d", time.Now().UnixNano()))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", s.LogTail("worker", 80))
		}
		s.Close()
	})
	routers, err := router.NewRegistry(env.RestConfig())
	require.NoError(t, err)

	for _, seed := range []string{"linkerd-canary", "kuma-canary", "gloo-canary", "appmesh-canary"} {
		t.Run(seed, func(t *testing.T) {
			t.Parallel()
			meshSeedPromotes(ctx, t, s, routers, seed)
		})
	}
}

// meshSeedPromotes rolls out Flagger's tutorial Canary seed (api/v1beta1/testdata/flagger/<seed>.yaml) with the
// starter on stack s: initialised at 100/0, then 6.0.1 through 75/25 and 50/50 to promotion, back at 100/0, as
// the router's objects on the API server say at each step.
func meshSeedPromotes(ctx context.Context, t *testing.T, s *Stack, routers *router.Registry, seed string) {
	ns := labtest.Namespace(t, "e2e-mesh")
	raw, err := os.ReadFile(filepath.Join(s.Root, "api", "v1beta1", "testdata", "flagger", seed+".yaml"))
	require.NoError(t, err)
	var c v1beta1.Canary
	require.NoError(t, yaml.UnmarshalStrict(raw, &c))
	c.Namespace = ns
	a := c.Spec.Analysis
	a.Interval, a.StepWeight, a.MaxWeight, a.Threshold = "10s", 25, 50, 2
	a.Metrics, a.Webhooks = nil, nil
	file, err := s.WriteCanaryObject(seed, &c)
	require.NoError(t, err)
	require.NoError(t, s.ApplyPodinfo(ctx, ns, "6.0.0"))

	r := s.Starter(ctx, "rollout", "-f", file, "--wait", "--timeout", "3m", "--by", "e2e")
	require.Equal(t, 0, r.Code, r.Output)
	loaded, err := v1beta1.LoadFile(file, v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
	require.NoError(t, err)
	require.Len(t, loaded.Canaries(), 1)
	lc := loaded.Canaries()[0]
	rt, err := routers.Get(lc.Spec.Provider)
	require.NoError(t, err)
	var seen meshSplits
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go seen.watch(wctx, rt, lc)
	require.Eventually(t, func() bool { return seen.last() == [2]int{100, 0} }, 30*time.Second, 100*time.Millisecond,
		"after initialisation the %s objects send all traffic to the primary", lc.Spec.Provider)

	r = s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.1"), "--wait", "--timeout", "5m", "--by", "e2e")
	require.Equal(t, 0, r.Code, r.Output)
	require.NoError(t, expectLines("starter rollout 6.0.1", r.Output, "Advance podinfo."+ns+" canary weight 25",
		"Advance podinfo."+ns+" canary weight 50", "promoted revision"))
	img, _, err := s.Image(ctx, ns, "podinfo-primary")
	require.NoError(t, err)
	require.Equal(t, PodinfoImage("6.0.1"), img)
	require.Eventually(t, func() bool { return seen.last() == [2]int{100, 0} }, 30*time.Second, 100*time.Millisecond)
	stop()
	seen.mu.Lock()
	defer seen.mu.Unlock()
	require.Equal(t, [][2]int{{100, 0}, {75, 25}, {50, 50}, {100, 0}}, seen.seen,
		fmt.Sprintf("the %s objects at each step", lc.Spec.Provider))
}

// useOSMSMI makes the TrafficSplit CRD OSM's (v1alpha2 only), the one an OSM cluster has.
func useOSMSMI(t *testing.T) {
	files := labtest.SharedCRDs(t, "osm")
	ri := labtest.Dynamic(t).Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	ctx := context.Background()
	const name = "trafficsplits.split.smi-spec.io"
	labtest.LockCRD(t, name)
	if u, err := ri.Get(ctx, name, metav1.GetOptions{}); err == nil && u.GetLabels()["linkerd.io/extension"] == "smi" {
		require.NoError(t, ri.Delete(ctx, name, metav1.DeleteOptions{}))
		require.Eventually(t, func() bool {
			_, err := ri.Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}, time.Minute, 100*time.Millisecond)
	}
	labtest.CRDs(t, files...)
}

// TestOSMSeedCanaryPromotesThroughItsTrafficSplit runs Flagger's OSM tutorial Canary as the test above runs the
// other meshes' (OSM's TrafficSplit CRD shares its name with linkerd-smi's, so it runs on its own, holding the CRD).
func TestOSMSeedCanaryPromotesThroughItsTrafficSplit(t *testing.T) {
	useOSMSMI(t)
	env := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	s, err := StartOnQueue(ctx, env, Narrator(t), fmt.Sprintf("e2e-osm-%d", time.Now().UnixNano()))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", s.LogTail("worker", 80))
		}
		s.Close()
	})
	routers, err := router.NewRegistry(env.RestConfig())
	require.NoError(t, err)
	meshSeedPromotes(ctx, t, s, routers, "osm-canary")
}
