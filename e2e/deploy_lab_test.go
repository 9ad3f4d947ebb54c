//go:build lab

package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

// The kustomize bases and the Helm chart apply to a real API server (server-side, dry run), so a user's apply
// will not be refused.
func TestDeployManifestsApplyServerSide(t *testing.T) {
	env := labtest.Lab(t)
	_, kube := labtest.Kube(t)
	root, err := labtest.RepoRoot()
	require.NoError(t, err)
	ctx := context.Background()
	for _, ns := range []string{"canaryflow-system", "loadtest", "team-a", "team-b"} {
		_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			require.NoError(t, err)
		}
	}
	kubectl := labbin.Kubectl()
	apply := func(name, manifests string, extra ...string) {
		t.Run(name, func(t *testing.T) {
			// --force-conflicts: the shared lab may hold these objects as an e2e stack applied them from an older
			// checkout (its field manager owns the rules); a dry run only asks whether the API server accepts ours.
			args := append([]string{"--kubeconfig", env.Kubeconfig, "apply", "--server-side", "--dry-run=server", "--force-conflicts",
				"--field-manager", "canaryflow-deploy-test", "-f", "-"}, extra...)
			cmd := exec.Command(kubectl, args...)
			cmd.Stdin = strings.NewReader(manifests)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			assert.Contains(t, string(out), "serverside-applied (server dry run)")
		})
	}
	apply("kustomize deploy", run(t, root, kubectl, "kustomize", "deploy"))
	apply("kustomize deploy/crds", run(t, root, kubectl, "kustomize", "deploy/crds"))
	apply("kustomize deploy/loadtester", run(t, root, kubectl, "kustomize", "deploy/loadtester"), "-n", "loadtest")
	apply("kustomize deploy/namespaced", run(t, root, kubectl, "kustomize", "deploy/namespaced"))
	apply("kustomize deploy/namespaced/rbac", run(t, root, kubectl, "kustomize", "deploy/namespaced/rbac"), "-n", "team-a")
	apply("helm chart", helmTemplate(t, root))
	apply("helm chart with rbac.namespaces", helmTemplate(t, root, "rbac.namespaces={team-a,team-b}"))
	apply("helm chart with TLS and API key", helmTemplate(t, root, "temporal.tls.secretName=temporal-tls",
		"temporal.tls.mtls=true", "temporal.apiKeySecretName=temporal-cloud"))
}
