package activities_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

func backendTemplate(name, typ, address, secret, query string) v1beta1.MetricTemplate {
	tpl := v1beta1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "test"},
		Spec: v1beta1.MetricTemplateSpec{Provider: v1beta1.MetricTemplateProvider{Type: typ, Address: address}, Query: query}}
	if secret != "" {
		tpl.Spec.Provider.SecretRef = &corev1.LocalObjectReference{Name: secret}
	}
	return tpl
}

// The backends Flagger has beyond Prometheus run through the activity as a MetricTemplate names them: the
// template's secretRef is read inside the activity (the InfluxDB token reaches the server, never the result),
// Keptn reads the cluster through the worker's client, and each value is judged against its threshold.
func TestFlaggerBackendsRunThroughTheActivity(t *testing.T) {
	influx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Token influx-SECRET" || r.URL.Query().Get("org") != "platform" {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"code":"unauthorized","message":"unauthorized access"}`)
			return
		}
		fmt.Fprint(w, "#datatype,string,long,double\r\n#group,false,false,false\r\n#default,_result,,\r\n,result,table,_value\r\n,,0,0.5\r\n\r\n")
	}))
	defer influx.Close()
	kube := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{metrics.KeptnMetricResource: "KeptnMetricList"},
		&unstructured.Unstructured{Object: map[string]any{"apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetric",
			"metadata": map[string]any{"name": "podinfo-p99", "namespace": "test"}, "status": map[string]any{"value": "180"}}})
	a := &activities.Analysis{Kube: kube, Secrets: fakeSecrets{"test/influx": {"token": []byte("influx-SECRET"), "org": []byte("platform")}}}
	in := defaulted(activities.MetricChecksInput{Canary: canaryRef("traefik", "test"),
		Templates: []v1beta1.MetricTemplate{
			backendTemplate("errors", "influxdb", influx.URL, "influx", `from(bucket: "{{ namespace }}") |> range(start: -{{ interval }})`),
			backendTemplate("latency", "keptn", "", "", "keptnmetric/{{ namespace }}/{{ target }}-p99"),
			backendTemplate("absent", "keptn", "", "", "keptnmetric/{{ namespace }}/absent"),
		},
		Metrics: []v1beta1.CanaryMetric{
			{Name: "error-rate", Interval: "1m", TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "errors"},
				ThresholdRange: &v1beta1.CanaryThresholdRange{Max: f64(1)}},
			{Name: "p99", Interval: "1m", TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "latency"},
				ThresholdRange: &v1beta1.CanaryThresholdRange{Max: f64(100)}},
			{Name: "gone", Interval: "1m", TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "absent"}},
		}})
	r, err := a.RunMetricChecks(context.Background(), in)
	require.NoError(t, err)
	require.Len(t, r.Results, 3)
	require.Equal(t, activities.VerdictPass, r.Results[0].Verdict, r.Results[0].Message)
	require.Equal(t, 0.5, *r.Results[0].Value)
	require.Equal(t, activities.VerdictFail, r.Results[1].Verdict)
	require.Equal(t, 180.0, *r.Results[1].Value)
	require.Equal(t, "keptnmetric/test/podinfo-p99", r.Results[1].Query)
	require.Equal(t, activities.VerdictFail, r.Results[2].Verdict)
	require.Contains(t, r.Results[2].Message, "KeptnMetric test/absent not found")
	require.NotContains(t, fmt.Sprint(r), "influx-SECRET")

	// A worker without a cluster client cannot run Keptn: a spec-level error, not retried.
	a.Kube = nil
	in.Metrics = in.Metrics[1:2]
	_, err = a.RunMetricChecks(context.Background(), in)
	requireAppErr(t, err, activities.ErrTypeInvalidMetric, "metric p99", "no Kubernetes client")
}
