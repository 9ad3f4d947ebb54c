//go:build lab

package multicluster

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1alpha1"
	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/workflows"
)

// privateNet is this package's network for cluster b, apart from the usual lab's (10.244.0.0/24), the example of
// lab/README.md (10.245.0.0/24) and e2e/kubefault's (10.246.0.0/24).
var privateNet = labtest.PrivateNet{
	Netns: "cflab-mc", VethHost: "cfmc0", VethNS: "cfmc1",
	LinkHostIP: "10.247.255.1", LinkNSIP: "10.247.255.2", PodCIDR: "10.247.0.0/24",
}

// release writes a Release of podinfo at version over clusters a (wave 1) and b (wave 2), b's Canary in namespace
// nsB with the extra canaryPatch fields given.
func release(t *testing.T, dir, name, version, qa, qb, nsA, nsB, bGate, bPatch string) string {
	t.Helper()
	doc := fmt.Sprintf(`apiVersion: canaryflow.io/v1alpha1
kind: Release
metadata: {name: %s}
spec:
  images: {podinfod: %s}
  onFailure: rollback-all
  canary:
    metadata: {name: podinfo, namespace: %s}
    spec:
      provider: kubernetes
      targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
      progressDeadlineSeconds: 120
      service: {port: 9898}
      analysis: {interval: 10s, iterations: 2, threshold: 1}
  waves:
    - clusters: [{name: a, taskQueue: %s}]
    - gate: %s
      clusters:
        - name: b
          taskQueue: %s
          canaryPatch: {metadata: {namespace: %s}%s}
`, name, e2e.PodinfoImage(version), nsA, qa, bGate, qb, nsB, bPatch)
	path := filepath.Join(dir, name+".yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o644))
	return path
}

func applyPodinfo(ctx context.Context, t *testing.T, kube kubernetes.Interface, ns string) {
	t.Helper()
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		require.NoError(t, err)
	}
	_, err = kube.AppsV1().Deployments(ns).Create(ctx, labtest.Podinfo(ns, "podinfo", "podinfo", e2e.PodinfoImage("6.0.0"), 2), metav1.CreateOptions{})
	require.NoError(t, err)
}

// waitImage polls until the Deployment's first container runs image (a primary rolled back is written at once,
// but poll generously all the same).
func waitImage(ctx context.Context, t *testing.T, s *e2e.Stack, ns, name, image string) {
	t.Helper()
	var got string
	require.Eventually(t, func() bool {
		got, _, _ = s.Image(ctx, ns, name)
		return got == image
	}, 2*time.Minute, time.Second, "%s/%s runs %q, want %q", ns, name, got, image)
}

// TestReleaseRollsBackClusterAWhenClusterBFails releases podinfo 6.0.0 to both clusters (their first rollout:
// initialised), then 6.0.1 with onFailure rollback-all: wave 1 promotes it in cluster a (a's primary runs 6.0.1),
// wave 2 waits at its approval gate until `starter approve --release` opens it, then fails in cluster b (a
// pre-rollout webhook that cannot be reached fails the first check, threshold 1), and the release puts cluster a's
// primary back on 6.0.0 and cluster b's target back on 6.0.0. The release history states each cluster's decisions,
// and `starter release status` shows the clusters.
func TestReleaseRollsBackClusterAWhenClusterBFails(t *testing.T) {
	envA := labtest.Lab(t)
	envB := labtest.PrivateLab(t, privateNet)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	t.Cleanup(cancel)

	suffix := fmt.Sprintf("%06d", rand.IntN(1_000_000))
	qa, qb := "canaryflow-rel-a-"+suffix, "canaryflow-rel-b-"+suffix
	say := e2e.Narrator(t) // one narration for both clusters, in the order it happened
	sA, err := e2e.StartWith(ctx, envA, say, e2e.Options{TaskQueue: qa})
	require.NoError(t, err)
	// Cluster b's worker talks to cluster b's API server and to the one Temporal the release runs on.
	sB, err := e2e.StartWith(ctx, envB, say, e2e.Options{TaskQueue: qb, TemporalAddress: envA.TemporalAddress})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker a log:\n%s", sA.LogTail("worker", 60))
			t.Logf("worker b log:\n%s", sB.LogTail("worker", 60))
		}
		sA.Close()
		sB.Close()
	})
	nsA, nsB := labtest.Namespace(t, "release"), envB.Namespace(t, "release")
	applyPodinfo(ctx, t, sA.Kube, nsA)
	applyPodinfo(ctx, t, sB.Kube, nsB)

	// 1. 6.0.0 everywhere: the canary's first rollout in each cluster initialises it.
	init := release(t, sA.Dir, "podinfo-init-"+suffix, "6.0.0", qa, qb, nsA, nsB, "auto", "")
	r := sA.Starter(ctx, "release", "-f", init, "--wait", "--timeout", "10m")
	require.Equal(t, 0, r.Code, r.Output)
	require.Regexp(t, `a\s+wave-1\s+Initialized`, r.Output)
	require.Regexp(t, `b\s+wave-2\s+Initialized`, r.Output)
	waitImage(ctx, t, sA, nsA, "podinfo-primary", e2e.PodinfoImage("6.0.0"))
	waitImage(ctx, t, sB, nsB, "podinfo-primary", e2e.PodinfoImage("6.0.0"))
	initial := waitRelease(ctx, t, sA, "podinfo-init-"+suffix, time.Minute, func(st workflows.ReleaseStatus) bool { return st.Phase == workflows.ReleaseSucceeded })
	rev := initial.Clusters[0].Revision
	require.NotEmpty(t, rev)

	// 2. 6.0.1: promoted in a; wave 2 waits for approval, then fails in b; a is rolled back.
	failing := `, spec: {analysis: {webhooks: [{name: smoke, type: pre-rollout, url: "http://127.0.0.1:1/smoke", timeout: 2s}]}}`
	name := "podinfo-601-" + suffix
	rel := release(t, sA.Dir, name, "6.0.1", qa, qb, nsA, nsB, "approval", failing)
	r = sA.Starter(ctx, "release", "-f", rel)
	require.Equal(t, 0, r.Code, r.Output)
	st := waitRelease(ctx, t, sA, name, 10*time.Minute, func(st workflows.ReleaseStatus) bool { return st.PendingGate == "wave-2" })
	require.Equal(t, workflows.ClusterPromoted, st.Clusters[0].Phase, "wave 1 is done before wave 2's gate")
	require.Equal(t, workflows.ClusterPending, st.Clusters[1].Phase)
	waitImage(ctx, t, sA, nsA, "podinfo-primary", e2e.PodinfoImage("6.0.1"))
	b, _, err := sB.Image(ctx, nsB, "podinfo")
	require.NoError(t, err)
	require.Equal(t, e2e.PodinfoImage("6.0.0"), b, "cluster b is untouched until its wave is approved")

	r = sA.Starter(ctx, "approve", "--release", name, "--by", "e2e", "--reason", "a looks good")
	require.Equal(t, 0, r.Code, r.Output)
	st = waitRelease(ctx, t, sA, name, 10*time.Minute, func(st workflows.ReleaseStatus) bool { return st.Phase == workflows.ReleaseFailed })
	require.Equal(t, "e2e", st.Approvals[0].By)
	r = sA.Starter(ctx, "release", "status", name)
	require.Equal(t, 0, r.Code, r.Output)
	require.Contains(t, r.Output, "Cluster b (wave wave-2) failed: its rollout ended Failed")
	require.Contains(t, r.Output, "Cluster a (wave wave-1): rolled back to revision")
	require.Regexp(t, `a\s+wave-1\s+RolledBack\s+\S+\s+podinfod=`+strings.ReplaceAll(e2e.PodinfoImage("6.0.0"), ".", `\.`), r.Output)
	require.Regexp(t, `b\s+wave-2\s+Failed`, r.Output)
	require.Contains(t, r.Output, "canary/"+nsA+"/podinfo@a")
	require.Contains(t, r.Output, "canary/"+nsB+"/podinfo@b")
	require.Equal(t, rev, st.Clusters[0].Revision, "cluster a is back on the revision it ran before the release")

	// The starter reaches a cluster's rollout by canary and cluster: a's last one is the rollback, promoted.
	r = sA.Starter(ctx, "status", "podinfo", "-n", nsA, "--cluster", "a")
	require.Equal(t, 0, r.Code, r.Output)
	require.Regexp(t, `podinfo\s+Succeeded\s+0/100\s+0\s+0\s+`+rev, r.Output)

	// The history states each cluster's decisions as they were taken (the summaries of the release's commands).
	said := summaries(ctx, t, labtest.Temporal(t), v1alpha1.WorkflowID(name))
	require.Contains(t, said, "Cluster a (wave wave-1): promoted revision")
	require.Contains(t, said, "Cluster b (wave wave-2) failed: its rollout ended Failed")
	require.Contains(t, said, "Cluster a (wave wave-1): rolling back to podinfod="+e2e.PodinfoImage("6.0.0")+" (rollback-all)")

	waitImage(ctx, t, sA, nsA, "podinfo-primary", e2e.PodinfoImage("6.0.0"))
	waitImage(ctx, t, sA, nsA, "podinfo", e2e.PodinfoImage("6.0.0"))
	waitImage(ctx, t, sB, nsB, "podinfo-primary", e2e.PodinfoImage("6.0.0"))
	waitImage(ctx, t, sB, nsB, "podinfo", e2e.PodinfoImage("6.0.0"))

}

// waitRelease polls `starter release status -o json` until ok holds.
func waitRelease(ctx context.Context, t *testing.T, s *e2e.Stack, name string, within time.Duration, ok func(workflows.ReleaseStatus) bool) workflows.ReleaseStatus {
	t.Helper()
	var last struct {
		Status workflows.ReleaseStatus `json:"status"`
	}
	var out string
	require.Eventually(t, func() bool {
		r := s.StarterTo(ctx, func(string, ...any) {}, "release", "status", name, "-o", "json")
		out = r.Output
		return r.Code == 0 && json.Unmarshal([]byte(r.Output), &last) == nil && ok(last.Status)
	}, within, 2*time.Second, "release %s: last status %s", name, out)
	return last.Status
}

// summaries returns every command summary of a workflow's history, one after the other.
func summaries(ctx context.Context, t *testing.T, c client.Client, id string) string {
	t.Helper()
	var b strings.Builder
	it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		var s string
		if p := ev.GetUserMetadata().GetSummary(); p != nil && converter.GetDefaultDataConverter().FromPayload(p, &s) == nil {
			b.WriteString(s + "\n")
		}
	}
	return b.String()
}
