package metrics

// APISIX labels requests with the route name <namespace>_<ApisixRoute>_<rule> (its prometheus plugin with
// prefer_name); the apisix router's canary route is <routeRef>-<apex Service>-canary, so the route is selected by
// {{ service }} (the apex). Flagger's query uses {{ target }} here, which misses the route when spec.service.name
// differs from the target's name. The latency histogram is already in milliseconds. That one route carries the
// primary's share of the traffic too, and nothing in these series says which backend served a request, so there is
// no primary form: a comparison needs a MetricTemplate that can tell them apart.
func init() {
	const sel = `route=~"{{ namespace }}_{{ route }}-{{ service }}-canary_.+"`
	registerBuiltin("apisix", BuiltinQueries{
		SuccessRate: `sum(rate(apisix_http_status{` + sel + `, code!~"5.."}[{{ interval }}]))
/ sum(rate(apisix_http_status{` + sel + `}[{{ interval }}])) * 100`,
		Duration: `histogram_quantile(0.99, sum(rate(apisix_http_latency_bucket{type=~"request", ` + sel + `}[{{ interval }}])) by (le))`,
	}, nil)
}
