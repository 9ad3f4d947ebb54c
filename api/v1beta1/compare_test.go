package v1beta1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The good document's success-rate range, which each case replaces with its comparison.
const goodRange = "        thresholdRange:\n          min: 99\n"

const templateDoc = "---\napiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: latency, namespace: test}\n" +
	"spec:\n  provider: {type: %s, address: 'http://backend.test:9090', secretRef: {name: s}, region: eu-west-1}\n  query: 'x{pod=~\"{{ target }}-.*\"}'\n"

func TestCompareDefaultsForABuiltinMetric(t *testing.T) {
	doc := strings.Replace(good, goodRange, "        compare: {}\n", 1)
	set, err := Load(strings.NewReader(doc), "doc", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err, "a builtin metric may be judged by comparison alone, without a thresholdRange")
	m := set.Canaries()[0].Spec.Analysis.Metrics[0]
	require.Nil(t, m.ThresholdRange)
	require.Equal(t, &MetricComparison{Against: "primary", Test: "mann-whitney", Direction: CompareDecrease,
		Confidence: ptr(0.95), MinEffectSize: ptr(0.0), Step: "6s"}, m.Compare, "a tenth of the 1m interval")

	doc = strings.Replace(doc, "name: request-success-rate", "name: request-duration", 1)
	set, err = Load(strings.NewReader(doc), "doc", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err)
	require.Equal(t, CompareIncrease, set.Canaries()[0].Spec.Analysis.Metrics[0].Compare.Direction, "a slower canary is the regression")
}

func ptr[T any](v T) *T { return &v }

// A document without compare loads exactly as before: the field stays nil, nothing else changes.
func TestFlaggerDocumentsHaveNoComparison(t *testing.T) {
	set, err := Load(strings.NewReader(good), "doc", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err)
	require.Nil(t, set.Canaries()[0].Spec.Analysis.Metrics[0].Compare)
}

func TestCompareValidationNamesTheFieldAndTheFix(t *testing.T) {
	for _, tc := range []struct {
		name, compare string
		edit          func(string) string // further edits of the document
		path, message string              // empty: valid
	}{
		{name: "together with a thresholdRange", compare: goodRange + "        compare: {confidence: 0.99, minEffectSize: 0.05, step: 10s}\n"},
		{name: "a prometheus MetricTemplate with a direction", compare: "        compare: {direction: increase}\n",
			edit: withTemplate("prometheus")},
		{name: "either direction", compare: "        compare: {direction: either}\n"},
		{name: "unknown test", compare: "        compare: {test: t-test}\n",
			path: "spec.analysis.metrics[0].compare.test", message: `unknown test "t-test": use mann-whitney`},
		{name: "unknown baseline", compare: "        compare: {against: last-release}\n",
			path: "spec.analysis.metrics[0].compare.against", message: "compares the canary with the primary (against: primary)"},
		{name: "unknown direction", compare: "        compare: {direction: up}\n",
			path: "spec.analysis.metrics[0].compare.direction", message: `unknown direction "up": use increase, decrease or either`},
		{name: "confidence above 1", compare: "        compare: {confidence: 95}\n",
			path: "spec.analysis.metrics[0].compare.confidence", message: "95 is outside (0, 1): write it as a fraction, e.g. 0.95"},
		{name: "confidence 0 is not the default", compare: "        compare: {confidence: 0}\n",
			path: "spec.analysis.metrics[0].compare.confidence", message: "0 is outside (0, 1)"},
		{name: "confidence 1", compare: "        compare: {confidence: 1}\n",
			path: "spec.analysis.metrics[0].compare.confidence", message: "1 is outside (0, 1)"},
		{name: "negative effect size", compare: "        compare: {minEffectSize: -0.1}\n",
			path: "spec.analysis.metrics[0].compare.minEffectSize", message: "-0.1 is negative"},
		{name: "a template metric must say its direction", compare: "        compare: {}\n", edit: withTemplate("prometheus"),
			path: "spec.analysis.metrics[0].compare.direction", message: `required for metric "latency": say which change of the canary fails it`},
		{name: "an inline query cannot be rendered for the primary", compare: "        query: sum(up)\n        compare: {direction: decrease}\n",
			edit: func(d string) string { return strings.Replace(d, "name: request-success-rate", "name: up", 1) },
			path: "spec.analysis.metrics[0].compare", message: "an inline query runs as written, for the canary only: move it to a MetricTemplate"},
		{name: "a backend without range queries", compare: "        compare: {direction: increase}\n", edit: withTemplate("cloudwatch"),
			path: "spec.analysis.metrics[0].compare", message: "MetricTemplate test/latency queries cloudwatch, which cannot return a series: compare needs a range query (prometheus)"},
		{name: "a builtin query without a primary form", compare: "        compare: {}\n",
			edit: func(d string) string {
				return strings.Replace(d, "  provider: traefik", "  provider: apisix\n  routeRef: {name: podinfo}", 1)
			},
			path: "spec.analysis.metrics[0].compare", message: "provider apisix's builtin request-success-rate query cannot tell the primary's requests from the canary's"},
		{name: "too few samples to ever be significant", compare: "        compare: {step: 30s}\n",
			path: "spec.analysis.metrics[0].compare.step", message: "30s gives 3 samples a side over 1m: even a complete separation of canary and primary reaches only p=0.05, never below 0.05"},
		{name: "step longer than the interval", compare: "        compare: {step: 2m}\n",
			path: "spec.analysis.metrics[0].compare.step", message: "2m is longer than the metric's interval 1m"},
		{name: "step not a duration", compare: "        compare: {step: often}\n",
			path: "spec.analysis.metrics[0].compare.step", message: `"often" is not a duration`},
		{name: "typo in a compare field", compare: "        compare: {confidance: 0.9}\n",
			path: "spec.analysis.metrics[0].compare.confidance", message: `did you mean "confidence"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(good, goodRange, tc.compare, 1)
			if tc.edit != nil {
				doc = tc.edit(doc)
			}
			_, err := Load(strings.NewReader(doc), "doc", ValidateOptions{Capabilities: designCaps})
			if tc.path == "" {
				require.NoError(t, err)
				return
			}
			var list ErrorList
			require.ErrorAs(t, err, &list)
			require.Equal(t, []string{tc.path}, list.Paths(), "%v", list)
			require.Contains(t, list[0].Message, tc.message)
		})
	}
}

// withTemplate turns metric 0 into a templateRef to a loaded MetricTemplate of the given backend.
func withTemplate(backend string) func(string) string {
	return func(d string) string {
		d = strings.Replace(d, "name: request-success-rate", "name: latency\n        templateRef: {name: latency}", 1)
		return d + strings.Replace(templateDoc, "%s", backend, 1)
	}
}

// The README's compare example is a valid analysis (with the MetricTemplate it references).
func TestTheReadmeCompareExampleValidates(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(b), "## Judge the canary against the primary")
	require.True(t, ok)
	_, block, ok := strings.Cut(section, "```yaml\n")
	require.True(t, ok)
	block, _, _ = strings.Cut(block, "```")
	require.Contains(t, block, "compare:")
	head, _, _ := strings.Cut(good, "  analysis:\n")
	doc := head + block + "    interval: 30s\n    maxWeight: 50\n    stepWeight: 10\n" +
		strings.Replace(templateDoc, "%s", "prometheus", 1)
	doc = strings.Replace(doc, "name: latency", "name: queue-latency", 1)
	set, err := Load(strings.NewReader(doc), "README.md", ValidateOptions{Capabilities: designCaps, RequireTemplates: true})
	require.NoError(t, err)
	metrics := set.Canaries()[0].Spec.Analysis.Metrics
	require.Len(t, metrics, 3)
	for _, m := range metrics {
		require.NotNil(t, m.Compare, m.Name)
	}
}
