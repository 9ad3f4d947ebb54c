package metrics

// The kubernetes (blue/green) and gatewayapi providers have no proxy of their own whose metrics canaryflow can
// rely on, so they read the application's own http_request_duration_seconds histogram (podinfo and most Go/Prometheus
// instrumented services export it) from pods scraped with the usual kubernetes_namespace/kubernetes_pod_name
// labels. The canary's pods are <target>-<hash>-<id>; the primary's have one more segment and do not match (with
// {{ target }} rendered as <target>-primary, the same selector reads the primary's pods).
func init() {
	const sel = `kubernetes_namespace="{{ namespace }}", kubernetes_pod_name=~"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)"`
	q := BuiltinQueries{
		SuccessRate: `sum(rate(http_request_duration_seconds_count{` + sel + `, status!~"5.*"}[{{ interval }}]))
/ sum(rate(http_request_duration_seconds_count{` + sel + `}[{{ interval }}])) * 100`,
		Duration: `histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{` + sel + `}[{{ interval }}])) by (le)) * 1000`,
	}
	registerBuiltin("kubernetes", q, &q)
	registerBuiltin("gatewayapi", q, &q)
}
