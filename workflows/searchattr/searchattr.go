// Package searchattr defines, in one place, the Temporal search attributes that
// canaryflow sets on rollout workflows. The lab (lab-up) registers exactly the
// list returned by Definitions, so a new attribute is added here and nowhere else.
package searchattr

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Keys of the search attributes set on every CanaryRollout workflow.
var (
	// CanaryName is the Canary's metadata.name.
	CanaryName = temporal.NewSearchAttributeKeyKeyword("CanaryName")
	// CanaryNamespace is the Canary's metadata.namespace.
	CanaryNamespace = temporal.NewSearchAttributeKeyKeyword("CanaryNamespace")
	// CanaryPhase is the rollout phase (Initializing, Progressing, Succeeded, …).
	CanaryPhase = temporal.NewSearchAttributeKeyKeyword("CanaryPhase")
	// CanaryWeight is the canary's current traffic weight in percent.
	CanaryWeight = temporal.NewSearchAttributeKeyInt64("CanaryWeight")
	// CanaryRevision is the checksum of the canary's pod template (the revision under analysis).
	CanaryRevision = temporal.NewSearchAttributeKeyKeyword("CanaryRevision")
	// CanaryProvider is the router provider (traefik, gatewayapi, nginx, …).
	CanaryProvider = temporal.NewSearchAttributeKeyKeyword("CanaryProvider")
)

// Definition is one search attribute: its name and its indexed type.
type Definition struct {
	Name string
	Type enumspb.IndexedValueType
}

// all lists every attribute in a stable order; Definitions derives from it.
var all = []temporal.SearchAttributeKey{
	CanaryName, CanaryNamespace, CanaryPhase, CanaryWeight, CanaryRevision, CanaryProvider,
}

// Definitions returns every search attribute canaryflow uses, in a stable order.
func Definitions() []Definition {
	out := make([]Definition, 0, len(all))
	for _, k := range all {
		out = append(out, Definition{Name: k.GetName(), Type: k.GetValueType()})
	}
	return out
}
