//go:build lab

package activities_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

// The status the workflow writes in GitOps mode lands on a Canary object of Flagger's own CRD on a real API server,
// where Flagger's tools read it: `kubectl get canaries` prints Flagger's Status and Weight columns, and
// `kubectl wait --for=condition=promoted` (Flagger's documented CI gate) returns once the rollout is promoted.
func TestCanaryStatusIsWhatKubectlReadsAsFlaggers(t *testing.T) {
	labtest.CRDs(t, labtest.SharedCRDs(t, "flagger")...)
	env := labtest.Lab(t)
	ns := labtest.Namespace(t, "cstatus")
	dyn, err := dynamic.NewForConfig(labtest.RestConfig(t))
	require.NoError(t, err)
	ctx := context.Background()
	canary := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
		"metadata": map[string]any{"name": "podinfo", "namespace": ns},
		"spec": map[string]any{
			"targetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
			"service":   map[string]any{"port": int64(9898)},
			"analysis":  map[string]any{"interval": "10s", "threshold": int64(2), "maxWeight": int64(50), "stepWeight": int64(10)},
		},
	}}
	_, err = dyn.Resource(activities.CanaryGVR).Namespace(ns).Create(ctx, canary, metav1.CreateOptions{})
	require.NoError(t, err)

	a := &activities.CanaryStatus{Client: dyn}
	ref := activities.CanaryRef{Namespace: ns, Name: "podinfo"}
	at := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	kubectl := func(args ...string) (string, error) {
		cmd := exec.Command(filepath.Join(env.Bin, "kubectl"), append([]string{"--kubeconfig", env.Kubeconfig, "-n", ns}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	res, err := a.WriteCanaryStatus(ctx, activities.CanaryStatusInput{Canary: ref, Phase: "Progressing", CanaryWeight: 20,
		FailedChecks: 1, Iterations: 0, LastAppliedSpec: "rev2", LastPromotedSpec: "rev1", LastTransitionTime: at,
		Conditions: []activities.CanaryCondition{{Type: "Promoted", Status: "Unknown", Reason: "Progressing",
			Message: "New revision detected, progressing canary analysis.", LastUpdateTime: at, LastTransitionTime: at}}})
	require.NoError(t, err)
	require.False(t, res.Absent)
	out, err := kubectl("get", "canaries", "-o", "wide")
	require.NoError(t, err, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.Equal(t, []string{"NAME", "STATUS", "WEIGHT"}, strings.Fields(lines[0])[:3], out)
	require.Equal(t, []string{"podinfo", "Progressing", "20"}, strings.Fields(lines[1])[:3], out)
	_, err = kubectl("wait", "canary/podinfo", "--for=condition=promoted", "--timeout=1s")
	require.Error(t, err, "not promoted yet")

	// A write repeated after a crash sets the same absolute state; the promotion sets the condition True.
	for range 2 {
		_, err = a.WriteCanaryStatus(ctx, activities.CanaryStatusInput{Canary: ref, Phase: "Succeeded", LastAppliedSpec: "rev2",
			LastPromotedSpec: "rev2", LastTransitionTime: at.Add(time.Minute),
			Conditions: []activities.CanaryCondition{{Type: "Promoted", Status: "True", Reason: "Succeeded",
				Message: "Canary analysis completed successfully, promotion finished.", LastUpdateTime: at, LastTransitionTime: at}}})
		require.NoError(t, err)
	}
	out, err = kubectl("wait", "canary/podinfo", "--for=condition=promoted", "--timeout=30s")
	require.NoError(t, err, out)
	got, err := dyn.Resource(activities.CanaryGVR).Namespace(ns).Get(ctx, "podinfo", metav1.GetOptions{})
	require.NoError(t, err)
	phase, _, _ := unstructured.NestedString(got.Object, "status", "phase")
	weight, _, _ := unstructured.NestedInt64(got.Object, "status", "canaryWeight")
	promoted, _, _ := unstructured.NestedString(got.Object, "status", "lastPromotedSpec")
	require.Equal(t, "Succeeded", phase)
	require.Zero(t, weight)
	require.Equal(t, "rev2", promoted)
	spec, _, _ := unstructured.NestedMap(got.Object, "spec")
	require.Equal(t, canary.Object["spec"].(map[string]any)["analysis"], spec["analysis"], "the spec is the user's: only status is written")

	// A Canary object that is gone (deleted while its workflow ends) is no error and nothing is created.
	res, err = a.WriteCanaryStatus(ctx, activities.CanaryStatusInput{Canary: activities.CanaryRef{Namespace: ns, Name: "gone"}, Phase: "Failed", LastTransitionTime: at})
	require.NoError(t, err)
	require.True(t, res.Absent)
}
