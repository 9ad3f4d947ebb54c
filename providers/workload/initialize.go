package workload

import (
	"context"
	"encoding/json"
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// plan is what Initialize and Promote read before writing anything.
type plan struct {
	c         *v1beta1.Canary
	t         *target
	cfgs      []trackedConfig
	primary   *workload                              // nil when it does not exist yet
	hpa       *autoscalingv2.HorizontalPodAutoscaler // the target's autoscaler, when spec.autoscalerRef names one
	so        *unstructured.Unstructured             // the target's KEDA ScaledObject, when spec.autoscalerRef names one
	apexValue string                                 // selector value the apex Service keeps
}

// read gathers the target, its configs, the primary and the target's autoscaler, and checks that every object
// the plan writes is either absent or ours (withServices adds the three Services). Nothing is written here, so a
// refusal leaves nothing half-made.
func (k *Client) read(ctx context.Context, c *v1beta1.Canary, withServices bool) (*plan, error) {
	t, err := k.getTarget(ctx, c)
	if err != nil {
		return nil, err
	}
	p := &plan{c: c, t: t, apexValue: primaryValue(t.value)}
	if p.cfgs, err = k.readConfigs(ctx, c.Namespace, &t.template().Spec); err != nil {
		return nil, err
	}
	var found conflicts
	ns := c.Namespace
	pw, pfound, err := k.getWorkload(ctx, c.Spec.TargetRef.Kind, ns, primaryName(c))
	if err != nil {
		return nil, err
	}
	if pfound {
		if err := found.check(pw.meta(), nil, c.Spec.TargetRef.Kind, ns, primaryName(c), "delete it or rename the target"); err != nil {
			return nil, err
		}
		p.primary = pw
	}
	for _, cfg := range p.cfgs {
		name := primaryValue(cfg.Name)
		var m metav1.Object
		var err error
		if cfg.Kind == kindConfigMap {
			m, err = k.kube.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		} else {
			m, err = k.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		}
		if err := found.check(m, err, cfg.Kind, ns, name, "canaryflow copies "+cfg.Name+" to it for the primary: delete or rename it"); err != nil {
			return nil, err
		}
	}
	if ref := c.Spec.AutoscalerRef; ref != nil && ref.Kind == v1beta1.ScaledObjectKind {
		if p.so, err = k.getTargetScaledObject(ctx, c); err != nil {
			return nil, err
		}
		name := primaryValue(ref.Name)
		sos, err := k.scaledObjects(ns)
		if err != nil {
			return nil, err
		}
		m, err := sos.Get(ctx, name, metav1.GetOptions{})
		if err := found.check(m, err, "ScaledObject", ns, name, "delete it or rename spec.autoscalerRef"); err != nil {
			return nil, err
		}
	} else if ref != nil {
		p.hpa, err = k.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, kubeobj.Permanentf("HorizontalPodAutoscaler %s/%s (spec.autoscalerRef) not found: create it or remove spec.autoscalerRef", ns, ref.Name)
		}
		if err != nil {
			return nil, kubeobj.APIError("get", "HorizontalPodAutoscaler", ns, ref.Name, err)
		}
		// The primary's autoscaler is a copy scaling the primary: copying one that scales something else would make
		// two autoscalers fight over that workload, and leave the primary unscaled.
		if st := p.hpa.Spec.ScaleTargetRef; st.Name != c.Spec.TargetRef.Name || st.Kind != c.Spec.TargetRef.Kind {
			return nil, kubeobj.Permanentf("HorizontalPodAutoscaler %s/%s (spec.autoscalerRef) scales %s %s, not the target %s %s: "+
				"name the target's own autoscaler in spec.autoscalerRef, or point this one's scaleTargetRef at %s",
				ns, ref.Name, st.Kind, st.Name, c.Spec.TargetRef.Kind, c.Spec.TargetRef.Name, c.Spec.TargetRef.Name)
		}
		name := primaryValue(ref.Name)
		m, err := k.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{})
		if err := found.check(m, err, "HorizontalPodAutoscaler", ns, name, "delete it or rename spec.autoscalerRef"); err != nil {
			return nil, err
		}
	}
	if withServices {
		apex, _, _ := c.ServiceNames()
		for _, svc := range services(c, t, p.apexValue) {
			live, err := k.kube.CoreV1().Services(ns).Get(ctx, svc.Name, metav1.GetOptions{})
			if err := found.check(live, err, "Service", ns, svc.Name, "delete it or rename spec.service.name"); err != nil {
				return nil, err
			}
			if err == nil {
				if err := checkHeadless(c, live); err != nil {
					return nil, err
				}
			}
			// The apex keeps the pods it selects (a blue/green switch of the kubernetes router may have moved it).
			if err == nil && svc.Name == apex && kubeobj.IsManaged(live) {
				if v, ok := live.Spec.Selector[t.key]; ok && (v == t.value || v == primaryValue(t.value)) {
					p.apexValue = v
				}
			}
		}
	}
	return p, found.err()
}

// Initialize makes the primary workload, its config copies and autoscaler (HorizontalPodAutoscaler or KEDA
// ScaledObject), and the three Services exist (see
// activities.WorkloadClient). An existing primary's pod template is left alone.
func (k *Client) Initialize(ctx context.Context, c *v1beta1.Canary) error {
	p, err := k.read(ctx, c, true)
	if err == nil && p.primary == nil {
		// Only a first initialisation: a primary that exists proves the rights, and re-runs cost nothing more.
		err = k.checkRights(ctx, c, writes(p))
	}
	if err != nil {
		return kubeobj.BeforeWrite(err)
	}
	if err := k.applyConfigs(ctx, p); err != nil {
		return err
	}
	if p.primary == nil {
		replicas := p.t.replicas()
		if replicas <= 0 {
			replicas = 1
			if p.hpa != nil && p.hpa.Spec.MinReplicas != nil && *p.hpa.Spec.MinReplicas > 1 {
				replicas = *p.hpa.Spec.MinReplicas
			}
			if p.so != nil && scaledObjectMinReplicas(p.so) > 1 {
				replicas = scaledObjectMinReplicas(p.so)
			}
		}
		rev := revision(p.t.template(), p.cfgs)
		if err := k.applyWorkload(ctx, c.Spec.TargetRef.Kind, c.Namespace, primaryName(c), primaryObject(c, p.t, p.cfgs, replicas, rev)); err != nil {
			return err
		}
	}
	if err := k.applyAutoscaler(ctx, p); err != nil {
		return err
	}
	for _, svc := range services(c, p.t, p.apexValue) {
		if err := k.applyService(ctx, svc); err != nil {
			return err
		}
	}
	return nil
}

// applyConfigs writes the "-primary" copies of the tracked configs.
func (k *Client) applyConfigs(ctx context.Context, p *plan) error {
	ns := p.c.Namespace
	for _, cfg := range p.cfgs {
		name := primaryValue(cfg.Name)
		var obj any
		if cfg.cm != nil {
			labels, annotations := kubeobj.Marker(p.c, cfg.cm.Labels, nil)
			obj = &corev1.ConfigMap{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: kindConfigMap},
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
				Data:       cfg.cm.Data, BinaryData: cfg.cm.BinaryData,
			}
		} else {
			labels, annotations := kubeobj.Marker(p.c, cfg.secret.Labels, nil)
			obj = &corev1.Secret{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: kindSecret},
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
				Type:       cfg.secret.Type, Data: cfg.secret.Data,
			}
		}
		if err := k.apply(ctx, cfg.Kind, ns, name, obj); err != nil {
			return err
		}
	}
	return nil
}

// applyHPA writes the primary's autoscaler: the target's, scaling the primary instead.
func (k *Client) applyHPA(ctx context.Context, p *plan) error {
	if p.hpa == nil {
		return nil
	}
	src := p.hpa
	spec := *src.Spec.DeepCopy()
	spec.ScaleTargetRef.Name = primaryName(p.c)
	if r := p.c.Spec.AutoscalerRef.PrimaryScalerReplicas; r != nil {
		if r.MinReplicas != nil {
			spec.MinReplicas = r.MinReplicas
		}
		if r.MaxReplicas != nil {
			spec.MaxReplicas = *r.MaxReplicas
		}
	}
	name := primaryValue(src.Name)
	labels, annotations := kubeobj.Marker(p.c, src.Labels, nil)
	obj := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.c.Namespace, Labels: labels, Annotations: annotations},
		Spec:       spec,
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encode HorizontalPodAutoscaler %s/%s: %w", p.c.Namespace, name, err)
	}
	_, err = k.kube.AutoscalingV2().HorizontalPodAutoscalers(p.c.Namespace).Patch(ctx, name, types.ApplyPatchType, data, applyOptions())
	return kubeobj.APIError("apply", "HorizontalPodAutoscaler", p.c.Namespace, name, err)
}

// Promote copies the target's pod template and tracked configs onto the primary (see
// activities.WorkloadClient); the primary keeps its selector, labels and replica count.
func (k *Client) Promote(ctx context.Context, c *v1beta1.Canary) error {
	p, err := k.read(ctx, c, false)
	if err != nil {
		return err
	}
	if p.primary == nil {
		return kubeobj.Permanentf("%s %s/%s not found: the canary must be initialised before it is promoted",
			c.Spec.TargetRef.Kind, c.Namespace, primaryName(c))
	}
	rev := revision(p.t.template(), p.cfgs)
	if err := k.keepPrevious(ctx, p, rev); err != nil {
		return err
	}
	if err := k.applyConfigs(ctx, p); err != nil {
		return err
	}
	obj := primaryObject(c, p.t, p.cfgs, p.primary.replicas(), rev)
	if err := k.applyWorkload(ctx, c.Spec.TargetRef.Kind, c.Namespace, primaryName(c), obj); err != nil {
		return err
	}
	return k.applyAutoscaler(ctx, p)
}

// applyAutoscaler writes the primary's autoscaler, a HorizontalPodAutoscaler or a ScaledObject like the target's.
func (k *Client) applyAutoscaler(ctx context.Context, p *plan) error {
	if err := k.applyHPA(ctx, p); err != nil {
		return err
	}
	return k.applyScaledObject(ctx, p)
}
