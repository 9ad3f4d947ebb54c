package workload

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// selectorLabel finds the label that names the target's pods: the first of SelectorLabels in the selector's
// matchLabels.
func selectorLabel(kind, namespace, name string, sel *metav1.LabelSelector) (key, value string, err error) {
	if sel != nil {
		for _, k := range SelectorLabels {
			if v, ok := sel.MatchLabels[k]; ok && v != "" {
				return k, v, nil
			}
		}
	}
	return "", "", kubeobj.Permanentf("%s %s/%s: spec.selector.matchLabels must contain one of %s "+
		"(canaryflow selects the primary and canary pods by it)", kind, namespace, name, strings.Join(SelectorLabels, ", "))
}

// primaryValue is the selector value of the primary's pods.
func primaryValue(value string) string { return value + "-primary" }

// primaryLabels copies labels with key set to the primary's value.
func primaryLabels(labels map[string]string, key, value string) map[string]string {
	out := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		out[k] = v
	}
	out[key] = value
	return out
}

// renameSelectors points the pod anti-affinity terms and topology spread constraints of a cloned pod spec at the
// primary's pods: a selector label value naming the target's pods (targetValue, or the target's name) is renamed
// to the primary's. Without this the primary's pods would spread against the canary's instead of each other.
func renameSelectors(spec *corev1.PodSpec, targetName, targetValue string) {
	rename := func(s *metav1.LabelSelector) {
		if s == nil {
			return
		}
		for k, v := range s.MatchLabels {
			if slices.Contains(SelectorLabels, k) && (v == targetValue || v == targetName) {
				s.MatchLabels[k] = primaryValue(v)
			}
		}
		for i := range s.MatchExpressions {
			e := &s.MatchExpressions[i]
			if !slices.Contains(SelectorLabels, e.Key) {
				continue
			}
			for j, v := range e.Values {
				if v == targetValue || v == targetName {
					e.Values[j] = primaryValue(v)
				}
			}
		}
	}
	for i := range spec.TopologySpreadConstraints {
		rename(spec.TopologySpreadConstraints[i].LabelSelector)
	}
	if spec.Affinity != nil && spec.Affinity.PodAntiAffinity != nil {
		aa := spec.Affinity.PodAntiAffinity
		for i := range aa.RequiredDuringSchedulingIgnoredDuringExecution {
			rename(aa.RequiredDuringSchedulingIgnoredDuringExecution[i].LabelSelector)
		}
		for i := range aa.PreferredDuringSchedulingIgnoredDuringExecution {
			rename(aa.PreferredDuringSchedulingIgnoredDuringExecution[i].PodAffinityTerm.LabelSelector)
		}
	}
}

// withoutScaleToZero returns the node selector without canaryflow's scale-to-zero key (nil when nothing is left),
// so that a DaemonSet scaled to zero has the same revision, and clones the same, as when it runs.
func withoutScaleToZero(ns map[string]string) map[string]string {
	if _, ok := ns[ScaleToZeroNodeSelector]; !ok {
		return ns
	}
	out := make(map[string]string, len(ns))
	for k, v := range ns {
		if k != ScaleToZeroNodeSelector {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
