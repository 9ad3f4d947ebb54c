package v1beta1

import (
	"math"
	"strings"
	"time"

	"github.com/canaryflow/canaryflow/internal/mannwhitney"
)

// maxComparePoints is Prometheus's limit on the points of one range query series.
const maxComparePoints = 11000

// validateCompare checks a metric's comparison with the primary: values the judge knows, a query source that can
// be read for the primary as a series, and a step that yields enough samples for the test to ever reach its
// confidence. A comparison with a thresholdRange is not ambiguous (the range bounds the canary's value, the
// comparison its shift against the primary; both must pass), so the two are accepted together.
func validateCompare(e *errs, path string, m CanaryMetric, caps *Capabilities, pv provider, refs RefCheck) {
	path += ".compare"
	cmp := m.Compare
	switch cmp.Against {
	case CompareAgainstPrimary, "":
	default:
		e.add(path+".against", "unknown baseline %q: canaryflow compares the canary with the primary (against: primary)", cmp.Against)
	}
	switch cmp.Test {
	case CompareMannWhitney, "":
	default:
		e.add(path+".test", "unknown test %q: use mann-whitney", cmp.Test)
	}
	switch cmp.Direction {
	case CompareIncrease, CompareDecrease, CompareEither:
	case "":
		e.add(path+".direction", "required for metric %q: say which change of the canary fails it: increase (e.g. latency, errors), decrease (e.g. success rate) or either", m.Name)
	default:
		e.add(path+".direction", "unknown direction %q: use increase, decrease or either", cmp.Direction)
	}
	alpha := cmp.Alpha()
	if c := cmp.Confidence; c != nil && !(*c > 0 && *c < 1) {
		e.add(path+".confidence", "%g is outside (0, 1): write it as a fraction, e.g. 0.95 to fail at p < 0.05", *c)
		alpha = 1 - DefaultCompareConfidence
	}
	if s := cmp.MinEffectSize; s != nil && !(*s >= 0) {
		e.add(path+".minEffectSize", "%g is negative: it is the smallest relative change of the medians that fails, e.g. 0.1 for 10%%", *s)
	}

	// The source: a query canaryflow can render for the primary and run as a range query.
	builtin := IsBuiltinMetric(m.Name) && m.TemplateRef == nil && m.Query == ""
	switch {
	case m.Query != "":
		e.add(path, "an inline query runs as written, for the canary only: move it to a MetricTemplate that selects the workload with {{ target }} (rendered as the canary's, then the primary's), and reference it with templateRef")
	case builtin && pv.builtin && !caps.ComparableBuiltins[pv.base]:
		e.add(path, "provider %s's builtin %s query cannot tell the primary's requests from the canary's: use a MetricTemplate that can, or remove compare (providers with a primary form: %s)",
			pv.base, m.Name, strings.Join(sortedKeys(caps.ComparableBuiltins), ", "))
	case m.TemplateRef != nil:
		t, known := refs.TemplateTypes[m.TemplateRef.Namespace+"/"+m.TemplateRef.Name]
		if known && !caps.RangeBackends[t] {
			e.add(path, "MetricTemplate %s/%s queries %s, which cannot return a series: compare needs a range query (%s); remove compare and use thresholdRange",
				m.TemplateRef.Namespace, m.TemplateRef.Name, t, strings.Join(sortedKeys(caps.RangeBackends), ", "))
		}
	}

	// The step: enough samples per side that the test can reach its significance at all.
	interval, ierr := time.ParseDuration(m.Interval)
	step, serr := time.ParseDuration(cmp.Step)
	switch {
	case serr != nil:
		e.add(path+".step", "%q is not a duration: write it like 30s", cmp.Step)
	case step < time.Second:
		e.add(path+".step", "%s is shorter than 1s: samples that close repeat the same scrape", cmp.Step)
	case ierr != nil || interval <= 0:
		// the interval's own error says what to do
	case step > interval:
		e.add(path+".step", "%s is longer than the metric's interval %s: it must split the interval into samples", cmp.Step, m.Interval)
	default:
		n := int(interval/step) + 1
		if n > maxComparePoints {
			e.add(path+".step", "%s gives %d samples over %s, more than Prometheus returns (%d): lengthen the step", cmp.Step, n, m.Interval, maxComparePoints)
			break
		}
		if p := bestPValue(n, cmp.Direction); p >= alpha {
			e.add(path+".step", "%s gives %d samples a side over %s: even a complete separation of canary and primary reaches only p=%.3g, never below %.3g; shorten the step or lengthen the metric's interval",
				cmp.Step, n, m.Interval, p, alpha)
		}
	}
}

// Alpha is the significance level, 1 − confidence (default 0.05), rounded to 12 digits so that 1 − 0.95 is 0.05
// and a p-value of exactly 0.05 is not below it. A check fails only when its p-value is below Alpha.
func (cmp *MetricComparison) Alpha() float64 {
	c := DefaultCompareConfidence
	if cmp.Confidence != nil {
		c = *cmp.Confidence
	}
	return math.Round((1-c)*1e12) / 1e12
}

// bestPValue is the smallest p-value n samples a side can give: canary and primary completely apart.
func bestPValue(n int, d CompareDirection) float64 {
	lo, hi := make([]float64, n), make([]float64, n)
	for i := range n {
		lo[i], hi[i] = float64(i), float64(n+i)
	}
	alt := mannwhitney.Greater
	if d == CompareEither {
		alt = mannwhitney.TwoSided
	}
	r, err := mannwhitney.Test(hi, lo, alt)
	if err != nil {
		return 1
	}
	return r.P
}
