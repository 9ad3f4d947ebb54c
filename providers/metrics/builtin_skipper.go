package metrics

// Skipper names routes from the canary Ingress kube(ew)_<namespace>__<ingress>_canary__<host>__<path>__<service>_canary,
// with every non-word character of the names turned into "_" (see skipperName); the primary's backend is
// <service>_primary, on the user's Ingress or the canary one. Its serve-route histogram has coarse buckets, so the
// duration is the average in milliseconds, as Flagger does.
func init() {
	queries := func(route string) BuiltinQueries {
		return BuiltinQueries{
			SuccessRate: route + `sum(rate(skipper_response_duration_seconds_bucket{route=~"{{ $route }}", code!~"5..", le="+Inf"}[{{ interval }}]))
/ sum(rate(skipper_response_duration_seconds_bucket{route=~"{{ $route }}", le="+Inf"}[{{ interval }}])) * 100`,
			Duration: route + `sum(rate(skipper_serve_route_duration_seconds_sum{route=~"{{ $route }}"}[{{ interval }}]))
/ sum(rate(skipper_serve_route_duration_seconds_count{route=~"{{ $route }}"}[{{ interval }}])) * 1000`,
		}
	}
	primary := queries(`{{- $route := printf "kube(ew)?_%s__%s(_canary)?__.*__%s_primary(_[0-9]+)?" (skipperName namespace) (skipperName ingress) (skipperName service) -}}`)
	registerBuiltin("skipper", queries(`{{- $route := printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" (skipperName namespace) (skipperName ingress) (skipperName service) -}}`), &primary)
}
