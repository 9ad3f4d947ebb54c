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
)

// registerBuiltin is called from each builtin_<provider>.go init.
func registerBuiltin(provider string, q BuiltinQueries) {
	builtinMu.Lock()
	defer builtinMu.Unlock()
	builtins[provider] = q
}

// BuiltinQuery returns the query template of a builtin metric for a router provider (version suffixes are
// ignored: "gatewayapi:v1" is gatewayapi).
func BuiltinQuery(provider, metric string) (string, bool) {
	builtinMu.RLock()
	defer builtinMu.RUnlock()
	q, ok := builtins[v1beta1.ProviderBase(provider)]
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
	builtinMu.RLock()
	defer builtinMu.RUnlock()
	out := make([]string, 0, len(builtins))
	for p := range builtins {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
