// Command demo runs canaryflow's seed scenario on the local lab and narrates it: a podinfo canary initialised,
// promoted, rolled back under errors, approved at a gate and aborted. `make demo` runs it after starting the lab.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run() error {
	say := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	env, err := labtest.Load()
	if err != nil {
		return fmt.Errorf("the lab is not up (run make lab-up): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	s, err := e2e.Start(ctx, env, say)
	if err != nil {
		return err
	}
	defer s.Close()
	ns := "test"
	sc, err := e2e.NewScenarios(s, ns)
	if err != nil {
		return err
	}
	defer sc.Temporal.Close()
	_ = e2e.Reset(ctx, s, ns) // a second demo starts from a clean namespace
	for _, step := range []func(context.Context) error{sc.Initialise, sc.Promote, sc.RollBack, sc.ApproveGate, sc.Abort, sc.Summary} {
		if err := step(ctx); err != nil {
			fmt.Println("worker log (last lines):\n" + s.LogTail("worker", 40))
			return err
		}
	}
	f := sc.Figures
	say("\nAll five parts passed. Abort at canary weight %d → 100%% primary: %s (router object), %s (traffic).",
		f.AbortAtWeight, f.AbortToPrimaryObject.Round(time.Millisecond), f.AbortToPrimaryTraffic.Round(time.Millisecond))
	for _, name := range []string{"initialise", "promote", "rollback", "approve", "abort"} {
		say("  %-10s %6s  %4d history events", name, f.RolloutTime[name].Round(time.Second), f.Events[name])
	}
	return nil
}
