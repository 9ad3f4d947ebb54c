// Package v1beta1 holds canaryflow's spec types: Flagger's flagger.app/v1beta1 kinds Canary, MetricTemplate and
// AlertProvider, with Flagger's JSON field names, so one document works as YAML in a file and as JSON workflow input.
// It also loads, defaults and validates them and derives the rollout strategy.
package v1beta1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Group and version of the kinds in this package.
const (
	Group      = "flagger.app"
	Version    = "v1beta1"
	APIVersion = Group + "/" + Version

	CanaryKind         = "Canary"
	MetricTemplateKind = "MetricTemplate"
	AlertProviderKind  = "AlertProvider"
)

// Canary is the configuration of a progressive rollout of one target workload.
type Canary struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec CanarySpec `json:"spec"`
	// Status is accepted (documents exported with kubectl carry it) and ignored: canaryflow keeps status in the
	// workflow.
	Status *CanaryStatus `json:"status,omitempty"`
}

// CanarySpec is the desired behaviour of a Canary.
type CanarySpec struct {
	// Provider names the router (traefik, nginx, gatewayapi, …); it may carry a version suffix such as
	// "gatewayapi:v1".
	Provider string `json:"provider,omitempty"`
	// MetricsServer is the address of the metrics backend for builtin metrics (Prometheus).
	MetricsServer string `json:"metricsServer,omitempty"`
	// TargetRef is the workload rolled out (a Deployment or DaemonSet in the Canary's namespace).
	TargetRef LocalObjectReference `json:"targetRef"`
	// AutoscalerRef is the target's HorizontalPodAutoscaler or KEDA ScaledObject, cloned for the primary.
	AutoscalerRef *AutoscalerReference `json:"autoscalerRef,omitempty"`
	// IngressRef is the NGINX Ingress cloned for the canary.
	IngressRef *LocalObjectReference `json:"ingressRef,omitempty"`
	// RouteRef is the APISIX route cloned for the canary.
	RouteRef *LocalObjectReference `json:"routeRef,omitempty"`
	// UpstreamRef is the Gloo Upstream whose settings the generated upstreams copy.
	UpstreamRef *CrossNamespaceObjectReference `json:"upstreamRef,omitempty"`
	// Service says how the Services and router objects are generated.
	Service CanaryService `json:"service"`
	// Analysis says how a new revision is tested and promoted.
	Analysis *CanaryAnalysis `json:"analysis,omitempty"`
	// CanaryAnalysis is Flagger's deprecated name for Analysis; loading moves it to Analysis.
	CanaryAnalysis *CanaryAnalysis `json:"canaryAnalysis,omitempty"`
	// ProgressDeadlineSeconds is how long the canary or primary may take to become ready (default 600).
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`
	// SkipAnalysis promotes a new revision without analysing it.
	SkipAnalysis bool `json:"skipAnalysis,omitempty"`
	// RevertOnDeletion restores the target and the apex Service when the Canary is deleted.
	RevertOnDeletion bool `json:"revertOnDeletion,omitempty"`
	// Suspend stops canaryflow from starting rollouts for this Canary; a running one pauses.
	Suspend bool `json:"suspend,omitempty"`
}

// CanaryService says how the apex, primary and canary Services and the router objects are generated.
type CanaryService struct {
	Name          string             `json:"name,omitempty"`
	Port          int32              `json:"port"`
	PortName      string             `json:"portName,omitempty"`
	TargetPort    intstr.IntOrString `json:"targetPort,omitempty"`
	AppProtocol   string             `json:"appProtocol,omitempty"`
	PortDiscovery bool               `json:"portDiscovery,omitempty"`
	Timeout       string             `json:"timeout,omitempty"`
	// Gateways are the Istio gateways of the generated VirtualService.
	Gateways []string `json:"gateways,omitempty"`
	// GatewayRefs are the Gateway API Gateways the generated HTTPRoute attaches to.
	GatewayRefs []ParentReference `json:"gatewayRefs,omitempty"`
	Hosts       []string          `json:"hosts,omitempty"`
	Delegation  bool              `json:"delegation,omitempty"`
	// TrafficPolicy is Istio's DestinationRule traffic policy, passed through as written.
	TrafficPolicy *FreeForm          `json:"trafficPolicy,omitempty"`
	Match         []HTTPMatchRequest `json:"match,omitempty"`
	Rewrite       *HTTPRewrite       `json:"rewrite,omitempty"`
	Retries       *HTTPRetry         `json:"retries,omitempty"`
	Headers       *Headers           `json:"headers,omitempty"`
	CorsPolicy    *CorsPolicy        `json:"corsPolicy,omitempty"`
	MeshName      string             `json:"meshName,omitempty"`
	Backends      []string           `json:"backends,omitempty"`
	Apex          *CustomMetadata    `json:"apex,omitempty"`
	Primary       *CustomMetadata    `json:"primary,omitempty"`
	Canary        *CustomMetadata    `json:"canary,omitempty"`
	// Headless makes the apex, primary and canary Services headless (clusterIP: None), as Flagger does.
	Headless bool `json:"headless,omitempty"`
	// TrafficDistribution is written to the generated Services' spec.trafficDistribution (PreferClose,
	// PreferSameZone, PreferSameNode); the API server decides which values it knows.
	TrafficDistribution string `json:"trafficDistribution,omitempty"`
	// BackendTimeout is the Gateway API HTTPRoute rules' timeouts.backendRequest.
	BackendTimeout string `json:"backendTimeout,omitempty"`
	// Mirror adds a Gateway API RequestMirror filter per entry to the HTTPRoute's rules.
	Mirror []HTTPRequestMirror `json:"mirror,omitempty"`
	// UnmanagedMetadata lists label and annotation keys canaryflow never writes on the objects it generates, so
	// another controller can own them.
	UnmanagedMetadata *UnmanagedMetadata `json:"unmanagedMetadata,omitempty"`
}

// HTTPRequestMirror mirrors the requests of a route to another backend (Gateway API's RequestMirror filter).
type HTTPRequestMirror struct {
	BackendRef MirrorBackendRef `json:"backendRef"`
}

// MirrorBackendRef is the backend mirrored requests go to (Gateway API's BackendObjectReference).
type MirrorBackendRef struct {
	// Group is the API group of the backend; empty means the core group (a Service).
	Group string `json:"group,omitempty"`
	// Kind is the backend's kind, Service when empty.
	Kind      string `json:"kind,omitempty"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Port is required when the backend is a Service.
	Port *int32 `json:"port,omitempty"`
}

// UnmanagedMetadata are label and annotation keys left to others.
type UnmanagedMetadata struct {
	Labels      []string `json:"labels,omitempty"`
	Annotations []string `json:"annotations,omitempty"`
}

// CanaryAnalysis says how a new revision is tested: the schedule, the checks and the gates.
type CanaryAnalysis struct {
	Interval              string             `json:"interval,omitempty"`
	Iterations            int                `json:"iterations,omitempty"`
	Mirror                bool               `json:"mirror,omitempty"`
	MirrorWeight          int                `json:"mirrorWeight,omitempty"`
	MaxWeight             int                `json:"maxWeight,omitempty"`
	StepWeight            int                `json:"stepWeight,omitempty"`
	StepWeights           []int              `json:"stepWeights,omitempty"`
	StepWeightPromotion   int                `json:"stepWeightPromotion,omitempty"`
	Threshold             int                `json:"threshold,omitempty"`
	PrimaryReadyThreshold *int               `json:"primaryReadyThreshold,omitempty"`
	CanaryReadyThreshold  *int               `json:"canaryReadyThreshold,omitempty"`
	Alerts                []CanaryAlert      `json:"alerts,omitempty"`
	Metrics               []CanaryMetric     `json:"metrics,omitempty"`
	Webhooks              []CanaryWebhook    `json:"webhooks,omitempty"`
	Match                 []HTTPMatchRequest `json:"match,omitempty"`
	SessionAffinity       *SessionAffinity   `json:"sessionAffinity,omitempty"`
}

// SessionAffinity keeps a client on the canary (or the primary) once it has been routed there.
type SessionAffinity struct {
	CookieName        string `json:"cookieName,omitempty"`
	PrimaryCookieName string `json:"primaryCookieName,omitempty"`
	// MaxAge of the cookie in seconds (default 86400).
	MaxAge int `json:"maxAge,omitempty"`
	// Domain, Path, SameSite (Strict, Lax or None), Secure, HTTPOnly and Partitioned are the cookie's attributes.
	Domain   string `json:"domain,omitempty"`
	Path     string `json:"path,omitempty"`
	SameSite string `json:"sameSite,omitempty"`
	Secure   bool   `json:"secure,omitempty"`
	// HTTPOnly unset leaves the router's default (Traefik's cookie is HttpOnly, Gateway API's is not, as in
	// Flagger).
	HTTPOnly    *bool `json:"httpOnly,omitempty"`
	Partitioned bool  `json:"partitioned,omitempty"`
}

// NoDataPolicy says what a metric check does when the query returns no value.
type NoDataPolicy string

// The no-data policies: fail counts a failed check (Flagger's behaviour), pass treats the check as passed, hold
// halts the step without counting a failure.
const (
	NoDataFail NoDataPolicy = "fail"
	NoDataPass NoDataPolicy = "pass"
	NoDataHold NoDataPolicy = "hold"
)

// CanaryMetric is one metric check of the analysis.
type CanaryMetric struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	// Threshold is Flagger's deprecated single bound; loading turns it into ThresholdRange.
	Threshold         float64                        `json:"threshold,omitempty"`
	ThresholdRange    *CanaryThresholdRange          `json:"thresholdRange,omitempty"`
	Query             string                         `json:"query,omitempty"`
	TemplateRef       *CrossNamespaceObjectReference `json:"templateRef,omitempty"`
	TemplateVariables map[string]string              `json:"templateVariables,omitempty"`
	// OnNoData is canaryflow's addition: fail (default), pass or hold.
	OnNoData NoDataPolicy `json:"onNoData,omitempty"`
	// Compare is canaryflow's addition (Flagger has no such field): judge the metric by comparing the canary's
	// series with the primary's instead of, or besides, a fixed thresholdRange.
	Compare *MetricComparison `json:"compare,omitempty"`
}

// CompareDirection says which change of the canary against the primary fails the check.
type CompareDirection string

// The directions: increase fails a canary significantly higher than the primary (latency, errors), decrease one
// significantly lower (success rate, throughput), either both.
const (
	CompareIncrease CompareDirection = "increase"
	CompareDecrease CompareDirection = "decrease"
	CompareEither   CompareDirection = "either"
)

// The comparison's only baseline and test today; the fields exist so others can be added without a new schema.
const (
	CompareAgainstPrimary = "primary"
	CompareMannWhitney    = "mann-whitney"
)

// MetricComparison is a statistical judgement of canary against primary: both series are read over the metric's
// interval with a range query, one sample per step, and a Mann–Whitney U test says whether the canary's values
// are shifted in the harmful direction. The check fails when they are, with confidence at least Confidence, and
// the medians differ by at least MinEffectSize. When the metric also has a thresholdRange, the canary's value must
// lie in it as well (the range is a hard limit, the comparison catches what the range is too loose to see).
type MetricComparison struct {
	// Against is the baseline: primary (the default and only one).
	Against string `json:"against,omitempty"`
	// Test is the statistical test: mann-whitney (the default and only one).
	Test string `json:"test,omitempty"`
	// Direction is increase, decrease or either; the builtin metrics default to increase (request-duration) and
	// decrease (request-success-rate), other metrics must say.
	Direction CompareDirection `json:"direction,omitempty"`
	// Confidence is 1 − the significance level, strictly between 0 and 1 (default 0.95: fail at p < 0.05).
	Confidence *float64 `json:"confidence,omitempty"`
	// MinEffectSize is the smallest relative change of the canary's median against the primary's that can fail
	// the check (0.1 = 10%; default 0): a significant but smaller change passes.
	MinEffectSize *float64 `json:"minEffectSize,omitempty"`
	// Step is the spacing of the samples (default a tenth of the metric's interval). The query's {{ interval }}
	// renders as the step, so each sample covers its own window and the samples stay independent, as the test
	// assumes; make it at least twice the scrape interval.
	Step string `json:"step,omitempty"`
}

// CanaryThresholdRange is the range a metric value must lie in for the check to pass.
type CanaryThresholdRange struct {
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// AlertSeverity filters which events an alert receives.
type AlertSeverity string

// The alert severities, from the most to the least chatty.
const (
	SeverityInfo  AlertSeverity = "info"
	SeverityWarn  AlertSeverity = "warn"
	SeverityError AlertSeverity = "error"
)

// CanaryAlert sends the rollout's events to an AlertProvider.
type CanaryAlert struct {
	Name        string                        `json:"name"`
	Severity    AlertSeverity                 `json:"severity,omitempty"`
	ProviderRef CrossNamespaceObjectReference `json:"providerRef"`
}

// HookType is when a webhook is called.
type HookType string

// The webhook types, with Flagger's meaning.
const (
	ConfirmRolloutHook         HookType = "confirm-rollout"
	PreRolloutHook             HookType = "pre-rollout"
	RolloutHook                HookType = "rollout"
	ConfirmTrafficIncreaseHook HookType = "confirm-traffic-increase"
	ConfirmPromotionHook       HookType = "confirm-promotion"
	PostRolloutHook            HookType = "post-rollout"
	RollbackHook               HookType = "rollback"
	EventHook                  HookType = "event"
)

// HookTypes lists every webhook type in the order a rollout meets them.
var HookTypes = []HookType{
	ConfirmRolloutHook, PreRolloutHook, RolloutHook, ConfirmTrafficIncreaseHook,
	ConfirmPromotionHook, PostRolloutHook, RollbackHook, EventHook,
}

// CanaryWebhook is an HTTP call made at one point of the rollout (Flagger's protocol).
type CanaryWebhook struct {
	// Type defaults to rollout, as in Flagger.
	Type       HookType `json:"type,omitempty"`
	Name       string   `json:"name"`
	URL        string   `json:"url"`
	MuteAlert  bool     `json:"muteAlert,omitempty"`
	Timeout    string   `json:"timeout,omitempty"`
	Retries    int      `json:"retries,omitempty"`
	DisableTLS bool     `json:"disableTLS,omitempty"`
	// Metadata is sent as the payload's metadata; values are strings, as in Flagger.
	Metadata *map[string]string `json:"metadata,omitempty"`
}

// CrossNamespaceObjectReference names an object that may live in another namespace.
type CrossNamespaceObjectReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name"`
	Namespace  string `json:"namespace,omitempty"`
}

// LocalObjectReference names an object in the Canary's namespace.
type LocalObjectReference struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name"`
}

// The autoscaler kinds spec.autoscalerRef may name.
const (
	HorizontalPodAutoscalerKind = "HorizontalPodAutoscaler"
	// ScaledObjectKind is KEDA's (keda.sh/v1alpha1).
	ScaledObjectKind = "ScaledObject"
)

// AutoscalerReference names the target's autoscaler.
type AutoscalerReference struct {
	APIVersion            string            `json:"apiVersion,omitempty"`
	Kind                  string            `json:"kind,omitempty"`
	Name                  string            `json:"name"`
	PrimaryScalerQueries  map[string]string `json:"primaryScalerQueries,omitempty"`
	PrimaryScalerReplicas *ScalerReplicas   `json:"primaryScalerReplicas,omitempty"`
}

// ScalerReplicas overrides the primary autoscaler's replica bounds.
type ScalerReplicas struct {
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
}

// CustomMetadata holds labels and annotations to set on generated objects.
type CustomMetadata struct {
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ParentReference is a Gateway API parent (a Gateway and optionally one of its listeners).
type ParentReference struct {
	Group       *string `json:"group,omitempty"`
	Kind        *string `json:"kind,omitempty"`
	Namespace   *string `json:"namespace,omitempty"`
	Name        string  `json:"name"`
	SectionName *string `json:"sectionName,omitempty"`
	Port        *int32  `json:"port,omitempty"`
}

// HTTPMatchRequest is Istio's request match, the form Flagger uses for A/B conditions on every router.
type HTTPMatchRequest struct {
	Name            string                 `json:"name,omitempty"`
	URI             *StringMatch           `json:"uri,omitempty"`
	Scheme          *StringMatch           `json:"scheme,omitempty"`
	Method          *StringMatch           `json:"method,omitempty"`
	Authority       *StringMatch           `json:"authority,omitempty"`
	Headers         map[string]StringMatch `json:"headers,omitempty"`
	Port            uint32                 `json:"port,omitempty"`
	SourceLabels    map[string]string      `json:"sourceLabels,omitempty"`
	Gateways        []string               `json:"gateways,omitempty"`
	QueryParams     map[string]StringMatch `json:"queryParams,omitempty"`
	IgnoreURICase   bool                   `json:"ignoreUriCase,omitempty"`
	WithoutHeaders  map[string]StringMatch `json:"withoutHeaders,omitempty"`
	SourceNamespace string                 `json:"sourceNamespace,omitempty"`
}

// StringMatch matches a string exactly, by prefix, by suffix or by regular expression.
type StringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Suffix string `json:"suffix,omitempty"`
	Regex  string `json:"regex,omitempty"`
}

// HTTPRewrite rewrites the URI or authority of forwarded requests.
type HTTPRewrite struct {
	URI             string        `json:"uri,omitempty"`
	Authority       string        `json:"authority,omitempty"`
	URIRegexRewrite *RegexRewrite `json:"uriRegexRewrite,omitempty"`
	// Type is how a Gateway API URLRewrite replaces the path: ReplacePrefixMatch (the default) or
	// ReplaceFullPath.
	Type string `json:"type,omitempty"`
}

// RegexRewrite rewrites a URI with a regular expression.
type RegexRewrite struct {
	Match   string `json:"match,omitempty"`
	Rewrite string `json:"rewrite,omitempty"`
}

// HTTPRetry is the retry policy of the generated route.
type HTTPRetry struct {
	Attempts      int    `json:"attempts"`
	PerTryTimeout string `json:"perTryTimeout,omitempty"`
	RetryOn       string `json:"retryOn,omitempty"`
}

// Headers are header operations on requests and responses.
type Headers struct {
	Request  *HeaderOperations `json:"request,omitempty"`
	Response *HeaderOperations `json:"response,omitempty"`
}

// HeaderOperations sets, adds and removes headers.
type HeaderOperations struct {
	Set    map[string]string `json:"set,omitempty"`
	Add    map[string]string `json:"add,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

// CorsPolicy is the CORS policy of the generated route.
type CorsPolicy struct {
	AllowOrigin      []string      `json:"allowOrigin,omitempty"`
	AllowOrigins     []StringMatch `json:"allowOrigins,omitempty"`
	AllowMethods     []string      `json:"allowMethods,omitempty"`
	AllowHeaders     []string      `json:"allowHeaders,omitempty"`
	ExposeHeaders    []string      `json:"exposeHeaders,omitempty"`
	MaxAge           string        `json:"maxAge,omitempty"`
	AllowCredentials bool          `json:"allowCredentials,omitempty"`
}

// FreeForm is a JSON object passed through as written (for provider settings canaryflow does not interpret).
type FreeForm map[string]any

// CanaryStatus is Flagger's status block, accepted on load and otherwise unused.
type CanaryStatus struct {
	Phase              string             `json:"phase,omitempty"`
	FailedChecks       int                `json:"failedChecks,omitempty"`
	CanaryWeight       int                `json:"canaryWeight,omitempty"`
	Iterations         int                `json:"iterations,omitempty"`
	LastAppliedSpec    string             `json:"lastAppliedSpec,omitempty"`
	LastPromotedSpec   string             `json:"lastPromotedSpec,omitempty"`
	LastTransitionTime *metav1.Time       `json:"lastTransitionTime,omitempty"`
	TrackedConfigs     *map[string]string `json:"trackedConfigs,omitempty"`
	Conditions         []FreeForm         `json:"conditions,omitempty"`
	// The session affinity cookies Flagger keeps between runs (canaryflow keeps them on the HTTPRoute).
	SessionAffinityCookie         string `json:"sessionAffinityCookie,omitempty"`
	PrimarySessionAffinityCookie  string `json:"primarySessionAffinityCookie,omitempty"`
	PreviousSessionAffinityCookie string `json:"previousSessionAffinityCookie,omitempty"`
}

// MetricTemplate is a reusable metric query and the backend it runs on.
type MetricTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   MetricTemplateSpec `json:"spec"`
	Status *FreeForm          `json:"status,omitempty"`
}

// MetricTemplateSpec is the backend and the query (a Go text/template) of a MetricTemplate.
type MetricTemplateSpec struct {
	Provider MetricTemplateProvider `json:"provider"`
	Query    string                 `json:"query,omitempty"`
}

// MetricTemplateProvider is the metrics backend a template queries.
type MetricTemplateProvider struct {
	// Type is prometheus, datadog, newrelic, cloudwatch, graphite, influxdb, stackdriver, dynatrace, keptn or splunk.
	Type    string `json:"type,omitempty"`
	Address string `json:"address,omitempty"`
	// SecretRef names a Secret with the backend's credentials; it is read inside the activity, never carried in
	// workflow input.
	SecretRef          *corev1.LocalObjectReference `json:"secretRef,omitempty"`
	Region             string                       `json:"region,omitempty"`
	InsecureSkipVerify bool                         `json:"insecureSkipVerify,omitempty"`
	// Headers are extra HTTP request headers for the backend (Flagger v1.44); see NotHonoured.
	Headers map[string][]string `json:"headers,omitempty"`
}

// AlertProvider is a chat or webhook destination for rollout events.
type AlertProvider struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AlertProviderSpec `json:"spec"`
	Status *FreeForm         `json:"status,omitempty"`
}

// AlertProviderSpec is where and how alerts are sent.
type AlertProviderSpec struct {
	// Type is slack, msteams, discord, rocket or gchat.
	Type     string `json:"type"`
	Channel  string `json:"channel,omitempty"`
	Username string `json:"username,omitempty"`
	// Address is the webhook URL; prefer SecretRef (key "address") so the URL's token stays in a Secret.
	Address string `json:"address,omitempty"`
	Proxy   string `json:"proxy,omitempty"`
	// SecretRef names a Secret with keys address, token, proxy; read inside the activity.
	SecretRef     *corev1.LocalObjectReference `json:"secretRef,omitempty"`
	CertSecretRef *corev1.LocalObjectReference `json:"certSecretRef,omitempty"`
}
