package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// Router writes how traffic is split between the primary and the canary for one provider (Flagger's four-method
// router). It is implemented in providers/router/<provider>.go with plain types only (no Temporal import). Every
// method is idempotent and writes absolute state: calling it twice, or again after a crash, leaves the same objects.
// What a provider cannot do is refused at validation (providers/capability), so a router may return a Permanent()
// error for a request outside its declared capabilities instead of ignoring it.
type Router interface {
	// Reconcile makes the provider's routing objects exist and match the spec (hosts, gateways, ports, retries,
	// headers, timeouts, the A/B match of spec.analysis.match, session affinity cookies). A new object starts
	// with all traffic on the primary (100/0); an existing one keeps its current weights, so a reconcile in the
	// middle of an analysis never moves traffic.
	Reconcile(ctx context.Context, c *v1beta1.Canary) error

	// SetRoutes sets the traffic split to exactly primaryWeight/canaryWeight percent (they sum to 100). With
	// mirrored true the primary serves all responses and spec.analysis.mirrorWeight percent (default 100) of its
	// requests are copied to the canary (only with 100/0). With spec.analysis.match set (A/B testing) the weights
	// apply to the requests that match and every other request goes to the primary. With
	// spec.analysis.sessionAffinity set, a client routed to the canary gets cookieName (maxAge seconds) and sticks
	// to the canary; at canaryWeight 0 the cookie no longer routes anywhere (and primaryCookieName, when set,
	// pins clients to the primary). A router without weights (kubernetes) accepts only 100/0 and 0/100 and switches
	// the apex Service between the primary and the canary pods.
	SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error

	// GetRoutes reads the current split back, as SetRoutes would have written it. It changes nothing.
	GetRoutes(ctx context.Context, c *v1beta1.Canary) (primaryWeight, canaryWeight int, mirrored bool, err error)

	// Finalize, when the Canary is deleted, removes the generated routing objects or points them back at the
	// target (spec.revertOnDeletion), so traffic reaches the target without canaryflow. Nothing left is success.
	Finalize(ctx context.Context, c *v1beta1.Canary) error
}

// RouterFactory returns the Router for a provider name as written in spec.provider (it may carry a version
// suffix such as "gatewayapi:v1"; see capability.Base). An unknown provider is an error.
type RouterFactory interface {
	Router(provider string) (Router, error)
}

// Routing holds the activities that change where traffic goes.
type Routing struct {
	Routers RouterFactory
}

// RouterInput names the canary whose routing objects an activity acts on.
type RouterInput struct {
	Canary v1beta1.Canary `json:"canary"`
}

// RoutesInput is the absolute traffic split to set. The A/B match, mirror percentage and session affinity cookies
// come from Canary.Spec.Analysis (see Router.SetRoutes).
type RoutesInput struct {
	Canary        v1beta1.Canary `json:"canary"`
	PrimaryWeight int            `json:"primaryWeight"`
	CanaryWeight  int            `json:"canaryWeight"`
	Mirrored      bool           `json:"mirrored,omitempty"`
}

func (r *Routing) router(c *v1beta1.Canary) (Router, error) {
	rt, err := r.Routers.Router(c.Spec.Provider)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("no router for provider %q of %s: %v", c.Spec.Provider, describe(c), err), ErrTypeUnsupportedProvider, err)
	}
	return rt, nil
}

// ReconcileRouter creates or updates the provider's routing objects without moving traffic.
func (r *Routing) ReconcileRouter(ctx context.Context, in RouterInput) (ActionResult, error) {
	rt, err := r.router(&in.Canary)
	if err != nil {
		return ActionResult{}, err
	}
	if err := rt.Reconcile(ctx, &in.Canary); err != nil {
		return ActionResult{}, classify(err, fmt.Sprintf("reconcile %s router of %s", in.Canary.Spec.Provider, describe(&in.Canary)))
	}
	return ActionResult{Summary: "reconciled " + in.Canary.Spec.Provider + " router of " + describe(&in.Canary)}, nil
}

// SetRoutes sets the traffic split between the primary and the canary.
func (r *Routing) SetRoutes(ctx context.Context, in RoutesInput) (ActionResult, error) {
	if in.PrimaryWeight < 0 || in.CanaryWeight < 0 || in.PrimaryWeight+in.CanaryWeight != 100 {
		return ActionResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("invalid split %d/%d for %s: weights must be non-negative and sum to 100",
				in.PrimaryWeight, in.CanaryWeight, describe(&in.Canary)), ErrTypePermanent, nil)
	}
	rt, err := r.router(&in.Canary)
	if err != nil {
		return ActionResult{}, err
	}
	if err := rt.SetRoutes(ctx, &in.Canary, in.PrimaryWeight, in.CanaryWeight, in.Mirrored); err != nil {
		return ActionResult{}, classify(err, fmt.Sprintf("set routes %d/%d of %s", in.PrimaryWeight, in.CanaryWeight, describe(&in.Canary)))
	}
	s := fmt.Sprintf("routes of %s set to primary %d canary %d", describe(&in.Canary), in.PrimaryWeight, in.CanaryWeight)
	if in.Mirrored {
		s += " (mirrored)"
	}
	return ActionResult{Summary: s}, nil
}

// FinalizeRouter removes or reverts the routing objects of a deleted Canary.
func (r *Routing) FinalizeRouter(ctx context.Context, in RouterInput) (ActionResult, error) {
	rt, err := r.router(&in.Canary)
	if err != nil {
		return ActionResult{}, err
	}
	if err := rt.Finalize(ctx, &in.Canary); err != nil {
		return ActionResult{}, classify(err, "finalise router of "+describe(&in.Canary))
	}
	return ActionResult{Summary: "finalised router of " + describe(&in.Canary)}, nil
}
