package v1beta1

import (
	"slices"
	"strings"
)

// acceptedNotHonoured is the one table of fields canaryflow accepts (they are in Flagger's CRD, so a Flagger
// document loads unchanged) but acts on only in some configurations of this build, or in none. Loading warns,
// naming the field, for every one that is set where nothing acts on it: a field is never dropped in silence.
// When a router or the workload provider starts honouring a field, its entry changes here and nowhere else.
//
// Status fields are not listed: status is what Flagger observed, never a request, and is ignored as a whole.
var acceptedNotHonoured = []struct {
	path string
	set  func(*Canary) bool
	// honoured reports whether this build acts on the field for this Canary; nil means it never does.
	honoured func(*Canary) bool
	// where says, in the warning, when it is honoured; with honoured nil it says what the field is for.
	where string
}{
	// Gateway API only, as in Flagger.
	{"spec.service.backendTimeout", func(c *Canary) bool { return c.Spec.Service.BackendTimeout != "" }, withProvider("gatewayapi"), "with provider gatewayapi (HTTPRoute timeouts.backendRequest)"},
	{"spec.service.mirror", func(c *Canary) bool { return len(c.Spec.Service.Mirror) > 0 }, withProvider("gatewayapi"), "with provider gatewayapi (HTTPRoute RequestMirror filters)"},
	{"spec.service.rewrite", func(c *Canary) bool { return c.Spec.Service.Rewrite != nil }, withProvider("gatewayapi"), "with provider gatewayapi (HTTPRoute URLRewrite, type included)"},
	{"spec.service.headers", func(c *Canary) bool { return c.Spec.Service.Headers != nil }, withProvider("gatewayapi"), "with provider gatewayapi (HTTPRoute header modifiers)"},
	{"spec.service.timeout", func(c *Canary) bool { return c.Spec.Service.Timeout != "" }, withProvider("gatewayapi"), "with provider gatewayapi (HTTPRoute timeouts.request)"},
	{"spec.service.match", func(c *Canary) bool { return len(c.Spec.Service.Match) > 0 }, withProvider("gatewayapi"), "with provider gatewayapi (HTTPRoute matches)"},
	{"spec.service.gatewayRefs", func(c *Canary) bool { return len(c.Spec.Service.GatewayRefs) > 0 }, withProvider("gatewayapi"), "with provider gatewayapi (HTTPRoute parentRefs)"},
	{"spec.service.hosts", func(c *Canary) bool { return len(c.Spec.Service.Hosts) > 0 }, withProvider("gatewayapi"), "with provider gatewayapi (HTTPRoute hostnames)"},

	// Cookie attributes: both routers that keep session affinity set them, except Partitioned, which Traefik's
	// sticky cookie (v3.6) does not have.
	{"spec.analysis.sessionAffinity.domain", affinity(func(s *SessionAffinity) bool { return s.Domain != "" }), withProvider("gatewayapi", "traefik"), "with provider gatewayapi or traefik"},
	{"spec.analysis.sessionAffinity.path", affinity(func(s *SessionAffinity) bool { return s.Path != "" }), withProvider("gatewayapi", "traefik"), "with provider gatewayapi or traefik"},
	{"spec.analysis.sessionAffinity.sameSite", affinity(func(s *SessionAffinity) bool { return s.SameSite != "" }), withProvider("gatewayapi", "traefik"), "with provider gatewayapi or traefik"},
	{"spec.analysis.sessionAffinity.secure", affinity(func(s *SessionAffinity) bool { return s.Secure }), withProvider("gatewayapi", "traefik"), "with provider gatewayapi or traefik"},
	{"spec.analysis.sessionAffinity.httpOnly", affinity(func(s *SessionAffinity) bool { return s.HTTPOnly != nil }), withProvider("gatewayapi", "traefik"), "with provider gatewayapi or traefik"},
	{"spec.analysis.sessionAffinity.partitioned", affinity(func(s *SessionAffinity) bool { return s.Partitioned }), withProvider("gatewayapi"), "with provider gatewayapi (Traefik's sticky cookie has no Partitioned attribute)"},

	// KEDA only, as in Flagger.
	{"spec.autoscalerRef.primaryScalerQueries", func(c *Canary) bool {
		return c.Spec.AutoscalerRef != nil && len(c.Spec.AutoscalerRef.PrimaryScalerQueries) > 0
	},
		func(c *Canary) bool { return c.Spec.AutoscalerRef.Kind == ScaledObjectKind }, "with autoscalerRef.kind ScaledObject (KEDA trigger queries)"},

	// Fields of routers this build does not have.
	{"spec.service.gateways", func(c *Canary) bool { return len(c.Spec.Service.Gateways) > 0 }, nil, "Istio VirtualService gateways"},
	{"spec.service.delegation", func(c *Canary) bool { return c.Spec.Service.Delegation }, nil, "Istio VirtualService delegation"},
	{"spec.service.trafficPolicy", func(c *Canary) bool { return c.Spec.Service.TrafficPolicy != nil }, nil, "Istio DestinationRule traffic policy"},
	{"spec.service.retries", func(c *Canary) bool { return c.Spec.Service.Retries != nil }, nil, "Istio and App Mesh retry policy"},
	{"spec.service.rewrite.uriRegexRewrite", func(c *Canary) bool {
		return c.Spec.Service.Rewrite != nil && c.Spec.Service.Rewrite.URIRegexRewrite != nil
	}, nil, "Istio regular-expression URI rewrite"},
	{"spec.service.corsPolicy", func(c *Canary) bool { return c.Spec.Service.CorsPolicy != nil }, nil, "Istio CORS policy"},
	{"spec.service.meshName", func(c *Canary) bool { return c.Spec.Service.MeshName != "" }, nil, "App Mesh mesh name"},
	{"spec.service.backends", func(c *Canary) bool { return len(c.Spec.Service.Backends) > 0 }, nil, "App Mesh virtual node backends"},
}

func withProvider(names ...string) func(*Canary) bool {
	return func(c *Canary) bool {
		base, _, _ := strings.Cut(c.Spec.Provider, ":")
		return slices.Contains(names, base)
	}
}

func affinity(set func(*SessionAffinity) bool) func(*Canary) bool {
	return func(c *Canary) bool {
		return c.Spec.Analysis != nil && c.Spec.Analysis.SessionAffinity != nil && set(c.Spec.Analysis.SessionAffinity)
	}
}

// NotHonoured returns a warning for every field of c that is set and that this build ignores for it (see
// acceptedNotHonoured), naming the field and when it would be honoured. A defaulted Canary gives exact answers
// (the provider defaults to kubernetes).
func (c *Canary) NotHonoured() []string {
	var out []string
	for _, f := range acceptedNotHonoured {
		if !f.set(c) || (f.honoured != nil && f.honoured(c)) {
			continue
		}
		if f.honoured == nil {
			out = append(out, f.path+" is ignored: this build does not implement it ("+f.where+")")
			continue
		}
		out = append(out, f.path+" is ignored: canaryflow honours it only "+f.where)
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
