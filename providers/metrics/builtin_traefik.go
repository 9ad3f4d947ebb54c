package metrics

// Traefik exports one histogram per leaf service; the canary's service is
// <namespace>-<target>-canary-<port>@kubernetescrd, the primary's <namespace>-<target>-primary-<port>@kubernetescrd.
// Success counts the +Inf bucket (every request) by code.
func init() {
	queries := func(sel string) BuiltinQueries {
		return BuiltinQueries{
			SuccessRate: `sum(rate(traefik_service_request_duration_seconds_bucket{` + sel + `, code!~"5..", le="+Inf"}[{{ interval }}]))
/ sum(rate(traefik_service_request_duration_seconds_bucket{` + sel + `, le="+Inf"}[{{ interval }}])) * 100`,
			Duration: `histogram_quantile(0.99, sum(rate(traefik_service_request_duration_seconds_bucket{` + sel + `}[{{ interval }}])) by (le)) * 1000`,
		}
	}
	primary := queries(`service=~"{{ namespace }}-{{ target }}-[0-9a-zA-Z-]+@kubernetescrd"`)
	registerBuiltin("traefik", queries(`service=~"{{ namespace }}-{{ target }}-canary-[0-9a-zA-Z-]+@kubernetescrd"`), &primary)
}
