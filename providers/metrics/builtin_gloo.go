package metrics

// Gloo's Envoy names an Upstream's cluster <upstream>_<upstream namespace>; the gloo router's canary Upstream is
// <namespace>-<target>-canaryupstream-<port> (Flagger's name), in the Canary's namespace, and the primary's
// <namespace>-<target>-primaryupstream-<port> ({{ target }} is <target>-primary there).
func init() {
	queries := func(sel string) BuiltinQueries {
		return BuiltinQueries{
			SuccessRate: `sum(rate(envoy_cluster_upstream_rq{` + sel + `, envoy_response_code!~"5.*"}[{{ interval }}]))
/ sum(rate(envoy_cluster_upstream_rq{` + sel + `}[{{ interval }}])) * 100`,
			Duration: `histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{` + sel + `}[{{ interval }}])) by (le))`,
		}
	}
	primary := queries(`envoy_cluster_name=~"{{ namespace }}-{{ target }}upstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+"`)
	registerBuiltin("gloo", queries(`envoy_cluster_name=~"{{ namespace }}-{{ target }}-canaryupstream-[0-9a-zA-Z-]+_[0-9a-zA-Z-]+"`), &primary)
}
