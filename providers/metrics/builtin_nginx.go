package metrics

// ingress-nginx labels requests served by a canary backend with a non-empty canary label on the main ingress's
// series, and those the primary served with an empty one. It has no per-request histogram worth a P99 here, so
// the duration is the average in milliseconds.
func init() {
	queries := func(sel string) BuiltinQueries {
		return BuiltinQueries{
			SuccessRate: `sum(rate(nginx_ingress_controller_requests{` + sel + `, status!~"5.*"}[{{ interval }}]))
/ sum(rate(nginx_ingress_controller_requests{` + sel + `}[{{ interval }}])) * 100`,
			Duration: `sum(rate(nginx_ingress_controller_response_duration_seconds_sum{` + sel + `}[{{ interval }}]))
/ sum(rate(nginx_ingress_controller_response_duration_seconds_count{` + sel + `}[{{ interval }}])) * 1000`,
		}
	}
	primary := queries(`namespace="{{ namespace }}", ingress="{{ ingress }}", canary=""`)
	registerBuiltin("nginx", queries(`namespace="{{ namespace }}", ingress="{{ ingress }}", canary!=""`), &primary)
}
