package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/router"
)

// Routers hands out the router of a provider name as written in spec.provider (a version suffix such as
// "gatewayapi:v1" allowed); *router.Registry is the worker's. An unknown provider is an error.
type Routers interface {
	Get(provider string) (router.Router, error)
}

// Routing holds the activities that change where traffic goes.
type Routing struct {
	Routers Routers
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

// RoutesResult is the split SetRoutes set, so that a history that records only results (a local activity's
// marker) still says which weights were set.
type RoutesResult struct {
	Summary       string `json:"summary,omitempty"`
	PrimaryWeight int    `json:"primaryWeight"`
	CanaryWeight  int    `json:"canaryWeight"`
	Mirrored      bool   `json:"mirrored,omitempty"`
}

func (r *Routing) router(c *v1beta1.Canary) (router.Router, error) {
	rt, err := r.Routers.Get(c.Spec.Provider)
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
func (r *Routing) SetRoutes(ctx context.Context, in RoutesInput) (RoutesResult, error) {
	if err := router.CheckSplit(&in.Canary, in.PrimaryWeight, in.CanaryWeight, in.Mirrored); err != nil {
		return RoutesResult{}, classify(err, "set routes")
	}
	rt, err := r.router(&in.Canary)
	if err != nil {
		return RoutesResult{}, err
	}
	if err := rt.SetRoutes(ctx, &in.Canary, in.PrimaryWeight, in.CanaryWeight, in.Mirrored); err != nil {
		return RoutesResult{}, classify(err, fmt.Sprintf("set routes %d/%d of %s", in.PrimaryWeight, in.CanaryWeight, describe(&in.Canary)))
	}
	s := fmt.Sprintf("routes of %s set to primary %d canary %d", describe(&in.Canary), in.PrimaryWeight, in.CanaryWeight)
	if in.Mirrored {
		s += " (mirrored)"
	}
	return RoutesResult{Summary: s, PrimaryWeight: in.PrimaryWeight, CanaryWeight: in.CanaryWeight, Mirrored: in.Mirrored}, nil
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
