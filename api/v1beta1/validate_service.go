package v1beta1

import (
	"fmt"
	"strings"
)

// Values Flagger's CRD allows for the service and cookie options below.
var (
	trafficDistributions = []string{"PreferClose", "PreferSameZone", "PreferSameNode"}
	rewriteTypes         = []string{"ReplacePrefixMatch", "ReplaceFullPath"}
	sameSiteValues       = []string{"Strict", "Lax", "None"}
)

// kedaAPIVersion is the only ScaledObject version canaryflow reads and writes.
const kedaAPIVersion = "keda.sh/v1alpha1"

// validateAutoscalerRef checks spec.autoscalerRef: a name, and a kind canaryflow clones for the primary.
func (c *Canary) validateAutoscalerRef(e *errs) {
	ref := c.Spec.AutoscalerRef
	if ref.Name == "" {
		e.add("spec.autoscalerRef.name", "required: name the HorizontalPodAutoscaler or ScaledObject, or remove autoscalerRef")
	}
	switch ref.Kind {
	case "", HorizontalPodAutoscalerKind:
	case ScaledObjectKind:
		if v := ref.APIVersion; v != "" && v != kedaAPIVersion {
			e.add("spec.autoscalerRef.apiVersion", "%q is not supported for a ScaledObject: use %s", v, kedaAPIVersion)
		}
		if c.Spec.TargetRef.Kind == "DaemonSet" {
			e.add("spec.autoscalerRef.kind", "a ScaledObject cannot scale a DaemonSet: remove autoscalerRef or target a Deployment")
		}
	default:
		e.add("spec.autoscalerRef.kind", "unsupported autoscaler kind %q: use %s or %s (KEDA)", ref.Kind, HorizontalPodAutoscalerKind, ScaledObjectKind)
	}
}

// validateServiceOptions checks the values of the service and cookie options that Flagger's CRD constrains, so a
// wrong one is refused here with its path rather than by the API server in the middle of a rollout.
func (c *Canary) validateServiceOptions(e *errs) {
	s := &c.Spec.Service
	oneOf(e, "spec.service.trafficDistribution", s.TrafficDistribution, trafficDistributions)
	if s.BackendTimeout != "" {
		checkDuration(e, "spec.service.backendTimeout", s.BackendTimeout)
	}
	if s.Rewrite != nil {
		oneOf(e, "spec.service.rewrite.type", s.Rewrite.Type, rewriteTypes)
	}
	for i, m := range s.Mirror {
		p := fmt.Sprintf("spec.service.mirror[%d].backendRef", i)
		ref := m.BackendRef
		if ref.Name == "" {
			e.add(p+".name", "required: name the Service that receives the mirrored requests")
		}
		if ref.Group == "" && (ref.Kind == "" || ref.Kind == "Service") && ref.Port == nil {
			e.add(p+".port", "required for a Service backend: the Service port mirrored requests go to")
		}
		if ref.Port != nil && (*ref.Port < 1 || *ref.Port > 65535) {
			e.add(p+".port", "%d is outside 1–65535", *ref.Port)
		}
	}
	if u := s.UnmanagedMetadata; u != nil {
		for _, f := range []struct {
			field string
			keys  []string
		}{{"labels", u.Labels}, {"annotations", u.Annotations}} {
			for i, k := range f.keys {
				if strings.TrimSpace(k) == "" {
					e.add(fmt.Sprintf("spec.service.unmanagedMetadata.%s[%d]", f.field, i), "empty key: name the label or annotation key canaryflow must leave alone")
				}
			}
		}
	}
	if a := c.Spec.Analysis; a != nil && a.SessionAffinity != nil {
		oneOf(e, "spec.analysis.sessionAffinity.sameSite", a.SessionAffinity.SameSite, sameSiteValues)
	}
}

// oneOf refuses a non-empty value outside allowed.
func oneOf(e *errs, path, value string, allowed []string) {
	if value != "" && !contains(allowed, value) {
		e.add(path, "%q is not allowed: use one of %s", value, strings.Join(allowed, ", "))
	}
}
