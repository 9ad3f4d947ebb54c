package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func runStarter(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidatePrintsOneLinePerDocumentAndExits0(t *testing.T) {
	code, out, errOut := runStarter("", "validate", "-f", "../api/v1beta1/testdata/flagger/nginx-custom-metrics.yaml")
	assert.Equal(t, 0, code, errOut)
	assert.Equal(t, "MetricTemplate test/error-rate provider=prometheus\n"+
		"Canary test/podinfo provider=nginx strategy=canary schedule: 10,25,50 → promote\n"+
		"AlertProvider flagger/on-call type=slack\n", out)
}

func TestValidateRefusesWhatThisBuildCannotRun(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		// Every router provider Flagger's docs list has a router once the mesh and Istio branches are in, so the
		// provider refused here is one canaryflow does not know (Flagger's Knative router).
		{"a provider this build has no router for", `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: knative
  targetRef: {kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 1m, stepWeight: 10, maxWeight: 50}
`, `spec.provider: unknown provider "knative" (Flagger would read it as istio); this build has routers for `},
		// Every metric backend Flagger has is in this build: the type refused is one neither knows.
		{"a metric backend neither Flagger nor this build has", `apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: errors, namespace: test}
spec:
  provider: {type: appdynamics, address: http://appd:8090}
  query: x
`, `spec.provider.type: unknown metric provider "appdynamics": use one of cloudwatch, datadog, dynatrace, graphite, influxdb, keptn, newrelic, prometheus, splunk, stackdriver`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runStarter(tc.doc, "validate", "-f", "-")
			assert.Equal(t, 2, code)
			assert.Empty(t, out)
			assert.Contains(t, errOut, tc.want)
		})
	}
}

func TestValidateShowsTheWeightSchedule(t *testing.T) {
	code, out, _ := runStarter("", "validate", "-f", "../api/v1beta1/testdata/flagger/traefik-canary.yaml")
	assert.Equal(t, 0, code)
	assert.Equal(t, "Canary test/podinfo provider=traefik strategy=canary schedule: 5,10,…,50 → promote\n", out)
}

func TestValidateReadsStdinAndPrintsEveryErrorWithExit2(t *testing.T) {
	doc := `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: traefik
  targetRef: {kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    stepWeight: 70
    maxWeight: 50
    interval: 1 minute
`
	code, out, errOut := runStarter(doc, "validate", "-f", "-")
	assert.Equal(t, 2, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "<stdin>#1 Canary test/podinfo: spec.analysis.interval: \"1 minute\" is not a duration")
	assert.Contains(t, errOut, "spec.analysis.stepWeight: 70 is greater than maxWeight 50")
}

func TestValidateTypoSuggestsTheField(t *testing.T) {
	doc := `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo}
spec:
  targetRef: {kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {iterations: 3, stepweight: 5}
`
	code, _, errOut := runStarter(doc, "validate", "-f", "-")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `spec.analysis.stepweight: unknown field; did you mean "stepWeight"?`)
}

func TestValidateWithoutFileIsBadInput(t *testing.T) {
	code, _, errOut := runStarter("", "validate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "-f FILE is required")
}
