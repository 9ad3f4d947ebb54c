// Package catalog tells validation what this build can run: the routers registered in providers/router, the
// builtin metric queries and the metric backends of providers/metrics. Importing it links every router in.
package catalog

import (
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/metrics"
	"github.com/canaryflow/canaryflow/providers/router"
)

// Capabilities returns what this build can run, read from the provider registries.
func Capabilities() *v1beta1.Capabilities {
	return &v1beta1.Capabilities{
		Routers:        router.Capabilities(),
		BuiltinMetrics: set(metrics.BuiltinProviders()),
		MetricBackends: set(metrics.Backends()),
		// A comparison needs the primary's form of a builtin query and a backend that reads series.
		ComparableBuiltins: set(metrics.BuiltinPrimaryProviders()),
		RangeBackends:      set(metrics.RangeBackends()),
	}
}

func set(names []string) map[string]bool {
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out
}
