//go:build lab

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/lab/labtest"
)

// setImageFixture creates, in a fresh namespace of the lab's Kubernetes, a Deployment with two containers (app and
// sidecar) and writes the Canary file that targets it.
func setImageFixture(t *testing.T) (ns, file string, get func() *appsv1.Deployment) {
	_, cs := labtest.Kube(t)
	ns = labtest.Namespace(t, "starter-setimage")
	labels := map[string]string{"app": "web"}
	replicas := int32(0) // nothing needs to run: the test is about the pod template
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "app", Image: "ghcr.io/stefanprodan/podinfo:6.9.1"},
					{Name: "sidecar", Image: "busybox:1.36"},
				}},
			},
		},
	}
	_, err := cs.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{})
	require.NoError(t, err)
	file = filepath.Join(t.TempDir(), "web.yaml")
	require.NoError(t, os.WriteFile(file, []byte(fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: web, namespace: %s}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  service: {port: 9898}
  analysis: {interval: 10s, stepWeight: 50, maxWeight: 50}
`, ns)), 0o600))
	return ns, file, func() *appsv1.Deployment {
		got, err := cs.AppsV1().Deployments(ns).Get(t.Context(), "web", metav1.GetOptions{})
		require.NoError(t, err)
		return got
	}
}

func TestSetImagePatchesOnlyTheNamedContainerThenStartsTheRollout(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	ns, file, get := setImageFixture(t)

	code, out, errOut := e.starter("rollout", "-f", file, "--kubeconfig", labtest.Kubeconfig(t),
		"--set-image", "app=ghcr.io/stefanprodan/podinfo:6.9.2", "--by", "erin")

	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "Deployment "+ns+"/web: set image app=ghcr.io/stefanprodan/podinfo:6.9.2")
	assert.Contains(t, out, "started the rollout of "+ns+"/web")
	cs := get().Spec.Template.Spec.Containers
	assert.Equal(t, "ghcr.io/stefanprodan/podinfo:6.9.2", cs[0].Image)
	assert.Equal(t, "busybox:1.36", cs[1].Image, "the other container keeps its image")

	code, hist, errOut := e.starter("history", "web", "-n", ns)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, hist, `revision by erin reason "set image app=ghcr.io/stefanprodan/podinfo:6.9.2"`)
}

func TestSetImageOfAnUnknownContainerExits2NamingTheContainersAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	ns, file, get := setImageFixture(t)
	before := get()

	code, out, errOut := e.starter("rollout", "-f", file, "--kubeconfig", labtest.Kubeconfig(t),
		"--set-image", "app=ghcr.io/stefanprodan/podinfo:6.9.2", "--set-image", "nginx=nginx:1.27")

	require.Equal(t, 2, code, out)
	assert.Contains(t, errOut, "Deployment "+ns+"/web has no container nginx; its containers: app, sidecar (nothing was changed)")
	after := get()
	// Generation counts spec writes only (the controller's status updates do not bump it).
	assert.Equal(t, before.Generation, after.Generation, "the Deployment's spec was not written")
	assert.Equal(t, before.Spec.Template, after.Spec.Template)
	assert.Equal(t, "ghcr.io/stefanprodan/podinfo:6.9.1", after.Spec.Template.Spec.Containers[0].Image)
	_, err := e.client.DescribeWorkflowExecution(t.Context(), "canary/"+ns+"/web", "")
	require.True(t, isNotFound(err), "a workflow was started: %v", err)
}

// A rollout whose input Temporal would refuse (3 MB of webhook metadata; the limit is 2 MiB) exits 2 naming the
// limit before --set-image patches anything: no image reaches the target without a rollout to analyse it.
func TestSetImageOfARolloutTooLargeForTemporalExits2AndChangesNothing(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	ns, _, get := setImageFixture(t)
	before := get()
	file := filepath.Join(t.TempDir(), "web.yaml")
	require.NoError(t, os.WriteFile(file, []byte(fmt.Sprintf(`apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: web, namespace: %s}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  service: {port: 9898}
  analysis:
    interval: 10s
    stepWeight: 50
    maxWeight: 50
    webhooks:
    - name: load-test
      url: http://loadtester.test/
      metadata:
        payload: %s
`, ns, strings.Repeat("x", 3<<20))), 0o600))

	code, out, errOut := e.starter("rollout", "-f", file, "--kubeconfig", labtest.Kubeconfig(t),
		"--set-image", "app=ghcr.io/stefanprodan/podinfo:6.9.2", "--wait")

	require.Equal(t, 2, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "rollout of "+ns+"/web: the rollout input (the Canary, its MetricTemplates and AlertProviders) is ")
	assert.Contains(t, errOut, "bytes encoded, over Temporal's payload limit of 2 MiB (2097152 bytes")
	assert.Contains(t, errOut, "nothing was changed")
	after := get()
	assert.Equal(t, before.Generation, after.Generation, "the Deployment's spec was not written")
	assert.Equal(t, "ghcr.io/stefanprodan/podinfo:6.9.1", after.Spec.Template.Spec.Containers[0].Image)
	_, err := e.client.DescribeWorkflowExecution(t.Context(), "canary/"+ns+"/web", "")
	require.True(t, isNotFound(err), "a workflow was started: %v", err)
}
