package metrics

// Open Service Mesh reports requests by destination Deployment (the primary's is <target>-primary, the rendered
// {{ target }}); latency is in ms.
func init() {
	const sel = `destination_namespace="{{ namespace }}", destination_kind="Deployment", destination_name="{{ target }}"`
	q := BuiltinQueries{
		SuccessRate: `sum(rate(osm_request_total{` + sel + `, response_code!~"5.*"}[{{ interval }}]))
/ sum(rate(osm_request_total{` + sel + `}[{{ interval }}])) * 100`,
		Duration: `histogram_quantile(0.99, sum(rate(osm_request_duration_ms_bucket{` + sel + `}[{{ interval }}])) by (le))`,
	}
	registerBuiltin("osm", q, &q)
}
