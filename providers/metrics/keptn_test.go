package metrics

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

func keptnMetric(ns, name string, status map[string]any) *unstructured.Unstructured {
	obj := map[string]any{
		"apiVersion": "metrics.keptn.sh/v1beta1", "kind": "KeptnMetric",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"provider": map[string]any{"name": "prometheus"}, "query": "sum(rate(http_requests_total[1m]))", "fetchIntervalSeconds": int64(10)},
	}
	if status != nil {
		obj["status"] = status
	}
	return &unstructured.Unstructured{Object: obj}
}

func fakeKeptnCluster(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		KeptnMetricResource:   "KeptnMetricList",
		KeptnAnalysisResource: "AnalysisList",
	}, objs...)
}

// Keptn, KeptnMetric: the query keptnmetric/<namespace>/<name> reads the KeptnMetric's status.value (a string,
// as Keptn's metrics-operator writes it), as Flagger does.
func TestKeptnMetricReadsStatusValue(t *testing.T) {
	kube := fakeKeptnCluster(
		keptnMetric("test", "podinfo-error-rate", map[string]any{"value": "0.25", "rawValue": "MC4yNQ==", "lastUpdated": "2026-03-04T05:06:00Z"}),
		keptnMetric("test", "not-yet-evaluated", nil),
		keptnMetric("test", "garbled", map[string]any{"value": "n/a"}),
	)
	p, err := New(Config{Type: "keptn", Kube: kube})
	require.NoError(t, err)
	for _, tc := range []struct {
		name, query string
		want        float64
		wantErr     error
		errText     string
	}{
		{name: "value", query: "keptnmetric/test/podinfo-error-rate", want: 0.25},
		{name: "plural kind, surrounding space, upper case kind as Flagger allows", query: "  KeptnMetrics/test/podinfo-error-rate\n", want: 0.25},
		{name: "no value yet is no data", query: "keptnmetric/test/not-yet-evaluated", wantErr: ErrNoValues},
		{name: "a missing KeptnMetric is rejected naming it", query: "keptnmetric/test/absent", wantErr: ErrQueryRejected, errText: "KeptnMetric test/absent not found"},
		{name: "a value that is no number is rejected", query: "keptnmetric/test/garbled", wantErr: ErrQueryRejected, errText: `status.value "n/a" is not a number`},
		{name: "a query of another shape is rejected with the format", query: "test/podinfo", wantErr: ErrQueryRejected, errText: keptnQueryFormat},
		{name: "an unknown kind is rejected", query: "keptnevaluation/test/x", wantErr: ErrQueryRejected, errText: "must be keptnmetric or analysis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := p.RunQuery(context.Background(), tc.query)
			if tc.wantErr != nil {
				require.ErrorIs(t, err, tc.wantErr)
				require.ErrorContains(t, err, tc.errText)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, v)
		})
	}
}

// Keptn, Analysis: the query analysis/<namespace>/<definition>/<timeframe>/<k>=<v>;… creates an Analysis of that
// AnalysisDefinition over the recent timeframe with the arguments, reads it back until Keptn has completed it,
// answers 1 (passed) or 0 (failed), and deletes it, as Flagger does.
func TestKeptnAnalysisCreatesWaitsReadsAndDeletes(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		status      map[string]any // what "Keptn" writes after the second read
		want        float64
		timeframe   string
		args        map[string]any
	}{
		{name: "passed", query: "analysis/test/podinfo-slo/5m/service=podinfo-canary;Env=Prod", status: map[string]any{"state": "Completed", "pass": true},
			want: 1, timeframe: "5m", args: map[string]any{"service": "podinfo-canary", "Env": "Prod"}},
		{name: "failed, default timeframe, no args", query: "analysis/test/podinfo-slo", status: map[string]any{"state": "Completed", "pass": false, "warning": false},
			want: 0, timeframe: "1m", args: map[string]any{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kube := fakeKeptnCluster()
			var mu sync.Mutex
			var created *unstructured.Unstructured
			reads := 0
			kube.PrependReactor("create", "analyses", func(a k8stesting.Action) (bool, runtime.Object, error) {
				mu.Lock()
				defer mu.Unlock()
				created = a.(k8stesting.CreateAction).GetObject().(*unstructured.Unstructured).DeepCopy()
				return false, nil, nil
			})
			kube.PrependReactor("get", "analyses", func(k8stesting.Action) (bool, runtime.Object, error) {
				mu.Lock()
				defer mu.Unlock()
				reads++
				obj := created.DeepCopy()
				switch reads {
				case 1: // Keptn has not looked at it yet
				case 2:
					obj.Object["status"] = map[string]any{"state": "Progressing"}
				default:
					obj.Object["status"] = tc.status
				}
				return true, obj, nil
			})
			p, err := NewKeptn(Config{Kube: kube})
			require.NoError(t, err)
			p.pollEvery = 10 * time.Millisecond
			v, err := p.RunQuery(context.Background(), tc.query)
			require.NoError(t, err)
			require.Equal(t, tc.want, v)

			mu.Lock()
			defer mu.Unlock()
			require.NotNil(t, created)
			require.Equal(t, "metrics.keptn.sh/v1beta1", created.GetAPIVersion())
			require.Equal(t, "Analysis", created.GetKind())
			require.Equal(t, "test", created.GetNamespace())
			require.Regexp(t, `^podinfo-slo-[0-9a-f]{6}$`, created.GetName())
			def, _, _ := unstructured.NestedString(created.Object, "spec", "analysisDefinition", "name")
			require.Equal(t, "podinfo-slo", def)
			recent, _, _ := unstructured.NestedString(created.Object, "spec", "timeframe", "recent")
			require.Equal(t, tc.timeframe, recent)
			args, _, _ := unstructured.NestedMap(created.Object, "spec", "args")
			require.Equal(t, tc.args, args)
			require.Equal(t, 3, reads, "read back until completed, then no more")
			left, err := kube.Resource(KeptnAnalysisResource).Namespace("test").List(context.Background(), metav1.ListOptions{})
			require.NoError(t, err)
			require.Empty(t, left.Items, "the Analysis is deleted after use")
		})
	}
}

// An Analysis Keptn never completes ends with the check's deadline (the activity fails the check as timed out)
// and is deleted all the same.
func TestKeptnAnalysisThatNeverCompletesEndsAtTheDeadlineAndIsDeleted(t *testing.T) {
	kube := fakeKeptnCluster()
	p, err := NewKeptn(Config{Kube: kube})
	require.NoError(t, err)
	p.pollEvery = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = p.RunQuery(ctx, "analysis/test/podinfo-slo/1m")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "was not completed in time")
	left, err := kube.Resource(KeptnAnalysisResource).Namespace("test").List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	require.Empty(t, left.Items)
}

func TestKeptnNeedsTheWorkersKubernetesClient(t *testing.T) {
	_, err := New(Config{Type: "keptn"})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, "no Kubernetes client")
}
