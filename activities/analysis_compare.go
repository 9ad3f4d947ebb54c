package activities

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/internal/mannwhitney"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

// compare judges a metric by its comparison with the primary: both series are read over the metric's interval,
// one sample per step, and a Mann–Whitney U test decides whether the canary is shifted in the harmful direction.
func (a *Analysis) compare(ctx context.Context, provider metrics.Provider, m v1beta1.CanaryMetric,
	render func(primary bool, interval string) (string, error), timeout time.Duration, res *CheckResult) error {
	cmp := m.Compare
	if cmp.Against != v1beta1.CompareAgainstPrimary || cmp.Test != v1beta1.CompareMannWhitney {
		return invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: compare: against %q with test %q: canaryflow compares with the primary using mann-whitney", m.Name, cmp.Against, cmp.Test), nil)
	}
	alt, ok := map[v1beta1.CompareDirection]mannwhitney.Alternative{
		v1beta1.CompareIncrease: mannwhitney.Greater, v1beta1.CompareDecrease: mannwhitney.Less, v1beta1.CompareEither: mannwhitney.TwoSided,
	}[cmp.Direction]
	if !ok {
		return invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: compare.direction %q: use increase, decrease or either", m.Name, cmp.Direction), nil)
	}
	window, _ := time.ParseDuration(m.Interval) // checked by the caller
	step, err := time.ParseDuration(cmp.Step)
	if err != nil || step <= 0 {
		return invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: compare.step %q is not a positive duration", m.Name, cmp.Step), err)
	}
	rq, ok := provider.(metrics.RangeQuerier)
	if !ok {
		return invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: compare needs a range query, which this metric's backend cannot run (backends that can: %v): remove compare and use thresholdRange",
			m.Name, metrics.RangeBackends()), nil)
	}
	canaryQuery, err := render(false, cmp.Step)
	if err != nil {
		return err
	}
	primaryQuery, err := render(true, cmp.Step)
	if err != nil {
		return err
	}
	if res.Query == "" {
		res.Query = canaryQuery
	}
	res.PrimaryQuery = primaryQuery

	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var canary, primary []float64
	for _, q := range []struct {
		query string
		into  *[]float64
		who   string
	}{{canaryQuery, &canary, "canary"}, {primaryQuery, &primary, "primary"}} {
		values, err := rq.RunSeriesQuery(qctx, q.query, window, step)
		if err != nil && ctx.Err() == nil && errors.Is(qctx.Err(), context.DeadlineExceeded) {
			res.Verdict, res.Message = VerdictFail, fmt.Sprintf("%s: %s range query timed out after %s: the metrics backend did not answer", m.Name, q.who, timeout)
			return nil
		}
		if q.who == "primary" && errors.Is(err, metrics.ErrNoValues) {
			res.Verdict, res.Message = noPrimaryData(m.Name, m.OnNoData)
			return nil
		}
		if done, err := queryFailed(m, err, res); done {
			return err
		}
		*q.into = values
	}

	t, err := mannwhitney.Test(canary, primary, alt)
	if err != nil {
		return invalid(ErrTypeInvalidMetric, fmt.Sprintf("metric %s: compare: %v", m.Name, err), err)
	}
	canaryMedian, primaryMedian := mannwhitney.Median(canary), mannwhitney.Median(primary)
	effect := mannwhitney.RelativeChange(canaryMedian, primaryMedian)
	alpha := cmp.Alpha()
	minEffect := 0.0
	if cmp.MinEffectSize != nil {
		minEffect = *cmp.MinEffectSize
	}
	res.PValue, res.EffectSize, res.Alpha = &t.P, &effect, &alpha
	res.CanarySamples, res.PrimarySamples = t.N1, t.N2
	if res.Value == nil {
		res.Value = &canaryMedian // the figure the status and the exporter show for a comparison
	}
	res.Verdict, res.Message = JudgeComparison(m.Name, cmp.Direction, t.P, alpha, effect, minEffect)
	return nil
}

// JudgeComparison decides a comparison and words it once, for the workflow's halt and `starter history`:
// "request-duration canary vs primary: +21.4% (p=0.003 < 0.05): fail". The check fails when the p-value is below
// alpha, the medians moved in the harmful direction, and by at least minEffect.
func JudgeComparison(name string, d v1beta1.CompareDirection, p, alpha, effect, minEffect float64) (Verdict, string) {
	harmful := (d == v1beta1.CompareIncrease && effect > 0) || (d == v1beta1.CompareDecrease && effect < 0) ||
		(d == v1beta1.CompareEither && effect != 0)
	significant := p < alpha
	rel := "<"
	if !significant {
		rel = "≥"
	}
	why := ""
	switch {
	case significant && !harmful:
		why = ", in the harmless direction"
	case significant && math.Abs(effect) < minEffect:
		why = ", under minEffectSize " + Percent(minEffect)
	}
	v := VerdictPass
	if significant && harmful && math.Abs(effect) >= minEffect {
		v = VerdictFail
	}
	return v, fmt.Sprintf("%s canary vs primary: %s (p=%s %s %s%s): %s", name, SignedPercent(effect), PValue(p), rel, num(alpha), why, v)
}

// SignedPercent is an effect size as the judge prints it: 0.2143 is "+21.4%"; a change that rounds to nothing
// is "+0.0%", never "-0.0%".
func SignedPercent(f float64) string {
	v := math.Round(f*1000) / 10
	if v == 0 {
		v = 0 // drops the sign of -0
	}
	return fmt.Sprintf("%+.1f%%", v)
}

// Percent is a fraction as a percentage without sign: 0.05 is "5%".
func Percent(f float64) string { return strconv.FormatFloat(f*100, 'f', -1, 64) + "%" }

// PValue prints a p-value with three significant digits: 0.003, 0.41, 2.1e-05.
func PValue(p float64) string { return strconv.FormatFloat(p, 'g', 3, 64) }

// noPrimaryData judges a comparison whose primary series is empty: nothing to compare with, so the metric's
// onNoData policy decides, as for a canary without data.
func noPrimaryData(name string, policy v1beta1.NoDataPolicy) (Verdict, string) {
	switch policy {
	case v1beta1.NoDataPass:
		return VerdictPass, fmt.Sprintf("%s: no values found for the primary (onNoData: pass)", name)
	case v1beta1.NoDataHold:
		return VerdictHold, fmt.Sprintf("%s: no values found for the primary (onNoData: hold): step held", name)
	}
	return VerdictFail, fmt.Sprintf("%s: no values found for the primary: nothing to compare the canary with (is the primary receiving traffic?)", name)
}
