package e2e

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

// helmBinary is the helm the Makefile installs into the cache (make tools) and names in CANARYFLOW_HELM; run
// without make, the one in the cache.
func helmBinary(t *testing.T) string {
	bin := os.Getenv("CANARYFLOW_HELM")
	if bin == "" {
		found, _ := filepath.Glob(filepath.Join(labbin.CacheDir(), "tools", "helm-*", "helm"))
		if len(found) == 0 {
			t.Fatal("no helm in the cache: run make tools (make test does), or set CANARYFLOW_HELM")
		}
		bin = found[len(found)-1]
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm is not installed at %s (CANARYFLOW_HELM): run make tools (make test does)", bin)
	}
	return bin
}

func run(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	require.NoError(t, cmd.Run(), "%s %s: %s", filepath.Base(bin), strings.Join(args, " "), errb.String())
	return out.String()
}

func helmTemplate(t *testing.T, root string, sets ...string) string {
	args := []string{"template", "canaryflow", "deploy/helm/canaryflow", "-n", "canaryflow-system"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return run(t, root, helmBinary(t), args...)
}

// The chart grants the worker exactly what deploy/rbac grants: one least-privilege role, written twice.
func TestHelmClusterRoleEqualsDeployRBAC(t *testing.T) {
	root, err := labtest.RepoRoot()
	require.NoError(t, err)
	var want rbacv1.ClusterRole
	data, err := os.ReadFile(filepath.Join(root, "deploy", "rbac", "clusterrole.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &want))
	var got *rbacv1.ClusterRole
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(helmTemplate(t, root)), 4096)
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		// A manifest that does not decode must fail the test, not end the list early.
		require.NoError(t, err, "decode the rendered manifests")
		if obj["kind"] == "ClusterRole" {
			js, _ := yaml.Marshal(obj)
			got = &rbacv1.ClusterRole{}
			require.NoError(t, yaml.Unmarshal(js, got))
		}
	}
	require.NotNil(t, got, "the chart renders no ClusterRole")
	assert.Equal(t, want.Rules, got.Rules)
}

// rendered decodes every object of a rendered manifest stream.
func rendered(t *testing.T, manifests string) []map[string]any {
	var out []map[string]any
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		// A manifest that does not decode must fail the test, not end the list early.
		require.NoError(t, err, "decode the rendered manifests")
		if obj != nil {
			out = append(out, obj)
		}
	}
	return out
}

// In namespaced mode the chart grants the worker, in each listed namespace only, exactly what the namespaced Role
// of deploy/namespaced grants, which is what the ClusterRole grants; nothing cluster-wide, and the worker is told
// its namespaces.
func TestHelmNamespacedRolesEqualDeployRole(t *testing.T) {
	root, err := labtest.RepoRoot()
	require.NoError(t, err)
	var want rbacv1.Role
	data, err := os.ReadFile(filepath.Join(root, "deploy", "namespaced", "rbac", "role.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &want))
	var cluster rbacv1.ClusterRole
	data, err = os.ReadFile(filepath.Join(root, "deploy", "rbac", "clusterrole.yaml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(data, &cluster))
	require.Equal(t, cluster.Rules, want.Rules, "deploy/namespaced/rbac/role.yaml and deploy/rbac/clusterrole.yaml grant the same")

	out := helmTemplate(t, root, "rbac.namespaces={team-a,team-b}")
	roles, bindings := map[string]rbacv1.Role{}, map[string]rbacv1.RoleBinding{}
	for _, obj := range rendered(t, out) {
		js, _ := yaml.Marshal(obj)
		switch obj["kind"] {
		case "ClusterRole", "ClusterRoleBinding":
			t.Errorf("namespaced mode renders a %s", obj["kind"])
		case "Role":
			var r rbacv1.Role
			require.NoError(t, yaml.Unmarshal(js, &r))
			if strings.HasSuffix(r.Name, "-gitops-leader") {
				continue // the Lease grant in the worker's namespace (TestHelmLeaderElectionRoleEqualsDeployRBAC)
			}
			roles[r.Namespace] = r
		case "RoleBinding":
			var b rbacv1.RoleBinding
			require.NoError(t, yaml.Unmarshal(js, &b))
			if strings.HasSuffix(b.Name, "-gitops-leader") {
				continue
			}
			bindings[b.Namespace] = b
		}
	}
	require.Len(t, roles, 2)
	require.Len(t, bindings, 2)
	for _, ns := range []string{"team-a", "team-b"} {
		assert.Equal(t, want.Rules, roles[ns].Rules, ns)
		b := bindings[ns]
		assert.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: roles[ns].Name}, b.RoleRef, ns)
		assert.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: "canaryflow", Namespace: "canaryflow-system"}}, b.Subjects, ns)
	}
	assert.Contains(t, out, `{name: CANARYFLOW_NAMESPACES, value: "team-a,team-b"}`)
	assert.NotContains(t, helmTemplate(t, root), "CANARYFLOW_NAMESPACES", "the default is every namespace")

	// The kustomize variant: no cluster-wide grant, and the worker told its namespaces.
	kz := run(t, root, labbin.Kubectl(), "kustomize", "deploy/namespaced")
	for _, obj := range rendered(t, kz) {
		assert.NotContains(t, []any{"ClusterRole", "ClusterRoleBinding"}, obj["kind"])
	}
	assert.Contains(t, kz, "CANARYFLOW_NAMESPACES")
}

// GitOps mode's leader election Lease is granted in the worker's namespace only, by the chart in both RBAC modes
// exactly as by deploy/rbac/leader-election.yaml, and the kustomize bases include it.
func TestHelmLeaderElectionRoleEqualsDeployRBAC(t *testing.T) {
	root, err := labtest.RepoRoot()
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(root, "deploy", "rbac", "leader-election.yaml"))
	require.NoError(t, err)
	var want *rbacv1.Role
	for _, obj := range rendered(t, string(data)) {
		if obj["kind"] == "Role" {
			js, _ := yaml.Marshal(obj)
			want = &rbacv1.Role{}
			require.NoError(t, yaml.Unmarshal(js, want))
		}
	}
	require.NotNil(t, want, "deploy/rbac/leader-election.yaml holds no Role")
	for _, sets := range [][]string{nil, {"rbac.namespaces={team-a,team-b}"}} {
		var got []rbacv1.Role
		for _, obj := range rendered(t, helmTemplate(t, root, sets...)) {
			js, _ := yaml.Marshal(obj)
			if obj["kind"] == "Role" && strings.HasSuffix(obj["metadata"].(map[string]any)["name"].(string), "-gitops-leader") {
				var r rbacv1.Role
				require.NoError(t, yaml.Unmarshal(js, &r))
				got = append(got, r)
			}
		}
		require.Len(t, got, 1, "sets %v", sets)
		assert.Equal(t, "canaryflow-system", got[0].Namespace, "the Lease lives in the worker's namespace")
		assert.Equal(t, want.Rules, got[0].Rules)
	}
	for _, base := range []string{"deploy", "deploy/namespaced"} {
		assert.Contains(t, run(t, root, labbin.Kubectl(), "kustomize", base), "name: canaryflow-gitops-leader", base)
	}
}

// deploy/crds/crd.yaml is Flagger v1.44.0's artifacts/flagger/crd.yaml byte for byte (its git blob id, named in
// deploy/crds/README.md), so Canary objects written for Flagger apply unchanged and a cluster that has Flagger's
// CRD is not changed by applying ours.
func TestFlaggerCRDIsUpstreamByteForByte(t *testing.T) {
	root, err := labtest.RepoRoot()
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(root, "deploy", "crds", "crd.yaml"))
	require.NoError(t, err)
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(data))
	h.Write(data)
	const upstream = "e02f5aa0ef5cf64890cf298d6be83d27e648548d"
	assert.Equal(t, upstream, hex.EncodeToString(h.Sum(nil)))
	readme, err := os.ReadFile(filepath.Join(root, "deploy", "crds", "README.md"))
	require.NoError(t, err)
	assert.Contains(t, string(readme), upstream)
}

// TLS and API key values mount the Secrets and point the worker at their files.
func TestHelmTLSValuesWireTheWorker(t *testing.T) {
	root, err := labtest.RepoRoot()
	require.NoError(t, err)
	out := helmTemplate(t, root, "temporal.tls.secretName=temporal-tls", "temporal.tls.mtls=true",
		"temporal.apiKeySecretName=temporal-cloud", "temporal.address=acct.tmprl.cloud:7233")
	for _, want := range []string{
		"CANARYFLOW_TLS_CA, value: /etc/canaryflow/tls/ca.crt",
		"CANARYFLOW_TLS_CERT, value: /etc/canaryflow/tls/tls.crt",
		"CANARYFLOW_API_KEY_FILE, value: /etc/canaryflow/api-key/api-key",
		"secretName: temporal-tls", "secretName: temporal-cloud",
		`CANARYFLOW_TEMPORAL_ADDRESS, value: "acct.tmprl.cloud:7233"`,
	} {
		assert.Contains(t, out, want)
	}
	plain := helmTemplate(t, root)
	assert.NotContains(t, plain, "CANARYFLOW_TLS_CA")
	assert.NotContains(t, plain, "volumeMounts:\n            - ")
}

// The chart's worker.releaseRate, worker.maxReleasesAtWork and worker.goMemLimit reach the worker as
// CANARYFLOW_RELEASE_RATE, CANARYFLOW_MAX_RELEASES_AT_WORK and GOMEMLIMIT, and the defaults set nothing.
func TestHelmReleaseRateWiresTheWorker(t *testing.T) {
	root, err := labtest.RepoRoot()
	require.NoError(t, err)
	out := helmTemplate(t, root, "worker.releaseRate=1.5", "worker.maxReleasesAtWork=200", "worker.goMemLimit=72MiB")
	assert.Contains(t, out, `CANARYFLOW_RELEASE_RATE, value: "1.5"`)
	assert.Contains(t, out, `CANARYFLOW_MAX_RELEASES_AT_WORK, value: "200"`)
	assert.Contains(t, out, `GOMEMLIMIT, value: "72MiB"`)
	plain := helmTemplate(t, root)
	assert.NotContains(t, plain, "CANARYFLOW_RELEASE_RATE")
	assert.NotContains(t, plain, "CANARYFLOW_MAX_RELEASES_AT_WORK")
	assert.NotContains(t, plain, "GOMEMLIMIT")
}
