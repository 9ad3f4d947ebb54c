package router

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

// The mesh routers' objects without a cluster (lab_<provider>_test.go creates them on the API server): the
// encodings and names a mesh reads, and the matches each refuses instead of dropping.

func TestSMIWeightsAreQuantityStringsInV1alpha1Only(t *testing.T) {
	c := testCanary(nil)
	for version, want := range map[string][]any{
		v1beta1.SMIV1alpha1: {"10", "90"},
		v1beta1.SMIV1alpha2: {int64(10), int64(90)},
		v1beta1.SMIV1alpha3: {int64(10), int64(90)},
	} {
		spec := smiSpec(c, version, 90, 10)
		backends := spec["backends"].([]any)
		require.Equal(t, "podinfo-canary", backends[0].(map[string]any)["service"], "the canary first, as Flagger writes it")
		require.Equal(t, want, []any{backends[0].(map[string]any)["weight"], backends[1].(map[string]any)["weight"]}, version)
		u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
		pw, cw := smiRoutes(c, u)
		require.Equal(t, []int{90, 10}, []int{pw, cw}, "read back from %s", version)
	}
}

func TestKumaTrafficRouteNameSaysTheNamespace(t *testing.T) {
	a, b := testCanary(nil), testCanary(nil)
	b.Namespace = "other"
	require.Equal(t, "podinfo.test", kumaRouteName(a))
	require.NotEqual(t, kumaRouteName(a), kumaRouteName(b), "same-named Canaries of two namespaces get a TrafficRoute each")
	u := kumaObject(a, 80, 20)
	require.Empty(t, u.GetNamespace(), "TrafficRoutes are cluster-scoped")
	require.Equal(t, "default", u.Object["mesh"])
	pw, cw := kumaRoutes(a, u)
	require.Equal(t, []int{80, 20}, []int{pw, cw})
}

func TestMeshABRoutesOnePerMatchThenThePrimary(t *testing.T) {
	c := testCanary(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Iterations = 5
		c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{
			{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}},
			{Headers: map[string]v1beta1.StringMatch{"user-agent": {Suffix: "(beta)"}}},
		}
	})
	gloo, err := glooRoutes(c, 0, 100)
	require.NoError(t, err)
	require.Len(t, gloo, 3)
	require.Equal(t, []any{map[string]any{"headers": []any{map[string]any{"name": "user-agent", "value": `.*\(beta\)`, "regex": true}}}},
		gloo[1].(map[string]any)["matchers"], "a suffix is a whole-value regex for Envoy")
	require.Equal(t, map[string]any{"single": map[string]any{"upstream": map[string]any{"name": "test-podinfo-primaryupstream-9898", "namespace": "test"}}},
		gloo[2].(map[string]any)["routeAction"])

	mesh, err := appmeshRoutes(c, 0, 100)
	require.NoError(t, err)
	require.Len(t, mesh, 3)
	var names []any
	var prio []any
	for _, r := range mesh {
		names, prio = append(names, r.(map[string]any)["name"]), append(prio, r.(map[string]any)["priority"])
	}
	require.Equal(t, []any{"podinfo-a", "podinfo-a-2", "podinfo-b"}, names)
	require.Equal(t, []any{int64(10), int64(11), int64(20)}, prio)
}

func TestMeshMatchesTheyCannotExpressAreRefused(t *testing.T) {
	ab := func(m v1beta1.HTTPMatchRequest) *v1beta1.Canary {
		return testCanary(func(c *v1beta1.Canary) {
			c.Spec.Analysis.Iterations = 5
			c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{m}
		})
	}
	uri := &v1beta1.StringMatch{Prefix: "/api"}
	for _, tc := range []struct {
		name  string
		route func(*v1beta1.Canary) error
		match v1beta1.HTTPMatchRequest
		msg   string
	}{
		{"gloo uri", func(c *v1beta1.Canary) error { _, err := glooRoutes(c, 0, 100); return err },
			v1beta1.HTTPMatchRequest{URI: uri}, "spec.analysis.match[0].uri: provider gloo matches headers"},
		{"gloo method regex", func(c *v1beta1.Canary) error { _, err := glooRoutes(c, 0, 100); return err },
			v1beta1.HTTPMatchRequest{Method: &v1beta1.StringMatch{Regex: "GET|HEAD"}}, "Gloo matches methods exactly only"},
		{"appmesh query regex", func(c *v1beta1.Canary) error { _, err := appmeshRoutes(c, 0, 100); return err },
			v1beta1.HTTPMatchRequest{QueryParams: map[string]v1beta1.StringMatch{"v": {Regex: "2.*"}}}, "App Mesh matches query parameters exactly only"},
		{"appmesh source labels", func(c *v1beta1.Canary) error { _, err := appmeshRoutes(c, 0, 100); return err },
			v1beta1.HTTPMatchRequest{SourceLabels: map[string]string{"app": "x"}}, "spec.analysis.match[0].sourceLabels: provider appmesh matches"},
		{"appmesh empty", func(c *v1beta1.Canary) error { _, err := appmeshRoutes(c, 0, 100); return err },
			v1beta1.HTTPMatchRequest{}, "spec.analysis.match[0]: no condition"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorContains(t, tc.route(ab(tc.match)), tc.msg)
		})
	}
}

// The builtin gloo and kuma queries select the canary by names these routers (and the meshes after them) give:
// Gloo's Envoy names a cluster "<Upstream>_<Upstream namespace>", Kuma tags series with the Kuma service. Each
// query must select the canary's and not the primary's, or the analysis would judge the wrong pods.
func TestBuiltinQueriesSelectTheCanaryByTheRoutersNames(t *testing.T) {
	c := testCanary(nil)
	_, primary, canary := c.ServiceNames()
	for _, tc := range []struct {
		provider, label string
		canary, primary string
	}{
		{"gloo", "envoy_cluster_name", glooUpstreamName(c, "canary") + "_" + c.Namespace, glooUpstreamName(c, "primary") + "_" + c.Namespace},
		{"kuma", "service", kumaService(c, canary), kumaService(c, primary)},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			for _, metric := range []string{metrics.RequestSuccessRate, metrics.RequestDuration} {
				q, ok := metrics.BuiltinQuery(tc.provider, metric)
				require.True(t, ok)
				q, err := metrics.Render(q, metrics.Model{Namespace: c.Namespace, Target: c.Spec.TargetRef.Name, Interval: "1m"})
				require.NoError(t, err)
				m := regexp.MustCompile(tc.label + `=~"([^"]+)"`).FindStringSubmatch(q)
				require.NotNil(t, m, q)
				re := regexp.MustCompile("^(?:" + m[1] + ")$") // PromQL regexes are anchored
				require.True(t, re.MatchString(tc.canary), "%s must select %s", m[1], tc.canary)
				require.False(t, re.MatchString(tc.primary), "%s must not select %s", m[1], tc.primary)
			}
		})
	}
}
