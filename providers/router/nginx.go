package router

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// DefaultIngressAnnotationsPrefix is the annotation prefix ingress-nginx reads unless its --annotations-prefix
// says otherwise (the default of Flagger's -ingress-annotations-prefix and of the worker's flag of that name).
const DefaultIngressAnnotationsPrefix = "nginx.ingress.kubernetes.io"

// Mirroring and session affinity are not registered: ingress-nginx builds every location (where mirror-target
// renders its mirror) and every backend's session affinity from the main Ingress, and takes from a canary Ingress
// only its backends and the canary-* annotations; the main Ingress is the user's, which canaryflow does not write.
// The translator test proves both (lab_nginx_test.go).
func init() {
	Register("nginx", func(c Clients) Router {
		prefix := c.IngressAnnotationsPrefix
		if prefix == "" {
			prefix = DefaultIngressAnnotationsPrefix
		}
		return &NGINX{dyn: c.Dynamic, prefix: prefix}
	}, v1beta1.Traffic{Weights: true, Match: true})
}

var ingressResource = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}

// Annotations Flagger puts on the objects it clones so that Flux does not revert or prune them: the clone copies
// the user's Ingress labels, Flux's among them.
var fluxAnnotations = map[string]string{
	"kustomize.toolkit.fluxcd.io/reconcile": "disabled",
	"helm.toolkit.fluxcd.io/driftDetection": "disabled",
}

// NGINX routes as Flagger's ingress router does: a clone of the user's Ingress (spec.ingressRef), named
// "<ingress>-canary", whose backends are the canary Service and whose annotations make it an ingress-nginx canary
// Ingress: canary "true" always, canary-weight for a weighted canary, canary-by-header (-value or -pattern) and
// canary-by-cookie for A/B testing. At weight 0 every canary annotation is reset to canary "true",
// canary-weight "0", as Flagger does. The user's Ingress, which routes to the apex Service, is never written.
type NGINX struct {
	dyn    dynamic.Interface
	prefix string
}

func (n *NGINX) ann(name string) string { return n.prefix + "/" + name }

func canaryIngressName(c *v1beta1.Canary) string { return c.Spec.IngressRef.Name + "-canary" }

// nginxMatch is what spec.analysis.match becomes on ingress-nginx: at most one header (exact value or PCRE
// pattern) and one cookie, either of which sends a request to the canary.
type nginxMatch struct {
	header, value, pattern, cookie string
}

// cookieAlways matches the cookie regex Flagger's Istio documents (and the seeds) use for "cookie name=always",
// which is exactly ingress-nginx's canary-by-cookie rule.
var cookieAlways = regexp.MustCompile(`^\^\(\.\*\?;\)\?\(([A-Za-z0-9_.~-]+)=always\)\(;\.\*\)\?\$$`)

// nginxMatchOf translates spec.analysis.match. ingress-nginx ORs its header and cookie rules, so each match
// (themselves ORed) may hold one condition, and all matches together one header and one cookie; anything else
// cannot be expressed and is refused rather than dropped (Flagger silently keeps only the last header).
func nginxMatchOf(matches []v1beta1.HTTPMatchRequest) (*nginxMatch, error) {
	if len(matches) == 0 {
		return nil, nil
	}
	const fix = "ingress-nginx routes to the canary by one header (exact, prefix, suffix or regex) or one cookie " +
		"(headers.cookie.exact: <name>, meaning <name>=always), each in a match of its own"
	out := &nginxMatch{}
	for i, m := range matches {
		path := fmt.Sprintf("spec.analysis.match[%d]", i)
		if m.URI != nil || m.Scheme != nil || m.Method != nil || m.Authority != nil || m.Port != 0 || len(m.SourceLabels) > 0 ||
			len(m.Gateways) > 0 || len(m.QueryParams) > 0 || len(m.WithoutHeaders) > 0 || m.SourceNamespace != "" || m.IgnoreURICase {
			return nil, kubeobj.Permanentf("%s: provider nginx matches headers only: %s", path, fix)
		}
		if len(m.Headers) != 1 {
			return nil, kubeobj.Permanentf("%s: provider nginx cannot require %d headers at once: %s", path, len(m.Headers), fix)
		}
		for name, sm := range m.Headers {
			var next nginxMatch
			if strings.EqualFold(name, "cookie") {
				switch g := cookieAlways.FindStringSubmatch(sm.Regex); {
				case sm.Exact != "": // Flagger: the exact value names the cookie
					next.cookie = sm.Exact
				case g != nil:
					next.cookie = g[1]
				default:
					return nil, kubeobj.Permanentf("%s.headers.cookie: provider nginx routes by a cookie set to \"always\" only: "+
						"write exact: <name>, or regex: \"^(.*?;)?(<name>=always)(;.*)?$\"", path)
				}
			} else {
				next.header = name
				switch {
				case sm.Exact != "":
					next.value = sm.Exact
				case sm.Regex != "":
					next.pattern = sm.Regex
				case sm.Prefix != "":
					next.pattern = "^" + regexp.QuoteMeta(sm.Prefix)
				case sm.Suffix != "":
					next.pattern = regexp.QuoteMeta(sm.Suffix) + "$"
				}
			}
			if err := out.merge(next); err != nil {
				return nil, kubeobj.Permanentf("%s: %v: %s", path, err, fix)
			}
		}
	}
	return out, nil
}

func (m *nginxMatch) merge(o nginxMatch) error {
	if o.cookie != "" {
		if m.cookie != "" && m.cookie != o.cookie {
			return fmt.Errorf("a second cookie %q after %q", o.cookie, m.cookie)
		}
		m.cookie = o.cookie
		return nil
	}
	if m.header != "" && (m.header != o.header || m.value != o.value || m.pattern != o.pattern) {
		return fmt.Errorf("a second header condition on %q after one on %q", o.header, m.header)
	}
	m.header, m.value, m.pattern = o.header, o.value, o.pattern
	return nil
}

// splitAnnotations are the canary annotations for canaryWeight, as Flagger writes them: at 0 the reset (canary
// "true", canary-weight "0"); otherwise the weight, or with A/B testing the header and cookie rules, every
// matching request going to the canary (canary-weight stays "0", so no other request does).
func (n *NGINX) splitAnnotations(m *nginxMatch, canaryWeight int) map[string]string {
	a := map[string]string{n.ann("canary"): "true", n.ann("canary-weight"): "0"}
	switch {
	case canaryWeight == 0:
	case m == nil:
		a[n.ann("canary-weight")] = strconv.Itoa(canaryWeight)
	default:
		for k, v := range map[string]string{"canary-by-header": m.header, "canary-by-header-value": m.value,
			"canary-by-header-pattern": m.pattern, "canary-by-cookie": m.cookie} {
			if v != "" {
				a[n.ann(k)] = v
			}
		}
	}
	return a
}

// userIngress reads spec.ingressRef, the user's Ingress the nginx and skipper routers clone.
func userIngress(ctx context.Context, dyn dynamic.Interface, c *v1beta1.Canary) (*unstructured.Unstructured, error) {
	name := c.Spec.IngressRef.Name
	u, err := dyn.Resource(ingressResource).Namespace(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, kubeobj.Permanentf("Ingress %s/%s (spec.ingressRef of Canary %s/%s) not found: create it with a path to Service %s",
			c.Namespace, name, c.Namespace, c.Name, apexName(c))
	}
	if err != nil {
		return nil, kubeobj.APIError("get", "Ingress", c.Namespace, name, err)
	}
	if kubeobj.IsManaged(u) {
		return nil, kubeobj.Permanentf("spec.ingressRef of Canary %s/%s names Ingress %s, which canaryflow made: name your own Ingress",
			c.Namespace, c.Name, name)
	}
	return u, nil
}

// canaryIngress is the clone of the user's Ingress for canaryWeight: its labels and annotations (but canary
// annotations and kubectl's last-applied-configuration), its spec with every backend on the apex Service moved
// to the canary Service, and the split annotations.
func (n *NGINX) canaryIngress(c *v1beta1.Canary, user *unstructured.Unstructured, canaryWeight int) (*unstructured.Unstructured, error) {
	apex, _, canary := c.ServiceNames()
	if isAB(c) && canaryWeight != 0 && canaryWeight != 100 {
		return nil, kubeobj.Permanentf("provider nginx sends every request matching spec.analysis.match to the canary: "+
			"A/B testing takes 0 or 100 %% canary weight, not %d (Canary %s/%s)", canaryWeight, c.Namespace, c.Name)
	}
	var match []v1beta1.HTTPMatchRequest
	if c.Spec.Analysis != nil {
		match = c.Spec.Analysis.Match
	}
	m, err := nginxMatchOf(match)
	if err != nil {
		return nil, err
	}
	spec, _, _ := unstructured.NestedMap(user.Object, "spec") // a copy, changed in place below
	moved := 0
	toCanary := func(backend any) {
		b, _ := backend.(map[string]any)
		if svc, ok := b["service"].(map[string]any); ok && svc["name"] == apex {
			svc["name"] = canary
			moved++
		}
	}
	rules, _ := spec["rules"].([]any)
	for _, r := range rules {
		rule, _ := r.(map[string]any)
		http, _ := rule["http"].(map[string]any)
		paths, _ := http["paths"].([]any)
		for _, p := range paths {
			path, _ := p.(map[string]any)
			toCanary(path["backend"])
		}
	}
	// Flagger leaves a default backend as it is; on the apex it would make the clone's catch-all the primary's
	// backend, which ingress-nginx then marks as a canary backend, so it moves to the canary Service too.
	toCanary(spec["defaultBackend"])
	if moved == 0 {
		return nil, kubeobj.Permanentf("Ingress %s/%s (spec.ingressRef) has no backend on Service %s: route it to %s, "+
			"the apex Service canaryflow points at the primary, so the canary Ingress can route to %s", c.Namespace, user.GetName(), apex, apex, canary)
	}

	annotations := map[string]string{}
	for k, v := range user.GetAnnotations() {
		if !strings.HasPrefix(k, n.ann("canary")) && k != "kubectl.kubernetes.io/last-applied-configuration" {
			annotations[k] = v
		}
	}
	for k, v := range fluxAnnotations {
		annotations[k] = v
	}
	for k, v := range n.splitAnnotations(m, canaryWeight) {
		annotations[k] = v
	}
	labels, annotations := kubeobj.Marker(c, user.GetLabels(), annotations)
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": spec}}
	u.SetName(canaryIngressName(c))
	u.SetNamespace(c.Namespace)
	u.SetLabels(labels)
	u.SetAnnotations(annotations)
	return u, nil
}

// canaryWeightOf reads the split of the canary Ingress as Flagger does: with A/B testing a header or cookie rule
// means 0/100; otherwise canary-weight.
func (n *NGINX) canaryWeightOf(c *v1beta1.Canary, u *unstructured.Unstructured) (int, error) {
	a := u.GetAnnotations()
	if isAB(c) && (a[n.ann("canary-by-header")] != "" || a[n.ann("canary-by-cookie")] != "") {
		return 100, nil
	}
	v, ok := a[n.ann("canary-weight")]
	if !ok {
		return 0, nil
	}
	w, err := strconv.Atoi(v)
	if err != nil || w < 0 || w > 100 {
		return 0, kubeobj.Permanentf("Ingress %s/%s: annotation %s is %q, not a percentage: delete the Ingress so canaryflow writes it again",
			u.GetNamespace(), u.GetName(), n.ann("canary-weight"), v)
	}
	return w, nil
}

func (n *NGINX) ingresses(c *v1beta1.Canary) dynamic.ResourceInterface {
	return n.dyn.Resource(ingressResource).Namespace(c.Namespace)
}

// Reconcile makes the canary Ingress match the user's Ingress, keeping its current split (100/0 when new).
func (n *NGINX) Reconcile(ctx context.Context, c *v1beta1.Canary) error {
	user, err := userIngress(ctx, n.dyn, c)
	if err != nil {
		return err
	}
	live, err := kubeobj.Get(ctx, n.ingresses(c), "Ingress", c.Namespace, canaryIngressName(c))
	if err != nil {
		return err
	}
	weight := 0
	if live != nil {
		if weight, err = n.canaryWeightOf(c, live); err != nil {
			return err
		}
	}
	obj, err := n.canaryIngress(c, user, weight)
	if err != nil {
		return err
	}
	return kubeobj.Apply(ctx, n.ingresses(c), obj, true)
}

// SetRoutes writes the split: the user's Ingress is read (so a change to it reaches the clone) and the canary
// Ingress applied, two requests. Mirroring is refused by validation (not registered).
func (n *NGINX) SetRoutes(ctx context.Context, c *v1beta1.Canary, _, canaryWeight int, mirrored bool) error {
	if mirrored {
		return kubeobj.Permanentf("provider nginx cannot mirror traffic (Canary %s/%s): remove spec.analysis.mirror", c.Namespace, c.Name)
	}
	user, err := userIngress(ctx, n.dyn, c)
	if err != nil {
		return err
	}
	obj, err := n.canaryIngress(c, user, canaryWeight)
	if err != nil {
		return err
	}
	return kubeobj.Apply(ctx, n.ingresses(c), obj, false)
}

// GetRoutes reads the split back from the canary Ingress.
func (n *NGINX) GetRoutes(ctx context.Context, c *v1beta1.Canary) (int, int, bool, error) {
	u, err := kubeobj.Get(ctx, n.ingresses(c), "Ingress", c.Namespace, canaryIngressName(c))
	if err != nil {
		return 0, 0, false, err
	}
	if u == nil {
		return 0, 0, false, kubeobj.Permanentf("Ingress %s/%s not found: the router of Canary %s/%s must be reconciled first",
			c.Namespace, canaryIngressName(c), c.Namespace, c.Name)
	}
	w, err := n.canaryWeightOf(c, u)
	return 100 - w, w, false, err
}

// Finalize deletes the canary Ingress, so the user's Ingress alone routes to the apex Service, which the workload
// finalisation points at the target's pods. Flagger's router does nothing here because its clone is owned by the
// Canary object and garbage-collected with it; canaryflow has no such owner in the cluster.
func (n *NGINX) Finalize(ctx context.Context, c *v1beta1.Canary) error {
	return kubeobj.Delete(ctx, n.ingresses(c), "Ingress", c.Namespace, canaryIngressName(c))
}
