package activities_test

import (
	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// The activities take the spec as the workflow passes it: with Flagger's defaults applied once, where the rollout
// was started (RolloutInput.Defaulted). These helpers give a test's hand-written input the same defaults, through
// v1beta1's SetDefaults, instead of the activity guessing them a second time.

// defaultedMetrics applies a Canary's defaults to metrics of a canary in ns, and its templates' own.
func defaultedMetrics(ns string, metrics []v1beta1.CanaryMetric, templates []v1beta1.MetricTemplate) ([]v1beta1.CanaryMetric, []v1beta1.MetricTemplate) {
	c := v1beta1.Canary{}
	c.Namespace = ns
	c.Spec.Analysis = &v1beta1.CanaryAnalysis{Metrics: append([]v1beta1.CanaryMetric(nil), metrics...)}
	c.SetDefaults()
	ts := append([]v1beta1.MetricTemplate(nil), templates...)
	for i := range ts {
		ts[i].SetDefaults()
	}
	return c.Spec.Analysis.Metrics, ts
}

// defaulted is in with the defaults the workflow's input carries.
func defaulted(in activities.MetricChecksInput) activities.MetricChecksInput {
	in.Metrics, in.Templates = defaultedMetrics(in.Canary.Namespace, in.Metrics, in.Templates)
	return in
}

// defaultedChecks is in with the defaults the workflow's input carries.
func defaultedChecks(in activities.ChecksInput) activities.ChecksInput {
	in.Metrics, in.Templates = defaultedMetrics(in.Canary.Namespace, in.Metrics, in.Templates)
	return in
}

// defaultedAlerts is in with the defaults the workflow's input carries: each alert's severity and provider
// namespace, each provider's namespace.
func defaultedAlerts(in activities.AlertInput) activities.AlertInput {
	c := v1beta1.Canary{}
	c.Namespace = in.Event.Canary.Namespace
	c.Spec.Analysis = &v1beta1.CanaryAnalysis{Alerts: append([]v1beta1.CanaryAlert(nil), in.Alerts...)}
	c.SetDefaults()
	in.Alerts = c.Spec.Analysis.Alerts
	in.Providers = append([]v1beta1.AlertProvider(nil), in.Providers...)
	for i := range in.Providers {
		in.Providers[i].SetDefaults()
	}
	return in
}
