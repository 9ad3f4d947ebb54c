//go:build lab

package labtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// TestSecretScanReportsAValueInAWorkflowInput proves the scan every lab namespace gets at its end can fail: a
// Secret's value put in a workflow's input, as written and as bytes (base64 in the JSON payload), is reported,
// naming the Secret, key, workflow and event, not the value; a lowercase word and the namespace's name, which a
// history holds for other reasons, are not.
func TestSecretScanReportsAValueInAWorkflowInput(t *testing.T) {
	env := Lab(t)
	_, cs := Kube(t)
	tc := Temporal(t)
	ns := Namespace(t, "secretscan")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	token, key := "tok-9fQ2-SECRET-value", "k3Y-as-BYTES-77"
	_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		Data: map[string][]byte{"token": []byte(token), "key": []byte(key), "word": []byte("prometheus"),
			"ns": []byte(ns), "short": []byte("a1B")},
	}, metav1.CreateOptions{})
	require.NoError(t, err)

	findings, err := ScanHistoriesForSecrets(ctx, cs, tc, env.TemporalNamespace, ns)
	require.NoError(t, err)
	require.Empty(t, findings, "no workflow of the namespace yet")

	// No worker polls this queue: the started event alone holds the input.
	type input struct {
		Note  string
		Bytes []byte
	}
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: "canary/" + ns + "/probe", TaskQueue: "secretscan-" + ns,
		TypedSearchAttributes: temporal.NewSearchAttributes(searchattr.CanaryNamespace.ValueSet(ns)),
	}, "SecretScanProbe", input{Note: "token " + token + " for prometheus in " + ns, Bytes: []byte(key)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tc.TerminateWorkflow(context.Background(), run.GetID(), run.GetRunID(), "test over") })

	// Visibility is updated asynchronously: poll.
	deadline := time.Now().Add(30 * time.Second)
	for len(findings) < 2 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		findings, err = ScanHistoriesForSecrets(ctx, cs, tc, env.TemporalNamespace, ns)
		require.NoError(t, err)
	}
	all := strings.Join(findings, "\n")
	require.Len(t, findings, 2, all)
	require.Contains(t, all, "Secret creds key token is in workflow canary/"+ns+"/probe run "+run.GetRunID()+" event 1 (WorkflowExecutionStarted)")
	require.Contains(t, all, "Secret creds key key (base64) is in workflow canary/"+ns+"/probe")
	require.NotContains(t, all, token)
	require.NotContains(t, all, key)

	// The namespace's own scan at cleanup would fail this test too; the Secret goes first.
	require.NoError(t, cs.CoreV1().Secrets(ns).Delete(ctx, "creds", metav1.DeleteOptions{}))
}

// recorder records what the cleanup scan reports.
type recorder struct{ errors []string }

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Logf(string, ...any) {}

// TestSecretScanAtCleanupReadsPrivateDevServers: a test that runs its rollouts on a private dev server
// (labbin.DevServer) is scanned too; once that server has stopped, it is skipped without delay.
func TestSecretScanAtCleanupReadsPrivateDevServers(t *testing.T) {
	env := Lab(t)
	_, cs := Kube(t)
	ns := Namespace(t, "secretscan-dev")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := labbin.DevServer(ctx, nil)
	require.NoError(t, err)
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.Stop()
		}
	}()

	token := "dev-Q7x-SECRET-42"
	_, err = cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		Data: map[string][]byte{"token": []byte(token)}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = srv.Client().ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "canary/" + ns + "/probe", TaskQueue: "nobody"},
		"SecretScanProbe", "token "+token)
	require.NoError(t, err)

	var rec recorder
	require.Eventually(t, func() bool {
		rec = recorder{}
		scanAtCleanup(&rec, env, cs, ns)
		return len(rec.errors) > 0
	}, 30*time.Second, 200*time.Millisecond, "the private server's history is scanned")
	require.Len(t, rec.errors, 1, rec.errors)
	require.Contains(t, rec.errors[0], "on "+srv.FrontendHostPort()+": Secret creds key token is in workflow canary/"+ns+"/probe")

	require.NoError(t, srv.Stop())
	stopped = true
	start := time.Now()
	rec = recorder{}
	scanAtCleanup(&rec, env, cs, ns)
	require.Empty(t, rec.errors, "a stopped private server is skipped")
	require.Less(t, time.Since(start), 5*time.Second)
	require.NoError(t, cs.CoreV1().Secrets(ns).Delete(ctx, "creds", metav1.DeleteOptions{}))
}
