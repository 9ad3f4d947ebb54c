package workload

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// Target kinds.
const (
	KindDeployment = "Deployment"
	KindDaemonSet  = "DaemonSet"
)

// workload is a Deployment or a DaemonSet seen through what a rollout needs of it.
type workload struct {
	kind string
	dep  *appsv1.Deployment
	ds   *appsv1.DaemonSet
}

func (w *workload) meta() *metav1.ObjectMeta {
	if w.dep != nil {
		return &w.dep.ObjectMeta
	}
	return &w.ds.ObjectMeta
}

func (w *workload) template() *corev1.PodTemplateSpec {
	if w.dep != nil {
		return &w.dep.Spec.Template
	}
	return &w.ds.Spec.Template
}

func (w *workload) selector() *metav1.LabelSelector {
	if w.dep != nil {
		return w.dep.Spec.Selector
	}
	return w.ds.Spec.Selector
}

// replicas is the declared replica count (a DaemonSet has none: -1).
func (w *workload) replicas() int32 {
	if w.dep == nil {
		return -1
	}
	if w.dep.Spec.Replicas == nil {
		return 1
	}
	return *w.dep.Spec.Replicas
}

func (w *workload) String() string {
	m := w.meta()
	return w.kind + " " + m.Namespace + "/" + m.Name
}

// getWorkload reads a Deployment or DaemonSet; found is false when it does not exist.
func (k *Client) getWorkload(ctx context.Context, kind, namespace, name string) (w *workload, found bool, err error) {
	switch kind {
	case KindDeployment:
		d, err := k.kube.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, kubeobj.APIError("get", kind, namespace, name, err)
		}
		return &workload{kind: kind, dep: d}, true, nil
	case KindDaemonSet:
		d, err := k.kube.AppsV1().DaemonSets(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, kubeobj.APIError("get", kind, namespace, name, err)
		}
		return &workload{kind: kind, ds: d}, true, nil
	}
	return nil, false, kubeobj.Permanentf("spec.targetRef.kind %q is not supported: canaryflow rolls out Deployment and DaemonSet", kind)
}

// target is the user's workload with its selector label.
type target struct {
	*workload
	key, value string // selector label of the target's pods
}

// getTarget reads the target; a missing target or one without a selector label is a permanent error.
func (k *Client) getTarget(ctx context.Context, c *v1beta1.Canary) (*target, error) {
	ref := c.Spec.TargetRef
	w, found, err := k.getWorkload(ctx, ref.Kind, c.Namespace, ref.Name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, kubeobj.Permanentf("%s %s/%s (spec.targetRef of Canary %s/%s) not found: create it first or fix spec.targetRef",
			ref.Kind, c.Namespace, ref.Name, c.Namespace, c.Name)
	}
	key, value, err := selectorLabel(ref.Kind, c.Namespace, ref.Name, w.selector())
	if err != nil {
		return nil, err
	}
	return &target{workload: w, key: key, value: value}, nil
}

func primaryName(c *v1beta1.Canary) string { return primaryValue(c.Spec.TargetRef.Name) }

// getPrimary reads the primary workload; nil when it does not exist, a permanent error when it is not ours.
func (k *Client) getPrimary(ctx context.Context, c *v1beta1.Canary) (*workload, error) {
	name := primaryName(c)
	w, found, err := k.getWorkload(ctx, c.Spec.TargetRef.Kind, c.Namespace, name)
	if err != nil || !found {
		return nil, err
	}
	if !kubeobj.IsManaged(w.meta()) {
		return nil, kubeobj.NotOurs(c.Spec.TargetRef.Kind, c.Namespace, name, "delete it or rename the target")
	}
	return w, nil
}

// revision is the checksum of a pod template and of the data of the configs it tracks. The scale-to-zero node
// selector is left out, so a DaemonSet keeps its revision while scaled to zero.
func revision(tmpl *corev1.PodTemplateSpec, cfgs []trackedConfig) string {
	t := tmpl.DeepCopy()
	t.Spec.NodeSelector = withoutScaleToZero(t.Spec.NodeSelector)
	type cfg struct {
		configKey
		Data string `json:"data"`
	}
	payload := struct {
		Template *corev1.PodTemplateSpec `json:"template"`
		Configs  []cfg                   `json:"configs,omitempty"`
	}{Template: t}
	for _, c := range cfgs {
		payload.Configs = append(payload.Configs, cfg{c.configKey, c.dataHash()})
	}
	b, _ := json.Marshal(payload)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// primaryTemplate is the target's pod template as the primary runs it: selector label renamed, tracked configs
// replaced by their "-primary" copies, anti-affinity and spread constraints pointed at the primary's pods.
func primaryTemplate(t *target, cfgs []trackedConfig) corev1.PodTemplateSpec {
	tmpl := t.template().DeepCopy()
	tmpl.Labels = primaryLabels(tmpl.Labels, t.key, primaryValue(t.value))
	tmpl.Spec.NodeSelector = withoutScaleToZero(tmpl.Spec.NodeSelector)
	rewriteConfigRefs(&tmpl.Spec, cfgs)
	renameSelectors(&tmpl.Spec, t.meta().Name, t.value)
	tmpl.CreationTimestamp = metav1.Time{}
	return *tmpl
}

// primaryObject builds the whole primary workload as canaryflow applies it.
func primaryObject(c *v1beta1.Canary, t *target, cfgs []trackedConfig, replicas int32, rev string) any {
	labels, annotations := kubeobj.Marker(c, map[string]string{t.key: primaryValue(t.value)}, map[string]string{RevisionAnnotation: rev})
	meta := metav1.ObjectMeta{Name: primaryName(c), Namespace: c.Namespace, Labels: labels, Annotations: annotations}
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{t.key: primaryValue(t.value)}}
	tmpl := primaryTemplate(t, cfgs)
	if t.dep != nil {
		s := t.dep.Spec
		return &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: KindDeployment},
			ObjectMeta: meta,
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas, Selector: sel, Template: tmpl, Strategy: s.Strategy, MinReadySeconds: s.MinReadySeconds,
				RevisionHistoryLimit: s.RevisionHistoryLimit, ProgressDeadlineSeconds: s.ProgressDeadlineSeconds,
			},
		}
	}
	s := t.ds.Spec
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: KindDaemonSet},
		ObjectMeta: meta,
		Spec: appsv1.DaemonSetSpec{
			Selector: sel, Template: tmpl, UpdateStrategy: s.UpdateStrategy, MinReadySeconds: s.MinReadySeconds,
			RevisionHistoryLimit: s.RevisionHistoryLimit,
		},
	}
}

var force = true

func applyOptions() metav1.PatchOptions {
	return metav1.PatchOptions{FieldManager: kubeobj.FieldManager, Force: &force}
}

// applyWorkload server-side applies a Deployment or DaemonSet (whole or partial) as canaryflow.
func (k *Client) applyWorkload(ctx context.Context, kind, namespace, name string, obj any) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encode %s %s/%s: %w", kind, namespace, name, err)
	}
	switch kind {
	case KindDeployment:
		_, err = k.kube.AppsV1().Deployments(namespace).Patch(ctx, name, types.ApplyPatchType, data, applyOptions())
	case KindDaemonSet:
		_, err = k.kube.AppsV1().DaemonSets(namespace).Patch(ctx, name, types.ApplyPatchType, data, applyOptions())
	default:
		return kubeobj.Permanentf("unsupported kind %q", kind)
	}
	return kubeobj.APIError("apply", kind, namespace, name, err)
}

// Revisions returns the target's revision (computed) and the primary's (as recorded when it was last written).
func (k *Client) Revisions(ctx context.Context, c *v1beta1.Canary) (string, string, error) {
	t, err := k.getTarget(ctx, c)
	if err != nil {
		return "", "", err
	}
	cfgs, err := k.readConfigs(ctx, c.Namespace, &t.template().Spec)
	if err != nil {
		return "", "", err
	}
	p, err := k.getPrimary(ctx, c)
	if err != nil {
		return "", "", err
	}
	primary := ""
	if p != nil {
		primary = p.meta().Annotations[RevisionAnnotation]
		if primary == "" {
			primary = "unknown"
		}
	}
	return revision(t.template(), cfgs), primary, nil
}
