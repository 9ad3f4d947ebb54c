// Package activitiestest is an in-memory stand-in for every activity of the CanaryRollout workflow: Kubernetes,
// the router and the metrics backend. Tests of the starter use it to run the real workflow on a real Temporal dev
// server without a cluster; the worker's concurrency benchmark uses it to measure orchestration alone.
//
// It is never a test of a provider: those run against the lab.
package activitiestest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// Cluster records the weights each canary was given and answers metric checks with a success rate a test sets.
// A canary it does not know has a primary at rev1 and a target at rev2 (a release to analyse) and a success rate
// of 99.5. Every method answers at once.
type Cluster struct {
	// AdmissionQueue, set before the first rollout, is named by DetectRevision on a change or a first rollout,
	// as a worker with --release-rate names its admission queue.
	AdmissionQueue string

	mu       sync.Mutex
	canaries map[string]*Canary
}

// Canary is what the Cluster knows of one canary.
type Canary struct {
	Target, Primary string
	SuccessRate     float64
	// ClosedGates answer webhooks of these types with 403.
	ClosedGates map[v1beta1.HookType]bool
	// Unready makes CheckReady answer not ready; ReadyChecks counts its calls.
	Unready     bool
	ReadyChecks int
	// Routes are the weights set, "primary/canary", in order; RouteTimes when each was set.
	Routes     []string
	RouteTimes []time.Time
}

// NewCluster returns an empty Cluster.
func NewCluster() *Cluster { return &Cluster{canaries: map[string]*Canary{}} }

// canary returns the state of ns/name, creating the default one; callers hold mu.
func (f *Cluster) canary(ns, name string) *Canary {
	k := ns + "/" + name
	c, ok := f.canaries[k]
	if !ok {
		c = &Canary{Target: "rev2", Primary: "rev1", SuccessRate: 99.5, ClosedGates: map[v1beta1.HookType]bool{}}
		f.canaries[k] = c
	}
	return c
}

// Set changes the state of ns/name.
func (f *Cluster) Set(ns, name string, fn func(c *Canary)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.canary(ns, name))
}

// Activities returns the activities to register on a worker (RegisterActivity), backed by this Cluster.
func (f *Cluster) Activities() *Activities { return &Activities{c: f} }

// Activities are the workflow's activities, answered from a Cluster. Its methods are exactly the activities, so
// that RegisterActivity registers nothing else.
type Activities struct{ c *Cluster }

// Get returns a copy of the state of ns/name.
func (f *Cluster) Get(ns, name string) Canary {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *f.canary(ns, name)
	c.Routes = append([]string(nil), c.Routes...)
	c.RouteTimes = append([]time.Time(nil), c.RouteTimes...)
	return c
}

// DetectRevision reports the target revision the test set, and whether it is new.
func (a *Activities) DetectRevision(_ context.Context, in activities.WorkloadInput) (activities.RevisionResult, error) {
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	c := a.c.canary(in.Canary.Namespace, in.Canary.Name)
	r := activities.RevisionResult{TargetRevision: c.Target, PrimaryRevision: c.Primary,
		PrimaryExists: c.Primary != "", Changed: c.Primary != "" && c.Primary != c.Target}
	if r.Admissible() {
		r.AdmissionQueue = a.c.AdmissionQueue
	}
	return r, nil
}

// InitializeWorkloads marks the canary initialised, as the real activity would after creating the primary.
func (a *Activities) InitializeWorkloads(_ context.Context, in activities.WorkloadInput) (activities.ActionResult, error) {
	a.c.Set(in.Canary.Namespace, in.Canary.Name, func(c *Canary) { c.Primary = c.Target })
	return activities.ActionResult{}, nil
}

// ScaleCanary succeeds without effect: the in-memory cluster has no replicas.
func (a *Activities) ScaleCanary(context.Context, activities.ScaleInput) (activities.ActionResult, error) {
	return activities.ActionResult{}, nil
}

// CheckReady reports every workload ready, but those of a canary set Unready, and counts the calls.
func (a *Activities) CheckReady(_ context.Context, in activities.ReadyInput) (activities.ReadyResult, error) {
	ready := true
	a.c.Set(in.Canary.Namespace, in.Canary.Name, func(c *Canary) {
		c.ReadyChecks++
		ready = !c.Unready
	})
	if !ready {
		return activities.ReadyResult{Reason: "not ready (activitiestest: Unready)"}, nil
	}
	return activities.ReadyResult{Ready: true}, nil
}

// Promote records the target revision as the primary's.
func (a *Activities) Promote(_ context.Context, in activities.WorkloadInput) (activities.ActionResult, error) {
	a.c.Set(in.Canary.Namespace, in.Canary.Name, func(c *Canary) { c.Primary = c.Target })
	return activities.ActionResult{}, nil
}

// RevertPromotion puts the primary back on the revision the workflow names.
func (a *Activities) RevertPromotion(_ context.Context, in activities.RevertInput) (activities.ActionResult, error) {
	a.c.Set(in.Canary.Namespace, in.Canary.Name, func(c *Canary) { c.Primary = in.Revision })
	return activities.ActionResult{}, nil
}

// FinalizeWorkloads succeeds without effect.
func (a *Activities) FinalizeWorkloads(context.Context, activities.WorkloadInput) (activities.ActionResult, error) {
	return activities.ActionResult{}, nil
}

// ReconcileRouter succeeds without effect: the in-memory cluster has no router objects.
func (a *Activities) ReconcileRouter(context.Context, activities.RouterInput) (activities.ActionResult, error) {
	return activities.ActionResult{}, nil
}

// SetRoutes records the weights, as the router would hold them, and returns the split set.
func (a *Activities) SetRoutes(_ context.Context, in activities.RoutesInput) (activities.RoutesResult, error) {
	now := time.Now()
	a.c.Set(in.Canary.Namespace, in.Canary.Name, func(c *Canary) {
		c.Routes = append(c.Routes, fmt.Sprintf("%d/%d", in.PrimaryWeight, in.CanaryWeight))
		c.RouteTimes = append(c.RouteTimes, now)
	})
	return activities.RoutesResult{PrimaryWeight: in.PrimaryWeight, CanaryWeight: in.CanaryWeight, Mirrored: in.Mirrored}, nil
}

// FinalizeRouter succeeds without effect.
func (a *Activities) FinalizeRouter(context.Context, activities.RouterInput) (activities.ActionResult, error) {
	return activities.ActionResult{}, nil
}

// RunMetricChecks judges every metric against its range with the success rate the test set as its value.
func (a *Activities) RunMetricChecks(_ context.Context, in activities.MetricChecksInput) (activities.MetricChecksResult, error) {
	rate := a.c.Get(in.Canary.Namespace, in.Canary.Name).SuccessRate
	var out activities.MetricChecksResult
	for _, m := range in.Metrics {
		v := rate
		r := activities.CheckResult{Metric: m.Name, Value: &v}
		if m.ThresholdRange != nil {
			r.Min, r.Max = m.ThresholdRange.Min, m.ThresholdRange.Max
		}
		r.Verdict, r.Message = activities.Judge(m.Name, v, r.Min, r.Max)
		out.Results = append(out.Results, r)
	}
	return out, nil
}

// CallWebhook passes every hook except rollback hooks and the gates the test closed.
func (a *Activities) CallWebhook(_ context.Context, in activities.WebhookInput) (activities.WebhookResult, error) {
	c := a.c.Get(in.Payload.Namespace, in.Payload.Name)
	res := activities.WebhookResult{Name: in.Hook.Name, Type: in.Hook.Type, Passed: true, StatusCode: 200, Attempts: 1}
	if in.Hook.Type == v1beta1.RollbackHook || c.ClosedGates[in.Hook.Type] {
		res.Passed, res.StatusCode, res.Reason = false, 403, "gate closed"
	}
	return res, nil
}

// RunChecks answers a step's webhooks and metric checks as CallWebhook and RunMetricChecks do, in spec order.
func (a *Activities) RunChecks(ctx context.Context, in activities.ChecksInput) (activities.ChecksResult, error) {
	var out activities.ChecksResult
	for _, h := range in.Hooks {
		r, err := a.CallWebhook(ctx, activities.WebhookInput{Hook: h, Payload: in.Payload})
		if err != nil {
			return out, err
		}
		out.Webhooks = append(out.Webhooks, r)
	}
	if len(in.Metrics) > 0 {
		r, err := a.RunMetricChecks(ctx, activities.MetricChecksInput{Canary: in.Canary, Metrics: in.Metrics, Templates: in.Templates})
		if err != nil {
			return out, err
		}
		out.Checks = r.Results
	}
	return out, nil
}

// SendAlerts succeeds without sending anything.
func (a *Activities) SendAlerts(context.Context, activities.AlertInput) (activities.AlertResult, error) {
	return activities.AlertResult{}, nil
}
