package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// Defaults are applied once. An input that says it carries them (the starter's) is used as given; any other
// (written by hand for the Web UI or the temporal CLI, or by an older starter) is defaulted by the workflow,
// Canary, MetricTemplates and AlertProviders alike, without changing the caller's copy.
func TestTheWorkflowDefaultsOnlyAnInputThatIsNotDefaulted(t *testing.T) {
	hand := RolloutInput{
		Canary: v1beta1.Canary{ObjectMeta: metav1.ObjectMeta{Name: "podinfo"},
			Spec: v1beta1.CanarySpec{Analysis: &v1beta1.CanaryAnalysis{
				Metrics: []v1beta1.CanaryMetric{{Name: "rate", TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "rate"}}},
				Alerts:  []v1beta1.CanaryAlert{{Name: "chat", ProviderRef: v1beta1.CrossNamespaceObjectReference{Name: "slack"}}},
			}}},
		Templates:      []v1beta1.MetricTemplate{{ObjectMeta: metav1.ObjectMeta{Name: "rate"}}},
		AlertProviders: []v1beta1.AlertProvider{{ObjectMeta: metav1.ObjectMeta{Name: "slack"}}},
	}
	got := withDefaults(hand)
	require.True(t, got.Defaulted)
	m := got.Canary.Spec.Analysis.Metrics[0]
	require.Equal(t, v1beta1.DefaultNoData, m.OnNoData)
	require.Equal(t, v1beta1.DefaultMetricInterval, m.Interval)
	require.Equal(t, v1beta1.DefaultNamespace, m.TemplateRef.Namespace, "the templateRef names the Canary's namespace")
	require.Equal(t, v1beta1.DefaultNamespace, got.Templates[0].Namespace)
	require.Equal(t, v1beta1.DefaultSeverity, got.Canary.Spec.Analysis.Alerts[0].Severity)
	require.Equal(t, v1beta1.DefaultNamespace, got.AlertProviders[0].Namespace)
	require.Empty(t, hand.Templates[0].Namespace, "the caller's templates are not changed")
	require.Empty(t, hand.AlertProviders[0].Namespace, "the caller's providers are not changed")

}

// The starter's input (Defaulted) reaches the activities as given: the workflow does not default it a second
// time. (A hand-written input is defaulted: TestMetricWithNoValues, "counts as a failed check by default".)
func TestADefaultedInputReachesTheActivitiesAsGiven(t *testing.T) {
	h := newHarness(t)
	c := podinfo(func(c *v1beta1.Canary) { c.Spec.Analysis.Metrics[0].OnNoData = v1beta1.NoDataPass })
	c.SetDefaults()
	c.Spec.Analysis.Metrics[0].Interval = "" // a field the workflow would fill if it defaulted again
	h.runInput(RolloutInput{Canary: c, Defaulted: true})
	require.NotEmpty(t, h.f.metricsIn)
	require.Empty(t, h.f.metricsIn[0].Metrics[0].Interval, "a defaulted input is not defaulted a second time")
	require.Equal(t, v1beta1.NoDataPass, h.f.metricsIn[0].Metrics[0].OnNoData)
}
