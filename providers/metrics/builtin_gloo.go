package metrics

// Gloo's Envoy names the canary upstream's cluster <namespace>-<target>-canary-<port>_<gloo namespace>.
func init() {
	const sel = `envoy_cluster_name=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+"`
	registerBuiltin("gloo", BuiltinQueries{
		SuccessRate: `sum(rate(envoy_cluster_upstream_rq{` + sel + `, envoy_response_code!~"5.*"}[{{ interval }}]))
/ sum(rate(envoy_cluster_upstream_rq{` + sel + `}[{{ interval }}])) * 100`,
		Duration: `histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{` + sel + `}[{{ interval }}])) by (le))`,
	})
}
