package v1beta1

import (
	"fmt"
	"sort"
	"strings"
)

// DefaultProvider is the router provider of a Canary that names none (Flagger's default outside a mesh).
const DefaultProvider = "kubernetes"

// FlaggerProviders are the router providers Flagger knows, by base name (spec.provider without a version suffix).
// A provider among them that this build has no router for is refused by name; any other is unknown.
var FlaggerProviders = []string{"apisix", "appmesh", "contour", "gatewayapi", "gloo", "istio", "kubernetes", "kuma",
	"linkerd", "nginx", "osm", "skipper", "smi", "traefik"}

// ProviderBase strips a version suffix ("gatewayapi:v1beta1" → "gatewayapi", "smi:v1alpha3" → "smi") and
// lower-cases the name; an empty provider is DefaultProvider.
func ProviderBase(provider string) string {
	provider = strings.TrimSpace(provider)
	if provider == "" {
		return DefaultProvider
	}
	base, _, _ := strings.Cut(strings.ToLower(provider), ":")
	return base
}

// ParseProvider reads spec.provider as Flagger's router factory does and returns its base name: the exact
// names apisix, appmesh, contour, istio, kubernetes, kuma, linkerd, nginx, osm, skipper and traefik; a
// version-prefixed appmesh:v1beta2, gatewayapi:v1 or gatewayapi:v1beta1 (Flagger matches these by prefix),
// smi:v1alpha1, smi:v1alpha2 or smi:v1alpha3 with an optional ":<mesh>"; and gloo or gloo:<anything>. An empty
// provider is DefaultProvider.
//
// Flagger sends every other name to its Istio router without a word (a typo, "Istio", a bare "gatewayapi" or
// "smi", "appmesh:v1beta1"); canaryflow refuses them with the names it would take instead.
func ParseProvider(provider string) (string, error) {
	p := strings.TrimSpace(provider)
	if p == "" {
		return DefaultProvider, nil
	}
	switch p {
	case "apisix", "appmesh", "contour", "istio", "kubernetes", "kuma", "linkerd", "nginx", "osm", "skipper", "traefik":
		return p, nil
	}
	base, rest, versioned := strings.Cut(p, ":")
	switch {
	case base == "gloo":
		return base, nil
	case base == "appmesh" && strings.HasPrefix(rest, "v1beta2"):
		return base, nil
	case base == "gatewayapi" && strings.HasPrefix(rest, "v1"):
		return base, nil
	case base == "smi":
		version, _, _ := strings.Cut(rest, ":")
		if version == "v1alpha1" || version == "v1alpha2" || version == "v1alpha3" {
			return base, nil
		}
	}
	lower := strings.ToLower(base)
	switch {
	case lower == "gatewayapi":
		return "", fmt.Errorf("provider %q: write gatewayapi:v1 (or gatewayapi:v1beta1 for the older API); Flagger reads a bare or other %q as istio", provider, p)
	case lower == "smi":
		return "", fmt.Errorf("provider %q: write smi:v1alpha1, smi:v1alpha2 or smi:v1alpha3, optionally followed by :<mesh>; Flagger reads %q as istio", provider, p)
	case lower == "appmesh" && versioned:
		return "", fmt.Errorf("provider %q: write appmesh:v1beta2 (canaryflow routes App Mesh's v1beta2 API); Flagger reads %q as istio", provider, p)
	case contains(FlaggerProviders, lower):
		return "", fmt.Errorf("provider %q: write %s (Flagger matches provider names exactly and reads %q as istio)", provider, lower, p)
	}
	return "", fmt.Errorf("unknown provider %q (Flagger would read it as istio)", provider)
}

// Traffic is what a router provider can do with traffic.
type Traffic struct {
	// Weights: traffic can be split by percentage between primary and canary.
	Weights bool
	// Match: requests can be routed to the canary by headers/cookies (A/B testing).
	Match bool
	// Mirror: traffic to the primary can be copied to the canary (blue/green mirroring).
	Mirror bool
	// SessionAffinity: a client routed to the canary stays there by cookie.
	SessionAffinity bool
	// Honours lists the optional spec fields (paths such as "spec.service.backendTimeout") the router acts on;
	// loading warns for the others that a Canary sets (see NotHonoured).
	Honours []string
}

// Capabilities is what the build that validates can run: validation accepts exactly that. The binaries build it
// from the provider registries (providers/catalog); the spec package itself knows no provider.
type Capabilities struct {
	// Routers holds, by base provider name, what the router of each provider this build has can do.
	Routers map[string]Traffic
	// BuiltinMetrics holds the router providers with builtin request-success-rate and request-duration queries.
	BuiltinMetrics map[string]bool
	// MetricBackends holds the MetricTemplate spec.provider.type values this build can query.
	MetricBackends map[string]bool
	// ComparableBuiltins holds the router providers whose builtin queries have a primary form, so a builtin metric
	// can be compared with the primary.
	ComparableBuiltins map[string]bool
	// RangeBackends holds the MetricTemplate provider types that can read a series (range query), which a
	// comparison needs.
	RangeBackends map[string]bool
}

// RouterNames lists the providers this build has routers for, sorted.
func (c *Capabilities) RouterNames() []string {
	return sortedKeys(c.Routers)
}

// routersWith lists the providers whose router can do what has asks, sorted and comma-separated.
func (c *Capabilities) routersWith(has func(Traffic) bool) string {
	var out []string
	for _, name := range c.RouterNames() {
		if has(c.Routers[name]) {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return "none in this build"
	}
	return strings.Join(out, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The SMI TrafficSplit API versions a provider name can select.
const (
	SMIV1alpha1 = "v1alpha1"
	SMIV1alpha2 = "v1alpha2"
	SMIV1alpha3 = "v1alpha3"
)

// SMIVersion is the TrafficSplit API version a provider name selects, as Flagger's router factory reads it:
// "linkerd" v1alpha1, "osm" v1alpha2, "smi:v1alpha1|v1alpha2|v1alpha3[:<mesh>]" the version named. A bare "smi"
// or another version is an error (Flagger would fall back to Istio).
func SMIVersion(provider string) (string, error) {
	p := strings.ToLower(strings.TrimSpace(provider))
	switch p {
	case "linkerd":
		return SMIV1alpha1, nil
	case "osm":
		return SMIV1alpha2, nil
	}
	for _, v := range []string{SMIV1alpha1, SMIV1alpha2, SMIV1alpha3} {
		if p == "smi:"+v || strings.HasPrefix(p, "smi:"+v+":") {
			return v, nil
		}
	}
	return "", fmt.Errorf("provider %q names no TrafficSplit version: use smi:v1alpha1, smi:v1alpha2 or smi:v1alpha3 (optionally followed by :<mesh>), linkerd or osm", provider)
}
