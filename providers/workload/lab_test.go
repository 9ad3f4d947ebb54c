//go:build lab

package workload_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
)

func podinfoCanary(ns string, mod func(*v1beta1.Canary)) *v1beta1.Canary {
	c := &v1beta1.Canary{}
	c.Name, c.Namespace = "podinfo", ns
	c.Spec.TargetRef = v1beta1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"}
	c.Spec.AutoscalerRef = &v1beta1.AutoscalerReference{Kind: "HorizontalPodAutoscaler", Name: "podinfo"}
	c.Spec.Service = v1beta1.CanaryService{
		Port: 9898, TargetPort: intstr.FromString("http"), AppProtocol: "http", PortDiscovery: true,
		Apex:    &v1beta1.CustomMetadata{Labels: map[string]string{"tier": "apex"}, Annotations: map[string]string{"note": "apex"}},
		Primary: &v1beta1.CustomMetadata{Labels: map[string]string{"tier": "primary"}},
		Canary:  &v1beta1.CustomMetadata{Annotations: map[string]string{"note": "canary"}},
	}
	c.Spec.Analysis = &v1beta1.CanaryAnalysis{Interval: "10s", StepWeight: 10, MaxWeight: 50}
	if mod != nil {
		mod(c)
	}
	c.SetDefaults()
	return c
}

// versions records the resourceVersion of every object canaryflow writes or touches, to prove a second run is a no-op.
func versions(t *testing.T, cs kubernetes.Interface, ns string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, d := range deps.Items {
		// Controllers write the status (and the resourceVersion) of workloads: compare what canaryflow writes.
		delete(d.Annotations, "deployment.kubernetes.io/revision") // the Deployment controller's, written after ours
		out["deploy/"+d.Name] = fmt.Sprint(d.Generation, d.Labels, d.Annotations)
	}
	svcs, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, s := range svcs.Items {
		// What a Service says, not its resourceVersion: the API server sometimes rewrites the managedFields
		// bookkeeping of a no-op apply (a new time, another order) when another field manager owns keys too.
		spec, err := json.Marshal(s.Spec)
		require.NoError(t, err)
		out["svc/"+s.Name] = fmt.Sprint(s.Labels, s.Annotations, string(spec))
	}
	cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, c := range cms.Items {
		// istiod, run by a test of another package on the shared lab, writes its CA into every namespace.
		if strings.HasPrefix(c.Name, "istio-ca-") {
			continue
		}
		out["cm/"+c.Name] = c.ResourceVersion
	}
	secs, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, s := range secs.Items {
		out["secret/"+s.Name] = s.ResourceVersion
	}
	hpas, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, h := range hpas.Items {
		out["hpa/"+h.Name] = fmt.Sprint(h.Generation, h.Labels, h.Annotations)
	}
	return out
}

// twice runs an operation, then runs it again and requires that the second run changed nothing.
func twice(t *testing.T, admin kubernetes.Interface, ns string, op func() error) {
	t.Helper()
	require.NoError(t, op())
	before := versions(t, admin, ns)
	require.NoError(t, op())
	require.Equal(t, before, versions(t, admin, ns), "running it a second time changed objects")
}

func waitReady(t *testing.T, k *workload.Client, c *v1beta1.Canary, primary bool) {
	t.Helper()
	// EventuallyWithT: an attempt's error is retried (a require in Eventually's condition would end only its
	// goroutine), and the last attempt's reason is reported at the deadline.
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ok, reason, err := k.IsReady(context.Background(), c, primary)
		require.NoError(ct, err)
		require.True(ct, ok, "never ready: %s", reason)
	}, 90*time.Second, 200*time.Millisecond)
}

func requireManaged(t *testing.T, m metav1.Object, c *v1beta1.Canary) {
	t.Helper()
	require.Equal(t, kubeobj.ManagedByValue, m.GetLabels()[kubeobj.ManagedByLabel], m.GetName())
	require.Equal(t, c.Namespace+"/"+c.Name, m.GetAnnotations()[kubeobj.CanaryAnnotation], m.GetName())
	var applied bool
	for _, f := range m.GetManagedFields() {
		if f.Manager == kubeobj.FieldManager && f.Operation == metav1.ManagedFieldsOperationApply {
			applied = true
		}
	}
	require.True(t, applied, "%s is written by server-side apply as %q", m.GetName(), kubeobj.FieldManager)
}

func TestDeploymentLifecycleUnderTheWorkerRole(t *testing.T) {
	ctx := context.Background()
	_, admin := labtest.Kube(t)
	k, err := workload.New(workloadtest.WorkerConfig(t, labtest.RestConfig(t), labtest.Namespace(t, "cf-worker")))
	require.NoError(t, err)
	ns := labtest.Namespace(t, "wl")
	workloadtest.CreatePodinfo(t, admin, ns, "podinfo", "6.0.0", 2, 2)
	c := podinfoCanary(ns, nil)

	target, primary, err := k.Revisions(ctx, c)
	require.NoError(t, err)
	require.NotEmpty(t, target)
	require.Empty(t, primary, "no primary before the first rollout")

	// Initialise.
	twice(t, admin, ns, func() error { return k.Initialize(ctx, c) })
	p, err := admin.AppsV1().Deployments(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	require.NoError(t, err)
	requireManaged(t, p, c)
	require.Equal(t, map[string]string{"app": "podinfo-primary"}, p.Spec.Selector.MatchLabels)
	require.Equal(t, "podinfo-primary", p.Labels["app"])
	require.Equal(t, "podinfo-primary", p.Spec.Template.Labels["app"])
	require.Equal(t, int32(2), *p.Spec.Replicas)
	ps := p.Spec.Template.Spec
	require.Equal(t, "podinfo-config-primary", ps.Containers[0].Env[0].ValueFrom.ConfigMapKeyRef.Name)
	require.Equal(t, "podinfo-secret-primary", ps.Containers[0].EnvFrom[0].SecretRef.Name)
	require.Equal(t, "podinfo-config-primary", ps.Volumes[0].ConfigMap.Name)
	require.Equal(t, "podinfo-primary", ps.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels["app"])
	require.Equal(t, "podinfo-primary", ps.TopologySpreadConstraints[0].LabelSelector.MatchLabels["app"])

	cm, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "podinfo-config-primary", metav1.GetOptions{})
	require.NoError(t, err)
	requireManaged(t, cm, c)
	require.Equal(t, map[string]string{"color": "#34577c"}, cm.Data)
	require.Equal(t, "a", cm.Labels["team"])
	sec, err := admin.CoreV1().Secrets(ns).Get(ctx, "podinfo-secret-primary", metav1.GetOptions{})
	require.NoError(t, err)
	requireManaged(t, sec, c)
	require.Equal(t, []byte("s3cr3t"), sec.Data["PODINFO_TOKEN"])

	hpa, err := admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	require.NoError(t, err)
	requireManaged(t, hpa, c)
	require.Equal(t, "podinfo-primary", hpa.Spec.ScaleTargetRef.Name)
	require.Equal(t, int32(2), *hpa.Spec.MinReplicas)
	require.Equal(t, int32(4), hpa.Spec.MaxReplicas)

	for _, tc := range []struct {
		name, selects string
		labels        map[string]string
		annotations   map[string]string
	}{
		{"podinfo", "podinfo-primary", map[string]string{"tier": "apex"}, map[string]string{"note": "apex"}},
		{"podinfo-primary", "podinfo-primary", map[string]string{"tier": "primary"}, nil},
		{"podinfo-canary", "podinfo", nil, map[string]string{"note": "canary"}},
	} {
		svc, err := admin.CoreV1().Services(ns).Get(ctx, tc.name, metav1.GetOptions{})
		require.NoError(t, err)
		requireManaged(t, svc, c)
		require.Equal(t, corev1.ServiceTypeClusterIP, svc.Spec.Type)
		require.Equal(t, map[string]string{"app": tc.selects}, svc.Spec.Selector, tc.name)
		require.Len(t, svc.Spec.Ports, 2, "the service port and the discovered grpc port")
		require.Equal(t, "http", svc.Spec.Ports[0].Name)
		require.Equal(t, int32(9898), svc.Spec.Ports[0].Port)
		require.Equal(t, intstr.FromString("http"), svc.Spec.Ports[0].TargetPort)
		require.Equal(t, "http", *svc.Spec.Ports[0].AppProtocol)
		require.Equal(t, corev1.ServicePort{Name: "grpc", Protocol: corev1.ProtocolTCP, Port: 9999, TargetPort: intstr.FromInt32(9999)}, svc.Spec.Ports[1])
		for k, v := range tc.labels {
			require.Equal(t, v, svc.Labels[k])
		}
		for k, v := range tc.annotations {
			require.Equal(t, v, svc.Annotations[k])
		}
	}

	target, primary, err = k.Revisions(ctx, c)
	require.NoError(t, err)
	require.Equal(t, target, primary, "a fresh primary runs the target's revision")
	waitReady(t, k, c, true)

	// The workflow then scales the target down.
	twice(t, admin, ns, func() error { return k.ScaleToZero(ctx, c) })
	d, err := admin.AppsV1().Deployments(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, int32(0), *d.Spec.Replicas)
	waitReady(t, k, c, false)

	// A new revision: an image change, then a config change.
	labtest.SetImage(t, admin, ns, "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
	target2, primary2, err := k.Revisions(ctx, c)
	require.NoError(t, err)
	require.NotEqual(t, target2, primary2)
	require.Equal(t, primary, primary2)
	cfg, err := admin.CoreV1().ConfigMaps(ns).Get(ctx, "podinfo-config", metav1.GetOptions{})
	require.NoError(t, err)
	cfg.Data["color"] = "#ff0000"
	_, err = admin.CoreV1().ConfigMaps(ns).Update(ctx, cfg, metav1.UpdateOptions{})
	require.NoError(t, err)
	target3, _, err := k.Revisions(ctx, c)
	require.NoError(t, err)
	require.NotEqual(t, target2, target3, "a tracked ConfigMap is part of the revision")

	// Scale the canary up: the target declares 0, it has an autoscaler, so its minReplicas (2).
	twice(t, admin, ns, func() error { return k.ScaleFromZero(ctx, c) })
	d, err = admin.AppsV1().Deployments(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, int32(2), *d.Spec.Replicas)
	waitReady(t, k, c, false)

	// Promote.
	twice(t, admin, ns, func() error { return k.Promote(ctx, c) })
	p, err = admin.AppsV1().Deployments(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "ghcr.io/stefanprodan/podinfo:6.0.1", p.Spec.Template.Spec.Containers[0].Image)
	require.Equal(t, "podinfo-config-primary", p.Spec.Template.Spec.Volumes[0].ConfigMap.Name)
	require.Equal(t, int32(2), *p.Spec.Replicas)
	cm, err = admin.CoreV1().ConfigMaps(ns).Get(ctx, "podinfo-config-primary", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "#ff0000", cm.Data["color"])
	target, primary, err = k.Revisions(ctx, c)
	require.NoError(t, err)
	require.Equal(t, target3, target)
	require.Equal(t, target, primary, "after promotion the primary runs the target's revision: no new run")
	waitReady(t, k, c, true)
	twice(t, admin, ns, func() error { return k.ScaleToZero(ctx, c) })

	// Finalise (revertOnDeletion): the target gets the primary's replicas back, the apex selects it, the rest goes.
	require.NoError(t, k.Finalize(ctx, c))
	require.NoError(t, k.Finalize(ctx, c), "nothing left to undo is success")
	d, err = admin.AppsV1().Deployments(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, int32(2), *d.Spec.Replicas)
	apex, err := admin.CoreV1().Services(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"app": "podinfo"}, apex.Spec.Selector)
	gone := map[string]error{}
	_, gone["deploy/podinfo-primary"] = admin.AppsV1().Deployments(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	_, gone["hpa/podinfo-primary"] = admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	_, gone["svc/podinfo-primary"] = admin.CoreV1().Services(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	_, gone["svc/podinfo-canary"] = admin.CoreV1().Services(ns).Get(ctx, "podinfo-canary", metav1.GetOptions{})
	_, gone["cm/podinfo-config-primary"] = admin.CoreV1().ConfigMaps(ns).Get(ctx, "podinfo-config-primary", metav1.GetOptions{})
	_, gone["secret/podinfo-secret-primary"] = admin.CoreV1().Secrets(ns).Get(ctx, "podinfo-secret-primary", metav1.GetOptions{})
	for what, err := range gone {
		require.True(t, apierrors.IsNotFound(err), "%s should be deleted: %v", what, err)
	}
	_, err = admin.CoreV1().ConfigMaps(ns).Get(ctx, "podinfo-config", metav1.GetOptions{})
	require.NoError(t, err, "the user's ConfigMap stays")
	_, err = admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err, "the user's autoscaler stays")
}
