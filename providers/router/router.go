// Package router writes how traffic is split between a canary's primary and canary Services, one file per
// provider behind Flagger's four-method interface, chosen by name from the one registry that provider files join
// from init with what they can do (Register), so that validation accepts exactly what this build's routers do.
//
// Routers write with server-side apply under kubeobj's field manager and marker, and never overwrite an object that
// exists without that marker.
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
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// Router writes how traffic is split between the primary and the canary for one provider (Flagger's four-method
// router). Every method is idempotent and writes absolute state: calling it twice, or again after a crash, leaves
// the same objects. What a provider cannot do is refused at validation (the Traffic it registered), so a router may
// return a permanent error for a request outside it instead of ignoring it.
type Router interface {
	// Reconcile makes the provider's routing objects exist and match the spec (hosts, gateways, ports, retries,
	// headers, timeouts, the A/B match of spec.analysis.match, session affinity cookies). A new object starts
	// with all traffic on the primary (100/0); an existing one keeps its current weights, so a reconcile in the
	// middle of an analysis never moves traffic.
	Reconcile(ctx context.Context, c *v1beta1.Canary) error

	// SetRoutes sets the traffic split to exactly primaryWeight/canaryWeight percent, a split CheckSplit accepts
	// (the caller checks). With mirrored true the primary serves all responses and spec.analysis.mirrorWeight
	// percent (default 100) of its requests are copied to the canary (only with 100/0). With spec.analysis.match
	// set (A/B testing) the weights apply to the requests that match and every other request goes to the primary.
	// With spec.analysis.sessionAffinity set, a client routed to the canary gets cookieName (maxAge seconds) and
	// sticks to the canary; at canaryWeight 0 the cookie no longer routes anywhere (and primaryCookieName, when
	// set, pins clients to the primary). A router without weights (kubernetes) accepts only 100/0 and 0/100 and
	// switches the apex Service between the primary and the canary pods.
	SetRoutes(ctx context.Context, c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error

	// GetRoutes reads the current split back, as SetRoutes would have written it. It changes nothing.
	GetRoutes(ctx context.Context, c *v1beta1.Canary) (primaryWeight, canaryWeight int, mirrored bool, err error)

	// Finalize, when the Canary is deleted, removes the generated routing objects or points them back at the
	// target (spec.revertOnDeletion), so traffic reaches the target without canaryflow. Nothing left is success.
	Finalize(ctx context.Context, c *v1beta1.Canary) error
}

// Clients are the API clients a router may use, and the one router setting the worker passes on.
type Clients struct {
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
	// IngressAnnotationsPrefix is the annotation prefix of the ingress-nginx the nginx router writes for (the
	// worker's -ingress-annotations-prefix, as Flagger's); empty means DefaultIngressAnnotationsPrefix.
	IngressAnnotationsPrefix string
}

// Constructor makes a provider's router from the clients.
type Constructor func(Clients) Router

type registration struct {
	ctor    Constructor
	traffic v1beta1.Traffic
}

var (
	regMu         sync.RWMutex
	registrations = map[string]registration{}
)

// Register makes the router of provider (a base name, see v1beta1.ProviderBase) available to every Registry,
// with what it can do with traffic; provider files call it from init. Validation accepts exactly what is
// registered here.
func Register(provider string, ctor Constructor, traffic v1beta1.Traffic) {
	regMu.Lock()
	defer regMu.Unlock()
	registrations[v1beta1.ProviderBase(provider)] = registration{ctor: ctor, traffic: traffic}
}

// Capabilities returns what each registered router can do, by base provider name.
func Capabilities() map[string]v1beta1.Traffic {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make(map[string]v1beta1.Traffic, len(registrations))
	for p, r := range registrations {
		out[p] = r.traffic
	}
	return out
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
	base := v1beta1.ProviderBase(provider)
	r.mu.Lock()
	defer r.mu.Unlock()
	if rt, ok := r.routers[base]; ok {
		return rt, nil
	}
	regMu.RLock()
	reg, ok := registrations[base]
	regMu.RUnlock()
	if !ok {
		return nil, kubeobj.Permanentf("no router for provider %q in this build: canaryflow has routers for %s", provider, strings.Join(Providers(), ", "))
	}
	rt := reg.ctor(r.clients)
	r.routers[base] = rt
	return rt, nil
}

// Providers lists the providers with a registered router, sorted.
func Providers() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, 0, len(registrations))
	for p := range registrations {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// CheckSplit refuses a split outside the Router contract: weights that do not sum to 100, or mirroring other than
// 100/0. The routing activity checks every split with it before calling a router.
func CheckSplit(c *v1beta1.Canary, primaryWeight, canaryWeight int, mirrored bool) error {
	if primaryWeight < 0 || canaryWeight < 0 || primaryWeight+canaryWeight != 100 {
		return kubeobj.Permanentf("invalid split %d/%d for Canary %s/%s: weights must be non-negative and sum to 100",
			primaryWeight, canaryWeight, c.Namespace, c.Name)
	}
	if mirrored && primaryWeight != 100 {
		return kubeobj.Permanentf("mirroring needs all traffic on the primary (100/0), not %d/%d (Canary %s/%s)",
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
	return kubeobj.Permanentf("%s %s/%s not found: the router of Canary %s/%s must be reconciled first",
		kind, c.Namespace, apexName(c), c.Namespace, c.Name)
}
