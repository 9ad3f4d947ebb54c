//go:build lab

package activities_test

// After a real rollout (CanaryRollout on the lab's Temporal, real workload, router and analysis activities
// against the lab's Kubernetes), the recorded history contains none of the Secret values the rollout used.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/workflows"
)

func TestRolloutHistoryHoldsNoSecretValue(t *testing.T) {
	restCfg, cs := labtest.Kube(t)
	tc := labtest.Temporal(t)
	ns := labtest.Namespace(t, "secrets")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	promToken := "prom-bearer-Q8zSECRET"
	slackPath := "T0LAB/B0LAB/hookR2dSECRET"
	var promAuthorized, slackPosts, hookCalls atomic.Int32
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+promToken {
			w.WriteHeader(401)
			return
		}
		promAuthorized.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"99.9"]}]}}`)
	}))
	defer prom.Close()
	chat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/services/"+slackPath {
			slackPosts.Add(1)
		}
	}))
	defer chat.Close()
	hooks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hookCalls.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer hooks.Close()

	for name, data := range map[string]map[string][]byte{
		"prom-auth": {"token": []byte(promToken)},
		"slack-url": {"address": []byte(chat.URL + "/services/" + slackPath)},
	} {
		_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, labtest.Podinfo(ns, "podinfo", "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.0", 1), metav1.CreateOptions{})
	require.NoError(t, err)

	// The worker, wired as worker/register.go does, on a queue of its own.
	wl, err := workload.New(restCfg)
	require.NoError(t, err)
	routers, err := router.NewRegistry(restCfg)
	require.NoError(t, err)
	queue := "secrets-" + ns
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(&activities.Workloads{Kube: wl})
	w.RegisterActivity(&activities.Routing{Routers: routers})
	w.RegisterActivity(activities.NewAnalysis(activities.KubeSecrets{Client: cs}, "", "lab", nil))
	require.NoError(t, w.Start())
	defer w.Stop()

	md := map[string]string{"type": "cmd", "cmd": "hey -z 10s http://podinfo-canary:9898/"}
	canary := v1beta1.Canary{
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: v1beta1.CanarySpec{
			Provider:  "kubernetes",
			TargetRef: v1beta1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			Service:   v1beta1.CanaryService{Port: 9898},
			Analysis: &v1beta1.CanaryAnalysis{
				Interval: "10s", Iterations: 1, Threshold: 1,
				Metrics: []v1beta1.CanaryMetric{{Name: "availability", Interval: "1m",
					TemplateRef:    &v1beta1.CrossNamespaceObjectReference{Name: "availability", Namespace: ns},
					ThresholdRange: &v1beta1.CanaryThresholdRange{Min: f64(99)}}},
				Webhooks: []v1beta1.CanaryWebhook{
					{Name: "load-test", Type: v1beta1.RolloutHook, URL: hooks.URL + "/", Metadata: &md},
					{Name: "events", Type: v1beta1.EventHook, URL: hooks.URL + "/events"},
				},
				Alerts: []v1beta1.CanaryAlert{{Name: "team", Severity: v1beta1.SeverityInfo,
					ProviderRef: v1beta1.CrossNamespaceObjectReference{Name: "slack", Namespace: ns}}},
			},
		},
	}
	canary.SetDefaults()
	require.Empty(t, canary.Validate(catalog.Capabilities(), v1beta1.RefCheck{}))
	input := workflows.RolloutInput{
		Canary: canary,
		Templates: []v1beta1.MetricTemplate{{ObjectMeta: metav1.ObjectMeta{Name: "availability", Namespace: ns},
			Spec: v1beta1.MetricTemplateSpec{Provider: v1beta1.MetricTemplateProvider{Type: "prometheus", Address: prom.URL,
				SecretRef: &corev1.LocalObjectReference{Name: "prom-auth"}},
				Query: `avg_over_time(up{namespace="{{ namespace }}",app="{{ target }}"}[{{ interval }}]) * 100`}}},
		AlertProviders: []v1beta1.AlertProvider{{ObjectMeta: metav1.ObjectMeta{Name: "slack", Namespace: ns},
			Spec: v1beta1.AlertProviderSpec{Type: "slack", Channel: "#deploys", SecretRef: &corev1.LocalObjectReference{Name: "slack-url"}}}},
	}
	rollout := func() (client.WorkflowRun, workflows.RolloutResult) {
		run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: canary.WorkflowID(), TaskQueue: queue}, workflows.WorkflowName, input)
		require.NoError(t, err)
		var res workflows.RolloutResult
		require.NoError(t, run.Get(ctx, &res))
		return run, res
	}

	// First run: initialise. Second run, after an image change: analyse and promote.
	first, res := rollout()
	require.Equal(t, workflows.PhaseInitialized, res.Phase, res.Reason)
	labtest.SetImage(t, cs, ns, "podinfo", "ghcr.io/stefanprodan/podinfo:6.0.1")
	second, res := rollout()
	require.Equal(t, workflows.PhaseSucceeded, res.Phase, res.Reason)
	require.True(t, res.Promoted)

	// The rollout really used both Secrets.
	require.Positive(t, promAuthorized.Load(), "the metric check queried Prometheus with the Secret's token")
	require.Positive(t, slackPosts.Load(), "alerts went to the Secret's Slack address")
	require.Positive(t, hookCalls.Load())

	var all strings.Builder
	for _, run := range []client.WorkflowRun{first, second} {
		iter := tc.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, 0)
		for iter.HasNext() {
			ev, err := iter.Next()
			require.NoError(t, err)
			b, err := protojson.Marshal(ev)
			require.NoError(t, err)
			all.Write(b)
			all.WriteByte('\n')
		}
	}
	h := all.String()
	decoded := decodePayloads(t, h)
	require.Contains(t, decoded, "availability", "sanity: the metric check is in the decoded history")
	require.Contains(t, decoded, "prom-auth", "sanity: the Secret's name (not its value) is in the input")
	for name, v := range map[string]string{"prometheus token": promToken, "slack webhook path": slackPath} {
		require.NotContains(t, h, v, "%s in history JSON", name)
		require.NotContains(t, decoded, v, "%s in history payloads", name)
	}
}
