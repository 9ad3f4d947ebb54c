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
	// The spec arrives defaulted (RolloutInput.Defaulted; the workflow defaults any input that is not): an empty
	// field here is refused like any other invalid value, never defaulted a second time.
	policy := m.OnNoData
	if policy != v1beta1.NoDataFail && policy != v1beta1.NoDataPass && policy != v1beta1.NoDataHold {
		return res, invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: unknown onNoData %q: use fail, pass or hold", m.Name, policy), nil)
	}
	interval := m.Interval
	window, err := time.ParseDuration(interval)
	if err != nil {
		return res, invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: interval %q is not a duration", m.Name, interval), err)
	}
	model := metrics.Model{
		Name: c.Name, Namespace: c.Namespace, Target: c.Target, Service: c.Service,
		Ingress: c.Ingress, Route: c.Route, Interval: interval, Variables: m.TemplateVariables,
	}
	cfg := metrics.Config{Type: "prometheus", Interval: window}
	promAddress := c.MetricsServer
	if promAddress == "" {
		promAddress = a.DefaultMetricsServer
	}
	// render gives the query for one side: the canary (primary false) or the primary, whose workload the query's
	// {{ target }} then names; interval is what {{ interval }} renders as.
	var render func(primary bool, interval string) (string, error)
	switch {
	case m.TemplateRef != nil:
		tpl, err := findTemplate(in.Templates, m.TemplateRef)
		if err != nil {
			return res, invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: %v", m.Name, err), nil)
		}
		p := tpl.Spec.Provider
		cfg.Type, cfg.Address, cfg.Region = p.Type, p.Address, p.Region
		if (cfg.Type == "" || cfg.Type == "prometheus") && cfg.Address == "" {
			cfg.Address = promAddress
		}
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
		render = func(primary bool, interval string) (string, error) {
			q, err := metrics.Render(tpl.Spec.Query, side(model, primary, interval))
			if err != nil {
				return "", invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: MetricTemplate %s: %v", m.Name, tpl.Name, err), err)
			}
			return q, nil
		}
	case m.Query != "":
		// Flagger's inline query: PromQL run as written against the canary's metrics server.
		cfg.Address, cfg.HTTPClient = promAddress, a.httpClient(false)
		render = func(primary bool, _ string) (string, error) {
			if primary {
				return "", invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: compare: an inline query runs as written, for the canary only: move it to a MetricTemplate that selects the workload with {{ target }}", m.Name), nil)
			}
			return m.Query, nil
		}
	case v1beta1.IsBuiltinMetric(m.Name):
		tpl, ok := metrics.BuiltinQuery(c.Provider, m.Name)
		if !ok {
			return res, invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: provider %q has no builtin query; use a MetricTemplate (builtin queries exist for %v)",
				m.Name, v1beta1.ProviderBase(c.Provider), metrics.BuiltinProviders()), nil)
		}
		cfg.Address, cfg.HTTPClient = promAddress, a.httpClient(false)
		render = func(primary bool, interval string) (string, error) {
			q := tpl
			if primary {
				if q, ok = metrics.BuiltinPrimaryQuery(c.Provider, m.Name); !ok {
					return "", invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: compare: provider %q's builtin query has no primary form; use a MetricTemplate (primary forms exist for %v)",
						m.Name, v1beta1.ProviderBase(c.Provider), metrics.BuiltinPrimaryProviders()), nil)
				}
			}
			out, err := metrics.Render(q, side(model, primary, interval))
			if err != nil {
				return "", invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: builtin query: %v", m.Name, err), err)
			}
			return out, nil
		}
	default:
		return res, invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: not a builtin metric and has neither templateRef nor query", m.Name), nil)
	}

	provider, err := metrics.New(cfg)
	if err != nil {
		return res, invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: %v", m.Name, err), err)
	}
	timeout := QueryTimeout(c.Interval)
	if m.Compare == nil || res.Min != nil || res.Max != nil {
		// The fixed range, Flagger's check; with a comparison too, the range is a hard limit checked first.
		query, err := render(false, interval)
		if err != nil {
			return res, err
		}
		res.Query = query
		if err := a.instant(ctx, provider, m, timeout, &res); err != nil || m.Compare == nil || res.Verdict != VerdictPass {
			return res, err
		}
	}
	return res, a.compare(ctx, provider, m, render, timeout, &res)
}

// side is the query model for the canary or the primary (the workload {{ target }} names) with {{ interval }}.
func side(m metrics.Model, primary bool, interval string) metrics.Model {
	if primary {
		m.Target += "-primary"
	}
	m.Interval = interval
	return m
}

// instant runs the metric's query once and judges its value against the metric's range.
func (a *Analysis) instant(ctx context.Context, provider metrics.Provider, m v1beta1.CanaryMetric, timeout time.Duration, res *CheckResult) error {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	value, err := provider.RunQuery(qctx, res.Query)
	if err != nil && ctx.Err() == nil && errors.Is(qctx.Err(), context.DeadlineExceeded) {
		// A backend that accepts the query and never answers fails the check at once (as Flagger's 5 s query
		// timeout does) instead of holding the canary's traffic through minutes of retries.
		res.Verdict, res.Message = VerdictFail, fmt.Sprintf("%s: query timed out after %s: the metrics backend did not answer", m.Name, timeout)
		return nil
	}
	if done, err := queryFailed(m, err, res); done {
		return err
	}
	res.Value = &value
	res.Verdict, res.Message = Judge(m.Name, value, res.Min, res.Max)
	return nil
}

// queryFailed turns a query's error into the check's result (no data, a refused query) or the activity's error
// (a spec problem, an unreachable backend); done is false when there was no error.
func queryFailed(m v1beta1.CanaryMetric, err error, res *CheckResult) (done bool, _ error) {
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, metrics.ErrNoValues):
		res.Verdict, res.Message = NoData(m.Name, m.OnNoData)
		return true, nil
	case errors.Is(err, metrics.ErrInvalidConfig):
		// Found only when the query runs (credentials the worker lacks): as permanent as at construction.
		return true, invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: %v", m.Name, err), err)
	case errors.Is(err, metrics.ErrQueryRejected):
		// As Flagger: a query the backend refuses fails the check, with the backend's explanation.
		res.Verdict, res.Message = VerdictFail, fmt.Sprintf("%s: query failed: %v", m.Name, err)
		return true, nil
	}
	return true, err
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
