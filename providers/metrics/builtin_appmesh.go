package metrics

// App Mesh's Envoy sidecars are scraped per pod: the canary's pods are <target>-<hash>-<id> (the primary's
// <target>-primary-<hash>-<id> has one segment more and does not match the anchored regex; rendered with the
// primary's name, the same selector reads the primary's pods).
func init() {
	const sel = `kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"`
	q := BuiltinQueries{
		SuccessRate: `sum(rate(envoy_cluster_upstream_rq{` + sel + `, envoy_response_code!~"5.*"}[{{ interval }}]))
/ sum(rate(envoy_cluster_upstream_rq{` + sel + `}[{{ interval }}])) * 100`,
		Duration: `histogram_quantile(0.99, sum(rate(envoy_cluster_upstream_rq_time_bucket{` + sel + `}[{{ interval }}])) by (le))`,
	}
	registerBuiltin("appmesh", q, &q)
}
