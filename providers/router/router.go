// Package router writes how traffic is split between a canary's primary and canary Services, one file per
// provider behind Flagger's four-method interface, chosen by name from a registry that providers join from init.
//
// Routers write with server-side apply under the workload package's field manager and marker, and never
// overwrite an object that exists without that marker. Each provider file declares in init, with
// capability.Declare, exactly what it implements (weights, A/B match, mirroring, session affinity), so that
// validation refuses what a provider cannot do.
package router

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/capability"
	"github.com/canaryflow/canaryflow/providers/workload"
)

// Router splits traffic for one provider; it has the method set of activities.Router (see there for the contract
// of each method), with plain types only.
type Router interface {
	Reconcile(ctx context.Context, c *v1beta1.Canary) error
	SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error
	GetRoutes(ctx context.Context, c *v1beta1.Canary) (primaryWeight, canaryWeight int, mirrored bool, err error)
	Finalize(ctx context.Context, c *v1beta1.Canary) error
}

// Clients are the API clients a router may use.
type Clients struct {
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
}

// Constructor makes a provider's router from the clients.
type Constructor func(Clients) Router

var (
	regMu        sync.RWMutex
	constructors = map[string]Constructor{}
)

// Register makes a provider available to every Registry; provider files call it from init, together with
// capability.Declare.
func Register(provider string, ctor Constructor) {
	regMu.Lock()
	defer regMu.Unlock()
	constructors[capability.Base(provider)] = ctor
}

// declare records what a provider's router implements, keeping the registry's builtin-metrics column (that is
// the metrics package's to say).
func declare(provider string, s capability.Set) {
	if old, ok := capability.Of(provider); ok {
		s.BuiltinMetrics = old.BuiltinMetrics
	}
	capability.Declare(provider, s)
}

// Registry hands out the router of a provider, built once per provider over shared clients.
type Registry struct {
	clients Clients
	mu      sync.Mutex
	routers map[string]Router
}

// NewRegistry returns a Registry whose routers talk to the API server of cfg.
func NewRegistry(cfg *rest.Config) (*Registry, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return NewRegistryForClients(Clients{Kube: kube, Dynamic: dyn, Discovery: kube.Discovery()}), nil
}

// NewRegistryForClients returns a Registry over the given clients.
func NewRegistryForClients(c Clients) *Registry {
	return &Registry{clients: c, routers: map[string]Router{}}
}

// Get returns the router of provider (as written in spec.provider, version suffix allowed).
func (r *Registry) Get(provider string) (Router, error) {
	base := capability.Base(provider)
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt, ok := r.routers[base]; ok {
		return rt, nil
	}
	regMu.RLock()
	ctor, ok := constructors[base]
	regMu.RUnlock()
	if !ok {
		return nil, workload.Permanentf("no router for provider %q: canaryflow has routers for %s", provider, strings.Join(Providers(), ", "))
	}
	rt := ctor(r.clients)
	r.routers[base] = rt
	return rt, nil
}

// Providers lists the providers with a registered router, sorted.
func Providers() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(constructors))
	for p := range constructors {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// checkSplit refuses a split outside the contract: weights that do not sum to 100, or mirroring other than 100/0.
func checkSplit(c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	if primaryWeight < 0 || canaryWeight < 0 || primaryWeight+canaryWeight != 100 {
		return workload.Permanentf("invalid split %d/%d for Canary %s/%s: weights must be non-negative and sum to 100",
			primaryWeight, canaryWeight, c.Namespace, c.Name)
	}
	if mirrored && primaryWeight != 100 {
		return workload.Permanentf("mirroring needs all traffic on the primary (100/0), not %d/%d (Canary %s/%s)",
			primaryWeight, canaryWeight, c.Namespace, c.Name)
	}
	return nil
}

func mirrorPercent(c *v1beta1.Canary) int {
	if a := c.Spec.Analysis; a != nil && a.MirrorWeight > 0 && a.MirrorWeight < 100 {
		return a.MirrorWeight
	}
	return 100
}

func apexName(c *v1beta1.Canary) string {
	apex, _, _ := c.ServiceNames()
	return apex
}

func notReconciled(kind string, c *v1beta1.Canary) error {
	return workload.Permanentf("%s %s/%s not found: the router of Canary %s/%s must be reconciled first",
		kind, c.Namespace, apexName(c), c.Namespace, c.Name)
}
