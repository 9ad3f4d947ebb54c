package workload

import (
	"context"
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

// A promotion overwrites the primary's pod template and its "-primary" config copies. An abort (or any rollback)
// that arrives after that must put them back, or the aborted release keeps serving while the rollout reports a
// rollback. Promote therefore keeps what it overwrites in a Secret beside the primary (a Secret, because the config
// copies may be Secrets), and RevertPromotion applies it again. Flagger has no such record: an abort during its
// promotion leaves the new version on the primary.

// previousKey is the data key of the record in the previous-state Secret.
const previousKey = "previous.json"

// previousName is the Secret that keeps what the primary ran before the last promotion.
func previousName(c *v1beta1.Canary) string { return primaryName(c) + "-previous" }

// previous is what the primary ran before a promotion.
type previous struct {
	Revision   string                 `json:"revision"`
	PromotedTo string                 `json:"promotedTo"`
	Template   corev1.PodTemplateSpec `json:"template"`
	ConfigMaps []corev1.ConfigMap     `json:"configMaps,omitempty"`
	Secrets    []corev1.Secret        `json:"secrets,omitempty"`
}

// keepPrevious records the primary's template and the config copies the promotion of p to rev is about to
// overwrite. A promotion retried after it wrote some of them keeps the first record: the primary runs rev
// already, or the record is of this very promotion.
func (k *Client) keepPrevious(ctx context.Context, p *plan, rev string) error {
	cur := p.primary.meta().Annotations[RevisionAnnotation]
	if cur == rev {
		return nil
	}
	ns, name := p.c.Namespace, previousName(p.c)
	if rec, err := k.readPrevious(ctx, p.c); err != nil {
		return err
	} else if rec != nil && rec.Revision == cur && rec.PromotedTo == rev {
		return nil
	}
	prev := previous{Revision: cur, PromotedTo: rev, Template: *p.primary.template().DeepCopy()}
	for _, cfg := range p.cfgs {
		name := primaryValue(cfg.Name)
		if cfg.Kind == kindConfigMap {
			cm, err := k.kube.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return kubeobj.APIError("get", kindConfigMap, ns, name, err)
			}
			prev.ConfigMaps = append(prev.ConfigMaps, corev1.ConfigMap{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: kindConfigMap},
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: cm.Labels, Annotations: cm.Annotations},
				Data:       cm.Data, BinaryData: cm.BinaryData,
			})
			continue
		}
		s, err := k.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return kubeobj.APIError("get", kindSecret, ns, name, err)
		}
		prev.Secrets = append(prev.Secrets, corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: kindSecret},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: s.Labels, Annotations: s.Annotations},
			Type:       s.Type, Data: s.Data,
		})
	}
	data, err := json.Marshal(prev)
	if err != nil {
		return fmt.Errorf("encode the primary's previous state of Canary %s/%s: %w", ns, p.c.Name, err)
	}
	labels, annotations := kubeobj.Marker(p.c, nil, nil)
	return k.apply(ctx, kindSecret, ns, name, &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: kindSecret},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{previousKey: data},
	})
}

// RevertPromotion puts back what the primary ran at revision before the last promotion (see
// activities.WorkloadClient). A primary already at revision is left alone.
func (k *Client) RevertPromotion(ctx context.Context, c *v1beta1.Canary, revision string) error {
	ns := c.Namespace
	primary, err := k.getPrimary(ctx, c)
	if err != nil {
		return err
	}
	if primary == nil {
		return kubeobj.Permanentf("%s %s/%s not found: nothing to revert", c.Spec.TargetRef.Kind, ns, primaryName(c))
	}
	if primary.meta().Annotations[RevisionAnnotation] == revision {
		return nil
	}
	name := previousName(c)
	prev, err := k.readPrevious(ctx, c)
	if err != nil {
		return err
	}
	if prev == nil {
		return kubeobj.Permanentf("Secret %s/%s, the record of what %s ran before this promotion, not found: restore its template by hand (kubectl rollout undo)",
			ns, name, primaryName(c))
	}
	if prev.Revision != revision {
		return kubeobj.Permanentf("Secret %s/%s records revision %s, not %s: the primary changed outside this rollout; restore it by hand",
			ns, name, prev.Revision, revision)
	}
	for i := range prev.ConfigMaps {
		cm := &prev.ConfigMaps[i]
		if err := k.apply(ctx, kindConfigMap, ns, cm.Name, cm); err != nil {
			return err
		}
	}
	for i := range prev.Secrets {
		sec := &prev.Secrets[i]
		if err := k.apply(ctx, kindSecret, ns, sec.Name, sec); err != nil {
			return err
		}
	}
	return k.applyWorkload(ctx, c.Spec.TargetRef.Kind, ns, primaryName(c), withTemplate(c, primary, prev.Template, revision))
}

// readPrevious reads the record of the primary's previous state; nil when there is none.
func (k *Client) readPrevious(ctx context.Context, c *v1beta1.Canary) (*previous, error) {
	ns, name := c.Namespace, previousName(c)
	s, err := k.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, kubeobj.APIError("get", kindSecret, ns, name, err)
	}
	if !kubeobj.IsManaged(s) {
		return nil, kubeobj.NotOurs(kindSecret, ns, name, "canaryflow keeps the primary's previous state in it: delete or rename it")
	}
	var prev previous
	if err := json.Unmarshal(s.Data[previousKey], &prev); err != nil {
		return nil, kubeobj.Permanentf("Secret %s/%s does not hold a readable record of the primary's previous state: %v", ns, name, err)
	}
	return &prev, nil
}

// withTemplate is the primary as canaryflow applies it, with another pod template and revision: every other field
// canaryflow owns keeps its current value, so the apply removes nothing.
func withTemplate(c *v1beta1.Canary, primary *workload, tmpl corev1.PodTemplateSpec, rev string) any {
	sel := primary.selector()
	labels, annotations := kubeobj.Marker(c, sel.MatchLabels, map[string]string{RevisionAnnotation: rev})
	meta := metav1.ObjectMeta{Name: primaryName(c), Namespace: c.Namespace, Labels: labels, Annotations: annotations}
	if d := primary.dep; d != nil {
		s := d.Spec
		return &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: KindDeployment},
			ObjectMeta: meta,
			Spec: appsv1.DeploymentSpec{
				Replicas: s.Replicas, Selector: sel, Template: tmpl, Strategy: s.Strategy, MinReadySeconds: s.MinReadySeconds,
				RevisionHistoryLimit: s.RevisionHistoryLimit, ProgressDeadlineSeconds: s.ProgressDeadlineSeconds,
			},
		}
	}
	s := primary.ds.Spec
	return &appsv1.DaemonSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: KindDaemonSet},
		ObjectMeta: meta,
		Spec: appsv1.DaemonSetSpec{
			Selector: sel, Template: tmpl, UpdateStrategy: s.UpdateStrategy, MinReadySeconds: s.MinReadySeconds,
			RevisionHistoryLimit: s.RevisionHistoryLimit,
		},
	}
}

// apply server-side applies a ConfigMap or Secret as canaryflow.
func (k *Client) apply(ctx context.Context, kind, ns, name string, obj any) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encode %s %s/%s: %w", kind, ns, name, err)
	}
	if kind == kindConfigMap {
		_, err = k.kube.CoreV1().ConfigMaps(ns).Patch(ctx, name, types.ApplyPatchType, data, applyOptions())
	} else {
		_, err = k.kube.CoreV1().Secrets(ns).Patch(ctx, name, types.ApplyPatchType, data, applyOptions())
	}
	return kubeobj.APIError("apply", kind, ns, name, err)
}
