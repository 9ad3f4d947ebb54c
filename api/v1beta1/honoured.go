package v1beta1

import (
	"fmt"
	"slices"
	"strings"
)

// acceptedNotHonoured is the one table of fields canaryflow accepts (they are in Flagger's CRD, so a Flagger
// document loads unchanged) but acts on only in some configurations of this build, or in none. Loading warns,
// naming the field, for every one that is set where nothing acts on it: a field is never dropped in silence.
// Which router acts on which of them is the routers' to say, in what they register (Traffic.Honours); a router
// that starts honouring a field changes its registration, not this table.
//
// Status fields are not listed: status is what Flagger observed, never a request, and is ignored as a whole.
var acceptedNotHonoured = []struct {
	path string
	set  func(*Canary) bool
	// honoured reports whether the workload side acts on the field for this Canary; nil leaves it to the
	// Canary's router (Traffic.Honours).
	honoured func(*Canary) bool
	// what says what the field is for, in the warning.
	what string
}{
	{"spec.service.backendTimeout", func(c *Canary) bool { return c.Spec.Service.BackendTimeout != "" }, nil, "backend request timeout"},
	{"spec.service.mirror", func(c *Canary) bool { return len(c.Spec.Service.Mirror) > 0 }, nil, "request mirrors to other backends"},
	{"spec.service.rewrite", func(c *Canary) bool { return c.Spec.Service.Rewrite != nil }, nil, "URI rewrite"},
	{"spec.service.headers", func(c *Canary) bool { return c.Spec.Service.Headers != nil }, nil, "request and response header changes"},
	{"spec.service.timeout", func(c *Canary) bool { return c.Spec.Service.Timeout != "" }, nil, "request timeout"},
	{"spec.service.match", func(c *Canary) bool { return len(c.Spec.Service.Match) > 0 }, nil, "which requests the route serves"},
	{"spec.service.gatewayRefs", func(c *Canary) bool { return len(c.Spec.Service.GatewayRefs) > 0 }, nil, "Gateway API parentRefs"},
	{"spec.service.hosts", func(c *Canary) bool { return len(c.Spec.Service.Hosts) > 0 }, nil, "host names the route serves"},
	{"spec.analysis.sessionAffinity.domain", affinity(func(s *SessionAffinity) bool { return s.Domain != "" }), nil, "cookie Domain"},
	{"spec.analysis.sessionAffinity.path", affinity(func(s *SessionAffinity) bool { return s.Path != "" }), nil, "cookie Path"},
	{"spec.analysis.sessionAffinity.sameSite", affinity(func(s *SessionAffinity) bool { return s.SameSite != "" }), nil, "cookie SameSite"},
	{"spec.analysis.sessionAffinity.secure", affinity(func(s *SessionAffinity) bool { return s.Secure }), nil, "cookie Secure"},
	{"spec.analysis.sessionAffinity.httpOnly", affinity(func(s *SessionAffinity) bool { return s.HTTPOnly != nil }), nil, "cookie HttpOnly"},
	{"spec.analysis.sessionAffinity.partitioned", affinity(func(s *SessionAffinity) bool { return s.Partitioned }), nil, "cookie Partitioned"},
	{"spec.service.gateways", func(c *Canary) bool { return len(c.Spec.Service.Gateways) > 0 }, nil, "Istio VirtualService gateways"},
	{"spec.service.delegation", func(c *Canary) bool { return c.Spec.Service.Delegation }, nil, "Istio VirtualService delegation"},
	{"spec.service.trafficPolicy", func(c *Canary) bool { return c.Spec.Service.TrafficPolicy != nil }, nil, "Istio DestinationRule traffic policy"},
	{"spec.service.retries", func(c *Canary) bool { return c.Spec.Service.Retries != nil }, nil, "Istio and App Mesh retry policy"},
	{"spec.service.rewrite.type", func(c *Canary) bool {
		return c.Spec.Service.Rewrite != nil && c.Spec.Service.Rewrite.Type != ""
	}, nil, "Gateway API URL rewrite type"},
	{"spec.service.rewrite.uriRegexRewrite", func(c *Canary) bool {
		return c.Spec.Service.Rewrite != nil && c.Spec.Service.Rewrite.URIRegexRewrite != nil
	}, nil, "Istio regular-expression URI rewrite"},
	{"spec.service.corsPolicy", func(c *Canary) bool { return c.Spec.Service.CorsPolicy != nil }, nil, "Istio CORS policy"},
	{"spec.service.meshName", func(c *Canary) bool { return c.Spec.Service.MeshName != "" }, nil, "App Mesh mesh name"},
	{"spec.service.backends", func(c *Canary) bool { return len(c.Spec.Service.Backends) > 0 }, nil, "App Mesh virtual node backends"},

	// KEDA only, as in Flagger: the workload side's, not a router's.
	{"spec.autoscalerRef.primaryScalerQueries", func(c *Canary) bool {
		return c.Spec.AutoscalerRef != nil && len(c.Spec.AutoscalerRef.PrimaryScalerQueries) > 0
	}, func(c *Canary) bool { return c.Spec.AutoscalerRef.Kind == ScaledObjectKind }, "KEDA trigger queries; honoured with autoscalerRef.kind ScaledObject"},
}

func affinity(set func(*SessionAffinity) bool) func(*Canary) bool {
	return func(c *Canary) bool {
		return c.Spec.Analysis != nil && c.Spec.Analysis.SessionAffinity != nil && set(c.Spec.Analysis.SessionAffinity)
	}
}

// NotHonoured returns a warning for every field of c that is set and that this build ignores for it (see
// acceptedNotHonoured), naming the field and the routers of this build that would act on it. A defaulted Canary
// gives exact answers (the provider defaults to kubernetes).
func (c *Canary) NotHonoured(caps *Capabilities) []string {
	if caps == nil {
		return nil // validation says what is missing
	}
	var out, ignored []string
	base := ProviderBase(c.Spec.Provider)
	for _, f := range acceptedNotHonoured {
		if !f.set(c) {
			continue
		}
		if f.honoured != nil {
			if !f.honoured(c) {
				out = append(out, f.path+" is ignored: "+f.what)
			}
			continue
		}
		if slices.Contains(caps.Routers[base].Honours, f.path) || slices.ContainsFunc(ignored, func(p string) bool {
			return strings.HasPrefix(f.path, p+".") // the whole field is named already
		}) {
			continue
		}
		ignored = append(ignored, f.path)
		by := caps.routersWith(func(t Traffic) bool { return slices.Contains(t.Honours, f.path) })
		out = append(out, fmt.Sprintf("%s is ignored: provider %s does not act on it (%s; routers that do: %s)", f.path, base, f.what, by))
	}
	return out
}

// NotHonoured returns a warning for every field of m that this build ignores.
func (m *MetricTemplate) NotHonoured() []string {
	if len(m.Spec.Provider.Headers) > 0 {
		return []string{"spec.provider.headers is ignored: this build does not send them; put them in the secretRef " +
			"Secret under the key \"headers\", one \"Name: value\" per line (prometheus)"}
	}
	return nil
}
