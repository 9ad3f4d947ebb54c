package v1beta1

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPartitionsUpdateAShareOfThePodsPerStepEndingAtZero(t *testing.T) {
	cases := []struct {
		name     string
		a        CanaryAnalysis
		replicas int
		want     []int
	}{
		{"a fifth per step", CanaryAnalysis{StepWeight: 20, MaxWeight: 100}, 5, []int{4, 3, 2, 1, 0}},
		{"shares round up", CanaryAnalysis{StepWeight: 30, MaxWeight: 90}, 5, []int{3, 2, 0}},
		{"every step updates at least one more pod", CanaryAnalysis{StepWeight: 10, MaxWeight: 50}, 5, []int{4, 3, 2, 1, 0}},
		{"maxWeight below 100 still ends promoted", CanaryAnalysis{StepWeight: 25, MaxWeight: 50}, 8, []int{6, 4, 0}},
		{"stepWeights", CanaryAnalysis{StepWeights: []int{10, 50}}, 5, []int{4, 2, 0}},
		{"one pod", CanaryAnalysis{StepWeight: 20, MaxWeight: 100}, 1, []int{0}},
		{"more steps than pods", CanaryAnalysis{StepWeight: 5, MaxWeight: 100}, 3, []int{2, 1, 0}},
		{"no pods", CanaryAnalysis{StepWeight: 20, MaxWeight: 100}, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.a.Partitions(tc.replicas))
		})
	}
}

func TestUpdatedShareIsThePercentOfPodsPastThePartition(t *testing.T) {
	require.Equal(t, 0, UpdatedShare(5, 5))
	require.Equal(t, 20, UpdatedShare(5, 4))
	require.Equal(t, 66, UpdatedShare(3, 1))
	require.Equal(t, 100, UpdatedShare(5, 0))
	require.Equal(t, 0, UpdatedShare(5, 9), "a partition above the replicas updates nothing")
}

// goodStatefulSet is a valid Canary of a StatefulSet; each invalid case edits one part of it.
const goodStatefulSet = `
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: db
  namespace: test
spec:
  targetRef:
    apiVersion: apps/v1
    kind: StatefulSet
    name: db
  analysis:
    interval: 30s
    threshold: 2
    stepWeight: 20
    maxWeight: 100
    metrics:
      - name: error-rate
        templateRef:
          name: error-rate
        thresholdRange:
          max: 1
    webhooks:
      - name: smoke
        type: pre-rollout
        url: http://loadtester.test/
`

func TestAStatefulSetCanaryIsValidWithoutServicePortOrRouter(t *testing.T) {
	set, err := Load(strings.NewReader(goodStatefulSet), "sts", ValidateOptions{Capabilities: designCaps})
	require.NoError(t, err)
	require.Len(t, set.Canaries(), 1)
	require.True(t, set.Canaries()[0].IsStatefulSet())
	require.Equal(t, []int{4, 3, 2, 1, 0}, set.Canaries()[0].Spec.Analysis.Partitions(5))
}

func TestStatefulSetValidationNamesWhatNeedsAPrimaryOrARouter(t *testing.T) {
	cases := []struct {
		name, old, new string
		path, message  string
	}{
		{"router provider", "  targetRef:", "  provider: traefik\n  targetRef:", "spec.provider", "use provider kubernetes"},
		{"autoscaler", "  targetRef:", "  autoscalerRef:\n    apiVersion: autoscaling/v2\n    kind: HorizontalPodAutoscaler\n    name: db\n  targetRef:",
			"spec.autoscalerRef", "no primary autoscaler"},
		{"blue/green", "    stepWeight: 20\n    maxWeight: 100\n", "    iterations: 5\n", "spec.analysis.iterations", "blue/green needs a second copy"},
		{"A/B testing", "    stepWeight: 20\n    maxWeight: 100\n", "    iterations: 5\n    match:\n      - headers:\n          x:\n            exact: \"y\"\n",
			"spec.analysis.match", "A/B testing"},
		{"mirroring", "    threshold: 2\n", "    threshold: 2\n    mirror: true\n", "spec.analysis.mirror", "remove mirror"},
		{"session affinity", "    threshold: 2\n", "    threshold: 2\n    sessionAffinity:\n      cookieName: c\n", "spec.analysis.sessionAffinity", "remove sessionAffinity"},
		{"promotion steps", "    threshold: 2\n", "    threshold: 2\n    stepWeightPromotion: 20\n", "spec.analysis.stepWeightPromotion", "no traffic moves back"},
		{"builtin metric", "      - name: error-rate\n        templateRef:\n          name: error-rate\n", "      - name: request-success-rate\n",
			"spec.analysis.metrics[0].templateRef", "queries a canary Service"},
		{"no steps", "    stepWeight: 20\n    maxWeight: 100\n", "", "spec.analysis.stepWeight", "share of pods each step updates"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(goodStatefulSet, tc.old, tc.new, 1)
			require.NotEqual(t, goodStatefulSet, doc, "the case must edit the document")
			_, err := Load(strings.NewReader(doc), "sts", ValidateOptions{Capabilities: designCaps})
			var list ErrorList
			require.ErrorAs(t, err, &list)
			require.Equal(t, []string{tc.path}, list.Paths(), list.Error())
			require.Contains(t, list[0].Message, tc.message)
		})
	}
}
