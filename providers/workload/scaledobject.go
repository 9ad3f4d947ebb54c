package workload

import (
	"context"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// KEDA's ScaledObject is read and written as unstructured objects through the dynamic client, so canaryflow links
// none of KEDA's code; the primary's ScaledObject is the target's, cloned as Flagger clones it.

// ScaledObjectGVR is the resource of KEDA's ScaledObjects.
var ScaledObjectGVR = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}

// PausedReplicasAnnotation on a ScaledObject makes KEDA hold its workload at that many replicas. canaryflow sets it
// to "0" on the target's ScaledObject while the target (the canary) is scaled to zero, as Flagger does: unlike the
// HorizontalPodAutoscaler, KEDA scales a workload up from zero by itself.
const PausedReplicasAnnotation = "autoscaling.keda.sh/paused-replicas"

// pauseAnnotations are KEDA's pause switches, never copied onto the primary's ScaledObject: the target's is
// paused exactly while the canary is down, and the primary must keep scaling.
var pauseAnnotations = []string{PausedReplicasAnnotation, "autoscaling.keda.sh/paused"}

func usesScaledObject(c *v1beta1.Canary) bool {
	return c.Spec.AutoscalerRef != nil && c.Spec.AutoscalerRef.Kind == v1beta1.ScaledObjectKind
}

func (k *Client) scaledObjects(namespace string) (dynamic.ResourceInterface, error) {
	if k.dyn == nil {
		return nil, kubeobj.Permanentf("spec.autoscalerRef names a ScaledObject, but this workload client has no dynamic client (build it with workload.New or NewForClients)")
	}
	return k.dyn.Resource(ScaledObjectGVR).Namespace(namespace), nil
}

// getTargetScaledObject reads the ScaledObject spec.autoscalerRef names.
func (k *Client) getTargetScaledObject(ctx context.Context, c *v1beta1.Canary) (*unstructured.Unstructured, error) {
	sos, err := k.scaledObjects(c.Namespace)
	if err != nil {
		return nil, err
	}
	name := c.Spec.AutoscalerRef.Name
	so, err := sos.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		// %w keeps it a NotFound for callers for whom a missing ScaledObject is fine (finalisation).
		return nil, kubeobj.Permanentf("ScaledObject %s/%s (spec.autoscalerRef) not found: create it (KEDA's CRD %s must be installed) or remove spec.autoscalerRef: %w",
			c.Namespace, name, ScaledObjectGVR.GroupResource(), err)
	}
	return so, kubeobj.APIError("get", "ScaledObject", c.Namespace, name, err)
}

// primaryScaledObject is the target's ScaledObject made to scale the primary, as Flagger makes it: the whole spec
// with scaleTargetRef naming the primary, trigger queries pointed at the primary, the HPA name KEDA creates
// suffixed "-primary" when the target names one, and spec.autoscalerRef.primaryScalerReplicas applied.
func primaryScaledObject(c *v1beta1.Canary, src *unstructured.Unstructured) *unstructured.Unstructured {
	spec, _ := runtime.DeepCopyJSONValue(src.Object["spec"]).(map[string]any)
	if spec == nil {
		spec = map[string]any{}
	}
	target, _ := spec["scaleTargetRef"].(map[string]any)
	if target == nil {
		target = map[string]any{}
		spec["scaleTargetRef"] = target
	}
	target["name"] = primaryName(c)
	if triggers, ok := spec["triggers"].([]any); ok {
		primaryTriggerQueries(c, triggers)
	}
	if n, ok, _ := unstructured.NestedString(spec, "advanced", "horizontalPodAutoscalerConfig", "name"); ok && n != "" {
		_ = unstructured.SetNestedField(spec, primaryValue(n), "advanced", "horizontalPodAutoscalerConfig", "name")
	}
	if r := c.Spec.AutoscalerRef.PrimaryScalerReplicas; r != nil {
		if r.MinReplicas != nil {
			spec["minReplicaCount"] = int64(*r.MinReplicas)
		}
		if r.MaxReplicas != nil {
			spec["maxReplicaCount"] = int64(*r.MaxReplicas)
		}
	}
	annotations := map[string]string{}
	for key, v := range src.GetAnnotations() {
		if key != "kubectl.kubernetes.io/last-applied-configuration" && !slices.Contains(pauseAnnotations, key) {
			annotations[key] = v
		}
	}
	labels, annotations := kubeobj.Marker(c, src.GetLabels(), annotations)
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion(ScaledObjectGVR.GroupVersion().String())
	u.SetKind(v1beta1.ScaledObjectKind)
	u.SetName(primaryValue(src.GetName()))
	u.SetNamespace(c.Namespace)
	u.SetLabels(labels)
	u.SetAnnotations(annotations)
	return u
}

// primaryTriggerQueries points the triggers' metadata queries at the primary (Flagger's rule). With
// spec.autoscalerRef.primaryScalerQueries, a trigger whose name is a key gets that query and the others keep
// theirs. Otherwise every "query" is rewritten: the target's name, and "<target>-canary", become
// "<target>-primary" (a best effort on the query's text; primaryScalerQueries is the exact way).
func primaryTriggerQueries(c *v1beta1.Canary, triggers []any) {
	target := c.Spec.TargetRef.Name
	// At each position the longer name is tried first, so "<target>-canary" never becomes
	// "<target>-primary-canary".
	rename := strings.NewReplacer(target+"-canary", primaryValue(target), target, primaryValue(target))
	queries := c.Spec.AutoscalerRef.PrimaryScalerQueries
	for _, t := range triggers {
		trigger, _ := t.(map[string]any)
		meta, _ := trigger["metadata"].(map[string]any)
		if meta == nil {
			continue
		}
		if len(queries) > 0 {
			name, _ := trigger["name"].(string)
			if q, ok := queries[name]; ok && name != "" {
				meta["query"] = q
			}
			continue
		}
		if q, ok := meta["query"].(string); ok {
			meta["query"] = rename.Replace(q)
		}
	}
}

// applyScaledObject writes the primary's ScaledObject.
func (k *Client) applyScaledObject(ctx context.Context, p *plan) error {
	if p.so == nil {
		return nil
	}
	obj := primaryScaledObject(p.c, p.so)
	sos, err := k.scaledObjects(p.c.Namespace)
	if err != nil {
		return err
	}
	_, err = sos.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: kubeobj.FieldManager, Force: true})
	return kubeobj.APIError("apply", "ScaledObject", p.c.Namespace, obj.GetName(), err)
}

// setTargetScaledObjectPaused pauses KEDA on the target (paused-replicas "0") or lifts canaryflow's pause, with a
// partial apply that owns only that annotation: a pause the user set under another manager stays. Already in
// the wanted state costs one read.
func (k *Client) setTargetScaledObjectPaused(ctx context.Context, c *v1beta1.Canary, paused bool) error {
	so, err := k.getTargetScaledObject(ctx, c)
	if err != nil {
		return err
	}
	v, has := so.GetAnnotations()[PausedReplicasAnnotation]
	if (paused && v == "0") || (!paused && !has) {
		return nil
	}
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(ScaledObjectGVR.GroupVersion().String())
	obj.SetKind(v1beta1.ScaledObjectKind)
	obj.SetName(so.GetName())
	obj.SetNamespace(c.Namespace)
	if paused {
		obj.SetAnnotations(map[string]string{PausedReplicasAnnotation: "0"})
	}
	sos, err := k.scaledObjects(c.Namespace)
	if err != nil {
		return err
	}
	_, err = sos.Apply(ctx, so.GetName(), obj, metav1.ApplyOptions{FieldManager: kubeobj.FieldManager, Force: true})
	return kubeobj.APIError("apply", "ScaledObject", c.Namespace, so.GetName(), err)
}

// scaledObjectMinReplicas is spec.minReplicaCount of a ScaledObject (0 when unset).
func scaledObjectMinReplicas(so *unstructured.Unstructured) int32 {
	n, _, _ := unstructured.NestedInt64(so.Object, "spec", "minReplicaCount")
	return int32(n)
}
