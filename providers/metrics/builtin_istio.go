package metrics

// Istio's server-side proxy reports requests by destination workload (the canary Deployment is the target;
// the primary is <target>-primary, which the anchored regex excludes, and which the same query reads when
// {{ target }} renders as the primary).
func init() {
	const sel = `reporter="destination", destination_workload_namespace="{{ namespace }}", destination_workload=~"{{ target }}"`
	q := BuiltinQueries{
		SuccessRate: `sum(rate(istio_requests_total{` + sel + `, response_code!~"5.*"}[{{ interval }}]))
/ sum(rate(istio_requests_total{` + sel + `}[{{ interval }}])) * 100`,
		Duration: `histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{` + sel + `}[{{ interval }}])) by (le))`,
	}
	registerBuiltin("istio", q, &q)
}
