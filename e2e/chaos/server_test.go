//go:build lab

package chaos

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/workflows"
)

// TestRolloutSurvivesATemporalServerCrash kills the Temporal server (SIGKILL) mid-analysis, at 20 % or more, and
// starts it again 15 s later on the same database, with the real worker binary on the lab's Kubernetes, Traefik
// and Prometheus. The server is a private dev server (the lab's is shared). The rollout must resume and promote,
// every weight decided exactly once, the router back at 100/0 on the new primary, and `starter rollout --wait` must
// follow it through the outage and exit 0.
func TestRolloutSurvivesATemporalServerCrash(t *testing.T) {
	t.Parallel() // the two tests share nothing but the lab
	const outage = 15 * time.Second
	srv := labbin.StartServerProcess(t)
	t.Logf("started %s", srv)
	env := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	ns := labtest.Namespace(t, "srvcrash")
	s, err := e2e.StartWith(ctx, env, e2e.Narrator(t), e2e.Options{TaskQueue: "chaos-" + ns, TemporalAddress: srv.Addr()})
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", s.LogTail("worker", 60))
		}
		s.Close()
	})
	sc, err := e2e.NewScenarios(s, ns)
	require.NoError(t, err)
	defer sc.Temporal.Close()
	require.NoError(t, sc.Initialise(ctx), "initialisation")

	file, err := s.WriteCanary("canary", e2e.CanaryOptions{Namespace: ns})
	require.NoError(t, err)
	done := make(chan e2e.Result, 1)
	go func() {
		done <- s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+e2e.PodinfoImage("6.0.1"),
			"--wait", "--timeout", "15m", "--by", "ci")
	}()
	var at workflows.Status
	require.NoError(t, sc.WaitStatus(ctx, 5*time.Minute, func(st workflows.Status) bool { at = st; return st.CanaryWeight >= 20 }),
		"the canary never reached 20%%")
	t.Logf("killing the Temporal server (SIGKILL) at canary weight %d; back in %s on the same database", at.CanaryWeight, outage)
	srv.Kill()
	killed := time.Now()
	time.Sleep(outage) // the outage itself
	srv.Start()
	restarted := time.Now()
	t.Logf("Temporal server back after %s", restarted.Sub(killed).Round(100*time.Millisecond))

	// The status query needs the server and a worker: a weight past the one at the kill proves both came back.
	var next workflows.Status
	require.NoError(t, sc.WaitStatus(ctx, 5*time.Minute, func(st workflows.Status) bool {
		next = st
		return st.CanaryWeight > at.CanaryWeight || st.Phase == workflows.PhasePromoting ||
			st.Phase == workflows.PhaseFinalising || st.Phase == workflows.PhaseSucceeded
	}), "the rollout did not move on within 5 minutes of the server's restart")
	resumed := time.Since(restarted)

	var r e2e.Result
	select {
	case r = <-done:
	case <-time.After(10 * time.Minute):
		t.Fatalf("starter rollout --wait did not end within 10 min of the restart")
	}
	promoted := time.Since(restarted)
	require.Equal(t, 0, r.Code, "starter rollout --wait through the outage; output:\n%s", r.Output)
	var advances []string
	for _, m := range regexp.MustCompile(`Advance podinfo\.`+regexp.QuoteMeta(ns)+` canary weight (\d+)`).FindAllStringSubmatch(r.Output, -1) {
		advances = append(advances, m[1])
	}
	require.Equal(t, []string{"10", "20", "30", "40", "50"}, advances,
		"starter must report each advance exactly once, in order; output:\n%s", r.Output)
	d, err := lastRun(ctx, sc.Temporal, v1beta1.WorkflowID(ns, "podinfo"))
	require.NoError(t, err)
	t.Logf("run %s: %s", d.RunID, d.costs())
	require.Equal(t, workflows.PhaseSucceeded, d.Result.Phase, "phase of run %s", d.RunID)
	require.Equal(t, []string{"90/10", "80/20", "70/30", "60/40", "50/50", "100/0"}, d.Splits,
		"splits decided in the history of run %s (each exactly once)", d.RunID)
	require.Equal(t, 1, d.Promotions, "promotions scheduled in run %s", d.RunID)
	require.Zero(t, d.Reverts, "promotion reverts scheduled in run %s", d.RunID)
	require.NoError(t, sc.ExpectPrimary(ctx, "6.0.1"))
	_, replicas, err := s.Image(ctx, ns, "podinfo")
	require.NoError(t, err)
	require.Zero(t, replicas, "replicas of the canary podinfo after the promotion")
	t.Logf("server killed at canary weight %d; outage %s; first status after the restart at weight %d %s after it; promoted %s after the restart; the rollout took %s",
		at.CanaryWeight, restarted.Sub(killed).Round(100*time.Millisecond), next.CanaryWeight,
		resumed.Round(100*time.Millisecond), promoted.Round(time.Second), r.Took.Round(time.Second))
}
