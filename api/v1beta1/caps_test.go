package v1beta1

// designCaps is the build the design targets (shared/design.md, router capability table): every provider Flagger
// knows, each with what canaryflow aims to do with it. The spec's own tests validate against it, so they pin the
// rules of validation, not what one build happens to hold; providers/catalog tests the real build.
var designCaps = &Capabilities{
	Routers: map[string]Traffic{
		"kubernetes": {},
		"traefik": {Weights: true, Match: true, Mirror: true, SessionAffinity: true, Honours: []string{
			"spec.analysis.sessionAffinity.domain", "spec.analysis.sessionAffinity.path", "spec.analysis.sessionAffinity.sameSite",
			"spec.analysis.sessionAffinity.secure", "spec.analysis.sessionAffinity.httpOnly"}},
		"apisix": {Weights: true, Match: true, Mirror: true},
		"nginx":  {Weights: true, Match: true, Mirror: true, SessionAffinity: true},
		"gatewayapi": {Weights: true, Match: true, Mirror: true, SessionAffinity: true, Honours: []string{
			"spec.service.backendTimeout", "spec.service.mirror", "spec.service.rewrite", "spec.service.rewrite.type", "spec.service.headers",
			"spec.service.timeout", "spec.service.match", "spec.service.gatewayRefs", "spec.service.hosts",
			"spec.analysis.sessionAffinity.domain", "spec.analysis.sessionAffinity.path", "spec.analysis.sessionAffinity.sameSite",
			"spec.analysis.sessionAffinity.secure", "spec.analysis.sessionAffinity.httpOnly", "spec.analysis.sessionAffinity.partitioned"}},
		"istio":   {Weights: true, Match: true, Mirror: true, SessionAffinity: true},
		"linkerd": {Weights: true},
		"smi":     {Weights: true},
		"osm":     {Weights: true},
		"kuma":    {Weights: true},
		"contour": {Weights: true, Match: true, Mirror: true},
		"gloo":    {Weights: true, Match: true},
		"skipper": {Weights: true},
		"appmesh": {Weights: true, Match: true},
	},
	BuiltinMetrics: map[string]bool{"kubernetes": true, "traefik": true, "apisix": true, "nginx": true,
		"gatewayapi": true, "istio": true, "linkerd": true, "osm": true, "kuma": true, "contour": true, "gloo": true,
		"skipper": true, "appmesh": true},
	MetricBackends: map[string]bool{"prometheus": true, "datadog": true, "newrelic": true, "cloudwatch": true,
		"graphite": true, "influxdb": true, "stackdriver": true, "dynatrace": true, "keptn": true, "splunk": true},
	// APISIX's one canary route carries both backends, so its builtin queries have no primary form.
	ComparableBuiltins: map[string]bool{"kubernetes": true, "traefik": true, "nginx": true, "gatewayapi": true,
		"istio": true, "linkerd": true, "osm": true, "kuma": true, "contour": true, "gloo": true, "skipper": true, "appmesh": true},
	RangeBackends: map[string]bool{"prometheus": true},
}
