package metrics

// Contour's Envoy names the canary cluster <namespace>_<service>-canary_<port> (the apex Service name, as in
// Flagger) and the primary's <namespace>_<service>-primary_<port>; upstream time is in ms.
func init() {
	queries := func(sel string) BuiltinQueries {
		return BuiltinQueries{
			SuccessRate: `sum(rate(envoy_cluster_upstream_rq{` + sel + `, envoy_response_code!~"5.*"}[{{ interval }}]))
/ sum(rate(envoy_cluster_upstream_rq{` + sel + `}[{{ interval }}])) * 100`,
			Duration: `histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{` + sel + `}[{{ interval }}])) by (le))`,
		}
	}
	primary := queries(`envoy_cluster_name=~"{{ namespace }}_{{ service }}-primary_[0-9a-zA-Z-]+"`)
	registerBuiltin("contour", queries(`envoy_cluster_name=~"{{ namespace }}_{{ service }}-canary_[0-9a-zA-Z-]+"`), &primary)
}
