package metrics

// Kuma's data planes tag Envoy cluster stats with service=<Service>_<namespace>_svc_<port>: <target>-canary for
// the canary, <target>-primary (the rendered {{ target }}) for the primary.
func init() {
	queries := func(sel string) BuiltinQueries {
		return BuiltinQueries{
			SuccessRate: `sum(rate(envoy_cluster_upstream_rq{` + sel + `, envoy_response_code!~"5.*"}[{{ interval }}]))
/ sum(rate(envoy_cluster_upstream_rq{` + sel + `}[{{ interval }}])) * 100`,
			Duration: `histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{` + sel + `}[{{ interval }}])) by (le))`,
		}
	}
	primary := queries(`service=~"{{ target }}_{{ namespace }}_svc_[0-9a-zA-Z-]+"`)
	registerBuiltin("kuma", queries(`service=~"{{ target }}-canary_{{ namespace }}_svc_[0-9a-zA-Z-]+"`), &primary)
}
