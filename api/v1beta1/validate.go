package v1beta1

import (
	"fmt"
	"net/url"
	"strings"
	"text/template"
	"time"
)

// ValidateOptions says which cross-document references must resolve.
type ValidateOptions struct {
	// RequireTemplates makes a templateRef to a MetricTemplate that is not among the loaded documents an error even
	// when no MetricTemplate was loaded. (When any MetricTemplate is loaded, templates come from files, and every
	// templateRef must resolve among them.)
	RequireTemplates bool
	// RequireAlertProviders does the same for alert providerRefs.
	RequireAlertProviders bool
	// Capabilities is what this build can run (required): routers, builtin metric queries, metric backends.
	Capabilities *Capabilities
}

// Alert provider types AlertProviders may name.
var alertProviderTypes = []string{"slack", "msteams", "discord", "rocket", "gchat"}

// Validate checks every loaded document and the references between them, returning every problem at once.
func (s *Set) Validate(opts ValidateOptions) ErrorList {
	if opts.Capabilities == nil {
		return ErrorList{FieldError{Doc: "validation", Message: "no capabilities given: the caller must say what this build can run (providers/catalog)"}}
	}
	caps := opts.Capabilities
	templates := map[string]bool{}
	templateTypes := map[string]string{}
	for _, t := range s.MetricTemplates() {
		templates[t.Namespace+"/"+t.Name] = true
		templateTypes[t.Namespace+"/"+t.Name] = t.Spec.Provider.Type
	}
	providers := map[string]bool{}
	for _, p := range s.AlertProviders() {
		providers[p.Namespace+"/"+p.Name] = true
	}
	refs := RefCheck{
		Templates:      templates,
		TemplateTypes:  templateTypes,
		CheckTemplates: opts.RequireTemplates || len(templates) > 0,
		Providers:      providers,
		CheckProviders: opts.RequireAlertProviders || len(providers) > 0,
	}
	var all ErrorList
	for _, d := range s.Documents {
		switch {
		case d.Canary != nil:
			all = append(all, d.Canary.validate(d.Label(), caps, refs)...)
		case d.MetricTemplate != nil:
			all = append(all, d.MetricTemplate.Validate(d.Label(), caps)...)
		case d.AlertProvider != nil:
			all = append(all, d.AlertProvider.Validate(d.Label())...)
		}
	}
	return all
}

// RefCheck holds the MetricTemplates and AlertProviders a Canary's references must resolve to ("ns/name" keys).
type RefCheck struct {
	Templates map[string]bool
	// TemplateTypes holds the provider type of each loaded MetricTemplate, so a comparison on a backend that
	// cannot read a series is refused at validation; a template not in it is checked when the metric runs.
	TemplateTypes  map[string]string
	CheckTemplates bool
	Providers      map[string]bool
	CheckProviders bool
}

// Validate checks a defaulted Canary on its own against what this build can run (references are checked by
// Set.Validate or with refs).
func (c *Canary) Validate(caps *Capabilities, refs RefCheck) ErrorList {
	return c.validate(fmt.Sprintf("Canary %s/%s", c.Namespace, c.Name), caps, refs)
}

// provider is what validation knows of a Canary's router provider.
type provider struct {
	base    string
	traffic Traffic
	builtin bool // builtin metric queries exist
}

func (c *Canary) validate(doc string, caps *Capabilities, refs RefCheck) ErrorList {
	e := &errs{doc: doc}
	s := &c.Spec

	// Provider first: the rest depends on what it can do.
	base, perr := ParseProvider(s.Provider)
	if perr != nil {
		base = ProviderBase(s.Provider)
	}
	traffic, built := caps.Routers[base]
	pv := provider{base: base, traffic: traffic, builtin: caps.BuiltinMetrics[base]}
	if perr != nil || !built {
		routers := strings.Join(caps.RouterNames(), ", ")
		if perr != nil {
			e.add("spec.provider", "%v; this build has routers for %s", perr, routers)
		} else if contains(FlaggerProviders, base) {
			e.add("spec.provider", "provider %q has no router in this build of canaryflow: use one of %s", s.Provider, routers)
		} else {
			e.add("spec.provider", "unknown provider %q: use one of %s", s.Provider, routers)
		}
		// Judge the rest as if the provider could do anything, so one wrong provider gives one error.
		pv.traffic, pv.builtin = Traffic{Weights: true, Match: true, Mirror: true, SessionAffinity: true}, true
	}

	switch {
	case s.TargetRef.Name == "":
		e.add("spec.targetRef.name", "required: name the Deployment, DaemonSet or StatefulSet to roll out")
	}
	switch s.TargetRef.Kind {
	case "Deployment", "DaemonSet":
	case KindStatefulSet:
		c.validateStatefulSet(e)
		// The steps are shares of the StatefulSet's pods, not router weights: judge the analysis as if the
		// provider could do anything, so that validateStatefulSet alone says what a StatefulSet cannot do.
		pv.traffic, pv.builtin = Traffic{Weights: true, Match: true, Mirror: true, SessionAffinity: true}, true
	case "":
		e.add("spec.targetRef.kind", "required: set kind: Deployment (or DaemonSet)")
	default:
		e.add("spec.targetRef.kind", "unsupported target kind %q: canaryflow rolls out Deployment, DaemonSet and StatefulSet", s.TargetRef.Kind)
	}
	if v := s.TargetRef.APIVersion; v != "" && v != "apps/v1" {
		e.add("spec.targetRef.apiVersion", "%q is not supported: use apps/v1", v)
	}
	if s.AutoscalerRef != nil && !c.IsStatefulSet() {
		c.validateAutoscalerRef(e)
	}
	c.validateServiceOptions(e)
	if s.ProgressDeadlineSeconds != nil && *s.ProgressDeadlineSeconds <= 0 {
		e.add("spec.progressDeadlineSeconds", "must be positive (default 600)")
	}

	// Service.
	// A StatefulSet gets no Services from canaryflow (its own Service selects every pod): the port may be left out.
	if (s.Service.Port <= 0 && !c.IsStatefulSet()) || s.Service.Port < 0 || s.Service.Port > 65535 {
		e.add("spec.service.port", "required: the ClusterIP port, 1–65535 (e.g. 9898 for podinfo)")
	}
	if s.Service.Timeout != "" {
		checkDuration(e, "spec.service.timeout", s.Service.Timeout)
	}
	for i, g := range s.Service.GatewayRefs {
		if g.Name == "" {
			e.add(fmt.Sprintf("spec.service.gatewayRefs[%d].name", i), "required: name the Gateway the HTTPRoute attaches to")
		}
	}

	// Provider-specific references.
	switch base {
	case "nginx", "skipper":
		if s.IngressRef == nil || s.IngressRef.Name == "" {
			e.add("spec.ingressRef", "required with provider %s: name the Ingress canaryflow clones for the canary", base)
		}
	case "apisix":
		if s.RouteRef == nil || s.RouteRef.Name == "" {
			e.add("spec.routeRef", "required with provider apisix: name the ApisixRoute canaryflow clones for the canary")
		}
	case "smi", "linkerd", "osm":
		if perr != nil {
			break // ParseProvider said what to write
		}
		// Flagger matches linkerd and osm exactly: "linkerd:…" would be its Istio fallback.
		if _, err := SMIVersion(s.Provider); err != nil {
			e.add("spec.provider", "%v", err)
		}
	case "kuma":
		if p := strings.ToLower(strings.TrimSpace(s.Provider)); perr == nil && p != "kuma" {
			e.add("spec.provider", "provider %q: Kuma's router takes no suffix (Flagger would route it with Istio): use kuma", s.Provider)
		}
	case "appmesh":
		// Flagger reads a bare "appmesh" as its router for App Mesh's retired v1beta1 API.
		if p := strings.ToLower(strings.TrimSpace(s.Provider)); perr == nil && p != "appmesh:v1beta2" {
			e.add("spec.provider", "provider %q: canaryflow routes App Mesh's v1beta2 API (appmesh.k8s.aws/v1beta2) only: use appmesh:v1beta2", s.Provider)
		}
	case "gatewayapi":
		if len(s.Service.GatewayRefs) == 0 {
			e.add("spec.service.gatewayRefs", "required with provider gatewayapi: list the Gateways the HTTPRoute attaches to")
		}
	}

	a := s.Analysis
	if a == nil {
		if !s.SkipAnalysis {
			e.add("spec.analysis", "required: set analysis (interval, threshold, stepWeight/maxWeight or iterations), or skipAnalysis: true")
		}
		return e.list
	}
	c.validateAnalysis(e, a, caps, pv, refs)
	return e.list
}

func (c *Canary) validateAnalysis(e *errs, a *CanaryAnalysis, caps *Capabilities, pv provider, refs RefCheck) {
	const p = "spec.analysis"
	base := pv.base
	checkDuration(e, p+".interval", a.Interval)
	if a.Threshold < 0 {
		e.add(p+".threshold", "must not be negative (failed checks before rollback, default 1)")
	}
	if a.Iterations < 0 {
		e.add(p+".iterations", "must not be negative")
	}
	if len(a.StepWeights) == 0 { // with stepWeights, maxWeight is their last entry, checked below
		percent(e, p+".maxWeight", a.MaxWeight)
	}
	percent(e, p+".stepWeight", a.StepWeight)
	percent(e, p+".stepWeightPromotion", a.StepWeightPromotion)
	percent(e, p+".mirrorWeight", a.MirrorWeight)
	if a.PrimaryReadyThreshold != nil {
		percent(e, p+".primaryReadyThreshold", *a.PrimaryReadyThreshold)
	}
	if a.CanaryReadyThreshold != nil {
		percent(e, p+".canaryReadyThreshold", *a.CanaryReadyThreshold)
	}
	if a.StepWeight > a.MaxWeight && a.MaxWeight > 0 {
		e.add(p+".stepWeight", "%d is greater than maxWeight %d: lower stepWeight or raise maxWeight", a.StepWeight, a.MaxWeight)
	}
	for i, w := range a.StepWeights {
		path := fmt.Sprintf("%s.stepWeights[%d]", p, i)
		if w <= 0 || w > 100 {
			e.add(path, "%d is outside 1–100: weights are percentages of traffic", w)
		} else if i > 0 && w <= a.StepWeights[i-1] {
			e.add(path, "%d does not increase on %d: stepWeights must be strictly increasing", w, a.StepWeights[i-1])
		}
	}

	strategy := a.Strategy()
	weighted := strategy == StrategyCanary || strategy == StrategyCanarySessionAffinity
	if len(a.Match) > 0 && a.Iterations == 0 {
		e.add(p+".iterations", "required with match: A/B testing runs for a number of iterations (e.g. 10)")
	}
	if weighted && !c.Spec.SkipAnalysis && a.StepWeight == 0 && len(a.StepWeights) == 0 && !c.IsStatefulSet() {
		if pv.traffic.Weights {
			e.add(p+".stepWeight", "required: set stepWeight (or stepWeights) for a canary, or iterations for blue/green")
		} else {
			e.add(p+".iterations", "required with provider %s: it cannot split traffic by weight, so use blue/green (iterations)", base)
		}
	}
	if !pv.traffic.Weights && (a.StepWeight > 0 || len(a.StepWeights) > 0) {
		e.add(p+".stepWeight", "provider %s cannot split traffic by weight: remove stepWeight/stepWeights and use iterations (blue/green)", base)
	}
	if len(a.Match) > 0 && !pv.traffic.Match {
		e.add(p+".match", "provider %s cannot route by request match: use a provider that can (%s) or remove match", base, caps.routersWith(func(t Traffic) bool { return t.Match }))
	}
	if a.Mirror && !pv.traffic.Mirror {
		e.add(p+".mirror", "provider %s cannot mirror traffic: use a provider that can (%s) or remove mirror", base, caps.routersWith(func(t Traffic) bool { return t.Mirror }))
	}
	if a.SessionAffinity != nil {
		if !pv.traffic.SessionAffinity {
			e.add(p+".sessionAffinity", "provider %s cannot keep session affinity: use a provider that can (%s) or remove sessionAffinity", base, caps.routersWith(func(t Traffic) bool { return t.SessionAffinity }))
		}
		if a.SessionAffinity.CookieName == "" {
			e.add(p+".sessionAffinity.cookieName", "required: name the cookie that keeps a client on the canary")
		}
		if a.SessionAffinity.MaxAge < 0 {
			e.add(p+".sessionAffinity.maxAge", "must not be negative (seconds, default 86400)")
		}
	}
	for i, m := range a.Match {
		if m.isEmpty() {
			e.add(fmt.Sprintf("%s.match[%d]", p, i), "empty match: set headers (exact, prefix, suffix or regex), a cookie header, uri or queryParams")
		}
	}

	names := map[string]bool{}
	for i, m := range a.Metrics {
		path := fmt.Sprintf("%s.metrics[%d]", p, i)
		switch {
		case m.Name == "":
			e.add(path+".name", "required: name the metric (a builtin such as request-success-rate, or your own)")
		case names[m.Name]:
			e.add(path+".name", "duplicate metric name %q: each metric needs its own name", m.Name)
		}
		names[m.Name] = true
		if m.Interval != "" {
			checkDuration(e, path+".interval", m.Interval)
		}
		builtin := IsBuiltinMetric(m.Name) && m.TemplateRef == nil && m.Query == ""
		switch {
		case builtin && !pv.builtin:
			e.add(path+".name", "provider %s has no builtin query for %s: reference a MetricTemplate with templateRef", base, m.Name)
		case !builtin && m.TemplateRef == nil && m.Query == "":
			e.add(path+".templateRef", "metric %q is not builtin (%s, %s): reference a MetricTemplate with templateRef", m.Name, MetricRequestSuccessRate, MetricRequestDuration)
		case m.TemplateRef != nil && m.TemplateRef.Name == "":
			e.add(path+".templateRef.name", "required: name the MetricTemplate")
		case m.TemplateRef != nil && refs.CheckTemplates && !refs.Templates[m.TemplateRef.Namespace+"/"+m.TemplateRef.Name]:
			e.add(path+".templateRef", "MetricTemplate %s/%s is not among the loaded documents: add it to the file or fix the name", m.TemplateRef.Namespace, m.TemplateRef.Name)
		}
		if r := m.ThresholdRange; r != nil && r.Min != nil && r.Max != nil && *r.Min > *r.Max {
			e.add(path+".thresholdRange", "min %g is greater than max %g: no value can pass", *r.Min, *r.Max)
		}
		if m.Compare != nil {
			validateCompare(e, path, m, caps, pv, refs)
		} else if m.ThresholdRange == nil || (m.ThresholdRange.Min == nil && m.ThresholdRange.Max == nil) {
			e.add(path+".thresholdRange", "required: set min and/or max (e.g. min: 99 for a success rate), or compare the canary with the primary (compare)")
		}
		switch m.OnNoData {
		case NoDataFail, NoDataPass, NoDataHold, "":
		default:
			e.add(path+".onNoData", "unknown policy %q: use fail (default), pass or hold", m.OnNoData)
		}
	}

	hookNames := map[string]bool{}
	for i, w := range a.Webhooks {
		path := fmt.Sprintf("%s.webhooks[%d]", p, i)
		if w.Name == "" {
			e.add(path+".name", "required: name the webhook")
		} else if hookNames[w.Name] {
			e.add(path+".name", "duplicate webhook name %q: gates are approved by name, so each needs its own", w.Name)
		}
		hookNames[w.Name] = true
		if !validHookType(w.Type) {
			e.add(path+".type", "unknown webhook type %q: use one of %s", w.Type, hookTypeList())
		}
		if w.URL == "" {
			e.add(path+".url", "required: the http(s) address to POST to")
		} else if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			e.add(path+".url", "%q is not an http(s) URL", redactURL(w.URL))
		} else if where := credentialsIn(u); where != "" {
			e.add(path+".url", "%s: the Canary is the rollout's input and stays readable in its history, so a secret must not be in it; "+
				"let the webhook's receiver authenticate otherwise (a Secret it reads, a network policy)", where)
		}
		checkDuration(e, path+".timeout", w.Timeout)
		if w.Retries < 0 {
			e.add(path+".retries", "must not be negative")
		}
	}

	for i, al := range a.Alerts {
		path := fmt.Sprintf("%s.alerts[%d]", p, i)
		if al.Name == "" {
			e.add(path+".name", "required: name the alert")
		}
		switch al.Severity {
		case SeverityInfo, SeverityWarn, SeverityError, "":
		default:
			e.add(path+".severity", "unknown severity %q: use info, warn or error", al.Severity)
		}
		if al.ProviderRef.Name == "" {
			e.add(path+".providerRef.name", "required: name the AlertProvider")
		} else if refs.CheckProviders && !refs.Providers[al.ProviderRef.Namespace+"/"+al.ProviderRef.Name] {
			e.add(path+".providerRef", "AlertProvider %s/%s is not among the loaded documents: add it to the file or fix the name", al.ProviderRef.Namespace, al.ProviderRef.Name)
		}
	}
}

func (m HTTPMatchRequest) isEmpty() bool {
	return m.URI == nil && m.Scheme == nil && m.Method == nil && m.Authority == nil && len(m.Headers) == 0 &&
		len(m.QueryParams) == 0 && len(m.SourceLabels) == 0 && len(m.WithoutHeaders) == 0 && m.Port == 0
}

// flaggerMetricBackends are the MetricTemplate provider types Flagger knows.
var flaggerMetricBackends = []string{"cloudwatch", "datadog", "dynatrace", "graphite", "influxdb", "keptn", "newrelic",
	"prometheus", "splunk", "stackdriver"}

// metricBackendAddresses are the backends without a well-known server, with an example of the address they need.
var metricBackendAddresses = map[string]string{
	"graphite":  "the Graphite URL, e.g. http://graphite.monitoring:8080",
	"influxdb":  "the InfluxDB URL, e.g. http://influxdb.monitoring:8086",
	"dynatrace": "the environment URL, e.g. https://abc12345.live.dynatrace.com",
	"splunk":    "the realm's API URL, e.g. https://api.us1.signalfx.com",
}

// metricBackendSecrets are the new backends that cannot query without credentials, with the Secret keys
// (Flagger's names) they read.
var metricBackendSecrets = map[string]string{
	"dynatrace":   "dynatrace_token",
	"splunk":      "sf_token_key",
	"stackdriver": "project (and serviceAccountKey, unless the worker has Application Default Credentials)",
}

// Validate checks a MetricTemplate against what this build can query: a backend it has, an address where one is
// needed, a query that parses.
func (m *MetricTemplate) Validate(doc string, caps *Capabilities) ErrorList {
	e := &errs{doc: doc}
	t := m.Spec.Provider.Type
	if !caps.MetricBackends[t] {
		have := strings.Join(sortedKeys(caps.MetricBackends), ", ")
		if contains(flaggerMetricBackends, t) {
			e.add("spec.provider.type", "metric provider %q has no backend in this build of canaryflow: use one of %s", t, have)
		} else {
			e.add("spec.provider.type", "unknown metric provider %q: use one of %s", t, have)
		}
	}
	if a := m.Spec.Provider.Address; a != "" {
		if u, err := url.Parse(a); err != nil || u.Scheme == "" || u.Host == "" {
			e.add("spec.provider.address", "%q is not a URL: write it like http://prometheus.monitoring:9090", a)
		}
	}
	if t == "cloudwatch" && m.Spec.Provider.Region == "" {
		e.add("spec.provider.region", "required with cloudwatch: the AWS region (e.g. us-east-1)")
	}
	if example, ok := metricBackendAddresses[t]; ok && m.Spec.Provider.Address == "" {
		e.add("spec.provider.address", "required with %s: %s", t, example)
	}
	if keys, ok := metricBackendSecrets[t]; ok && (m.Spec.Provider.SecretRef == nil || m.Spec.Provider.SecretRef.Name == "") {
		e.add("spec.provider.secretRef", "required with %s: name a Secret holding %s", t, keys)
	}
	if strings.TrimSpace(m.Spec.Query) == "" {
		e.add("spec.query", "required: the query, a Go template over name, namespace, target, service, ingress, route, interval, variables")
	} else if _, err := template.New(m.Name).Option("missingkey=error").Funcs(TemplateFuncNames()).Parse(m.Spec.Query); err != nil {
		e.add("spec.query", "does not parse as a template: %v", err)
	}
	return e.list
}

// TemplateFuncNames are the functions a MetricTemplate query may call (the values are placeholders for parsing;
// the metrics provider binds the real ones).
func TemplateFuncNames() template.FuncMap {
	noop := func() string { return "" }
	return template.FuncMap{
		"name": noop, "namespace": noop, "target": noop, "service": noop, "ingress": noop, "route": noop,
		"interval": noop, "variables": func() map[string]string { return nil },
	}
}

// Validate checks an AlertProvider: a known type and somewhere to send.
func (p *AlertProvider) Validate(doc string) ErrorList {
	e := &errs{doc: doc}
	if !contains(alertProviderTypes, p.Spec.Type) {
		e.add("spec.type", "unknown alert provider %q: use one of %s", p.Spec.Type, strings.Join(alertProviderTypes, ", "))
	}
	if p.Spec.Address == "" && p.Spec.SecretRef == nil {
		e.add("spec.secretRef", "required: a Secret with the webhook address (key address), or spec.address")
	}
	if a := p.Spec.Address; a != "" {
		if u, err := url.Parse(a); err != nil || u.Scheme == "" || u.Host == "" {
			e.add("spec.address", "is not a URL: write the full https address of the webhook")
		}
	}
	return e.list
}

// credentialQuery are query parameter names (lowercased, "-" and "_" dropped) that carry a credential.
var credentialQuery = []string{"token", "accesstoken", "apikey", "key", "secret", "clientsecret", "password", "passwd", "pwd",
	"auth", "authorization", "sig", "signature", "xamzsignature", "credential", "credentials"}

// credentialsIn says where a URL carries a credential (user info, or a query parameter named like one), "" when it
// does not. The message never repeats the credential.
func credentialsIn(u *url.URL) string {
	if u.User != nil {
		return "carries credentials (user:password@)"
	}
	for k := range u.Query() {
		norm := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(k))
		if contains(credentialQuery, norm) || strings.HasSuffix(norm, "token") || strings.HasSuffix(norm, "secret") {
			return fmt.Sprintf("carries a credential in its query (%s=…)", k)
		}
	}
	return ""
}

// redactURL drops the user info of a URL for messages (an unparsable URL is said without its text).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func checkDuration(e *errs, path, value string) {
	if value == "" {
		return
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		e.add(path, "%q is not a duration: write it like 30s, 1m or 1m30s", value)
		return
	}
	if d <= 0 {
		e.add(path, "%q must be positive", value)
	}
}

func percent(e *errs, path string, v int) {
	if v < 0 || v > 100 {
		e.add(path, "%d is outside 0–100: weights are percentages of traffic", v)
	}
}

func validHookType(t HookType) bool {
	for _, h := range HookTypes {
		if h == t {
			return true
		}
	}
	return false
}

func hookTypeList() string {
	s := make([]string, len(HookTypes))
	for i, h := range HookTypes {
		s[i] = string(h)
	}
	return strings.Join(s, ", ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
