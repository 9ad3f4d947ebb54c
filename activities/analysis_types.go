// Package activities holds every side effect of a rollout as a Temporal activity: methods on structs that receive
// their dependencies (routers, workload client, metrics, webhooks, notifiers), with typed inputs and results.
// Activities are idempotent and safe to retry; permanent failures are non-retryable application errors.
package activities

import (
	"time"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// CanaryRef is what the analysis activities need to know about the canary under analysis: names, never secrets.
type CanaryRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Target is the target workload's name (spec.targetRef.name).
	Target string `json:"target"`
	// Service is the apex Service name (spec.service.name, default the target's name).
	Service string `json:"service"`
	// Ingress is spec.ingressRef.name (NGINX), Route is spec.routeRef.name (APISIX).
	Ingress string `json:"ingress,omitempty"`
	Route   string `json:"route,omitempty"`
	// Provider is spec.provider (router), MetricsServer spec.metricsServer (may be empty: worker default).
	Provider      string `json:"provider"`
	MetricsServer string `json:"metricsServer,omitempty"`
	// Interval is spec.analysis.interval: it bounds how long one metric query may take (QueryTimeout).
	Interval string `json:"interval,omitempty"`
}

// RefOf returns the CanaryRef of a defaulted Canary.
func RefOf(c *v1beta1.Canary) CanaryRef {
	apex, _, _ := c.ServiceNames()
	r := CanaryRef{
		Namespace:     c.Namespace,
		Name:          c.Name,
		Target:        c.Spec.TargetRef.Name,
		Service:       apex,
		Provider:      c.Spec.Provider,
		MetricsServer: c.Spec.MetricsServer,
	}
	if c.Spec.Analysis != nil {
		r.Interval = c.Spec.Analysis.Interval
	}
	if c.Spec.IngressRef != nil {
		r.Ingress = c.Spec.IngressRef.Name
	}
	if c.Spec.RouteRef != nil {
		r.Route = c.Spec.RouteRef.Name
	}
	return r
}

// Verdict is the outcome of one metric check.
type Verdict string

// Check verdicts. Hold is a check with no data under the "hold" policy: the step halts without a failed check.
const (
	VerdictPass Verdict = "pass"
	VerdictFail Verdict = "fail"
	VerdictHold Verdict = "hold"
)

// CheckResult is the result of one metric check. It is recorded in workflow history and shown by the status query.
type CheckResult struct {
	Metric string `json:"metric"`
	// Query is the rendered query that ran (no credentials in it).
	Query string `json:"query,omitempty"`
	// Value is nil when the query returned no values. A metric judged only by comparison with the primary
	// reports the median of the canary's samples here.
	Value *float64 `json:"value,omitempty"`
	Min   *float64 `json:"min,omitempty"`
	Max   *float64 `json:"max,omitempty"`
	// Verdict: pass, fail, or hold.
	Verdict Verdict `json:"verdict"`
	// Message says why, in Flagger's words: "request-success-rate 53.42 < 99", "no values found", or the query error.
	Message string `json:"message,omitempty"`

	// The comparison with the primary, for metrics with compare (absent otherwise, so older histories decode
	// unchanged): the primary's rendered query, the Mann–Whitney p-value, the significance level it was held to,
	// the effect size (relative change of the canary's median against the primary's: 0.214 is +21.4%) and the
	// number of samples on each side.
	PrimaryQuery   string   `json:"primaryQuery,omitempty"`
	PValue         *float64 `json:"pValue,omitempty"`
	Alpha          *float64 `json:"alpha,omitempty"`
	EffectSize     *float64 `json:"effectSize,omitempty"`
	CanarySamples  int      `json:"canarySamples,omitempty"`
	PrimarySamples int      `json:"primarySamples,omitempty"`
}

// MetricChecksInput asks for every metric check of one analysis step.
type MetricChecksInput struct {
	Canary  CanaryRef              `json:"canary"`
	Metrics []v1beta1.CanaryMetric `json:"metrics"`
	// Templates are the MetricTemplates the metrics reference (they carry secretRef names, never secret values).
	Templates []v1beta1.MetricTemplate `json:"templates,omitempty"`
}

// MetricChecksResult has one CheckResult per metric, in the order of the spec.
type MetricChecksResult struct {
	Results []CheckResult `json:"results"`
}

// WebhookPayload is the JSON body of a webhook call, exactly Flagger's.
type WebhookPayload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase"`
	Checksum  string            `json:"checksum"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// WebhookInput asks for one webhook call (with the hook's own timeout and retries).
type WebhookInput struct {
	Hook    v1beta1.CanaryWebhook `json:"hook"`
	Payload WebhookPayload        `json:"payload"`
}

// WebhookResult is the outcome of one webhook call. A hook that answers "no" is a result (Passed false), not an
// activity error.
type WebhookResult struct {
	Name       string           `json:"name"`
	Type       v1beta1.HookType `json:"type"`
	Passed     bool             `json:"passed"`
	StatusCode int              `json:"statusCode,omitempty"`
	// Reason is the response body (trimmed) or the transport error.
	Reason   string `json:"reason,omitempty"`
	Attempts int    `json:"attempts"`
}

// EventType names a rollout event sent to alerts and event webhooks.
type EventType string

// Rollout events.
const (
	EventInitialized     EventType = "initialized"
	EventNewRevision     EventType = "new-revision"
	EventWaitingApproval EventType = "waiting-approval"
	EventApproved        EventType = "approved"
	EventAdvanced        EventType = "advanced"
	EventHalted          EventType = "halted"
	EventRolledBack      EventType = "rolled-back"
	EventPromoted        EventType = "promoted"
	EventAborted         EventType = "aborted"
)

// Event is one thing that happened in a rollout, as alerts and event webhooks see it.
type Event struct {
	Type     EventType             `json:"type"`
	Severity v1beta1.AlertSeverity `json:"severity"`
	Message  string                `json:"message"`
	Canary   CanaryRef             `json:"canary"`
	Revision string                `json:"revision,omitempty"`
	Phase    string                `json:"phase,omitempty"`
	// Weight is the canary weight when it happened; FailedChecks the failed-check count.
	Weight       int `json:"weight"`
	FailedChecks int `json:"failedChecks"`
	// Checks are the failing (or all) check results behind a halt or rollback.
	Checks []CheckResult `json:"checks,omitempty"`
	// Timestamp comes from workflow time, so replays are deterministic.
	Timestamp time.Time `json:"timestamp"`
}

// AlertInput asks to send one event to the Canary's alerts whose severity admits it.
type AlertInput struct {
	Event  Event                 `json:"event"`
	Alerts []v1beta1.CanaryAlert `json:"alerts"`
	// Providers are the AlertProviders the alerts reference (addresses may live in their secretRef Secrets,
	// which the activity reads; their values never enter workflow input).
	Providers []v1beta1.AlertProvider `json:"providers,omitempty"`
}

// AlertResult says which alerts were sent and which were filtered out by severity.
type AlertResult struct {
	Sent     []string `json:"sent,omitempty"`
	Filtered []string `json:"filtered,omitempty"`
	// Failed maps alert name to the delivery error; a failed alert never fails the rollout.
	Failed map[string]string `json:"failed,omitempty"`
}

// The analysis activities' names, as registered from the methods of Analysis (see analysis.go; RunChecks, the
// one a step calls since the workflow's lean-history version, and ActivityRunChecks are in analysis_checks.go):
//
//	RunMetricChecks(ctx, MetricChecksInput) (MetricChecksResult, error)
//	CallWebhook(ctx, WebhookInput) (WebhookResult, error)
//	SendAlerts(ctx, AlertInput) (AlertResult, error)
const (
	ActivityRunMetricChecks = "RunMetricChecks"
	ActivityCallWebhook     = "CallWebhook"
	ActivitySendAlerts      = "SendAlerts"
)
