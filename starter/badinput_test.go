//go:build lab

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/providers/workload"
	"github.com/canaryflow/canaryflow/providers/workload/workloadtest"
	"github.com/canaryflow/canaryflow/workflows"
)

// labQueue is the task queue of the worker that runs the real activities against the lab's Kubernetes.
const labQueue = "canaryflow-starter-lab"

// startLabWorker runs, on the package's dev server, a worker wired as cmd/worker wires it (real workload, router
// and analysis activities) whose Kubernetes identity holds the worker's namespaced Role in namespaces only.
func startLabWorker(t *testing.T, e *temporalEnv, namespaces ...string) *rest.Config {
	t.Helper()
	return startLabWorkerOn(t, e, labQueue, namespaces...)
}

// startLabWorkerOn is startLabWorker on task queue queue; it returns the worker's client config.
func startLabWorkerOn(t *testing.T, e *temporalEnv, queue string, namespaces ...string) *rest.Config {
	t.Helper()
	saNS := labtest.Namespace(t, "starter-worker")
	cfg := workloadtest.NamespacedWorkerConfig(t, labtest.RestConfig(t), saNS, namespaces...)
	k, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	w := worker.New(e.client, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(&activities.Workloads{Kube: workload.NewForClients(k, dyn), Capabilities: catalog.Capabilities()})
	w.RegisterActivity(&activities.Routing{Routers: router.NewRegistryForClients(router.Clients{Kube: k, Dynamic: dyn, Discovery: k.Discovery()})})
	w.RegisterActivity(activities.NewAnalysis(activities.KubeSecrets{Client: k}, labtest.PrometheusURL(t), "lab", zap.NewNop()))
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return cfg
}

// grantLimited gives the worker of cfg, in ns, its Role with only the read verbs except on the rules naming one of
// writable, and waits until it is in force.
func grantLimited(t *testing.T, admin kubernetes.Interface, cfg *rest.Config, ns string, writable ...string) {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(workloadtest.RolePath(t))
	require.NoError(t, err)
	var role rbacv1.Role
	require.NoError(t, yaml.UnmarshalStrict(raw, &role))
	for i, r := range role.Rules {
		if !slices.ContainsFunc(r.Resources, func(res string) bool { return slices.Contains(writable, res) }) {
			role.Rules[i].Verbs = []string{"get", "list", "watch"}
		}
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: "canaryflow-read", Namespace: ns}
	_, err = admin.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{})
	require.NoError(t, err)
	// The worker's identity: system:serviceaccount:<namespace>:<name>.
	who, err := kubernetes.NewForConfigOrDie(cfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	require.NoError(t, err)
	parts := strings.Split(who.Status.UserInfo.Username, ":")
	require.Len(t, parts, 4, who.Status.UserInfo.Username)
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "canaryflow-read", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "canaryflow-read"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: parts[3], Namespace: parts[2]}},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	worker := kubernetes.NewForConfigOrDie(cfg)
	require.Eventually(t, func() bool {
		_, err := worker.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		return err == nil
	}, 20*time.Second, 100*time.Millisecond, "the read-only Role in %s never took effect", ns)
}

// clusterPublished names the ConfigMaps that controllers of the shared lab put in every namespace on their own
// time: the root CA (kube-controller-manager) and, while a router test runs istiod, Istio's. A snapshot that
// counted them would see them appear beside a starter that changed nothing.
var clusterPublished = map[string]bool{"kube-root-ca.crt": true, "istio-ca-root-cert": true}

// objects lists what a namespace holds of the kinds a rollout writes, as kind/name@resourceVersion, leaving out
// the clusterPublished ConfigMaps.
func objects(t *testing.T, cs kubernetes.Interface, ns string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, o := range deps.Items {
		out = append(out, fmt.Sprintf("Deployment/%s gen %d replicas %d", o.Name, o.Generation, *o.Spec.Replicas))
	}
	svcs, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, o := range svcs.Items {
		out = append(out, "Service/"+o.Name+"@"+o.ResourceVersion)
	}
	hpas, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, o := range hpas.Items {
		out = append(out, fmt.Sprintf("HorizontalPodAutoscaler/%s gen %d", o.Name, o.Generation))
	}
	cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, o := range cms.Items {
		if clusterPublished[o.Name] {
			continue
		}
		out = append(out, "ConfigMap/"+o.Name+"@"+o.ResourceVersion)
	}
	secs, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	for _, o := range secs.Items {
		out = append(out, "Secret/"+o.Name+"@"+o.ResourceVersion)
	}
	sort.Strings(out)
	return out
}

// badInputCanary is a Canary for target podinfo in ns on the kubernetes router (no router objects), 10 s interval.
func badInputCanary(ns, extraSpec, extraAnalysis string) string {
	return fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: %s}
spec:
  provider: kubernetes
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
%s  analysis:
    interval: 10s
    threshold: 1
    iterations: 2
%s`, ns, extraSpec, extraAnalysis)
}

type badInputCase struct {
	name string
	// setup prepares the namespace with the admin client and returns the file's content.
	setup    func(t *testing.T, admin kubernetes.Interface, ns string) []byte
	access   string // what the worker may do in the namespace: "" its Role, "none", "read" (get, list, watch only), "deployments" (write only those)
	wantCode int
	wantErr  []string // in stdout+stderr; NS stands for the namespace
	// notStarted: the starter itself refuses, so no workflow exists
	notStarted bool
}

func podinfoTarget(t *testing.T, admin kubernetes.Interface, ns string) {
	t.Helper()
	_, err := admin.AppsV1().Deployments(ns).Create(context.Background(), workloadtest.Podinfo(ns, "podinfo", "6.0.0", 1), metav1.CreateOptions{})
	require.NoError(t, err)
}

// Bad input never half-makes a canary: every case ends with a message naming the object and the fix, the
// documented exit code, and the namespace's Deployments, Services, HPAs, ConfigMaps and Secrets as they were.
func TestRolloutOfBadInputChangesNothingAndSaysWhatToFix(t *testing.T) {
	e := startTemporal(t)
	_, admin := labtest.Kube(t)
	cases := []badInputCase{
		{name: "target does not exist", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			return []byte(badInputCanary(ns, "", ""))
		}, wantCode: 2, wantErr: []string{"refused before any change", "Deployment NS/podinfo (spec.targetRef of Canary NS/podinfo) not found: create it first or fix spec.targetRef"}},
		{name: "primary made by someone else", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			_, err := admin.AppsV1().Deployments(ns).Create(context.Background(), workloadtest.Podinfo(ns, "podinfo-primary", "5.0.0", 1), metav1.CreateOptions{})
			require.NoError(t, err)
			return []byte(badInputCanary(ns, "", ""))
		}, wantCode: 2, wantErr: []string{"refused before any change", "Deployment NS/podinfo-primary exists and is not managed by canaryflow (no label app.kubernetes.io/managed-by=canaryflow): delete it or rename the target"}},
		{name: "apex Service made by someone else", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			_, err := admin.CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
				Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "other"}, Ports: []corev1.ServicePort{{Port: 9898}}},
			}, metav1.CreateOptions{})
			require.NoError(t, err)
			return []byte(badInputCanary(ns, "", ""))
		}, wantCode: 2, wantErr: []string{"refused before any change", "Service NS/podinfo exists and is not managed by canaryflow (no label app.kubernetes.io/managed-by=canaryflow): delete it or rename spec.service.name"}},
		{name: "autoscaler does not exist", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			return []byte(badInputCanary(ns, "  autoscalerRef: {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: podinfo}\n", ""))
		}, wantCode: 2, wantErr: []string{"refused before any change", "HorizontalPodAutoscaler NS/podinfo (spec.autoscalerRef) not found: create it or remove spec.autoscalerRef"}},
		{name: "autoscaler scales another Deployment", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			minR := int32(1)
			_, err := admin.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(context.Background(), &autoscalingv2.HorizontalPodAutoscaler{
				ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
				Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
					ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "backend"},
					MinReplicas:    &minR, MaxReplicas: 3,
				},
			}, metav1.CreateOptions{})
			require.NoError(t, err)
			return []byte(badInputCanary(ns, "  autoscalerRef: {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: podinfo}\n", ""))
		}, wantCode: 2, wantErr: []string{"refused before any change", "HorizontalPodAutoscaler NS/podinfo (spec.autoscalerRef) scales Deployment backend, " +
			"not the target Deployment podinfo: name the target's own autoscaler in spec.autoscalerRef, or point this one's scaleTargetRef at podinfo"}},
		{name: "5 MB document", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			return []byte(badInputCanary(ns, "", "") + "# " + strings.Repeat("x", 5<<20) + "\n")
		}, wantCode: 2, wantErr: []string{"canary.yaml#1: document is larger than 4194304 bytes"}, notStarted: true},
		{name: "binary garbage", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			b := make([]byte, 4096)
			_, _ = rand.Read(b)
			return b
		}, wantCode: 2, wantErr: []string{"canary.yaml#1: not valid YAML or JSON"}, notStarted: true},
		{name: "namespace the worker may only read", access: "read", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			return []byte(badInputCanary(ns, "", ""))
		}, wantCode: 2, wantErr: []string{"refused before any change", "canaryflow's worker may not create deployments.apps, patch deployments.apps, " +
			"create services, patch services in namespace NS, which the first rollout of NS/podinfo needs: grant them in its Role or ClusterRole"}},
		{name: "namespace where the worker may write Deployments but not Services", access: "deployments", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			return []byte(badInputCanary(ns, "", ""))
		}, wantCode: 2, wantErr: []string{"refused before any change", "canaryflow's worker may not create services, patch services in namespace NS"}},
		{name: "namespace the worker may not touch", access: "none", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			return []byte(badInputCanary(ns, "", ""))
		}, wantCode: 2, wantErr: []string{"refused before any change", `cannot get resource "deployments" in API group "apps" in the namespace "NS"`,
			"canaryflow's worker may not get Deployment in namespace NS"}},
		{name: "webhook URL with a password", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			return []byte(badInputCanary(ns, "", "    webhooks:\n    - {name: load, url: 'http://ci:hunter2@loadtester.test/'}\n"))
		}, wantCode: 2, wantErr: []string{"spec.analysis.webhooks[0].url: carries credentials (user:password@)"}, notStarted: true},
		{name: "webhook URL with a token in the query", setup: func(t *testing.T, admin kubernetes.Interface, ns string) []byte {
			podinfoTarget(t, admin, ns)
			return []byte(badInputCanary(ns, "", "    webhooks:\n    - {name: load, url: 'http://loadtester.test/?token=hunter2'}\n"))
		}, wantCode: 2, wantErr: []string{"spec.analysis.webhooks[0].url: carries a credential in its query (token=…)"}, notStarted: true},
	}
	nss := make([]string, len(cases))
	var granted []string
	for i, tc := range cases {
		nss[i] = labtest.Namespace(t, "starter-bad")
		if tc.access == "" {
			granted = append(granted, nss[i])
		}
	}
	cfg := startLabWorker(t, e, granted...)
	for i, tc := range cases {
		switch tc.access {
		case "read":
			grantLimited(t, admin, cfg, nss[i])
		case "deployments":
			grantLimited(t, admin, cfg, nss[i], "deployments")
		}
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := nss[i]
			doc := tc.setup(t, admin, ns)
			file := filepath.Join(t.TempDir(), "canary.yaml")
			require.NoError(t, os.WriteFile(file, doc, 0o600))
			before := objects(t, admin, ns)

			code, out, errOut := e.starter("--task-queue", labQueue, "rollout", "-f", file, "--wait", "--timeout", "90s")

			assert.Equal(t, tc.wantCode, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			for _, w := range tc.wantErr {
				assert.Contains(t, out+errOut, strings.ReplaceAll(w, "NS", ns))
			}
			assert.Equal(t, before, objects(t, admin, ns), "nothing half-made")
			assert.NotContains(t, out+errOut, "hunter2", "no credential is printed")
			_, derr := e.client.DescribeWorkflowExecution(t.Context(), "canary/"+ns+"/podinfo", "")
			if tc.notStarted {
				require.True(t, isNotFound(derr), "the starter refused it, yet a workflow exists: %v", derr)
				return
			}
			require.NoError(t, derr)
			hcode, hist, herr := e.starter("history", "podinfo", "-n", ns)
			require.Equal(t, 0, hcode, herr)
			require.Contains(t, hist, strings.ReplaceAll(tc.wantErr[len(tc.wantErr)-1], "NS", ns), "history tells the same refusal")
		})
	}
}

// A MetricTemplate whose template renders but whose PromQL Prometheus refuses cannot be caught before the run (the
// starter holds no PromQL parser and need not reach Prometheus): its first check fails with Prometheus' own parse
// error naming the metric, the canary is rolled back at once (threshold 1) and the starter exits 1; the primary
// and the Services are as initialisation left them, the canary scaled back to zero.
func TestMetricTemplateWithInvalidPromQLFailsItsFirstCheckNamingTheParseError(t *testing.T) {
	e := startTemporal(t)
	_, admin := labtest.Kube(t)
	ns := labtest.Namespace(t, "starter-promql")
	startLabWorkerOn(t, e, "canaryflow-starter-promql", ns)
	podinfoTarget(t, admin, ns)
	file := filepath.Join(t.TempDir(), "canary.yaml")
	require.NoError(t, os.WriteFile(file, []byte(badInputCanary(ns, "", `    metrics:
    - name: error-rate
      templateRef: {name: error-rate}
      thresholdRange: {max: 1}
      interval: 1m
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: error-rate, namespace: `+ns+`}
spec:
  provider: {type: prometheus, address: `+labtest.PrometheusURL(t)+`}
  query: sum(rate(traefik_service_requests_total{namespace="{{ namespace }}"}[{{ interval }}])) by (
`)), 0o600))
	queue := []string{"--task-queue", "canaryflow-starter-promql"}

	code, out, errOut := e.starter(append(queue, "rollout", "-f", file, "--wait", "--timeout", "90s")...)
	require.Equal(t, 0, code, "the first rollout only initialises:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	initialised := objects(t, admin, ns)

	code, out, errOut = e.starter(append(queue, "rollout", "-f", file, "--kubeconfig", labtest.Kubeconfig(t),
		"--set-image", "podinfo=ghcr.io/stefanprodan/podinfo:6.0.1", "--wait", "--timeout", "2m")...)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	checks := linesWith(out, "check error-rate")
	require.Len(t, checks, 1, "one check, the first, fails:\n%s", out)
	assert.Equal(t, `check error-rate fail: error-rate: query failed: prometheus `+labtest.PrometheusURL(t)+
		`: invalid parameter "query": 1:85: parse error: unclosed left parenthesis: query rejected`, checks[0])
	assert.Contains(t, out, "rolled back: ")

	after := objects(t, admin, ns)
	assert.Equal(t, names(initialised), names(after), "no object made or left behind")
	assert.Regexp(t, `Deployment/podinfo gen \d+ replicas 0`, strings.Join(after, "\n"), "the canary is scaled back to zero")
	assert.Contains(t, after, "Deployment/podinfo-primary gen 1 replicas 1", "the primary was never touched")
}

// names drops the versions of objects' entries.
func names(objs []string) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i], _, _ = strings.Cut(o, " ")
		out[i], _, _ = strings.Cut(out[i], "@")
	}
	return out
}
