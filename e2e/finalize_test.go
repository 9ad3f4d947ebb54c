//go:build lab

package e2e

import (
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/workflows"
)

// TestDeleteWithRevertOnDeletionRestoresTheClusterAsBeforeTheCanary promotes 6.0.1 on the lab with a Canary that
// asks for spec.revertOnDeletion, runs `starter delete --wait` (real worker under its ServiceAccount, real starter),
// and checks the cluster is as it was before the Canary: the target Deployment back at the primary's replicas
// and serving 6.0.1, its HPA untouched, the apex Service selecting the target's pods, no -primary or -canary
// object left, the TraefikService the user's IngressRoute names routing to the apex Service, and the requests
// through Traefik answered by the target's pods.
func TestDeleteWithRevertOnDeletionRestoresTheClusterAsBeforeTheCanary(t *testing.T) {
	ctx, sc := startScenarios(t, "fin-revert", 20*time.Minute)
	s, ns := sc.S, sc.NS

	// Before the Canary: the user's Deployment (2 replicas) and HPA, and the IngressRoute.
	require.NoError(t, s.ApplyPodinfo(ctx, ns, "6.0.0"))
	require.NoError(t, s.ApplyIngressRoutes(ctx, ns))
	hpaBefore, err := s.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)

	file, err := s.WriteCanary("canary-revert", CanaryOptions{Namespace: ns, StepWeight: 25, MaxWeight: 50})
	require.NoError(t, err)
	withRevert(t, file)
	require.NoError(t, sc.InitialiseWith(ctx, file), "initialisation")
	r := s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.1"), "--wait", "--timeout", "10m", "--by", "e2e")
	require.NoError(t, expectCode("starter rollout 6.0.1", r, 0))
	require.NoError(t, sc.ExpectPrimary(ctx, "6.0.1"))
	_, replicas, err := s.Image(ctx, ns, "podinfo")
	require.NoError(t, err)
	require.Zero(t, replicas, "the target is scaled to zero after the promotion")

	// Users keep asking while the canary is deleted: count the answers that failed, as a figure.
	var asked, failed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			asked.Add(1)
			if _, err := sc.ask(ctx, "/api/info", nil); err != nil {
				failed.Add(1)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	r = s.Starter(ctx, "delete", "-f", file, "--wait", "--timeout", "5m", "--by", "e2e")
	close(stop)
	<-done
	require.NoError(t, expectCode("starter delete", r, 0))
	require.NoError(t, expectLines("starter delete", r.Output, "finalising "+ns+"/podinfo, restoring the objects",
		"workflow ID: finalize/"+ns+"/podinfo", "phase Terminating", "target podinfo is ready", "phase Terminated"))
	t.Logf("during the finalisation %d of %d requests through Traefik failed; it took %s", failed.Load(), asked.Load(), r.Took.Round(100*time.Millisecond))

	// The target: the primary's replicas, the promoted version, ready; its HPA as the user wrote it.
	require.Eventually(t, func() bool {
		d, err := s.Kube.AppsV1().Deployments(ns).Get(ctx, "podinfo", metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == 2 && d.Status.AvailableReplicas == 2
	}, time.Minute, 250*time.Millisecond, "podinfo back at the primary's 2 replicas and available")
	img, _, err := s.Image(ctx, ns, "podinfo")
	require.NoError(t, err)
	assert.Equal(t, PodinfoImage("6.0.1"), img)
	hpa, err := s.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, hpaBefore.Spec, hpa.Spec, "the user's HPA is untouched")

	// The apex Service selects the target's pods; nothing canaryflow generated is left.
	svc, err := s.Kube.CoreV1().Services(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "podinfo"}, svc.Spec.Selector)
	gone := func(what string, get func() error) {
		require.Eventually(t, func() bool { return apierrors.IsNotFound(get()) }, time.Minute, 250*time.Millisecond, what+" is deleted")
	}
	gone("Deployment podinfo-primary", func() error {
		_, err := s.Kube.AppsV1().Deployments(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
		return err
	})
	gone("HPA podinfo-primary", func() error {
		_, err := s.Kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "podinfo-primary", metav1.GetOptions{})
		return err
	})
	for _, name := range []string{"podinfo-primary", "podinfo-canary"} {
		gone("Service "+name, func() error {
			_, err := s.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
			return err
		})
	}
	pods, err := s.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=podinfo-primary"})
	require.NoError(t, err)
	for _, p := range pods.Items {
		assert.NotNil(t, p.DeletionTimestamp, "primary pod %s is going", p.Name)
	}

	// Traefik: the TraefikService the IngressRoute names routes to the apex Service alone.
	ts, err := s.Dynamic.Resource(labtest.TraefikServices).Namespace(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	services, _, _ := unstructured.NestedSlice(ts.Object, "spec", "weighted", "services")
	require.Len(t, services, 1, "%v", services)
	assert.Equal(t, "podinfo", services[0].(map[string]any)["name"])

	// Users are served by the target's pods through Traefik: 20 answers in a row, once Traefik has followed the
	// apex Service's endpoints (it takes up to 2 s to route to new endpoints).
	require.NoError(t, sc.waitServing(ctx, "6.0.1", time.Minute))
	finished := time.Now()
	for streak, last := 0, ""; streak < 20; {
		require.Less(t, time.Since(finished), 30*time.Second, "no 20 answers in a row from the target's pods through Traefik (last other answer: %s)", last)
		a, err := sc.ask(ctx, "/api/info", nil)
		switch {
		case err != nil:
			streak, last = 0, err.Error()
		case !strings.HasPrefix(a.Pod, "podinfo-") || a.Primary():
			streak, last = 0, a.Pod
		default:
			streak++
			continue
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("answers only from the target's pods %s after starter delete returned", time.Since(finished).Round(100*time.Millisecond))

	var res workflows.FinalizeStatus
	require.NoError(t, sc.Temporal.GetWorkflow(ctx, workflows.FinalizeWorkflowID(ns, "podinfo"), "").Get(ctx, &res))
	assert.Equal(t, workflows.PhaseTerminated, res.Phase)
	assert.True(t, res.Reverted)
}

// TestDeleteWithoutRevertOnDeletionLeavesTheObjectsAsFlaggerDoes deletes an initialised canary whose Canary does
// not ask for spec.revertOnDeletion, by name (the spec of its last rollout): as Flagger's finalizer, canaryflow
// changes nothing, so the target stays at zero, the primary keeps serving through the apex Service and the
// TraefikService at 100/0.
func TestDeleteWithoutRevertOnDeletionLeavesTheObjectsAsFlaggerDoes(t *testing.T) {
	ctx, sc := startScenarios(t, "fin-keep", 10*time.Minute)
	s, ns := sc.S, sc.NS
	require.NoError(t, sc.Initialise(ctx), "initialisation")

	r := s.Starter(ctx, "delete", "podinfo", "-n", ns, "--wait", "--by", "e2e")
	require.NoError(t, expectCode("starter delete", r, 0))
	require.NoError(t, expectLines("starter delete", r.Output, "leaving its objects as they are (spec.revertOnDeletion is false)",
		"phase Terminating", "phase Terminated: spec.revertOnDeletion is false"))

	_, replicas, err := s.Image(ctx, ns, "podinfo")
	require.NoError(t, err)
	assert.Zero(t, replicas, "the target stays at zero replicas, as Flagger leaves it")
	img, primaryReplicas, err := s.Image(ctx, ns, "podinfo-primary")
	require.NoError(t, err)
	assert.Equal(t, PodinfoImage("6.0.0"), img)
	assert.Equal(t, int32(2), primaryReplicas)
	svc, err := s.Kube.CoreV1().Services(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"app": "podinfo-primary"}, svc.Spec.Selector)
	for _, name := range []string{"podinfo-primary", "podinfo-canary"} {
		_, err := s.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		assert.NoError(t, err, "Service %s is left", name)
	}
	require.NoError(t, sc.waitWeights(ctx, 100, 0, 10*time.Second))
	require.NoError(t, sc.waitServing(ctx, "6.0.0", 30*time.Second))
	a, err := sc.ask(ctx, "/api/info", nil)
	require.NoError(t, err)
	assert.True(t, a.Primary(), "answered by %s, want the primary", a.Pod)
}

// withRevert adds spec.revertOnDeletion to a Canary file WriteCanary wrote.
func withRevert(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := strings.Replace(string(b), "spec:\n", "spec:\n  revertOnDeletion: true\n", 1)
	require.NotEqual(t, string(b), out)
	require.NoError(t, os.WriteFile(path, []byte(out), 0o644))
}
