//go:build lab

package workload_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

// kedaModule is the KEDA release whose ScaledObject CRD the lab tests install: the module ships it under
// config/crd/bases, and the Go module proxy serves this exact version.
const kedaModule = "github.com/kedacore/keda/v2@v2.17.0"

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installKEDACRD installs KEDA's ScaledObject CRD, unchanged from its module, on the lab API server (server-side
// apply, so parallel tests and reruns agree) and waits until ScaledObjects are served. It stays installed: it is
// cluster-wide, and other tests may be using it.
func installKEDACRD(t *testing.T) {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", kedaModule).Output()
	require.NoError(t, err, "downloading %s from the Go module proxy (it holds KEDA's CRD): %s", kedaModule, out)
	var mod struct{ Dir string }
	require.NoError(t, json.Unmarshal(out, &mod))
	raw, err := os.ReadFile(filepath.Join(mod.Dir, "config", "crd", "bases", "keda.sh_scaledobjects.yaml"))
	require.NoError(t, err)
	var crd unstructured.Unstructured
	require.NoError(t, yaml.Unmarshal(raw, &crd.Object))
	require.Equal(t, "scaledobjects.keda.sh", crd.GetName())

	ctx := context.Background()
	dyn := labtest.Dynamic(t)
	_, err = dyn.Resource(crdGVR).Apply(ctx, crd.GetName(), &crd, metav1.ApplyOptions{FieldManager: "canaryflow-lab-test", Force: true})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		_, err := dyn.Resource(workload.ScaledObjectGVR).Namespace("default").List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil
	}, 60*time.Second, 200*time.Millisecond, "ScaledObjects are never served")
}

// createScaledObject creates the user's ScaledObject "podinfo" scaling the Deployment podinfo on a Prometheus
// query that names it.
func createScaledObject(t *testing.T, dyn dynamic.Interface, ns string) {
	t.Helper()
	so := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
		"metadata": map[string]any{"name": "podinfo", "namespace": ns, "labels": map[string]any{"team": "a"}},
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"name": "podinfo"},
			"minReplicaCount": int64(2), "maxReplicaCount": int64(5), "pollingInterval": int64(15),
			"advanced": map[string]any{"horizontalPodAutoscalerConfig": map[string]any{"name": "podinfo-hpa"}},
			"triggers": []any{
				map[string]any{"type": "prometheus", "name": "rps", "metadata": map[string]any{
					"serverAddress": "http://prometheus.monitoring:9090", "threshold": "100",
					"query": `sum(rate(http_requests_total{deployment="podinfo"}[1m]))`,
				}},
				map[string]any{"type": "cpu", "metricType": "Utilization", "metadata": map[string]any{"value": "80"}},
			},
		},
	}}
	_, err := dyn.Resource(workload.ScaledObjectGVR).Namespace(ns).Create(context.Background(), so, metav1.CreateOptions{})
	require.NoError(t, err)
}

func getSO(t *testing.T, dyn dynamic.Interface, ns, name string) *unstructured.Unstructured {
	t.Helper()
	so, err := dyn.Resource(workload.ScaledObjectGVR).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	require.NoError(t, err)
	return so
}

func nested(t *testing.T, u *unstructured.Unstructured, fields ...string) any {
	t.Helper()
	v, ok, err := unstructured.NestedFieldNoCopy(u.Object, fields...)
	require.NoError(t, err)
	require.True(t, ok, "%s has no %s", u.GetName(), strings.Join(fields, "."))
	return v
}

// A KEDA ScaledObject as spec.autoscalerRef, on the real API server with KEDA's own CRD (no KEDA operator runs in
// the lab, so this is proven at object level): the primary gets a clone scaling it, whose trigger query names the
// primary; the target's is paused at 0 exactly while the canary is down; finalisation gives it back.
func TestKEDAScaledObjectIsClonedForThePrimaryAndPausedWhileTheCanaryIsDown(t *testing.T) {
	ctx := context.Background()
	installKEDACRD(t)
	_, admin := labtest.Kube(t)
	dyn := labtest.Dynamic(t)
	k, err := workload.New(workloadtest.WorkerConfig(t, labtest.RestConfig(t), labtest.Namespace(t, "cf-worker")))
	require.NoError(t, err)
	ns := labtest.Namespace(t, "wl-keda")
	workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 0, 0)
	createScaledObject(t, dyn, ns)
	three := int32(3)
	c := podinfoCanary(ns, func(c *v1beta1.Canary) {
		c.Spec.AutoscalerRef = &v1beta1.AutoscalerReference{APIVersion: "keda.sh/v1alpha1", Kind: v1beta1.ScaledObjectKind, Name: "podinfo",
			PrimaryScalerReplicas: &v1beta1.ScalerReplicas{MinReplicas: &three}}
	})

	// Initialise: the primary's ScaledObject, written once (a second run changes nothing).
	require.NoError(t, k.Initialize(ctx, c))
	primarySO := getSO(t, dyn, ns, "podinfo-primary")
	require.NoError(t, k.Initialize(ctx, c))
	require.Equal(t, primarySO.GetResourceVersion(), getSO(t, dyn, ns, "podinfo-primary").GetResourceVersion())
	requireManaged(t, primarySO, c)
	require.Equal(t, "a", primarySO.GetLabels()["team"])
	require.Equal(t, "podinfo-primary", nested(t, primarySO, "spec", "scaleTargetRef", "name"))
	require.Equal(t, "podinfo-hpa-primary", nested(t, primarySO, "spec", "advanced", "horizontalPodAutoscalerConfig", "name"))
	require.Equal(t, int64(3), nested(t, primarySO, "spec", "minReplicaCount"), "primaryScalerReplicas")
	require.Equal(t, int64(5), nested(t, primarySO, "spec", "maxReplicaCount"))
	triggers := nested(t, primarySO, "spec", "triggers").([]any)
	require.Len(t, triggers, 2)
	require.Equal(t, `sum(rate(http_requests_total{deployment="podinfo-primary"}[1m]))`,
		triggers[0].(map[string]any)["metadata"].(map[string]any)["query"], "the trigger query follows the primary")
	p, err := admin.AppsV1().Deployments(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, int32(2), *p.Spec.Replicas, "a target at 0 replicas gives the primary the ScaledObject's minReplicaCount")

	// The canary goes down: KEDA is paused on the target, through an annotation that is all canaryflow owns.
	for range 2 {
		require.NoError(t, k.ScaleToZero(ctx, c))
	}
	target := getSO(t, dyn, ns, "podinfo")
	require.Equal(t, "0", target.GetAnnotations()[workload.PausedReplicasAnnotation])
	require.Equal(t, `sum(rate(http_requests_total{deployment="podinfo"}[1m]))`,
		nested(t, target, "spec", "triggers").([]any)[0].(map[string]any)["metadata"].(map[string]any)["query"], "the user's ScaledObject keeps its spec")
	for _, f := range target.GetManagedFields() {
		if f.Manager == kubeobj.FieldManager {
			require.JSONEq(t, `{"f:metadata":{"f:annotations":{"f:autoscaling.keda.sh/paused-replicas":{}}}}`, string(f.FieldsV1.Raw))
		}
	}
	_, paused := getSO(t, dyn, ns, "podinfo-primary").GetAnnotations()[workload.PausedReplicasAnnotation]
	require.False(t, paused, "the primary keeps scaling")

	// A new revision: the canary comes up (the ScaledObject's minReplicaCount) and KEDA scales it again.
	for range 2 {
		require.NoError(t, k.ScaleFromZero(ctx, c))
	}
	_, paused = getSO(t, dyn, ns, "podinfo").GetAnnotations()[workload.PausedReplicasAnnotation]
	require.False(t, paused, "the canary is up: the target's ScaledObject runs")
	d, err := admin.AppsV1().Deployments(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, int32(2), *d.Spec.Replicas)

	// The user changes the trigger; promotion carries it to the primary's ScaledObject.
	target = getSO(t, dyn, ns, "podinfo")
	triggers = nested(t, target, "spec", "triggers").([]any)
	triggers[0].(map[string]any)["metadata"].(map[string]any)["query"] = `sum(rate(http_requests_total{deployment="podinfo-canary"}[5m]))`
	require.NoError(t, unstructured.SetNestedSlice(target.Object, triggers, "spec", "triggers"))
	_, err = dyn.Resource(workload.ScaledObjectGVR).Namespace(ns).Update(ctx, target, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, k.Promote(ctx, c))
	require.Equal(t, `sum(rate(http_requests_total{deployment="podinfo-primary"}[5m]))`,
		nested(t, getSO(t, dyn, ns, "podinfo-primary"), "spec", "triggers").([]any)[0].(map[string]any)["metadata"].(map[string]any)["query"])
	require.NoError(t, k.ScaleToZero(ctx, c))

	// Finalise: the target's ScaledObject runs again, the primary's is gone.
	require.NoError(t, k.Finalize(ctx, c))
	require.NoError(t, k.Finalize(ctx, c), "nothing left to undo is success")
	_, paused = getSO(t, dyn, ns, "podinfo").GetAnnotations()[workload.PausedReplicasAnnotation]
	require.False(t, paused)
	_, err = dyn.Resource(workload.ScaledObjectGVR).Namespace(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	require.Error(t, err, "the primary's ScaledObject is deleted")
}

// A pause the user set is theirs: canaryflow's scale-up lifts only its own.
func TestKEDAPauseSetByTheUserIsKept(t *testing.T) {
	ctx := context.Background()
	installKEDACRD(t)
	_, admin := labtest.Kube(t)
	dyn := labtest.Dynamic(t)
	k, err := workload.New(labtest.RestConfig(t))
	require.NoError(t, err)
	ns := labtest.Namespace(t, "wl-keda-user")
	workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 0, 0)
	createScaledObject(t, dyn, ns)
	pause := &unstructured.Unstructured{}
	pause.SetAPIVersion("keda.sh/v1alpha1")
	pause.SetKind("ScaledObject")
	pause.SetName("podinfo")
	pause.SetAnnotations(map[string]string{workload.PausedReplicasAnnotation: "1"})
	_, err = dyn.Resource(workload.ScaledObjectGVR).Namespace(ns).Apply(ctx, "podinfo", pause, metav1.ApplyOptions{FieldManager: "ops-team"})
	require.NoError(t, err)
	c := podinfoCanary(ns, func(c *v1beta1.Canary) {
		c.Spec.AutoscalerRef = &v1beta1.AutoscalerReference{Kind: v1beta1.ScaledObjectKind, Name: "podinfo"}
	})
	require.NoError(t, k.ScaleFromZero(ctx, c))
	require.Equal(t, "1", getSO(t, dyn, ns, "podinfo").GetAnnotations()[workload.PausedReplicasAnnotation])
}

func TestMissingScaledObjectIsAPermanentErrorNamingIt(t *testing.T) {
	ctx := context.Background()
	installKEDACRD(t)
	_, admin := labtest.Kube(t)
	k, err := workload.New(labtest.RestConfig(t))
	require.NoError(t, err)
	ns := labtest.Namespace(t, "wl-keda-missing")
	workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 1, 0)
	c := podinfoCanary(ns, func(c *v1beta1.Canary) {
		c.Spec.AutoscalerRef = &v1beta1.AutoscalerReference{Kind: v1beta1.ScaledObjectKind, Name: "podinfo"}
	})
	requirePermanent(t, k.Initialize(ctx, c), "ScaledObject "+ns+"/podinfo (spec.autoscalerRef) not found")
	requirePermanent(t, workload.NewForClientset(admin).Initialize(ctx, c), "no dynamic client")
}
