package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

// RunMetricChecks runs every metric check of one analysis step and returns one result per metric, in spec order.
// A value outside its range or no value is a result (verdict fail, or what onNoData says), not an error. A spec
// that cannot be checked is a non-retryable InvalidMetric error; a backend that cannot be reached is a plain
// error, which Temporal retries.
func (a *Analysis) RunMetricChecks(ctx context.Context, in MetricChecksInput) (MetricChecksResult, error) {
	out := MetricChecksResult{Results: make([]CheckResult, 0, len(in.Metrics))}
	for _, m := range in.Metrics {
		r, err := a.check(ctx, in, m)
		if err != nil {
			if isApplicationError(err) {
				return MetricChecksResult{}, err
			}
			return MetricChecksResult{}, fmt.Errorf("metric %s of canary %s/%s: %w", m.Name, in.Canary.Namespace, in.Canary.Name, err)
		}
		a.log().Debug("metric check", zap.String("canary", in.Canary.Namespace+"/"+in.Canary.Name),
			zap.String("metric", r.Metric), zap.String("verdict", string(r.Verdict)), zap.String("message", r.Message))
		out.Results = append(out.Results, r)
	}
	return out, nil
}

func (a *Analysis) check(ctx context.Context, in MetricChecksInput, m v1beta1.CanaryMetric) (CheckResult, error) {
	c := in.Canary
	res := CheckResult{Metric: m.Name}
	if m.ThresholdRange != nil {
		res.Min, res.Max = m.ThresholdRange.Min, m.ThresholdRange.Max
	}
	q, err := ResolveMetric(in.Canary, m, in.Templates, a.DefaultMetricsServer)
	if err != nil {
		return res, invalid(ErrTypeInvalidMetric, err.Error(), err)
	}
	cfg, query := q.Config, q.Query
	if tpl := q.Template; tpl != nil {
		p := tpl.Spec.Provider
		cfg.HTTPClient, cfg.Kube = a.httpClient(p.InsecureSkipVerify), a.Kube
		if p.SecretRef != nil && p.SecretRef.Name != "" {
			ns := tpl.Namespace
			if ns == "" {
				ns = c.Namespace
			}
			data, err := a.readSecret(ctx, ns, p.SecretRef.Name)
			if err != nil {
				return res, classify(err, fmt.Sprintf("metric %s: MetricTemplate %s/%s secretRef", m.Name, ns, tpl.Name))
			}
			cfg.Credentials, cfg.HasSecret = data, true
		}
	} else {
		cfg.HTTPClient = a.httpClient(false)
	}
	res.Query = query

	provider, err := metrics.New(cfg)
	if err != nil {
		return res, invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: %v", m.Name, err), err)
	}
	timeout := QueryTimeout(c.Interval)
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	value, err := provider.RunQuery(qctx, query)
	if err != nil && ctx.Err() == nil && errors.Is(qctx.Err(), context.DeadlineExceeded) {
		// A backend that accepts the query and never answers fails the check at once (as Flagger's 5 s query
		// timeout does) instead of holding the canary's traffic through minutes of retries.
		res.Verdict, res.Message = VerdictFail, fmt.Sprintf("%s: query timed out after %s: the metrics backend did not answer", m.Name, timeout)
		return res, nil
	}
	switch {
	case errors.Is(err, metrics.ErrNoValues):
		res.Verdict, res.Message = NoData(m.Name, m.OnNoData)
		return res, nil
	case errors.Is(err, metrics.ErrInvalidConfig):
		// Found only when the query runs (credentials the worker lacks): as permanent as at construction.
		return res, invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: %v", m.Name, err), err)
	case errors.Is(err, metrics.ErrQueryRejected):
		// As Flagger: a query the backend refuses fails the check, with the backend's explanation.
		res.Verdict, res.Message = VerdictFail, fmt.Sprintf("%s: query failed: %v", m.Name, err)
		return res, nil
	case err != nil:
		return res, err
	}
	res.Value = &value
	res.Verdict, res.Message = Judge(m.Name, value, res.Min, res.Max)
	return res, nil
}

// MetricQuery is one metric check resolved from the spec: the backend to ask and the query to run.
type MetricQuery struct {
	// Config names the backend (type, address, region, the metric's interval as its window); the caller adds the
	// HTTP client and the credentials of Template's secretRef.
	Config metrics.Config
	// Template is the MetricTemplate the metric references; nil for builtin metrics and inline queries.
	Template *v1beta1.MetricTemplate
	// Query is the rendered query.
	Query string
}

// ResolveMetric renders metric m of canary c as the analysis runs it: a MetricTemplate's query (templates must hold
// the one it references), Flagger's inline query, or the router's builtin query, each against the canary's
// metrics server or defaultServer when it names none. It reads nothing, so the backtest resolves metrics exactly as
// rollouts do. An error is a problem of the spec, worded "metric <name>: …".
func ResolveMetric(c CanaryRef, m v1beta1.CanaryMetric, templates []v1beta1.MetricTemplate, defaultServer string) (MetricQuery, error) {
	// The spec arrives defaulted (RolloutInput.Defaulted; the workflow defaults any input that is not): an empty
	// field here is refused like any other invalid value, never defaulted a second time.
	policy := m.OnNoData
	if policy != v1beta1.NoDataFail && policy != v1beta1.NoDataPass && policy != v1beta1.NoDataHold {
		return MetricQuery{}, fmt.Errorf("metric %s: unknown onNoData %q: use fail, pass or hold", m.Name, policy)
	}
	interval := m.Interval
	window, err := time.ParseDuration(interval)
	if err != nil {
		return MetricQuery{}, fmt.Errorf("metric %s: interval %q is not a duration", m.Name, interval)
	}
	model := metrics.Model{
		Name: c.Name, Namespace: c.Namespace, Target: c.Target, Service: c.Service,
		Ingress: c.Ingress, Route: c.Route, Interval: interval, Variables: m.TemplateVariables,
	}
	out := MetricQuery{Config: metrics.Config{Type: "prometheus", Interval: window}}
	promAddress := c.MetricsServer
	if promAddress == "" {
		promAddress = defaultServer
	}
	switch {
	case m.TemplateRef != nil:
		tpl, err := findTemplate(templates, m.TemplateRef)
		if err != nil {
			return MetricQuery{}, fmt.Errorf("metric %s: %w", m.Name, err)
		}
		p := tpl.Spec.Provider
		out.Config.Type, out.Config.Address, out.Config.Region = p.Type, p.Address, p.Region
		if (out.Config.Type == "" || out.Config.Type == "prometheus") && out.Config.Address == "" {
			out.Config.Address = promAddress
		}
		out.Template = tpl
		if out.Query, err = metrics.Render(tpl.Spec.Query, model); err != nil {
			return MetricQuery{}, fmt.Errorf("metric %s: MetricTemplate %s: %w", m.Name, tpl.Name, err)
		}
	case m.Query != "":
		// Flagger's inline query: PromQL run as written against the canary's metrics server.
		out.Config.Address, out.Query = promAddress, m.Query
	case v1beta1.IsBuiltinMetric(m.Name):
		tpl, ok := metrics.BuiltinQuery(c.Provider, m.Name)
		if !ok {
			return MetricQuery{}, fmt.Errorf("metric %s: provider %q has no builtin query; use a MetricTemplate (builtin queries exist for %v)",
				m.Name, v1beta1.ProviderBase(c.Provider), metrics.BuiltinProviders())
		}
		out.Config.Address = promAddress
		if out.Query, err = metrics.Render(tpl, model); err != nil {
			return MetricQuery{}, fmt.Errorf("metric %s: builtin query: %w", m.Name, err)
		}
	default:
		return MetricQuery{}, fmt.Errorf("metric %s: not a builtin metric and has neither templateRef nor query", m.Name)
	}
	return out, nil
}

// Decisive returns the index of the result that decides a step's metric checks: the first failure in spec
// order, else the first hold; -1 when every check passed. It is the rule the workflow applies to a step's results
// (recordChecks), so a replay of the analysis decides as a rollout does.
func Decisive(results []CheckResult) int {
	hold := -1
	for i, r := range results {
		switch r.Verdict {
		case VerdictFail:
			return i
		case VerdictHold:
			if hold < 0 {
				hold = i
			}
		}
	}
	return hold
}

// QueryTimeout bounds one metric query: a quarter of the analysis interval, at least Flagger's 5 s and at most
// 30 s, so a step's checks finish well within its interval.
func QueryTimeout(interval string) time.Duration {
	d, err := time.ParseDuration(interval)
	if err != nil {
		d = 0
	}
	return min(max(d/4, 5*time.Second), 30*time.Second)
}

// Judge compares value v of metric name with its range [lo, hi] (either may be nil). Its message is the one wording
// of the check: the workflow halts with it and `starter history` prints it. A failure is worded as Flagger words it:
// "success rate 53.42% < 99%" and "request duration 4.873s > 500ms" for the builtin metrics, "<metric> 3.00 > 1"
// for the others.
func Judge(name string, v float64, lo, hi *float64) (Verdict, string) {
	val := strconv.FormatFloat(v, 'f', 2, 64)
	switch {
	case name == v1beta1.MetricRequestSuccessRate && lo != nil && v < *lo:
		return VerdictFail, fmt.Sprintf("success rate %s%% < %s%%", val, num(*lo))
	case name == v1beta1.MetricRequestDuration && hi != nil && v > *hi:
		return VerdictFail, fmt.Sprintf("request duration %s > %s", millis(v), millis(*hi))
	case lo != nil && v < *lo:
		return VerdictFail, fmt.Sprintf("%s %s < %s", name, val, num(*lo))
	case hi != nil && v > *hi:
		return VerdictFail, fmt.Sprintf("%s %s > %s", name, val, num(*hi))
	case lo != nil && hi != nil:
		return VerdictPass, fmt.Sprintf("%s %s within [%s, %s]", name, val, num(*lo), num(*hi))
	case lo != nil:
		return VerdictPass, fmt.Sprintf("%s %s >= %s", name, val, num(*lo))
	case hi != nil:
		return VerdictPass, fmt.Sprintf("%s %s <= %s", name, val, num(*hi))
	}
	return VerdictPass, fmt.Sprintf("%s %s (no thresholdRange)", name, val)
}

// millis is a duration in milliseconds as Go (and Flagger) print durations: "812ms", "4.873s".
func millis(ms float64) string {
	return time.Duration(ms * float64(time.Millisecond)).Round(time.Millisecond).String()
}

// NoData judges a check whose query returned no values, by the metric's onNoData policy (fail when unset).
func NoData(name string, policy v1beta1.NoDataPolicy) (Verdict, string) {
	switch policy {
	case v1beta1.NoDataPass:
		return VerdictPass, fmt.Sprintf("%s: no values found (onNoData: pass)", name)
	case v1beta1.NoDataHold:
		return VerdictHold, fmt.Sprintf("%s: no values found (onNoData: hold): step held", name)
	}
	return VerdictFail, fmt.Sprintf("%s: no values found (is the canary receiving traffic?)", name)
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func findTemplate(ts []v1beta1.MetricTemplate, ref *v1beta1.CrossNamespaceObjectReference) (*v1beta1.MetricTemplate, error) {
	ns := ref.Namespace
	for i := range ts {
		if ts[i].Name == ref.Name && ts[i].Namespace == ns {
			return &ts[i], nil
		}
	}
	return nil, fmt.Errorf("MetricTemplate %s/%s is not in the input (the starter resolves templateRefs)", ns, ref.Name)
}
