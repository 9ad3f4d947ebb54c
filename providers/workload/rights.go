package workload

import (
	"context"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// resource is an API group and resource the worker writes.
type resource struct{ group, name string }

func (r resource) String() string {
	if r.group == "" {
		return r.name
	}
	return r.name + "." + r.group
}

// writes lists what Initialize writes for plan p: the primary workload (and the target, scaled to zero after),
// the Services, the tracked configs' copies and the autoscaler's copy.
func writes(p *plan) []resource {
	out := []resource{{"apps", "deployments"}}
	if p.c.Spec.TargetRef.Kind == "DaemonSet" {
		out[0].name = "daemonsets"
	}
	out = append(out, resource{"", "services"})
	seen := map[string]bool{}
	for _, cfg := range p.cfgs {
		name := "configmaps"
		if cfg.Kind == kindSecret {
			name = "secrets"
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, resource{"", name})
		}
	}
	switch {
	case p.hpa != nil:
		out = append(out, resource{"autoscaling", "horizontalpodautoscalers"})
	case p.so != nil:
		out = append(out, resource{"keda.sh", "scaledobjects"})
	}
	return out
}

// checkRights asks the API server (SelfSubjectAccessReview, which every authenticated user may) whether the worker
// may create and patch each resource that Initialize writes in the Canary's namespace, and refuses with every
// missing right at once. Without it, a worker allowed Deployments but not Services would create the primary, fail
// on the Services, and leave undoing to a clean-up that may itself be refused.
func (k *Client) checkRights(ctx context.Context, c *v1beta1.Canary, rs []resource) error {
	var missing []string
	for _, r := range rs {
		for _, verb := range []string{"create", "patch"} {
			review, err := k.kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: c.Namespace, Verb: verb, Group: r.group, Resource: r.name,
				}},
			}, metav1.CreateOptions{})
			if err != nil {
				return kubeobj.APIError("create", "SelfSubjectAccessReview", c.Namespace, verb+" "+r.String(), err)
			}
			if !review.Status.Allowed {
				missing = append(missing, verb+" "+r.String())
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return kubeobj.Permanentf("canaryflow's worker may not %s in namespace %s, which the first rollout of %s/%s needs: "+
		"grant them in its Role or ClusterRole (deploy/rbac, deploy/namespaced/rbac)", strings.Join(missing, ", "), c.Namespace, c.Namespace, c.Name)
}
