//go:build lab

package chaos

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canaryflow/canaryflow/activities"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

// chaosSeed is CANARYFLOW_CHAOS_SEED, or the time when it is not set.
func chaosSeed(t *testing.T) uint64 {
	if v := os.Getenv("CANARYFLOW_CHAOS_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "CANARYFLOW_CHAOS_SEED must be an unsigned integer")
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// workers are the two worker slots of the test; each restart gets a new process name (and log).
type workers struct {
	s     *e2e.Stack
	t     *testing.T
	ns    string
	mu    sync.Mutex
	names [2]string
	gen   [2]int
}

func (w *workers) start(ctx context.Context, slot int) (string, error) {
	w.mu.Lock()
	w.gen[slot]++
	name := fmt.Sprintf("worker-%c%d", 'a'+slot, w.gen[slot])
	w.names[slot] = name
	w.mu.Unlock()
	return name, w.s.StartWorker(ctx, name)
}

// slotOf returns the slot whose current worker has the process ID pid, or -1.
func (w *workers) slotOf(pid int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	for slot, name := range w.names {
		if w.s.Pid(name) == pid {
			return slot
		}
	}
	return -1
}

// inFlight waits until an activity of workflow id (of type activity, any when empty) has started on one of the workers, and returns that worker's
// slot and the activity (with its attempt); ok is false when stop closes first.
func (w *workers) inFlight(ctx context.Context, c client.Client, id string, stop <-chan struct{}, activity string) (slot int, what string, ok bool) {
	for {
		select {
		case <-stop:
			return 0, "", false
		case <-ctx.Done():
			return 0, "", false
		case <-time.After(20 * time.Millisecond):
		}
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			continue
		}
		for _, a := range d.GetPendingActivities() {
			if a.GetState() != enumspb.PENDING_ACTIVITY_STATE_STARTED || (activity != "" && a.GetActivityType().GetName() != activity) {
				continue
			}
			pid, ok := identityPid(a.GetLastWorkerIdentity())
			if !ok {
				continue
			}
			if slot := w.slotOf(pid); slot >= 0 {
				return slot, fmt.Sprintf("%s (attempt %d)", a.GetActivityType().GetName(), a.GetAttempt()), true
			}
		}
	}
}

// identityPid is the process ID in a worker identity, the SDK's default "<pid>@<host>@".
func identityPid(identity string) (int, bool) {
	pid, err := strconv.Atoi(strings.SplitN(identity, "@", 2)[0])
	return pid, err == nil
}

// name is the process name of the worker in slot.
func (w *workers) name(slot int) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.names[slot]
}

// stillRunningOn says whether, just after a kill, the server still counts an activity of workflow id (of type
// activity) as running on the killed process pid: a kill that caught it, whose attempt the server retries at its
// timeout. False when that activity answered before the kill.
func (w *workers) stillRunningOn(ctx context.Context, c client.Client, id, activity string, pid int) bool {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return false
	}
	for _, a := range d.GetPendingActivities() {
		if a.GetActivityType().GetName() != activity || a.GetState() != enumspb.PENDING_ACTIVITY_STATE_STARTED {
			continue
		}
		if p, ok := identityPid(a.GetLastWorkerIdentity()); ok && p == pid {
			return true
		}
	}
	return false
}

// startTwoWorkers starts the stack with two workers on a task queue of their own, on a fresh namespace named
// after prefix, and initialises the canary (podinfo 6.0.0); every failure message ends with hint. On failure the
// logs of every worker process go into the test log.
func startTwoWorkers(t *testing.T, prefix string, within time.Duration, hint string) (context.Context, *workers, *e2e.Scenarios) {
	t.Helper()
	env := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	t.Cleanup(cancel)
	ns := labtest.Namespace(t, prefix)
	s, err := e2e.StartWith(ctx, env, e2e.Narrator(t), e2e.Options{TaskQueue: "chaos-" + ns, NoWorker: true})
	require.NoError(t, err, hint)
	w := &workers{s: s, t: t, ns: ns}
	t.Cleanup(func() {
		if t.Failed() {
			for slot := range 2 {
				for g := 1; g <= w.gen[slot]; g++ {
					name := fmt.Sprintf("worker-%c%d", 'a'+slot, g)
					t.Logf("%s log:\n%s", name, s.LogTail(name, 40))
				}
			}
		}
		s.Close()
	})
	for slot := range 2 {
		_, err := w.start(ctx, slot)
		require.NoError(t, err, hint)
	}
	sc, err := e2e.NewScenarios(s, ns)
	require.NoError(t, err, hint)
	t.Cleanup(func() { sc.Temporal.Close() })
	require.NoError(t, sc.InitialiseWith(ctx, w.canary(false)), "initialisation; %s", hint)
	return ctx, w, sc
}

// canary writes the Canary of these tests: a step of 25 % up to 50 % at a 10 s interval, threshold 3, the lab's
// acceptance and load tests; with rollBack, a rollout webhook that always fails. The lab's load test starts at the
// first step's webhooks, so that step's metric checks find no traffic yet (one failed check); a kill that holds a
// step's checks until their deadline (about 13 s) makes the next step due at once, as Flagger's ticker does, and its
// checks can find no traffic either. Threshold 3 leaves a healthy release room for both; at 2 such a kill rolled it
// back (the eighth session's CI rehearsal).
func (w *workers) canary(rollBack bool) string {
	f, err := w.s.WriteCanary("canary", e2e.CanaryOptions{Namespace: w.ns, StepWeight: 25, MaxWeight: 50, Threshold: 3, FailingHook: rollBack})
	require.NoError(w.t, err)
	return f
}

func (w *workers) kill(slot int) (string, error) {
	w.mu.Lock()
	name := w.names[slot]
	w.mu.Unlock()
	return name, w.s.Kill(name)
}

// TestRolloutsSurviveWorkersKilledAtRandom runs consecutive rollouts of one canary with two worker processes on
// one task queue, and kills (SIGKILL) one of them, sometimes both, at a random moment of each rollout, starting a
// new one after a random delay. Every rollout must end as its release requires — promoted, or rolled back by a
// webhook that always fails — with the primary's image, the router at 100/0 and the replicas that says, each
// weight decided exactly once in the history, one promotion or rollback, and `starter rollout --wait` exiting 0
// or 1 accordingly. The schedule is drawn from a seed (CANARYFLOW_CHAOS_SEED replays one), printed first and in
// every failure; it fixes the moments, delays and workers, not the machine's pace, so the activity an in-flight
// kill catches may differ on a replay. 10 rollouts (about 6 min on a loaded 2-core machine); CANARYFLOW_CHAOS_ROLLOUTS sets another count.
func TestRolloutsSurviveWorkersKilledAtRandom(t *testing.T) {
	t.Parallel() // the two tests share nothing but the lab
	n := 10
	if v := os.Getenv("CANARYFLOW_CHAOS_ROLLOUTS"); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		require.NoError(t, err, "CANARYFLOW_CHAOS_ROLLOUTS must be a number")
	}
	seed := chaosSeed(t)
	replay := fmt.Sprintf("chaos seed %d (replay with CANARYFLOW_CHAOS_SEED=%d CANARYFLOW_CHAOS_ROLLOUTS=%d)", seed, seed, n)
	t.Log(replay)
	plan := chaosSchedule(seed, n)

	ctx, w, sc := startTwoWorkers(t, "chaos", time.Duration(n)*6*time.Minute+5*time.Minute, replay)
	s, ns := w.s, sc.NS
	canary := func(rollBack bool) string { return w.canary(rollBack) }

	quiet := func(string, ...any) {}
	id := v1beta1.WorkflowID(ns, "podinfo")
	primary := "6.0.0"
	var lines []string
	for i, rel := range plan {
		what := fmt.Sprintf("rollout %d/%d (%s, must %s)", i+1, n, rel.Version, map[bool]string{false: "promote", true: "roll back"}[rel.RollBack])
		file := canary(rel.RollBack)
		ended := make(chan struct{})
		start := time.Now()
		var (
			logMu  sync.Mutex
			events []string
			wg     sync.WaitGroup
		)
		note := func(format string, args ...any) {
			logMu.Lock()
			defer logMu.Unlock()
			events = append(events, fmt.Sprintf("%.1fs ", time.Since(start).Seconds())+fmt.Sprintf(format, args...))
		}
		for _, k := range rel.Kills {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case <-ended:
					note("no kill: the rollout ended before %s", k.At.Round(100*time.Millisecond))
					return
				case <-ctx.Done():
					return
				case <-time.After(k.At):
				}
				slot, running := k.Slot, ""
				if k.InActivity {
					var ok bool
					if slot, running, ok = w.inFlight(ctx, sc.Temporal, id, ended, ""); !ok {
						note("no kill: no activity started between %s and the end", k.At.Round(100*time.Millisecond))
						return
					}
					running = " running " + running
				}
				name, err := w.kill(slot)
				if err != nil {
					note("kill %s failed: %v", name, err)
					return
				}
				note("killed %s%s", name, running)
				select {
				case <-ctx.Done():
					return
				case <-time.After(k.Down):
				}
				name, err = w.start(ctx, slot)
				if err != nil {
					note("start %s failed: %v", name, err)
					return
				}
				note("%s ready", name)
			}()
		}
		r := s.StarterTo(ctx, quiet, "rollout", "-f", file, "--set-image", "podinfod="+e2e.PodinfoImage(rel.Version),
			"--wait", "--timeout", "10m", "--by", "chaos")
		took := time.Since(start)
		close(ended)
		wg.Wait() // every worker killed is back before the checks and the next rollout
		logMu.Lock()
		kills := strings.Join(events, "; ")
		logMu.Unlock()
		outcome := map[int]string{0: "promoted", 1: "rolled back"}[r.Code]
		if outcome == "" {
			outcome = fmt.Sprintf("exit %d", r.Code)
		}
		line := fmt.Sprintf("seed %d %s: %s; outcome %s; took %s", seed, what, kills, outcome, took.Round(time.Second))
		lines = append(lines, line)
		t.Log(line)
		fail := fmt.Sprintf("%s\n%s\nstarter output:\n%s", replay, line, r.Output)

		wantCode, wantSplits, wantPromotions, wantPhase := 0, []string{"75/25", "50/50", "100/0"}, 1, "Succeeded"
		if rel.RollBack {
			// The failing hook fails the checks of the step at 25 % and of the next two: at the threshold (3) all
			// traffic goes back to the primary.
			wantCode, wantSplits, wantPromotions, wantPhase = 1, []string{"75/25", "100/0"}, 0, "Failed"
		} else {
			primary = rel.Version
		}
		require.Equal(t, wantCode, r.Code, "starter rollout --wait exit code; %s", fail)
		d, err := lastRun(ctx, sc.Temporal, id)
		require.NoError(t, err, fail)
		t.Logf("   run %s: %s", d.RunID, d.costs())
		require.Equal(t, wantPhase, string(d.Result.Phase), "phase of run %s; %s", d.RunID, fail)
		require.Equal(t, wantSplits, d.Splits, "splits decided in the history of run %s (each exactly once); %s", d.RunID, fail)
		require.Equal(t, wantPromotions, d.Promotions, "promotions scheduled in run %s; %s", d.RunID, fail)
		require.Zero(t, d.Reverts, "promotion reverts scheduled in run %s; %s", d.RunID, fail)
		require.NoError(t, sc.ExpectPrimary(ctx, primary), fail)
		_, canaryReplicas, err := s.Image(ctx, ns, "podinfo")
		require.NoError(t, err, fail)
		require.Zero(t, canaryReplicas, "replicas of the canary podinfo; %s", fail)
		_, primaryReplicas, err := s.Image(ctx, ns, "podinfo-primary")
		require.NoError(t, err, fail)
		require.EqualValues(t, 2, primaryReplicas, "replicas of podinfo-primary; %s", fail)
	}
	t.Logf("%s: %d/%d rollouts ended as required\n%s", replay, n, n, strings.Join(lines, "\n"))
}

// TestAWorkerKilledDuringAMetricCheckCostsTheStepSecondsNotMinutes kills (SIGKILL) the worker running a step's
// metric checks, with a second worker running. The lost attempt is retried at the activity's deadline; that
// deadline must be what the queries may take (two 5 s query timeouts at a 10 s interval, plus a margin), not
// minutes: a step held for 2 min also stopped the load test that the steps' webhooks keep going, and the retried
// checks found no traffic and rolled a healthy release back. The release must promote, each weight decided once.
func TestAWorkerKilledDuringAMetricCheckCostsTheStepSecondsNotMinutes(t *testing.T) {
	t.Parallel()
	ctx, w, sc := startTwoWorkers(t, "chaosmetric", 15*time.Minute, "")
	id := v1beta1.WorkflowID(sc.NS, "podinfo")
	ended := make(chan struct{})
	killed := make(chan string, 1)
	go func() {
		defer close(killed)
		// The checks take milliseconds, so on a loaded machine the kill may land after they answered (the
		// history then has no retry to look at): such a miss is noted and the next step's checks are tried, up
		// to three times.
		var missed []string
		for range 3 {
			slot, running, ok := w.inFlight(ctx, sc.Temporal, id, ended, activities.ActivityRunChecks)
			if !ok {
				break
			}
			pid := w.s.Pid(w.name(slot))
			name, err := w.kill(slot)
			if err != nil {
				killed <- fmt.Sprintf("kill %s: %v", name, err)
				return
			}
			caught := w.stillRunningOn(ctx, sc.Temporal, id, activities.ActivityRunChecks, pid)
			time.Sleep(5 * time.Second)
			_, _ = w.start(ctx, slot)
			if caught {
				killed <- fmt.Sprintf("%skilled %s running %s", strings.Join(missed, ""), name, running)
				return
			}
			missed = append(missed, fmt.Sprintf("missed: %s had answered %s before the kill; ", name, running))
		}
	}()
	r := w.s.StarterTo(ctx, func(string, ...any) {}, "rollout", "-f", w.canary(false), "--set-image",
		"podinfod="+e2e.PodinfoImage("6.1.1"), "--wait", "--timeout", "10m", "--by", "chaos")
	close(ended)
	what, ok := <-killed
	require.True(t, ok, "no kill caught a metric check running before the rollout ended; output:\n%s", r.Output)
	t.Logf("%s; the rollout took %s", what, r.Took.Round(time.Second))
	require.Equal(t, 0, r.Code, "starter rollout --wait; output:\n%s", r.Output)
	d, err := lastRun(ctx, sc.Temporal, id)
	require.NoError(t, err)
	t.Logf("run %s: %s", d.RunID, d.costs())
	require.Contains(t, d.Retried, activities.ActivityRunChecks+"×2", "the checks caught by the kill must have run again")
	require.Less(t, d.Took[activities.ActivityRunChecks], time.Minute, "lost checks must run again within their heartbeat timeout, not after minutes")
	require.Equal(t, []string{"75/25", "50/50", "100/0"}, d.Splits, "splits decided in the history of run %s (each exactly once)", d.RunID)
	require.Equal(t, 1, d.Promotions)
	require.NoError(t, sc.ExpectPrimary(ctx, "6.1.1"))
}
