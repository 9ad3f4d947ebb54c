package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/canaryflow/canaryflow/workflows"
)

// CrashFigures are what WorkerCrash measures.
type CrashFigures struct {
	// KilledAtWeight is the canary weight when the worker was killed.
	KilledAtWeight int
	// Outage is how long no worker ran.
	Outage time.Duration
	// Resumed is from the new worker being ready to the rollout's next weight change.
	Resumed time.Duration
	// Took is the whole `starter rollout --wait`.
	Took time.Duration
}

// WorkerCrash rolls out 6.0.1, kills the only worker with SIGKILL once the canary has 20% or more, leaves the
// rollout without any worker for outage (longer than the 10 s interval, so timers fire with nobody polling), then
// starts a new worker. The rollout must carry on where it was and promote, with every step of the schedule taken
// exactly once: no weight set twice as a new decision, none skipped.
func (sc *Scenarios) WorkerCrash(ctx context.Context, outage time.Duration) (CrashFigures, error) {
	var f CrashFigures
	s := sc.S
	file, err := s.WriteCanary("canary", CanaryOptions{Namespace: sc.NS})
	if err != nil {
		return f, err
	}
	done := make(chan Result, 1)
	go func() {
		done <- s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.1"), "--wait", "--timeout", "15m", "--by", "ci")
	}()
	var at workflows.Status
	if err := sc.WaitStatus(ctx, 5*time.Minute, func(st workflows.Status) bool { at = st; return st.CanaryWeight >= 20 }); err != nil {
		return f, fmt.Errorf("the canary never reached 20%%: %w", err)
	}
	f.KilledAtWeight = int(at.CanaryWeight)
	s.Say("Killing the worker (SIGKILL) at canary weight %d; no worker runs for %s", at.CanaryWeight, outage)
	if err := s.Kill("worker"); err != nil {
		return f, err
	}
	killed := time.Now()
	select {
	case <-ctx.Done():
		return f, ctx.Err()
	case <-time.After(outage):
	}
	if err := s.StartWorker(ctx, "worker-2"); err != nil {
		return f, err
	}
	ready := time.Now()
	f.Outage = ready.Sub(killed)
	// The status query needs a worker, so it also proves the new one took the rollout over.
	if err := sc.WaitStatus(ctx, 3*time.Minute, func(st workflows.Status) bool {
		return st.CanaryWeight > at.CanaryWeight || st.Phase == workflows.PhasePromoting ||
			st.Phase == workflows.PhaseFinalising || st.Phase == workflows.PhaseSucceeded
	}); err != nil {
		return f, fmt.Errorf("the rollout did not move on within 3 minutes of the new worker starting: %w", err)
	}
	f.Resumed = time.Since(ready)

	r := <-done
	f.Took = r.Took
	if err := expectCode("starter rollout 6.0.1 across a worker crash", r, 0); err != nil {
		return f, err
	}
	h := s.Starter(ctx, "history", "podinfo", "-n", sc.NS)
	if err := expectCode("starter history", h, 0); err != nil {
		return f, err
	}
	if err := everyStepOnce(h.Output, "podinfo."+sc.NS, 10, 50, 10); err != nil {
		return f, err
	}
	return f, sc.ExpectPrimary(ctx, "6.0.1")
}

// everyStepOnce checks that a rollout's history advanced the canary through from, from+step, …, to, in that
// order, each exactly once.
func everyStepOnce(history, canary string, from, to, step int) error {
	re := regexp.MustCompile(`Advance ` + regexp.QuoteMeta(canary) + ` canary weight (\d+)`)
	var got []int
	for _, m := range re.FindAllStringSubmatch(history, -1) {
		n, _ := strconv.Atoi(m[1])
		got = append(got, n)
	}
	var want []int
	for w := from; w <= to; w += step {
		want = append(want, w)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("the history advanced the canary through %v, want %v exactly once each; history:\n%s", got, want, history)
	}
	return nil
}
