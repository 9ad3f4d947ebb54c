//go:build lab

package router_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

var (
	flaggerRefOnce sync.Once
	flaggerRefBin  string
	flaggerRefErr  error
)

// flaggerRef runs Flagger's own router (lab/flaggerref, Flagger v1.36.1 against fake clients) for c, Reconcile
// then SetRoutes(pw, cw), and returns the objects it leaves by "<Kind>/<name>" (TrafficSplits as
// "TrafficSplit.<version>/<name>").
func flaggerRef(t *testing.T, c *v1beta1.Canary, pw, cw int) map[string]map[string]any {
	t.Helper()
	flaggerRefOnce.Do(func() {
		root, err := labtest.RepoRoot()
		if err != nil {
			flaggerRefErr = err
			return
		}
		dir, err := os.MkdirTemp("", "flaggerref-")
		if err != nil {
			flaggerRefErr = err
			return
		}
		flaggerRefBin = filepath.Join(dir, "flaggerref")
		cmd := exec.Command("go", "build", "-o", flaggerRefBin, ".")
		cmd.Dir = filepath.Join(root, "lab", "flaggerref")
		if out, err := cmd.CombinedOutput(); err != nil {
			flaggerRefErr = &exec.ExitError{Stderr: out}
		}
	})
	require.NoError(t, flaggerRefErr, "building lab/flaggerref")
	doc, err := yaml.Marshal(map[string]any{"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
		"metadata": map[string]any{"name": c.Name, "namespace": c.Namespace, "annotations": c.Annotations}, "spec": c.Spec})
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "canary.yaml")
	require.NoError(t, os.WriteFile(file, doc, 0o644))
	out, err := exec.Command(flaggerRefBin, "-canary", file, "-weights", jsonInts(pw, cw)).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("flaggerref: %v: %s", err, ee.Stderr)
	}
	require.NoError(t, err)
	var objs map[string]map[string]any
	require.NoError(t, json.Unmarshal(out, &objs))
	return objs
}

func jsonInts(a, b int) string {
	s, _ := json.Marshal([]int{a, b})
	return strings.Trim(string(s), "[]")
}

// normal is v as JSON decodes it (numbers as float64), without null or empty values, so that Flagger's typed
// objects and the API server's unstructured ones compare by content.
func normal(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	var prune func(any) any
	prune = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			m := map[string]any{}
			for k, e := range x {
				if e = prune(e); e != nil {
					m[k] = e
				}
			}
			if len(m) == 0 {
				return nil
			}
			return m
		case []any:
			if len(x) == 0 {
				return nil
			}
			for i := range x {
				x[i] = prune(x[i])
			}
			return x
		case string:
			if x == "" {
				return nil
			}
		}
		return v
	}
	return prune(out)
}

// Flagger's own routers (v1.36.1, run against fake clients by lab/flaggerref) and canaryflow's write the same
// objects for the same Canary: the same names (but Kuma's TrafficRoute, named "<apex>.<namespace>" here on purpose)
// and specs field for field, after a Reconcile and a step to 90/10. A team moving from Flagger thus finds its
// mesh's objects unchanged. Flagger's Flux annotations are on ours too where Flagger writes them.
func TestMeshRoutersWriteWhatFlaggersRoutersWrite(t *testing.T) {
	ctx := context.Background()
	labtest.LockCRD(t, smiCRDName)
	useSMICRD(t, "linkerd")
	for _, p := range []string{"kuma", "gloo", "appmesh"} {
		labtest.CRDs(t, labtest.SharedCRDs(t, p)...)
	}
	gvr := func(group, version, resource string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: group, Version: version, Resource: resource}
	}
	kinds := map[string]schema.GroupVersionResource{
		"TrafficSplit.v1alpha1": trafficSplits("v1alpha1"), "TrafficSplit.v1alpha2": trafficSplits("v1alpha2"),
		"TrafficRoute": trafficRoutes, "Upstream": glooUpstreams, "RouteTable": glooRouteTables,
		"VirtualNode": gvr("appmesh.k8s.aws", "v1beta2", "virtualnodes"), "VirtualRouter": gvr("appmesh.k8s.aws", "v1beta2", "virtualrouters"),
		"VirtualService": gvr("appmesh.k8s.aws", "v1beta2", "virtualservices"),
	}
	for _, tc := range []struct {
		provider string
		mod      func(*v1beta1.Canary)
	}{
		{"linkerd", nil},
		{"smi:v1alpha1:linkerd", func(c *v1beta1.Canary) { c.Spec.Service.Hosts = []string{"podinfo.test.svc.cluster.local"} }},
		{"smi:v1alpha2", nil},
		{"kuma", func(c *v1beta1.Canary) { c.Annotations = map[string]string{"kuma.io/mesh": "blue"} }},
		{"gloo", nil},
		{"appmesh:v1beta2", func(c *v1beta1.Canary) {
			c.Annotations = map[string]string{"appmesh.flagger.app/accesslog": "enabled"}
			c.Spec.Service.TargetPort = intstr.FromInt32(9898)
			c.Spec.Service.Timeout = "15s"
			c.Spec.Service.Retries = &v1beta1.HTTPRetry{Attempts: 3, PerTryTimeout: "5s", RetryOn: "gateway-error,client-error"}
			c.Spec.Service.Backends = []string{"backend1"}
			c.Spec.Service.Hosts = []string{"app.example.com"}
			c.Spec.Service.Match = []v1beta1.HTTPMatchRequest{{URI: &v1beta1.StringMatch{Prefix: "/api"}}}
		}},
		// One match: Flagger's "-a" and "-b" routes are canaryflow's too (with more matches, Flagger ANDs them all
		// into one route and canaryflow writes one route each).
		{"appmesh:v1beta2", func(c *v1beta1.Canary) {
			c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 10
			c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}}}
		}},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			e := newEnv(t, "rt-ref")
			c := canary(e.ns, tc.provider, tc.mod)
			if tc.provider == "gloo" || tc.provider == "appmesh:v1beta2" {
				e.rollout(t, c) // their routers read the primary and canary Services
			}
			rt, err := e.routers.Get(tc.provider)
			require.NoError(t, err)
			require.NoError(t, rt.Reconcile(ctx, c))
			require.NoError(t, rt.SetRoutes(ctx, c, 90, 10, false))

			ref := flaggerRef(t, c, 90, 10)
			require.NotEmpty(t, ref)
			for key, want := range ref {
				kind, name, _ := strings.Cut(key, "/")
				ns := e.ns
				if kind == "TrafficRoute" {
					name, ns = name+"."+e.ns, "" // canaryflow's cluster-unique name
				}
				res, ok := kinds[kind]
				require.True(t, ok, "Flagger wrote a %s", kind)
				got := meshObject(t, res, ns, name)
				require.NotNil(t, got, "Flagger writes %s %s; canaryflow does not", kind, name)
				require.Equal(t, normal(want["spec"]), normal(got.Object["spec"]), "%s %s: spec", kind, name)
				if m, ok := want["mesh"]; ok {
					require.Equal(t, m, got.Object["mesh"])
				}
				wantMeta, _ := want["metadata"].(map[string]any)
				wantAnn, _ := wantMeta["annotations"].(map[string]any)
				for k, v := range wantAnn {
					require.Equal(t, v, got.GetAnnotations()[k], "%s %s: annotation %s", kind, name, k)
				}
			}
			ours := 0
			for kind, res := range kinds {
				if kind == "TrafficRoute" {
					continue
				}
				list, err := labtest.Dynamic(t).Resource(res).Namespace(e.ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					continue // the other TrafficSplit version of the same objects, or a kind not served
				}
				for _, u := range list.Items {
					if !strings.HasPrefix(kind, "TrafficSplit.") || kind == "TrafficSplit."+versionOf(tc.provider) {
						ours++
						_, inRef := ref[kind+"/"+u.GetName()]
						require.True(t, inRef, "canaryflow writes %s %s, Flagger does not", kind, u.GetName())
					}
				}
			}
			if tc.provider == "kuma" {
				ours++
			}
			require.Len(t, ref, ours, "as many objects as Flagger")
		})
	}
}

func versionOf(provider string) string {
	v, _ := v1beta1.SMIVersion(provider)
	return v
}
