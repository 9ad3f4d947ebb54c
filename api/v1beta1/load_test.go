package v1beta1

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFlaggerDocumentsLoadWithTheirStrategyAndSchedule(t *testing.T) {
	cases := []struct {
		file     string
		strategy Strategy
		schedule string
	}{
		{"traefik-canary.yaml", StrategyCanary, "5,10,…,50 → promote"},
		{"traefik-ab-testing.yaml", StrategyABTesting, "10 iterations on matching requests → promote"},
		{"traefik-blue-green.yaml", StrategyBlueGreen, "10 iterations → switch → promote"},
		{"traefik-blue-green-mirroring.yaml", StrategyBlueGreenMirroring, "10 iterations mirrored (100%) → switch → promote"},
		{"traefik-session-affinity.yaml", StrategyCanarySessionAffinity, "1,5,10,20,30,50 → promote (25,0)"},
		{"apisix-canary.yaml", StrategyCanary, "5,10,…,50 → promote"},
		{"apisix-ab-testing.yaml", StrategyABTesting, "10 iterations on matching requests → promote"},
		{"apisix-blue-green.yaml", StrategyBlueGreen, "10 iterations → switch → promote"},
		{"apisix-blue-green-mirroring.yaml", StrategyBlueGreenMirroring, "10 iterations mirrored (100%) → switch → promote"},
		{"nginx-canary.yaml", StrategyCanary, "5,10,…,50 → promote"},
		{"nginx-ab-testing.yaml", StrategyABTesting, "10 iterations on matching requests → promote"},
		{"nginx-blue-green.yaml", StrategyBlueGreen, "10 iterations → switch → promote"},
		{"nginx-blue-green-mirroring.yaml", StrategyBlueGreenMirroring, "10 iterations mirrored (100%) → switch → promote"},
		{"nginx-session-affinity.yaml", StrategyCanarySessionAffinity, "1,5,10,20,30,50 → promote (25,0)"},
		{"nginx-custom-metrics.yaml", StrategyCanary, "10,25,50 → promote"},
		{"istio-canary.yaml", StrategyCanary, "10,20,30,40,50 → promote"},
		{"istio-ab-testing.yaml", StrategyABTesting, "10 iterations on matching requests → promote"},
		{"istio-blue-green-mirroring.yaml", StrategyBlueGreenMirroring, "10 iterations mirrored (50%) → switch → promote"},
		{"istio-session-affinity.yaml", StrategyCanarySessionAffinity, "2,4,…,50 → promote"},
		{"contour-canary.yaml", StrategyCanary, "5,10,…,50 → promote"},
		{"contour-ab-testing.yaml", StrategyABTesting, "10 iterations on matching requests → promote"},
		{"skipper-canary.yaml", StrategyCanary, "5,10,…,50 → promote"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			set, err := LoadFile(filepath.Join("testdata", "flagger", tc.file), ValidateOptions{Capabilities: designCaps})
			require.NoError(t, err)
			canaries := set.Canaries()
			require.Len(t, canaries, 1)
			c := canaries[0]
			assert.Equal(t, "test", c.Namespace)
			assert.Equal(t, "podinfo", c.Spec.TargetRef.Name)
			assert.Equal(t, tc.strategy, c.Strategy())
			assert.Equal(t, tc.schedule, c.Schedule())
		})
	}
}

func TestApisixSessionAffinityIsRefusedBecauseTheRouterCannotDoIt(t *testing.T) {
	_, err := LoadFile(filepath.Join("testdata", "flagger", "apisix-session-affinity.yaml"), ValidateOptions{Capabilities: designCaps})
	var list ErrorList
	require.ErrorAs(t, err, &list)
	assert.Equal(t, []string{"spec.analysis.sessionAffinity"}, list.Paths())
	assert.Contains(t, err.Error(), "provider apisix cannot keep session affinity")
}

func TestDefaultsAreFlaggers(t *testing.T) {
	set, err := Load(strings.NewReader(`
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo}
spec:
  targetRef: {kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    iterations: 5
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
    webhooks:
      - name: load
        url: http://loadtester/
`), "inline", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err)
	c := set.Canaries()[0]
	a := c.Spec.Analysis
	assert.Equal(t, "default", c.Namespace)
	assert.Equal(t, "kubernetes", c.Spec.Provider, "no provider means kubernetes")
	assert.Equal(t, "1m0s", a.Interval)
	assert.Equal(t, 1, a.Threshold)
	assert.Equal(t, 100, a.MaxWeight)
	assert.Equal(t, 100, *a.PrimaryReadyThreshold)
	assert.Equal(t, 100, *a.CanaryReadyThreshold)
	assert.Equal(t, int32(600), *c.Spec.ProgressDeadlineSeconds)
	assert.Equal(t, "http", c.Spec.Service.PortName)
	assert.Equal(t, "podinfo", c.Spec.Service.Name)
	assert.Equal(t, int32(9898), c.Spec.Service.TargetPort.IntVal)
	assert.Equal(t, "1m", a.Metrics[0].Interval)
	assert.Equal(t, NoDataFail, a.Metrics[0].OnNoData)
	assert.Equal(t, "10s", a.Webhooks[0].Timeout)
	assert.Equal(t, RolloutHook, a.Webhooks[0].Type)
}

func TestKubernetesProviderNeedsBlueGreen(t *testing.T) {
	_, err := Load(strings.NewReader(canaryWith("provider: kubernetes", "stepWeight: 10")), "inline", ValidateOptions{Capabilities: designCaps})
	var list ErrorList
	require.ErrorAs(t, err, &list)
	assert.Equal(t, []string{"spec.analysis.stepWeight"}, list.Paths())
}

func TestShortIntervalIsClampedWithAWarning(t *testing.T) {
	set, err := Load(strings.NewReader(canaryWith("provider: traefik", "interval: 5s\n    stepWeight: 10")), "inline", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err)
	assert.Equal(t, "10s", set.Canaries()[0].Spec.Analysis.Interval)
	require.Len(t, set.Warnings, 1)
	assert.Contains(t, set.Warnings[0], "below the 10s minimum")
}

func TestDeprecatedThresholdBecomesARange(t *testing.T) {
	set, err := Load(strings.NewReader(`
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: traefik
  targetRef: {kind: Deployment, name: podinfo}
  service: {port: 9898}
  canaryAnalysis:
    stepWeight: 10
    metrics:
      - {name: request-success-rate, threshold: 99}
      - {name: request-duration, threshold: 500}
`), "inline", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err)
	m := set.Canaries()[0].Spec.Analysis.Metrics
	assert.Equal(t, 99.0, *m[0].ThresholdRange.Min)
	assert.Nil(t, m[0].ThresholdRange.Max)
	assert.Equal(t, 500.0, *m[1].ThresholdRange.Max)
	assert.Len(t, set.Warnings, 3, "canaryAnalysis and both thresholds are reported")
}

func TestManyDocumentsOfEveryKindInAnyOrder(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "flagger", "nginx-custom-metrics.yaml"))
	require.NoError(t, err)
	set, err := Load(bytes.NewReader(data), "custom", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err)
	kinds := []string{}
	for _, d := range set.Documents {
		kinds = append(kinds, d.Kind)
	}
	assert.Equal(t, []string{"MetricTemplate", "Canary", "AlertProvider"}, kinds)
	c := set.Canaries()[0]
	assert.Equal(t, "test", c.Spec.Analysis.Metrics[0].TemplateRef.Namespace, "templateRef defaults to the canary's namespace")
	assert.Equal(t, SeverityError, c.Spec.Analysis.Alerts[0].Severity)
}

func TestJSONInputAndListsLoadToo(t *testing.T) {
	js := `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"flagger.app/v1beta1","kind":"Canary",
"metadata":{"name":"a","namespace":"n"},"spec":{"provider":"traefik","targetRef":{"kind":"Deployment","name":"a"},
"service":{"port":80},"analysis":{"stepWeight":20}}},{"apiVersion":"flagger.app/v1beta1","kind":"Canary",
"metadata":{"name":"b","namespace":"n"},"spec":{"targetRef":{"kind":"Deployment","name":"b"},"service":{"port":80},
"analysis":{"iterations":3}}}]}`
	set, err := Load(strings.NewReader(js), "list.json", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err)
	require.Len(t, set.Canaries(), 2)
	assert.Equal(t, "20,40,60,80,100 → promote", set.Canaries()[0].Schedule())
	assert.Equal(t, StrategyBlueGreen, set.Canaries()[1].Strategy())
}

// A document, once loaded, marshals to JSON (the workflow input) and loads back to the same spec.
func TestRoundTripYAMLToJSONGivesTheSameSpec(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "flagger", "*.yaml"))
	require.NoError(t, err)
	for _, f := range files {
		if filepath.Base(f) == "apisix-session-affinity.yaml" {
			continue // invalid on purpose: TestApisixSessionAffinityIsRefusedBecauseTheRouterCannotDoIt
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			first, err := LoadFile(f, ValidateOptions{Capabilities: designCaps})
			require.NoError(t, err)
			for _, d := range first.Documents {
				again, err := reloadFromJSON(d)
				require.NoError(t, err)
				assert.Equal(t, d, again)
			}
		})
	}
}

// reloadFromJSON marshals a loaded document to JSON (the form a workflow receives it in) and loads it again.
func reloadFromJSON(d Document) (Document, error) {
	var obj any = d.Canary
	switch {
	case d.MetricTemplate != nil:
		obj = d.MetricTemplate
	case d.AlertProvider != nil:
		obj = d.AlertProvider
	}
	js, err := json.Marshal(obj)
	if err != nil {
		return Document{}, fmt.Errorf("accepted document does not marshal: %w", err)
	}
	set, err := Load(bytes.NewReader(js), "json", ValidateOptions{Capabilities: designCaps})
	if err != nil {
		return Document{}, fmt.Errorf("accepted document does not reload from JSON: %w\n%s", err, js)
	}
	if len(set.Documents) != 1 {
		return Document{}, fmt.Errorf("one document became %d", len(set.Documents))
	}
	got := set.Documents[0]
	got.Source = d.Source
	return got, nil
}

func canaryWith(specLine, analysisLines string) string {
	return `
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  ` + specLine + `
  targetRef: {kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    ` + analysisLines + "\n"
}
