package metrics

import (
	"sort"
	"sync"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// Builtin metric names (as in the Canary spec).
const (
	RequestSuccessRate = "request-success-rate"
	RequestDuration    = "request-duration"
)

// BuiltinQueries are a router provider's PromQL templates for the builtin metrics: SuccessRate is the percentage
// of non-5xx canary requests, Duration the canary's request duration in milliseconds.
type BuiltinQueries struct {
	SuccessRate string
	Duration    string
}

var (
	builtinMu sync.RWMutex
	builtins  = map[string]BuiltinQueries{}
	primaries = map[string]BuiltinQueries{}
)

// registerBuiltin is called from each builtin_<provider>.go init with the canary's queries and, where the
// provider's metrics tell the primary's requests apart, the primary's (nil otherwise). Both are rendered with
// {{ target }} naming the workload queried: the target for the canary, <target>-primary for the primary.
func registerBuiltin(provider string, canary BuiltinQueries, primary *BuiltinQueries) {
	builtinMu.Lock()
	defer builtinMu.Unlock()
	builtins[provider] = canary
	if primary != nil {
		primaries[provider] = *primary
	}
}

// BuiltinQuery returns the query template of a builtin metric for a router provider (version suffixes are
// ignored: "gatewayapi:v1" is gatewayapi).
func BuiltinQuery(provider, metric string) (string, bool) {
	return builtinQuery(builtins, provider, metric)
}

// BuiltinPrimaryQuery returns the primary's form of a builtin metric's query, rendered with {{ target }} set to
// the primary workload (<target>-primary); false when the provider's metrics cannot tell the primary apart.
func BuiltinPrimaryQuery(provider, metric string) (string, bool) {
	return builtinQuery(primaries, provider, metric)
}

func builtinQuery(from map[string]BuiltinQueries, provider, metric string) (string, bool) {
	builtinMu.RLock()
	defer builtinMu.RUnlock()
	q, ok := from[v1beta1.ProviderBase(provider)]
	if !ok {
		return "", false
	}
	switch metric {
	case RequestSuccessRate:
		return q.SuccessRate, true
	case RequestDuration:
		return q.Duration, true
	}
	return "", false
}

// BuiltinProviders lists the router providers with builtin queries, sorted.
func BuiltinProviders() []string {
	return providersOf(builtins)
}

// BuiltinPrimaryProviders lists the router providers whose builtin queries have a primary form, sorted.
func BuiltinPrimaryProviders() []string {
	return providersOf(primaries)
}

func providersOf(m map[string]BuiltinQueries) []string {
	builtinMu.RLock()
	defer builtinMu.RUnlock()
	out := make([]string, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
