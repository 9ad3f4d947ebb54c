package v1alpha1

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

var caps = &v1beta1.Capabilities{
	Routers:        map[string]v1beta1.Traffic{"kubernetes": {}, "traefik": {Weights: true}},
	BuiltinMetrics: map[string]bool{"kubernetes": true, "traefik": true},
	MetricBackends: map[string]bool{"prometheus": true},
}

const release = `apiVersion: canaryflow.io/v1alpha1
kind: Release
metadata:
  name: podinfo-6-0-1
spec:
  images: {podinfo: ghcr.io/stefanprodan/podinfo:6.0.1}
  onFailure: rollback-all
  canary:
    metadata: {name: podinfo, namespace: test}
    spec:
      provider: traefik
      targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
      service: {port: 9898}
      analysis:
        interval: 10s
        threshold: 1
        maxWeight: 50
        stepWeight: 10
        metrics:
          - name: error-rate
            templateRef: {name: error-rate}
            thresholdRange: {max: 1}
  waves:
    - name: staging
      bakeTime: 30m
      clusters: [{name: staging}]
    - gate: approval
      clusters:
        - name: eu-1
        - name: eu-2
          taskQueue: canaryflow-eu-2-blue
          canaryPatch: {spec: {analysis: {threshold: 3}}}
    - clusters: [{name: us-1}]
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: error-rate, namespace: test}
spec:
  provider: {type: prometheus, address: http://prometheus:9090}
  query: sum(rate(errors[1m]))
`

func load(t *testing.T, doc string) (*Plan, error) {
	t.Helper()
	p, _, err := Load(strings.NewReader(doc), "release.yaml", v1beta1.ValidateOptions{RequireTemplates: true, Capabilities: caps})
	return p, err
}

func TestLoadResolvesWavesClustersQueuesAndPerClusterPatches(t *testing.T) {
	p, err := load(t, release)
	require.NoError(t, err)
	require.Equal(t, "podinfo-6-0-1", p.Name)
	require.Equal(t, OnFailureRollbackAll, p.OnFailure)
	require.Len(t, p.Waves, 3)
	require.Equal(t, PlanWave{Name: "staging", Gate: GateAuto, BakeTime: 30 * time.Minute}, PlanWave{Name: p.Waves[0].Name, Gate: p.Waves[0].Gate, BakeTime: p.Waves[0].BakeTime})
	require.Equal(t, "wave-2", p.Waves[1].Name, "an unnamed wave is named by its position")
	require.Equal(t, GateApproval, p.Waves[1].Gate)
	eu1, eu2 := p.Waves[1].Clusters[0], p.Waves[1].Clusters[1]
	require.Equal(t, "canaryflow-eu-1", eu1.TaskQueue, "default task queue")
	require.Equal(t, "canaryflow-eu-2-blue", eu2.TaskQueue)
	require.Equal(t, 1, eu1.Canary.Spec.Analysis.Threshold)
	require.Equal(t, 3, eu2.Canary.Spec.Analysis.Threshold, "canaryPatch applies to its cluster only")
	require.Equal(t, 10, eu2.Canary.Spec.Analysis.StepWeight, "the patch merges: other fields stay")
	require.Equal(t, "podinfo", eu2.Canary.Name)
	require.Len(t, p.Templates, 1, "the file's MetricTemplates travel with the plan")
	require.Equal(t, "canary/test/podinfo@eu-2", ClusterWorkflowID("test", "podinfo", "eu-2"))
}

func TestLoadRefusesBadReleasesNamingFieldAndFix(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           []string
	}{
		{"unknown cluster field", "        - name: eu-1\n", "        - name: eu-1\n          kubeContext: eu\n",
			[]string{"spec.waves[1].clusters[0].kubeContext: unknown field"}},
		{"typo with suggestion", "      bakeTime: 30m", "      baketime: 30m", []string{`spec.waves[0].baketime: unknown field; did you mean "bakeTime"?`}},
		{"empty wave", "    - clusters: [{name: us-1}]", "    - clusters: []", []string{"spec.waves[2].clusters: empty wave"}},
		{"duplicate cluster", "    - clusters: [{name: us-1}]", "    - clusters: [{name: eu-1}]",
			[]string{`spec.waves[2].clusters[0].name: cluster "eu-1" is already in spec.waves[1].clusters[0]`}},
		{"bad policy", "onFailure: rollback-all", "onFailure: rollback", []string{`spec.onFailure: "rollback": write halt`}},
		{"bad gate", "gate: approval", "gate: manual", []string{`spec.waves[1].gate: "manual": write auto`}},
		{"bad bake time", "bakeTime: 30m", "bakeTime: soon", []string{`spec.waves[0].bakeTime: "soon" is not a duration`}},
		{"no images", "  images: {podinfo: ghcr.io/stefanprodan/podinfo:6.0.1}\n", "", []string{"spec.images: required"}},
		{"shared task queue", "taskQueue: canaryflow-eu-2-blue", "taskQueue: canaryflow-eu-1",
			[]string{`spec.waves[1].clusters[1].taskQueue: task queue "canaryflow-eu-1" is cluster eu-1's too`}},
		{"bad cluster name", "name: us-1", "name: US_1", []string{`spec.waves[2].clusters[0].name: "US_1": use lowercase`}},
		{"canary problem names the cluster", "canaryPatch: {spec: {analysis: {threshold: 3}}}", "canaryPatch: {spec: {analysis: {treshold: 3}}}",
			[]string{"spec.waves[1].clusters[1] (eu-2)", `spec.analysis.treshold: unknown field; did you mean "threshold"?`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(release, tc.from, tc.to, 1)
			require.NotEqual(t, release, doc, "the case must change the document")
			_, err := load(t, doc)
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLoadRefusesTheLastWavesBakeTimeAndAFileWithoutRelease(t *testing.T) {
	doc := strings.Replace(release, "    - clusters: [{name: us-1}]", "    - clusters: [{name: us-1}]\n      bakeTime: 1h", 1)
	_, err := load(t, doc)
	require.ErrorContains(t, err, "spec.waves[2].bakeTime: the last wave has no wave after it to wait for")

	_, err = load(t, "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: x}\nspec: {query: up}\n")
	require.ErrorContains(t, err, "no Release found")
}
