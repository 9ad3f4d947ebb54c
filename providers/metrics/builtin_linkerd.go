package metrics

// Linkerd's proxy classifies each inbound response as success or failure per deployment (the primary's is
// <target>-primary, the rendered {{ target }}); latency is in ms.
func init() {
	const sel = `namespace="{{ namespace }}", deployment=~"{{ target }}", direction="inbound"`
	q := BuiltinQueries{
		SuccessRate: `sum(rate(response_total{` + sel + `, classification!="failure"}[{{ interval }}]))
/ sum(rate(response_total{` + sel + `}[{{ interval }}])) * 100`,
		Duration: `histogram_quantile(0.99, sum(rate(response_latency_ms_bucket{` + sel + `}[{{ interval }}])) by (le))`,
	}
	registerBuiltin("linkerd", q, &q)
}
