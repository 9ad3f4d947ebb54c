package v1beta1

import "fmt"

// KindStatefulSet is the target kind rolled out by partition: the StatefulSet itself is updated pod by pod
// (spec.updateStrategy.rollingUpdate.partition lowered step by step), with no primary copy and no canary
// Service, because a second StatefulSet would need storage of its own (Flagger refuses StatefulSets for that).
const KindStatefulSet = "StatefulSet"

// IsStatefulSet says whether the Canary targets a StatefulSet (a partitioned rollout).
func (c *Canary) IsStatefulSet() bool { return c.Spec.TargetRef.Kind == KindStatefulSet }

// Partitions returns the partitions a StatefulSet of replicas pods steps through, in order, ending at 0 (every
// pod updated: the promotion). Each weight of the analysis (stepWeight up to maxWeight, or stepWeights) is read as
// the share of pods to update, rounded up, and every step updates at least one more pod than the one before, so
// that each analysis step looks at pods that were not measured yet. For 5 replicas and stepWeight 20 it is
// 4,3,2,1,0; for stepWeights 10,50 it is 4,2,0. Nil for replicas < 1.
func (a *CanaryAnalysis) Partitions(replicas int) []int {
	if replicas < 1 {
		return nil
	}
	var out []int
	updated := 0
	for _, w := range a.Weights() {
		n := max((replicas*w+99)/100, updated+1) // ceil(replicas·w/100), and at least one pod more
		if n >= replicas {
			break
		}
		updated = n
		out = append(out, replicas-n)
	}
	return append(out, 0)
}

// UpdatedShare is the percentage of pods a partition leaves updated (rounded down): the share of the traffic the
// StatefulSet's Service sends to the new revision when its pods serve alike.
func UpdatedShare(replicas, partition int) int {
	if replicas < 1 {
		return 0
	}
	return 100 * (replicas - min(max(partition, 0), replicas)) / replicas
}

// validateStatefulSet refuses what makes no sense for a partitioned rollout, naming the field: everything that
// needs a primary copy, a canary Service or router weights.
func (c *Canary) validateStatefulSet(e *errs) {
	s := &c.Spec
	why := "a StatefulSet is rolled out in place by lowering its partition (no primary, no canary Service, the router is left alone)"
	if s.AutoscalerRef != nil {
		e.add("spec.autoscalerRef", "not supported for a StatefulSet: %s, so there is no primary autoscaler to make; remove autoscalerRef", why)
	}
	if base := ProviderBase(s.Provider); base != DefaultProvider {
		e.add("spec.provider", "%q cannot route a StatefulSet's rollout: %s, and its own Service sends each updated pod its share "+
			"of the traffic; use provider %s (or leave it out)", s.Provider, why, DefaultProvider)
	}
	a := s.Analysis
	if a == nil {
		return
	}
	const p = "spec.analysis"
	switch {
	case len(a.Match) > 0:
		e.add(p+".match", "A/B testing needs a router that sends matching requests to a canary: %s; remove match and iterations, use stepWeight", why)
	case a.Iterations > 0:
		e.add(p+".iterations", "blue/green needs a second copy of the workload: %s; remove iterations, use stepWeight or stepWeights", why)
	case !s.SkipAnalysis && a.StepWeight == 0 && len(a.StepWeights) == 0:
		e.add(p+".stepWeight", "required for a StatefulSet: the share of pods each step updates (e.g. 20 updates a fifth of the pods per step), or stepWeights")
	}
	if a.Mirror {
		e.add(p+".mirror", "mirroring needs a router and a canary copy: %s; remove mirror", why)
	}
	if a.SessionAffinity != nil {
		e.add(p+".sessionAffinity", "session affinity needs a router that sets cookies: %s; remove sessionAffinity", why)
	}
	if a.StepWeightPromotion > 0 {
		e.add(p+".stepWeightPromotion", "no traffic moves back to a primary after a StatefulSet's promotion (%s): remove stepWeightPromotion", why)
	}
	for i, m := range a.Metrics {
		path := fmt.Sprintf("%s.metrics[%d]", p, i)
		if m.Compare != nil {
			e.add(path+".compare", "there is no primary to compare with: %s; use a thresholdRange", why)
		}
		if IsBuiltinMetric(m.Name) && m.TemplateRef == nil && m.Query == "" {
			e.add(path+".templateRef", "the builtin %s queries a canary Service, which a StatefulSet does not get: reference a MetricTemplate "+
				"whose query selects the updated pods (e.g. by their controller-revision-hash label)", m.Name)
		}
	}
}
