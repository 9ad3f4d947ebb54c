//go:build lab

package loadtester_test

// Against the lab, with the real worker, starter and load tester binaries: a release held by a confirm-rollout
// webhook at the load tester's /gate/check waits until someone opens the gate the way Flagger's docs say
// (curl -d '{"name": …, "namespace": …}' …/gate/open), then proceeds, and its history names who opened it.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/workflows"
)

func TestReleaseWaitsAtTheLoadTestersGateUntilItIsOpened(t *testing.T) {
	env := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// A task queue of its own, so that no other worker sharing the lab's Temporal takes these tasks.
	s, err := e2e.StartWith(ctx, env, e2e.Narrator(t), e2e.Options{TaskQueue: fmt.Sprintf("loadtester-gates-%d", os.Getpid())})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"worker", "loadtester"} {
				t.Logf("%s log:\n%s", name, s.LogTail(name, 60))
			}
		}
		s.Close()
	})
	ns := labtest.Namespace(t, "gates")
	sc, err := e2e.NewScenarios(s, ns)
	require.NoError(t, err)
	t.Cleanup(func() { sc.Temporal.Close() })

	// One step (20 %) then promotion, every 10 s; no metrics, so only the gates decide. The rollback webhook
	// asks the load tester's closed rollback gate at every step, and must not roll anything back.
	c := &v1beta1.Canary{
		TypeMeta:   metav1.TypeMeta{APIVersion: "flagger.app/v1beta1", Kind: "Canary"},
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: v1beta1.CanarySpec{
			Provider:                "traefik",
			TargetRef:               v1beta1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			ProgressDeadlineSeconds: ptr.To[int32](60),
			Service:                 v1beta1.CanaryService{Port: 9898},
			Analysis: &v1beta1.CanaryAnalysis{
				Interval: "10s", Threshold: 1, MaxWeight: 20, StepWeight: 20,
				Webhooks: []v1beta1.CanaryWebhook{
					{Name: "ask-for-confirmation", Type: v1beta1.ConfirmRolloutHook, URL: s.LoadTesterURL + "gate/check"},
					{Name: "manual-rollback", Type: v1beta1.RollbackHook, URL: s.LoadTesterURL + "rollback/check"},
				},
			},
		},
	}
	file, err := s.WriteCanaryObject(ns+"-canary", c)
	require.NoError(t, err)
	require.NoError(t, sc.InitialiseWith(ctx, file), "initialisation (no gate is asked)")

	done := make(chan e2e.Result, 1)
	go func() {
		done <- s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+e2e.PodinfoImage("6.0.1"),
			"--wait", "--timeout", "5m", "--by", "ci")
	}()
	require.NoError(t, sc.WaitStatus(ctx, 2*time.Minute, func(st workflows.Status) bool {
		return st.Phase == workflows.PhaseWaiting && st.PendingGate == workflows.GateConfirmRollout
	}), "the release waits at the confirm-rollout gate")

	// Held: the gate is asked again at the next interval and is still closed; the canary gets no pods, no traffic.
	closed := "confirm-rollout hook ask-for-confirmation failed: Forbidden: gate of " + ns + "/podinfo is closed"
	history := func() string { // polled: not streamed into the test log
		h := s.StarterTo(ctx, func(string, ...any) {}, "history", "podinfo", "-n", ns)
		require.Equal(t, 0, h.Code, h.Output)
		return h.Output
	}
	deadline := time.Now().Add(time.Minute)
	for strings.Count(history(), closed) < 2 {
		require.True(t, time.Now().Before(deadline), "the closed gate is asked again every interval:\n%s", history())
		time.Sleep(2 * time.Second)
	}
	_, replicas, err := s.Image(ctx, ns, "podinfo")
	require.NoError(t, err)
	require.Zero(t, replicas, "the canary is not scaled up before the gate opens")
	primary, canary, err := s.TraefikWeights(ctx, ns, "podinfo")
	require.NoError(t, err)
	require.Equal(t, [2]int64{100, 0}, [2]int64{primary, canary})
	select {
	case r := <-done:
		t.Fatalf("the rollout ended before the gate opened: exit %d\n%s", r.Code, r.Output)
	default:
	}

	// Opened as Flagger's docs do it (curl -d sends a form Content-Type), naming who and why.
	resp, err := http.Post(s.LoadTesterURL+"gate/open", "application/x-www-form-urlencoded",
		strings.NewReader(fmt.Sprintf(`{"name": "podinfo", "namespace": %q, "by": "alice", "reason": "change 42 approved"}`, ns)))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	opened := time.Now()

	var r e2e.Result
	select {
	case r = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("the rollout did not end within 3 minutes of the gate opening")
	}
	require.Equal(t, 0, r.Code, "the release is promoted once the gate is open:\n%s", r.Output)
	t.Logf("promoted %s after the gate was opened", time.Since(opened).Round(time.Second))
	require.NoError(t, sc.ExpectPrimary(ctx, "6.0.1"))

	h := history()
	t.Logf("starter history podinfo -n %s:\n%s", ns, h)
	require.Regexp(t, `confirm-rollout hook ask-for-confirmation passed: Approved: gate opened by alice at \S+Z: change 42 approved`, h)
	require.Contains(t, h, "rollback hook manual-rollback failed: Forbidden: no rollback of "+ns+"/podinfo asked for")
	require.NotContains(t, h, "Rolling back")
}
