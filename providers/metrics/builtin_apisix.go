package metrics

// APISIX labels requests with the route id <namespace>_<routeRef>-<target>-canary_<suffix>; its latency
// histogram is already in milliseconds.
func init() {
	const sel = `route=~"{{ namespace }}_{{ route }}-{{ target }}-canary_.+"`
	registerBuiltin("apisix", BuiltinQueries{
		SuccessRate: `sum(rate(apisix_http_status{` + sel + `, code!~"5.."}[{{ interval }}]))
/ sum(rate(apisix_http_status{` + sel + `}[{{ interval }}])) * 100`,
		Duration: `histogram_quantile(0.99, sum(rate(apisix_http_latency_bucket{type=~"request", ` + sel + `}[{{ interval }}])) by (le))`,
	})
}
