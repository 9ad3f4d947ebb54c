package router

import (
	"context"
	"encoding/json"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

func init() {
	Register("skipper", func(c Clients) Router { return &Skipper{dyn: c.Dynamic} }, v1beta1.Traffic{Weights: true})
}

// Skipper's annotations and the predicates Flagger puts first in the canary Ingress's predicate annotation.
const (
	skipperPredicateAnnotation = "zalando.org/skipper-predicate"
	skipperWeightsAnnotation   = "zalando.org/backend-weights"
	// skipperWeightPredicate makes the canary Ingress's routes win over the user's, whose path they share, so all
	// traffic is split by the backend weights.
	skipperWeightPredicate = "Weight(100)"
	// skipperDisabledPredicate switches the canary Ingress's routes off: the user's Ingress serves alone.
	skipperDisabledPredicate = "False()"
)

// Skipper routes as Flagger's Skipper router does: a clone of the user's Ingress (spec.ingressRef) named
// "<ingress>-canary" in which every path to the apex Service goes to the primary Service and a copy of it to the
// canary Service, with the weights in zalando.org/backend-weights and Weight(100) first among the
// zalando.org/skipper-predicate predicates, so the clone's routes take the traffic. At canary weight 0 the
// predicate is False() and the user's Ingress serves alone (through the apex Service, which selects the primary's
// pods). The user's Ingress is never written.
//
// Flagger writes Weight(100) with 100/0 when it creates the clone and False() from the first return to weight
// 0; canaryflow writes False() at every 0 so that the object depends only on the split, which sends the same
// requests to the same pods.
type Skipper struct {
	dyn dynamic.Interface
}

func (s *Skipper) ingresses(c *v1beta1.Canary) dynamic.ResourceInterface {
	return s.dyn.Resource(ingressResource).Namespace(c.Namespace)
}

// skipperIngress is the clone of the user's Ingress for a split.
func skipperIngress(c *v1beta1.Canary, user *unstructured.Unstructured, primaryWeight, canaryWeight int) (*unstructured.Unstructured, error) {
	apex, primary, canary := c.ServiceNames()
	spec, _, _ := unstructured.NestedMap(user.Object, "spec") // a copy, changed in place below
	moved := 0
	rules, _ := spec["rules"].([]any)
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		http, _ := rule["http"].(map[string]any)
		paths, _ := http["paths"].([]any)
		var out []any
		for _, p := range paths {
			path, _ := p.(map[string]any)
			out = append(out, path)
			svc, _, _ := unstructured.NestedMap(path, "backend", "service")
			if svc["name"] != apex {
				continue
			}
			if err := unstructured.SetNestedField(path, primary, "backend", "service", "name"); err != nil {
				return nil, err
			}
			dup := runtime.DeepCopyJSON(path)
			_ = unstructured.SetNestedField(dup, canary, "backend", "service", "name")
			out = append(out, dup)
			moved++
		}
		if http != nil {
			http["paths"] = out
		}
	}
	if moved == 0 {
		return nil, kubeobj.Permanentf("Ingress %s/%s (spec.ingressRef) has no path to Service %s: route it to %s, the apex Service, "+
			"so the canary Ingress can split its traffic between %s and %s", c.Namespace, user.GetName(), apex, apex, primary, canary)
	}

	annotations := map[string]string{}
	for k, v := range user.GetAnnotations() {
		if k != lastAppliedAnnotation {
			annotations[k] = v
		}
	}
	for k, v := range fluxAnnotations {
		annotations[k] = v
	}
	weights, _ := json.Marshal(map[string]int{primary: primaryWeight, canary: canaryWeight}) // keys sorted, as Flagger's
	annotations[skipperWeightsAnnotation] = string(weights)
	first := skipperWeightPredicate
	if canaryWeight == 0 {
		first = skipperDisabledPredicate
	}
	annotations[skipperPredicateAnnotation] = insertPredicate(annotations[skipperPredicateAnnotation], first)

	labels, annotations := kubeobj.Marker(c, user.GetLabels(), annotations)
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": spec}}
	u.SetName(canaryIngressName(c))
	u.SetNamespace(c.Namespace)
	u.SetLabels(labels)
	u.SetAnnotations(annotations)
	return u, nil
}

// insertPredicate puts predicate first among the user's predicates ("A && B"), dropping the two canaryflow
// writes, as Flagger does.
func insertPredicate(raw, predicate string) string {
	out := []string{predicate}
	for _, p := range strings.Split(raw, "&&") {
		p = strings.TrimSpace(p)
		if p == "" || p == skipperWeightPredicate || p == skipperDisabledPredicate {
			continue
		}
		out = append(out, p)
	}
	return strings.Join(out, " && ")
}

// skipperSplit reads the split from zalando.org/backend-weights.
func skipperSplit(c *v1beta1.Canary, u *unstructured.Unstructured) (int, int, error) {
	_, primary, canary := c.ServiceNames()
	var w map[string]int
	raw := u.GetAnnotations()[skipperWeightsAnnotation]
	if err := json.Unmarshal([]byte(raw), &w); err != nil || w == nil {
		return 0, 0, kubeobj.Permanentf("Ingress %s/%s: annotation %s is %q, not the weights canaryflow writes: delete the Ingress so canaryflow writes it again",
			u.GetNamespace(), u.GetName(), skipperWeightsAnnotation, raw)
	}
	return w[primary], w[canary], nil
}

// Reconcile makes the canary Ingress match the user's Ingress, keeping its current split (100/0 when new).
func (s *Skipper) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	user, err := userIngress(ctx, s.dyn, c)
	if err != nil {
		return err
	}
	live, err := kubeobj.Get(ctx, s.ingresses(c), "Ingress", c.Namespace, canaryIngressName(c))
	if err != nil {
		return err
	}
	pw, cw := 100, 0
	if live != nil {
		if p, w, err := skipperSplit(c, live); err == nil && p+w == 100 {
			pw, cw = p, w
		}
	}
	obj, err := skipperIngress(c, user, pw, cw)
	if err != nil {
		return err
	}
	return kubeobj.Apply(ctx, s.ingresses(c), obj, true)
}

// SetRoutes writes the split: the user's Ingress is read (so a change to it reaches the clone) and the canary
// Ingress applied, two requests. Skipper registers neither matching nor mirroring, so validation refuses them.
func (s *Skipper) SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	if mirrored {
		return kubeobj.Permanentf("provider skipper cannot mirror traffic (Canary %s/%s): remove spec.analysis.mirror", c.Namespace, c.Name)
	}
	user, err := userIngress(ctx, s.dyn, c)
	if err != nil {
		return err
	}
	obj, err := skipperIngress(c, user, primaryWeight, canaryWeight)
	if err != nil {
		return err
	}
	return kubeobj.Apply(ctx, s.ingresses(c), obj, false)
}

// GetRoutes reads the split back from the canary Ingress.
func (s *Skipper) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	u, err := kubeobj.Get(ctx, s.ingresses(c), "Ingress", c.Namespace, canaryIngressName(c))
	if err != nil {
		return 0, 0, false, err
	}
	if u == nil {
		return 0, 0, false, kubeobj.Permanentf("Ingress %s/%s not found: the router of Canary %s/%s must be reconciled first",
			c.Namespace, canaryIngressName(c), c.Namespace, c.Name)
	}
	pw, cw, err := skipperSplit(c, u)
	return pw, cw, false, err
}

// Finalize deletes the canary Ingress, as Flagger does, so the user's Ingress alone routes to the apex Service.
func (s *Skipper) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	return kubeobj.Delete(ctx, s.ingresses(c), "Ingress", c.Namespace, canaryIngressName(c))
}
