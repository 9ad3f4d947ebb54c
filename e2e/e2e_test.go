//go:build lab

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/lab/labtest"
)

// TestSeedScenario runs the demo's scenario on the lab: initialise, promote 6.0.1, roll back 6.0.2 under errors,
// approve a gated 6.0.3, abort 6.0.4 — with the real worker (under its ServiceAccount), starter and load tester —
// and records the figures for BENCHMARKS.md.
func TestSeedScenario(t *testing.T) {
	ctx, sc := startScenarios(t, "e2e", 30*time.Minute)

	require.NoError(t, sc.Initialise(ctx), "initialisation")
	require.NoError(t, sc.Promote(ctx), "promotion of 6.0.1")
	require.NoError(t, sc.RollBack(ctx), "rollback of 6.0.2")
	require.NoError(t, sc.ApproveGate(ctx), "approved promotion of 6.0.3")
	require.NoError(t, sc.Abort(ctx), "aborted 6.0.4")
	require.NoError(t, sc.Summary(ctx))
	require.NoError(t, sc.Idle(ctx, 30*time.Second))

	f := sc.Figures
	require.Positive(t, f.KubeRequests["promote"], "the worker's request counter must count the promotion's requests")
	require.Zero(t, f.IdleKubeRequests, "an idle worker must not call the Kubernetes API")
	require.Positive(t, f.AbortAtWeight, "the abort figure counts only while the canary holds traffic")
	require.Less(t, f.AbortToPrimaryObject, time.Second, "an abort must move all traffic back to the primary within a second")
	t.Logf("abort → TraefikService 100/0: %s; → all answers from the primary: %s", f.AbortToPrimaryObject, f.AbortToPrimaryTraffic)
	for _, name := range []string{"initialise", "promote", "rollback", "approve", "abort"} {
		t.Logf("%-10s rollout took %6s, %4d history events, %4d Kubernetes API requests", name,
			f.RolloutTime[name].Round(time.Second), f.Events[name], f.KubeRequests[name])
	}
	t.Logf("idle: %d Kubernetes API requests in %s", f.IdleKubeRequests, f.IdleWindow)
	if out := os.Getenv("CANARYFLOW_E2E_FIGURES"); out != "" {
		var b []byte
		b = fmt.Appendf(b, "abort_to_primary_object_ms %d\nabort_to_primary_traffic_ms %d\n",
			f.AbortToPrimaryObject.Milliseconds(), f.AbortToPrimaryTraffic.Milliseconds())
		for name, n := range f.Events {
			b = fmt.Appendf(b, "events_%s %d\nseconds_%s %.1f\nkube_requests_%s %d\n", name, n, name,
				f.RolloutTime[name].Seconds(), name, f.KubeRequests[name])
		}
		b = fmt.Appendf(b, "idle_kube_requests %d\nidle_window_s %.0f\n", f.IdleKubeRequests, f.IdleWindow.Seconds())
		require.NoError(t, os.WriteFile(filepath.Clean(out), b, 0o644))
	}
}

// TestRolloutSurvivesAWorkerCrash kills the only worker mid-analysis with SIGKILL and starts another after an
// outage longer than the analysis interval: the rollout must resume where it was and promote, every step taken
// exactly once, and `starter rollout --wait` must follow it through to exit 0.
func TestRolloutSurvivesAWorkerCrash(t *testing.T) {
	ctx, sc := startScenarios(t, "crash", 20*time.Minute)

	require.NoError(t, sc.Initialise(ctx), "initialisation")
	f, err := sc.WorkerCrash(ctx, 20*time.Second)
	require.NoError(t, err)
	t.Logf("worker killed at canary weight %d; no worker for %s; the new worker moved the rollout on %s after it was ready; the rollout took %s",
		f.KilledAtWeight, f.Outage.Round(100*time.Millisecond), f.Resumed.Round(100*time.Millisecond), f.Took.Round(time.Second))
}

// startScenarios starts the stack (worker, load tester) on the lab and the scenarios on a fresh namespace named
// after prefix; on failure the processes' logs go into the test log.
func startScenarios(t *testing.T, prefix string, within time.Duration) (context.Context, *Scenarios) {
	t.Helper()
	ctx, s := startStack(t, within)
	sc, err := NewScenarios(s, labtest.Namespace(t, prefix))
	require.NoError(t, err)
	t.Cleanup(func() { sc.Temporal.Close() })
	return ctx, sc
}

// startStack starts the stack (worker, load tester) on the lab for at most within, on a task queue of the test's
// own, so that no worker of another test (or of an earlier run on a lab left up) takes its rollouts; on failure
// the processes' logs go into the test log.
func startStack(t *testing.T, within time.Duration) (context.Context, *Stack) {
	t.Helper()
	env := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	t.Cleanup(cancel)
	s, err := StartOnQueue(ctx, env, Narrator(t), testQueue(t))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"worker", "worker-2", "loadtester"} {
				t.Logf("%s log:\n%s", name, s.LogTail(name, 60))
			}
		}
		s.Close()
	})
	return ctx, s
}

// testQueue is a task queue of t's own: its name and the time, so that a rerun on a lab left up never meets the
// tasks of an earlier run. Temporal takes any string as a task queue name.
func testQueue(t *testing.T) string {
	return fmt.Sprintf("e2e-%s-%d", t.Name(), time.Now().UnixNano())
}
