package v1beta1

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// Flagger's defaults, which canaryflow matches.
const (
	DefaultInterval                = 60 * time.Second
	MinInterval                    = 10 * time.Second
	DefaultThreshold               = 1
	DefaultMaxWeight               = 100
	DefaultWebhookTimeout          = 10 * time.Second
	DefaultMetricInterval          = "1m"
	DefaultProgressDeadlineSeconds = 600
	DefaultReadyThreshold          = 100
	DefaultPortName                = "http"
	DefaultNamespace               = "default"
	DefaultCookieMaxAge            = 86400
	DefaultSeverity                = SeverityInfo
	DefaultNoData                  = NoDataFail
	DefaultCompareConfidence       = 0.95
	// DefaultCompareSteps is how many steps of the metric's interval a comparison's samples are spaced by.
	DefaultCompareSteps = 10
)

// Builtin metric names with a query per router provider.
const (
	MetricRequestSuccessRate = "request-success-rate"
	MetricRequestDuration    = "request-duration"
)

// IsBuiltinMetric reports whether name is one of the builtin metrics.
func IsBuiltinMetric(name string) bool {
	return name == MetricRequestSuccessRate || name == MetricRequestDuration
}

// SetDefaults fills every field Flagger defaults with Flagger's value, so the spec a workflow receives is explicit
// and its history shows the values in force. It is idempotent. It returns warnings for values it changed from
// what was written (never silently).
func (c *Canary) SetDefaults() []string {
	var warnings []string
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = CanaryKind
	}
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	s := &c.Spec
	if s.Provider == "" {
		s.Provider = DefaultProvider
	}
	if s.TargetRef.APIVersion == "" && (s.TargetRef.Kind == "Deployment" || s.TargetRef.Kind == "DaemonSet") {
		s.TargetRef.APIVersion = "apps/v1"
	}
	if s.Analysis == nil && s.CanaryAnalysis != nil {
		s.Analysis, s.CanaryAnalysis = s.CanaryAnalysis, nil
		warnings = append(warnings, "spec.canaryAnalysis is deprecated: read as spec.analysis")
	}
	if s.ProgressDeadlineSeconds == nil {
		v := int32(DefaultProgressDeadlineSeconds)
		s.ProgressDeadlineSeconds = &v
	}
	if s.Service.Name == "" {
		s.Service.Name = s.TargetRef.Name
	}
	if s.Service.PortName == "" {
		s.Service.PortName = DefaultPortName
	}
	if s.Service.TargetPort.Type == intstr.Int && s.Service.TargetPort.IntVal == 0 {
		s.Service.TargetPort = intstr.FromInt32(s.Service.Port)
	}
	a := s.Analysis
	if a == nil {
		return warnings
	}
	if a.Interval == "" {
		a.Interval = DefaultInterval.String()
	} else if d, err := time.ParseDuration(a.Interval); err == nil && d < MinInterval {
		warnings = append(warnings, "spec.analysis.interval "+a.Interval+" is below the 10s minimum: using 10s (as Flagger)")
		a.Interval = MinInterval.String()
	}
	if a.Threshold <= 0 {
		a.Threshold = DefaultThreshold
	}
	if a.MaxWeight <= 0 {
		a.MaxWeight = DefaultMaxWeight
	}
	if len(a.StepWeights) > 0 {
		if a.StepWeight > 0 {
			warnings = append(warnings, "spec.analysis.stepWeight is ignored because stepWeights is set (as Flagger)")
			a.StepWeight = 0
		}
		a.MaxWeight = a.StepWeights[len(a.StepWeights)-1]
	}
	if a.PrimaryReadyThreshold == nil {
		v := DefaultReadyThreshold
		a.PrimaryReadyThreshold = &v
	}
	if a.CanaryReadyThreshold == nil {
		v := DefaultReadyThreshold
		a.CanaryReadyThreshold = &v
	}
	if a.Mirror && a.MirrorWeight == 0 {
		a.MirrorWeight = 100
	}
	if a.SessionAffinity != nil && a.SessionAffinity.MaxAge == 0 {
		a.SessionAffinity.MaxAge = DefaultCookieMaxAge
	}
	for i := range a.Metrics {
		m := &a.Metrics[i]
		if m.Interval == "" {
			m.Interval = DefaultMetricInterval
		}
		if m.OnNoData == "" {
			m.OnNoData = DefaultNoData
		}
		if m.Threshold != 0 && m.ThresholdRange == nil {
			// Flagger's deprecated threshold is a lower bound for the success rate and an upper bound otherwise.
			v := m.Threshold
			if m.Name == MetricRequestSuccessRate {
				m.ThresholdRange = &CanaryThresholdRange{Min: &v}
			} else {
				m.ThresholdRange = &CanaryThresholdRange{Max: &v}
			}
			m.Threshold = 0
			warnings = append(warnings, "spec.analysis.metrics["+m.Name+"].threshold is deprecated: read as thresholdRange")
		}
		if m.TemplateRef != nil && m.TemplateRef.Namespace == "" {
			m.TemplateRef.Namespace = c.Namespace
		}
		if m.Compare != nil {
			m.Compare.setDefaults(m)
		}
	}
	for i := range a.Webhooks {
		w := &a.Webhooks[i]
		if w.Type == "" {
			w.Type = RolloutHook
		}
		if w.Timeout == "" {
			w.Timeout = DefaultWebhookTimeout.String()
		}
	}
	for i := range a.Alerts {
		al := &a.Alerts[i]
		if al.Severity == "" {
			al.Severity = DefaultSeverity
		}
		if al.ProviderRef.Namespace == "" {
			al.ProviderRef.Namespace = c.Namespace
		}
	}
	return warnings
}

// SetDefaults fills the namespace and the provider type (prometheus).
func (m *MetricTemplate) SetDefaults() {
	if m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
	if m.Spec.Provider.Type == "" {
		m.Spec.Provider.Type = "prometheus"
	}
}

// SetDefaults fills the namespace.
func (p *AlertProvider) SetDefaults() {
	if p.Namespace == "" {
		p.Namespace = DefaultNamespace
	}
}

// ServiceNames returns the apex, primary and canary Service names.
func (c *Canary) ServiceNames() (apex, primary, canary string) {
	apex = c.Spec.Service.Name
	if apex == "" {
		apex = c.Spec.TargetRef.Name
	}
	return apex, apex + "-primary", apex + "-canary"
}

// IntervalDuration is the analysis interval, defaulted and clamped as Flagger does.
func (a *CanaryAnalysis) IntervalDuration() time.Duration {
	if a == nil || a.Interval == "" {
		return DefaultInterval
	}
	d, err := time.ParseDuration(a.Interval)
	if err != nil {
		return DefaultInterval
	}
	if d < MinInterval {
		return MinInterval
	}
	return d
}

// ProgressDeadline is the time the canary or the primary may take to become ready.
func (c *Canary) ProgressDeadline() time.Duration {
	if c.Spec.ProgressDeadlineSeconds == nil {
		return DefaultProgressDeadlineSeconds * time.Second
	}
	return time.Duration(*c.Spec.ProgressDeadlineSeconds) * time.Second
}

// TimeoutDuration is the webhook's timeout (default 10s).
func (w *CanaryWebhook) TimeoutDuration() time.Duration {
	d, err := time.ParseDuration(w.Timeout)
	if err != nil || d <= 0 {
		return DefaultWebhookTimeout
	}
	return d
}

// MetadataMap returns the webhook's metadata, never nil.
func (w *CanaryWebhook) MetadataMap() map[string]string {
	if w.Metadata == nil {
		return map[string]string{}
	}
	return *w.Metadata
}

// WorkflowID is the ID of a Canary's rollout workflow: one open execution per canary.
func (c *Canary) WorkflowID() string {
	return WorkflowID(c.Namespace, c.Name)
}

// WorkflowID is the rollout workflow ID of the canary namespace/name.
func WorkflowID(namespace, name string) string {
	return "canary/" + namespace + "/" + name
}

// setDefaults fills a comparison's defaults; the direction only for the builtin metrics, whose harmful direction
// is known.
func (cmp *MetricComparison) setDefaults(m *CanaryMetric) {
	if cmp.Against == "" {
		cmp.Against = CompareAgainstPrimary
	}
	if cmp.Test == "" {
		cmp.Test = CompareMannWhitney
	}
	if cmp.Direction == "" && m.TemplateRef == nil && m.Query == "" {
		switch m.Name {
		case MetricRequestDuration:
			cmp.Direction = CompareIncrease
		case MetricRequestSuccessRate:
			cmp.Direction = CompareDecrease
		}
	}
	if cmp.Confidence == nil {
		v := DefaultCompareConfidence
		cmp.Confidence = &v
	}
	if cmp.MinEffectSize == nil {
		v := 0.0
		cmp.MinEffectSize = &v
	}
	if cmp.Step == "" {
		if d, err := time.ParseDuration(m.Interval); err == nil && d > 0 {
			cmp.Step = shortDuration(max(d/DefaultCompareSteps, time.Second).Truncate(time.Second))
		}
	}
}

// shortDuration writes whole seconds as PromQL writes durations ("6s", "90s", "2m"), since the step renders
// into queries as {{ interval }}.
func shortDuration(d time.Duration) string {
	if d%time.Minute == 0 {
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
