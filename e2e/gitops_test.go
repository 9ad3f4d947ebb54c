//go:build lab

package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/gitops"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/rolloutclient"
)

var canariesGVR = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}

// GitOps mode with no starter at all: a Canary (with revertOnDeletion) and its Deployment are applied through the
// API, two workers run
// with --gitops (one leads through the Lease, one stands by), the Canary is initialised, and an image change of the
// Deployment (an update, as kubectl apply or Flux make it) starts the release, which promotes, and `kubectl wait
// --for=condition=promoted` returns on the Canary's status as with Flagger. Each rollout run is started exactly
// once and receives exactly one revision signal: the standby replica triggers nothing, and the rollout's own status
// writes trigger nothing either. A failing release from git is then rolled back (kubectl wait
// --for=condition=promoted=false returns), and deleting the Canary finalises it before it goes: the target serves again,
// the primary is gone and the apex Service and Traefik route to the target, as before the Canary.
func TestGitOpsReleaseWithoutStarter(t *testing.T) {
	root, err := labtest.RepoRoot()
	require.NoError(t, err)
	labtest.CRDs(t, filepath.Join(root, "deploy", "crds", "crd.yaml"))
	ns := labtest.Namespace(t, "gitops")
	// Its own task queue and Lease, and only its namespace watched: other tests and engineers share the lab.
	queue := "gitops-" + strings.ToLower(rand.Text()[:8])
	env := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	s, err := StartWith(ctx, env, Narrator(t), Options{TaskQueue: queue, NoWorker: true, WorkerEnv: []string{
		"CANARYFLOW_GITOPS=true", "CANARYFLOW_GITOPS_LEASE_NAMESPACE=" + ns, "CANARYFLOW_NAMESPACES=" + ns,
	}})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"worker", "worker-2"} {
				t.Logf("%s log:\n%s", name, s.LogTail(name, 80))
			}
		}
		s.Close()
	})
	grantLease(ctx, t, s, root, ns)

	require.NoError(t, s.StartWorker(ctx, "worker"))
	waitLeader(ctx, t, s, ns, "")
	require.NoError(t, s.StartWorker(ctx, "worker-2"))

	require.NoError(t, s.ApplyPodinfo(ctx, ns, "6.0.0"))
	require.NoError(t, s.ApplyIngressRoutes(ctx, ns))
	file, err := s.WriteCanary("canary", CanaryOptions{Namespace: ns, LoadDuration: "1m"})
	require.NoError(t, err)
	withRevert(t, file) // deleting the Canary at the end puts the cluster back as it was before it
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	var obj map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &obj))
	_, err = s.Dynamic.Resource(canariesGVR).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	require.NoError(t, err)

	tc, err := client.DialContext(ctx, client.Options{HostPort: env.TemporalAddress, Namespace: env.TemporalNamespace})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	rc := rolloutclient.Client{Temporal: tc, TaskQueue: queue}
	id := v1beta1.WorkflowID(ns, "podinfo")

	initRun := waitClosed(ctx, t, tc, id, "", 2*time.Minute)
	res, err := rc.Result(ctx, id, initRun)
	require.NoError(t, err)
	require.Equal(t, workflows.PhaseInitialized, res.Phase, "the trigger's first run initialises the canary: %+v", res)
	t.Logf("initialised by run %s", initRun)
	require.Eventually(t, func() bool {
		c, err := s.Dynamic.Resource(canariesGVR).Namespace(ns).Get(ctx, "podinfo", metav1.GetOptions{})
		phase, _, _ := unstructured.NestedString(c.Object, "status", "phase")
		return err == nil && phase == string(workflows.PhaseInitialized)
	}, 30*time.Second, 200*time.Millisecond, "the Canary's status says Initialized")

	// The release: a new image, applied as GitOps tools apply it.
	dep, err := s.Kube.AppsV1().Deployments(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	dep.Spec.Template.Spec.Containers[0].Image = PodinfoImage("6.0.1")
	_, err = s.Kube.AppsV1().Deployments(ns).Update(ctx, dep, metav1.UpdateOptions{})
	require.NoError(t, err)
	changed := time.Now()

	releaseRun := waitClosed(ctx, t, tc, id, initRun, 5*time.Minute)
	res, err = rc.Result(ctx, id, releaseRun)
	require.NoError(t, err)
	require.True(t, res.Promoted, "the release promotes: %+v", res)
	require.Equal(t, workflows.PhaseSucceeded, res.Phase)
	t.Logf("image change → Succeeded in %s (run %s)", time.Since(changed).Round(time.Second), releaseRun)
	img, _, err := s.Image(ctx, ns, "podinfo-primary")
	require.NoError(t, err)
	require.Equal(t, PodinfoImage("6.0.1"), img, "the primary runs the promoted image")
	primary, canary, err := s.TraefikWeights(ctx, ns, "podinfo")
	require.NoError(t, err)
	require.Equal(t, [2]int64{100, 0}, [2]int64{primary, canary}, "all traffic on the primary after the promotion")

	// CI's gate, as Flagger documents it, on the status the rollout wrote (the trigger asked for it).
	kubectl := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, labbin.Kubectl(), append([]string{"--kubeconfig", env.Kubeconfig, "-n", ns}, args...)...).CombinedOutput()
		return string(out), err
	}
	out, err := kubectl("wait", "canary/podinfo", "--for=condition=promoted", "--timeout=60s")
	require.NoError(t, err, "kubectl wait --for=condition=promoted: %s", out)
	out, err = kubectl("get", "canary", "podinfo", "-o", "jsonpath={.status.phase} {.status.canaryWeight}")
	require.NoError(t, err, out)
	require.Equal(t, "Succeeded 0", out)
	out, err = kubectl("get", "canaries")
	require.NoError(t, err, out)
	t.Logf("kubectl get canaries:\n%s", out)

	// Leader election: two runs in all, one revision signal each, all from the trigger.
	runs, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: env.TemporalNamespace, Query: fmt.Sprintf("WorkflowId = '%s'", id)})
	require.NoError(t, err)
	require.Len(t, runs.GetExecutions(), 2, "one run for the initialisation, one for the release: the standby replica started none")
	for _, run := range []string{initRun, releaseRun} {
		require.Equal(t, []string{gitops.SignalBy}, revisionSignals(ctx, t, tc, id, run), "revision signals of run %s", run)
	}

	// A failing release from git: the Canary's rollout hook now always fails (a spec change with no run open starts
	// nothing), then a new image: the release is rolled back at the threshold, the Canary says Failed with the
	// Promoted condition False (what a CI gate on kubectl wait sees), and the primary keeps the promoted image.
	failing, err := s.WriteCanary("canary-failing", CanaryOptions{Namespace: ns, LoadDuration: "1m", FailingHook: true, Threshold: 2})
	require.NoError(t, err)
	withRevert(t, failing)
	raw, err = os.ReadFile(failing)
	require.NoError(t, err)
	var failingObj map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &failingObj))
	c, err := s.Dynamic.Resource(canariesGVR).Namespace(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	c.Object["spec"] = failingObj["spec"]
	_, err = s.Dynamic.Resource(canariesGVR).Namespace(ns).Update(ctx, c, metav1.UpdateOptions{})
	require.NoError(t, err)
	dep, err = s.Kube.AppsV1().Deployments(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	dep.Spec.Template.Spec.Containers[0].Image = PodinfoImage("6.0.2")
	_, err = s.Kube.AppsV1().Deployments(ns).Update(ctx, dep, metav1.UpdateOptions{})
	require.NoError(t, err)
	failedRun := waitClosed(ctx, t, tc, id, releaseRun, 5*time.Minute)
	res, err = rc.Result(ctx, id, failedRun)
	require.NoError(t, err)
	require.Equal(t, workflows.PhaseFailed, res.Phase, "the failing release is rolled back: %+v", res)
	require.Contains(t, res.Reason, "failed checks threshold reached 2")
	out, err = kubectl("wait", "canary/podinfo", "--for=condition=promoted=false", "--timeout=60s")
	require.NoError(t, err, "kubectl wait --for=condition=promoted=false: %s", out)
	out, err = kubectl("get", "canary", "podinfo", "-o", "jsonpath={.status.phase} {.status.canaryWeight}")
	require.NoError(t, err, out)
	require.Equal(t, "Failed 0", out)
	img, _, err = s.Image(ctx, ns, "podinfo-primary")
	require.NoError(t, err)
	require.Equal(t, PodinfoImage("6.0.1"), img, "the primary keeps the promoted image")

	// Deleting the Canary (kubectl delete, or git no longer holding it): with revertOnDeletion the trigger's
	// finalizer holds the object until the finalisation has put the cluster back as before the Canary.
	c, err = s.Dynamic.Resource(canariesGVR).Namespace(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Contains(t, c.GetFinalizers(), gitops.Finalizer)
	require.NoError(t, s.Dynamic.Resource(canariesGVR).Namespace(ns).Delete(ctx, "podinfo", metav1.DeleteOptions{}))
	deleted := time.Now()
	require.Eventually(t, func() bool {
		_, err := s.Dynamic.Resource(canariesGVR).Namespace(ns).Get(ctx, "podinfo", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, 3*time.Minute, 500*time.Millisecond, "the Canary is deleted once finalised")
	t.Logf("Canary deleted and finalised in %s", time.Since(deleted).Round(100*time.Millisecond))
	var fin workflows.FinalizeStatus
	require.NoError(t, tc.GetWorkflow(ctx, workflows.FinalizeWorkflowID(ns, "podinfo"), "").Get(ctx, &fin))
	require.Equal(t, workflows.PhaseTerminated, fin.Phase)
	require.True(t, fin.Reverted)
	img, replicas, err := s.Image(ctx, ns, "podinfo")
	require.NoError(t, err)
	require.Equal(t, PodinfoImage("6.0.2"), img, "the target as the user left it")
	require.Positive(t, replicas, "the target serves again")
	_, err = s.Kube.AppsV1().Deployments(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the primary is gone: %v", err)
	apex, err := s.Kube.CoreV1().Services(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"app": "podinfo"}, apex.Spec.Selector, "the apex Service selects the target's pods")
	ts, err := s.Dynamic.Resource(labtest.TraefikServices).Namespace(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	services, _, _ := unstructured.NestedSlice(ts.Object, "spec", "weighted", "services")
	require.Len(t, services, 1, "the TraefikService routes to the apex Service alone: %v", services)
}

// grantLease gives the worker's ServiceAccount deploy/rbac/leader-election.yaml's Role in ns, where this test's
// Lease lives.
func grantLease(ctx context.Context, t *testing.T, s *Stack, root, ns string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "rbac", "leader-election.yaml"))
	require.NoError(t, err)
	docs := strings.Split(string(raw), "\n---\n")
	require.Len(t, docs, 2)
	var role rbacv1.Role
	require.NoError(t, yaml.Unmarshal([]byte(docs[0]), &role))
	var binding rbacv1.RoleBinding
	require.NoError(t, yaml.Unmarshal([]byte(docs[1]), &binding))
	role.Namespace, binding.Namespace = ns, ns
	_, err = s.Kube.RbacV1().Roles(ns).Create(ctx, &role, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = s.Kube.RbacV1().RoleBindings(ns).Create(ctx, &binding, metav1.CreateOptions{})
	require.NoError(t, err)
}

// waitLeader waits until a replica other than notHolder holds the trigger's Lease in ns, and returns it.
func waitLeader(ctx context.Context, t *testing.T, s *Stack, ns, notHolder string) string {
	t.Helper()
	var holder string
	require.Eventually(t, func() bool {
		l, err := s.Kube.CoordinationV1().Leases(ns).Get(ctx, gitops.LeaseName, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return false
		}
		holder = *l.Spec.HolderIdentity
		return holder != "" && holder != notHolder
	}, time.Minute, 200*time.Millisecond, "no replica took the Lease %s/%s", ns, gitops.LeaseName)
	return holder
}

// waitClosed waits for a closed run of id other than notRun and returns its run ID.
func waitClosed(ctx context.Context, t *testing.T, tc client.Client, id, notRun string, within time.Duration) string {
	t.Helper()
	var run string
	require.Eventually(t, func() bool {
		d, err := tc.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return false
		}
		info := d.GetWorkflowExecutionInfo()
		run = info.GetExecution().GetRunId()
		return run != notRun && info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	}, within, 500*time.Millisecond, "no run of %s closed within %s", id, within)
	return run
}

// revisionSignals returns who sent each revision signal of a run.
func revisionSignals(ctx context.Context, t *testing.T, tc client.Client, id, run string) []string {
	t.Helper()
	var by []string
	it := tc.GetWorkflowHistory(ctx, id, run, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		a := ev.GetWorkflowExecutionSignaledEventAttributes()
		if a == nil || a.GetSignalName() != workflows.SignalRevision {
			continue
		}
		var sig workflows.ActionSignal
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(a.GetInput().GetPayloads()[0], &sig))
		by = append(by, sig.By)
	}
	return by
}
