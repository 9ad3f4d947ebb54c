package v1beta1

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// good is a valid traefik canary; each invalid case edits one part of it.
const good = `
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  namespace: test
spec:
  provider: traefik
  targetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: podinfo
  service:
    port: 9898
  analysis:
    interval: 30s
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
      - name: request-success-rate
        interval: 1m
        thresholdRange:
          min: 99
    webhooks:
      - name: load-test
        url: http://loadtester.test/
        timeout: 5s
        metadata:
          cmd: "hey -z 1m http://podinfo-canary.test:9898/"
`

func TestGoodDocumentIsValid(t *testing.T) {
	_, err := Load(strings.NewReader(good), "good", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err)
}

func TestInvalidDocumentsNameTheField(t *testing.T) {
	cases := []struct {
		name    string
		old     string // replaced in good by new; old == "" appends new as a document
		new     string
		paths   []string
		message string // a part of the first error
	}{
		{"typo stepweight", "stepWeight: 10", "stepweight: 10", []string{"spec.analysis.stepweight"}, `did you mean "stepWeight"`},
		{"typo in metric", "thresholdRange:", "thresholdrange:", []string{"spec.analysis.metrics[0].thresholdrange"}, `did you mean "thresholdRange"`},
		{"unknown top-level spec field", "  provider: traefik", "  provider: traefik\n  canaryWeight: 3", []string{"spec.canaryWeight"}, "unknown field"},
		{"typo in service", "    port: 9898", "    port: 9898\n    portname: http", []string{"spec.service.portname"}, `did you mean "portName"`},
		{"typo in metadata", "  namespace: test", "  namespace: test\n  lables: {a: b}", []string{"metadata.lables"}, `did you mean "labels"`},
		{"typo in webhook", "        timeout: 5s", "        timout: 5s", []string{"spec.analysis.webhooks[0].timout"}, `did you mean "timeout"`},
		{"missing targetRef name", "    name: podinfo\n  service", "    name: \"\"\n  service", []string{"spec.targetRef.name"}, "required"},
		{"missing targetRef kind", "    kind: Deployment\n", "", []string{"spec.targetRef.kind"}, "required"},
		{"unsupported target kind", "kind: Deployment", "kind: ReplicaSet", []string{"spec.targetRef.kind"}, `unsupported target kind "ReplicaSet"`},
		{"wrong target apiVersion", "apiVersion: apps/v1", "apiVersion: extensions/v1beta1", []string{"spec.targetRef.apiVersion"}, "use apps/v1"},
		{"stepWeight above maxWeight", "stepWeight: 10", "stepWeight: 60", []string{"spec.analysis.stepWeight"}, "greater than maxWeight 50"},
		{"maxWeight above 100", "maxWeight: 50", "maxWeight: 150", []string{"spec.analysis.maxWeight"}, "outside 0–100"},
		{"negative stepWeight", "stepWeight: 10", "stepWeight: -5", []string{"spec.analysis.stepWeight"}, "outside 0–100"},
		{"stepWeights not increasing", "stepWeight: 10", "stepWeights: [10, 30, 20]", []string{"spec.analysis.stepWeights[2]"}, "strictly increasing"},
		{"stepWeights outside range", "stepWeight: 10", "stepWeights: [0, 120]", []string{"spec.analysis.stepWeights[0]", "spec.analysis.stepWeights[1]"}, "outside 1–100"},
		{"mirrorWeight above 100", "stepWeight: 10", "iterations: 5\n    mirror: true\n    mirrorWeight: 101", []string{"spec.analysis.mirrorWeight"}, "outside 0–100"},
		{"ready threshold above 100", "threshold: 5", "threshold: 5\n    canaryReadyThreshold: 120", []string{"spec.analysis.canaryReadyThreshold"}, "outside 0–100"},
		{"thresholdRange min above max", "          min: 99", "          min: 99\n          max: 10", []string{"spec.analysis.metrics[0].thresholdRange"}, "min 99 is greater than max 10"},
		{"metric without range", "        thresholdRange:\n          min: 99\n", "", []string{"spec.analysis.metrics[0].thresholdRange"}, "required"},
		{"metric neither builtin nor template", "name: request-success-rate", "name: error-rate", []string{"spec.analysis.metrics[0].templateRef"}, "is not builtin"},
		{"builtin metric on provider without builtin query", "provider: traefik", "provider: smi:v1alpha2", []string{"spec.analysis.metrics[0].name"}, "provider smi has no builtin query"},
		{"smi without a TrafficSplit version", "provider: traefik", "provider: smi", []string{"spec.provider"}, "write smi:v1alpha1, smi:v1alpha2 or smi:v1alpha3"},
		{"linkerd with a suffix Flagger reads as Istio", "provider: traefik", "provider: linkerd:v1alpha2", []string{"spec.provider"}, "write linkerd"},
		{"kuma with a suffix Flagger reads as Istio", "provider: traefik", "provider: kuma:v1alpha1", []string{"spec.provider"}, "write kuma"},
		{"bare appmesh, Flagger's retired v1beta1 router", "provider: traefik", "provider: appmesh", []string{"spec.provider"}, "use appmesh:v1beta2"},
		{"smi with a version Flagger has no router for", "provider: traefik", "provider: smi:v1alpha4", []string{"spec.provider"}, "write smi:v1alpha1, smi:v1alpha2 or smi:v1alpha3"},
		{"unknown no-data policy", "        interval: 1m\n", "        interval: 1m\n        onNoData: ignore\n", []string{"spec.analysis.metrics[0].onNoData"}, `unknown policy "ignore"`},
		{"metric interval not a duration", "        interval: 1m\n", "        interval: 1 minute\n", []string{"spec.analysis.metrics[0].interval"}, "is not a duration"},
		{"analysis interval not a duration", "interval: 30s", "interval: thirty", []string{"spec.analysis.interval"}, "is not a duration"},
		{"webhook without url", "        url: http://loadtester.test/\n", "", []string{"spec.analysis.webhooks[0].url"}, "required"},
		{"webhook url not http", "url: http://loadtester.test/", "url: ftp://loadtester.test/", []string{"spec.analysis.webhooks[0].url"}, "not an http(s) URL"},
		{"webhook url with a password", "url: http://loadtester.test/", "url: http://ci:hunter2@loadtester.test/", []string{"spec.analysis.webhooks[0].url"}, "carries credentials (user:password@)"},
		{"webhook url with a token in the query", "url: http://loadtester.test/", "url: http://loadtester.test/?api_key=hunter2", []string{"spec.analysis.webhooks[0].url"}, "carries a credential in its query (api_key=…)"},
		{"webhook url with an access token in the query", "url: http://loadtester.test/", "url: 'http://loadtester.test/?x=1&access-token=hunter2'", []string{"spec.analysis.webhooks[0].url"}, "carries a credential in its query (access-token=…)"},
		{"webhook unknown type", "      - name: load-test\n", "      - name: load-test\n        type: during-rollout\n", []string{"spec.analysis.webhooks[0].type"}, `unknown webhook type "during-rollout"`},
		{"webhook timeout not a duration", "timeout: 5s", "timeout: 5sec", []string{"spec.analysis.webhooks[0].timeout"}, "is not a duration"},
		{"webhook timeout a number", "timeout: 5s", "timeout: 5", []string{"spec.analysis.webhooks[0].timeout"}, "expected a string, got the number 5"},
		{"webhook negative retries", "        timeout: 5s\n", "        timeout: 5s\n        retries: -1\n", []string{"spec.analysis.webhooks[0].retries"}, "negative"},
		{"webhook metadata not strings", `cmd: "hey -z 1m http://podinfo-canary.test:9898/"`, "cmd: {nested: true}", []string{"spec.analysis.webhooks[0].metadata.cmd"}, "expected a string, got a mapping"},
		{"unknown provider", "provider: traefik", "provider: haproxy", []string{"spec.provider"}, `unknown provider "haproxy"`},
		{"match on provider without match", "provider: traefik", "provider: linkerd", nil, ""},
		{"A/B match without iterations", "    stepWeight: 10\n", "    stepWeight: 10\n    match:\n      - headers: {x-canary: {exact: insider}}\n", []string{"spec.analysis.iterations"}, "required with match"},
		{"mirror on provider that cannot", "provider: traefik", "provider: linkerd", nil, ""},
		{"session affinity without cookie", "    stepWeight: 10\n", "    stepWeight: 10\n    sessionAffinity: {maxAge: 60}\n", []string{"spec.analysis.sessionAffinity.cookieName"}, "required"},
		{"kubernetes provider with weights", "provider: traefik", "provider: kubernetes", []string{"spec.analysis.stepWeight"}, "cannot split traffic by weight"},
		{"nginx without ingressRef", "provider: traefik", "provider: nginx", []string{"spec.ingressRef"}, "required with provider nginx"},
		{"apisix without routeRef", "provider: traefik", "provider: apisix", []string{"spec.routeRef"}, "required with provider apisix"},
		{"gatewayapi without gatewayRefs", "provider: traefik", "provider: gatewayapi:v1", []string{"spec.service.gatewayRefs"}, "required with provider gatewayapi"},
		{"missing service port", "    port: 9898\n", "    portName: http\n", []string{"spec.service.port"}, "required"},
		{"port as a string", "port: 9898", "port: http", []string{"spec.service.port"}, "expected a whole number"},
		{"missing analysis", "  analysis:\n    interval: 30s", "  unused:\n    interval: 30s", nil, ""},
		{"missing name", "  name: podinfo\n  namespace", "  namespace", []string{"metadata.name"}, "required"},
		{"wrong apiVersion", "apiVersion: flagger.app/v1beta1", "apiVersion: flagger.app/v1alpha3", []string{"apiVersion"}, "use flagger.app/v1beta1"},
		{"unknown kind", "kind: Canary", "kind: Rollout", []string{"kind"}, `"Rollout" is not a canaryflow kind`},
		{"negative progress deadline", "  provider: traefik", "  provider: traefik\n  progressDeadlineSeconds: -1", []string{"spec.progressDeadlineSeconds"}, "must be positive"},
		{"duplicate webhook names", "        metadata:\n", "      - name: load-test\n        url: http://x.test/\n        metadata:\n", []string{"spec.analysis.webhooks[1].name"}, "duplicate webhook name"},
		{"templateRef not loaded", "", "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: latency, namespace: test}\nspec:\n  provider: {type: prometheus, address: http://prom:9090}\n  query: up\n", nil, ""},
		{"metric template unknown provider", "", "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: latency, namespace: test}\nspec:\n  provider: {type: prometeus}\n  query: up\n", []string{"spec.provider.type"}, `unknown metric provider "prometeus"`},
		{"metric template bad query", "", "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: latency, namespace: test}\nspec:\n  provider: {type: prometheus}\n  query: 'rate(x{ns=\"{{ namespace }\"}[1m])'\n", []string{"spec.query"}, "does not parse"},
		{"alert provider unknown type", "", "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {name: chat, namespace: test}\nspec:\n  type: pager\n  address: https://chat.example/hook\n", []string{"spec.type"}, `unknown alert provider "pager"`},
		{"alert provider without address", "", "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {name: chat, namespace: test}\nspec:\n  type: slack\n", []string{"spec.secretRef"}, "required"},
	}
	require.GreaterOrEqual(t, len(cases), 30)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := good
			if tc.old == "" {
				doc = good + "---\n" + tc.new
			} else {
				require.Contains(t, good, tc.old, "the case must edit the good document")
				doc = strings.Replace(good, tc.old, tc.new, 1)
			}
			switch tc.name {
			// Cases whose edit needs more than one replacement.
			case "match on provider without match":
				doc = strings.Replace(doc, "    stepWeight: 10\n", "    iterations: 5\n    match:\n      - headers: {x-canary: {exact: insider}}\n", 1)
				tc.paths, tc.message = []string{"spec.analysis.match"}, "provider linkerd cannot route by request match"
			case "mirror on provider that cannot":
				doc = strings.Replace(doc, "    stepWeight: 10\n", "    iterations: 5\n    mirror: true\n", 1)
				tc.paths, tc.message = []string{"spec.analysis.mirror"}, "provider linkerd cannot mirror traffic"
			case "missing analysis":
				doc = strings.Split(doc, "  unused:")[0]
				tc.paths, tc.message = []string{"spec.analysis"}, "required"
			case "templateRef not loaded":
				doc = strings.Replace(doc, "name: request-success-rate", "name: error-rate\n        templateRef: {name: error-rate}", 1)
				tc.paths, tc.message = []string{"spec.analysis.metrics[0].templateRef"}, "MetricTemplate test/error-rate is not among the loaded documents"
			}
			_, err := Load(strings.NewReader(doc), "case", ValidateOptions{Capabilities: designCaps})
			var list ErrorList
			require.ErrorAs(t, err, &list, "the document must be refused")
			assert.Equal(t, tc.paths, list.Paths())
			assert.Contains(t, list[0].Message, tc.message)
		})
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	doc := strings.NewReplacer(
		"stepWeight: 10", "stepWeight: 60",
		"interval: 30s", "interval: soon",
		"url: http://loadtester.test/", "url: \"\"",
		"kind: Deployment", "kind: Job",
	).Replace(good)
	_, err := Load(strings.NewReader(doc), "case", ValidateOptions{Capabilities: designCaps})
	var list ErrorList
	require.ErrorAs(t, err, &list)
	assert.ElementsMatch(t, []string{"spec.targetRef.kind", "spec.analysis.interval", "spec.analysis.stepWeight",
		"spec.analysis.webhooks[0].url"}, list.Paths())
}

func TestRequireTemplatesChecksRefsWithoutLoadedTemplates(t *testing.T) {
	doc := strings.Replace(good, "name: request-success-rate", "name: error-rate\n        templateRef: {name: error-rate}", 1)
	_, err := Load(strings.NewReader(doc), "case", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err, "templates may live in the cluster when none are loaded")
	_, err = Load(strings.NewReader(doc), "case", ValidateOptions{Capabilities: designCaps, RequireTemplates: true})
	require.Error(t, err)
}

func TestEmptyInputIsAnError(t *testing.T) {
	_, err := Load(strings.NewReader("# only a comment\n---\n"), "empty", ValidateOptions{Capabilities: designCaps})
	require.ErrorContains(t, err, "no documents found")
}
