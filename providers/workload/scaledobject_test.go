package workload

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

func targetScaledObject(triggers ...any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"name": "podinfo", "kind": "Deployment", "apiVersion": "apps/v1"},
			"minReplicaCount": int64(2), "maxReplicaCount": int64(6), "pollingInterval": int64(20),
			"advanced": map[string]any{"horizontalPodAutoscalerConfig": map[string]any{"name": "podinfo-hpa"}},
			"triggers": triggers,
		},
	}}
	u.SetName("podinfo-so")
	u.SetNamespace("test")
	u.SetLabels(map[string]string{"team": "a"})
	u.SetAnnotations(map[string]string{
		PausedReplicasAnnotation:                           "0",
		"kubectl.kubernetes.io/last-applied-configuration": "{}",
		"scaledobject.keda.sh/transfer-hpa-ownership":      "true",
	})
	return u
}

func prometheusTrigger(name, query string) map[string]any {
	t := map[string]any{"type": "prometheus", "metadata": map[string]any{"serverAddress": "http://prometheus:9090", "query": query, "threshold": "10"}}
	if name != "" {
		t["name"] = name
	}
	return t
}

func soCanary(queries map[string]string, replicas *v1beta1.ScalerReplicas) *v1beta1.Canary {
	c := &v1beta1.Canary{}
	c.Name, c.Namespace = "podinfo", "test"
	c.Spec.TargetRef = v1beta1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"}
	c.Spec.AutoscalerRef = &v1beta1.AutoscalerReference{Kind: v1beta1.ScaledObjectKind, Name: "podinfo-so",
		PrimaryScalerQueries: queries, PrimaryScalerReplicas: replicas}
	return c
}

func triggerQueries(t *testing.T, u *unstructured.Unstructured) []string {
	t.Helper()
	triggers, _, err := unstructured.NestedSlice(u.Object, "spec", "triggers")
	require.NoError(t, err)
	var out []string
	for _, tr := range triggers {
		q, _, _ := unstructured.NestedString(tr.(map[string]any), "metadata", "query")
		out = append(out, q)
	}
	return out
}

func TestPrimaryScaledObjectTriggerQueriesFollowThePrimary(t *testing.T) {
	cases := []struct {
		name    string
		queries map[string]string
		in      []any
		want    []string
	}{
		{"the target's name becomes the primary's",
			nil, []any{prometheusTrigger("", `sum(rate(http_requests_total{deployment="podinfo"}[1m]))`)},
			[]string{`sum(rate(http_requests_total{deployment="podinfo-primary"}[1m]))`}},
		{"so does the canary's, never podinfo-primary-canary",
			nil, []any{prometheusTrigger("", `sum(rate(x{svc="podinfo-canary"}[1m])) + sum(rate(x{svc="podinfo"}[1m]))`)},
			[]string{`sum(rate(x{svc="podinfo-primary"}[1m])) + sum(rate(x{svc="podinfo-primary"}[1m]))`}},
		{"primaryScalerQueries replace the queries of the triggers they name, and only those",
			map[string]string{"rps": `sum(rate(x{deployment="podinfo-primary"}[2m]))`},
			[]any{prometheusTrigger("rps", `sum(rate(x{deployment="podinfo"}[1m]))`), prometheusTrigger("other", `up{deployment="podinfo"}`)},
			[]string{`sum(rate(x{deployment="podinfo-primary"}[2m]))`, `up{deployment="podinfo"}`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := targetScaledObject(tc.in...)
			got := primaryScaledObject(soCanary(tc.queries, nil), src)
			require.Equal(t, tc.want, triggerQueries(t, got))
			require.NotEqual(t, tc.want, triggerQueries(t, src), "the target's ScaledObject is not changed")
		})
	}
}

func TestPrimaryScaledObjectScalesThePrimaryAndIsNeverPaused(t *testing.T) {
	lowest, highest := int32(3), int32(9)
	got := primaryScaledObject(soCanary(nil, &v1beta1.ScalerReplicas{MinReplicas: &lowest, MaxReplicas: &highest}), targetScaledObject())
	require.Equal(t, "podinfo-so-primary", got.GetName())
	require.Equal(t, "keda.sh/v1alpha1", got.GetAPIVersion())
	name, _, _ := unstructured.NestedString(got.Object, "spec", "scaleTargetRef", "name")
	require.Equal(t, "podinfo-primary", name)
	hpa, _, _ := unstructured.NestedString(got.Object, "spec", "advanced", "horizontalPodAutoscalerConfig", "name")
	require.Equal(t, "podinfo-hpa-primary", hpa, "KEDA's HPA of the primary gets its own name")
	lo, _, _ := unstructured.NestedInt64(got.Object, "spec", "minReplicaCount")
	hi, _, _ := unstructured.NestedInt64(got.Object, "spec", "maxReplicaCount")
	poll, _, _ := unstructured.NestedInt64(got.Object, "spec", "pollingInterval")
	require.Equal(t, []int64{3, 9, 20}, []int64{lo, hi, poll}, "primaryScalerReplicas win; the rest is the target's")
	require.Equal(t, map[string]string{
		"scaledobject.keda.sh/transfer-hpa-ownership": "true",
		kubeobj.CanaryAnnotation:                      "test/podinfo",
	}, got.GetAnnotations(), "no pause and no kubectl bookkeeping is copied")
	require.Equal(t, map[string]string{"team": "a", kubeobj.ManagedByLabel: kubeobj.ManagedByValue}, got.GetLabels())
}
