// Package capability is the one registry of what each router provider can do with traffic, so validation refuses
// a Canary that asks a provider for something it cannot do instead of silently ignoring it.
//
// Every provider starts with the row the design targets (shared/design.md, router capability table). A router
// implementation declares what it really does with Declare, from its package's init; once it has, validation
// accepts exactly that.
package capability

import (
	"sort"
	"strings"
	"sync"
)

// Set is what a router provider can do.
type Set struct {
	// Weights: traffic can be split by percentage between primary and canary.
	Weights bool
	// Match: requests can be routed to the canary by headers/cookies (A/B testing).
	Match bool
	// Mirror: traffic to the primary can be copied to the canary (blue/green mirroring).
	Mirror bool
	// SessionAffinity: a client routed to the canary stays there by cookie.
	SessionAffinity bool
	// BuiltinMetrics: request-success-rate and request-duration have a builtin query for this provider.
	BuiltinMetrics bool
	// Implemented: a router for this provider is compiled in and declared itself.
	Implemented bool
}

var (
	mu   sync.RWMutex
	rows = map[string]Set{
		"kubernetes": {BuiltinMetrics: true},
		"traefik":    {Weights: true, Match: true, Mirror: true, SessionAffinity: true, BuiltinMetrics: true},
		"apisix":     {Weights: true, Match: true, Mirror: true, BuiltinMetrics: true},
		"nginx":      {Weights: true, Match: true, Mirror: true, SessionAffinity: true, BuiltinMetrics: true},
		"gatewayapi": {Weights: true, Match: true, Mirror: true, SessionAffinity: true, BuiltinMetrics: true},
		"istio":      {Weights: true, Match: true, Mirror: true, SessionAffinity: true, BuiltinMetrics: true},
		"linkerd":    {Weights: true, BuiltinMetrics: true},
		"smi":        {Weights: true},
		"osm":        {Weights: true, BuiltinMetrics: true},
		"kuma":       {Weights: true, BuiltinMetrics: true},
		"contour":    {Weights: true, Match: true, Mirror: true, BuiltinMetrics: true},
		"gloo":       {Weights: true, Match: true, BuiltinMetrics: true},
		"skipper":    {Weights: true, BuiltinMetrics: true},
		"appmesh":    {Weights: true, Match: true, BuiltinMetrics: true},
	}
)

// DefaultProvider is the provider of a Canary that names none.
const DefaultProvider = "kubernetes"

// Base strips a version suffix ("gatewayapi:v1beta1" → "gatewayapi", "smi:linkerd" → "smi") and lower-cases it.
func Base(provider string) string {
	if provider == "" {
		return DefaultProvider
	}
	base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(provider)), ":")
	return base
}

// Of returns the capabilities of provider and whether it is known.
func Of(provider string) (Set, bool) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := rows[Base(provider)]
	return s, ok
}

// Declare records what the router for provider really does; routers call it from init.
func Declare(provider string, s Set) {
	mu.Lock()
	defer mu.Unlock()
	s.Implemented = true
	rows[Base(provider)] = s
}

// Providers lists the known provider names, sorted.
func Providers() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(rows))
	for name := range rows {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
