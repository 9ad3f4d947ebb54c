package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/workflows"
)

// The Temporal server is killed (SIGKILL) mid-analysis and comes back 15 s later on the same database: the
// rollout resumes and is promoted with every step decided exactly once, and `starter rollout --wait` follows it
// through the outage to exit 0 (the SDK client retries its history reads until --timeout) instead of reporting a
// failure that did not happen.
func TestRolloutWaitFollowsThroughATemporalServerCrash(t *testing.T) {
	t.Parallel()
	srv := labbin.StartServerProcess(t)
	c, err := client.Dial(client.Options{HostPort: srv.Addr(), Namespace: "default", Logger: quietLogger{}})
	require.NoError(t, err)
	defer c.Close()
	const queue = "server-crash"
	cluster := activitiestest.NewCluster()
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(cluster.Activities())
	require.NoError(t, w.Start())
	defer w.Stop()
	e := &temporalEnv{addr: srv.Addr(), client: c, cluster: cluster}
	starter := func(args ...string) []string {
		return append([]string{"--temporal-address", srv.Addr(), "--task-queue", queue}, args...)
	}

	f := canaryFile(t, "test", "survives", "stepWeight: 10\n    maxWeight: 50", "")
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(starter("rollout", "-f", f, "--wait", "--timeout", "10m"), strings.NewReader(""), out, errb)
	}()

	require.Eventually(t, func() bool {
		r := cluster.Get("test", "survives").Routes
		return len(r) >= 2 // 90/10 and 80/20
	}, 2*time.Minute, 100*time.Millisecond, "the rollout never reached 20%%")
	srv.Kill()
	killedAt := time.Now()
	routesAtKill := len(cluster.Get("test", "survives").Routes)
	time.Sleep(15 * time.Second) // the outage itself
	srv.Start()
	restarted := time.Now()

	var code int
	select {
	case code = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("starter rollout --wait did not end within 5 min of the restart; output:\n%s\n%s", out.String(), errb.String())
	}
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	assert.Regexp(t, `(?m) promoted revision rev2$`, out.String())
	// Every weight of the schedule decided exactly once, in order, across the crash (from the history); then all
	// traffic back. An activity the crash caught in flight may run again (at-least-once): it writes the same
	// absolute split, so the cluster sees a repeat of the same decision, never a new one.
	schedule := []string{"90/10", "80/20", "70/30", "60/40", "50/50", "100/0"}
	assert.Equal(t, schedule, scheduledSplits(t, c, "canary/test/survives"), "decisions in the history")
	applied := cluster.Get("test", "survives").Routes
	assert.Equal(t, schedule, slices.Compact(slices.Clone(applied)), "splits applied, repeats of one decision aside")
	var advances []string
	for _, w := range []int{10, 20, 30, 40, 50} {
		n := len(linesWith(out.String(), fmt.Sprintf("Advance survives.test canary weight %d", w)))
		advances = append(advances, strconv.Itoa(n))
	}
	assert.Equal(t, []string{"1", "1", "1", "1", "1"}, advances, "each advance reported exactly once")
	st := e.status(t, "test", "survives")
	assert.Equal(t, workflows.PhaseSucceeded, st.Status.Phase)
	t.Logf("killed at %d routes set; outage %s; promoted %s after the restart; %d splits applied for %d decisions",
		routesAtKill, restarted.Sub(killedAt).Round(time.Second), time.Since(restarted).Round(time.Second), len(applied), len(schedule))
}

// scheduledSplits reads a rollout's history and returns the split of every SetRoutes call the workflow made (an
// activity it scheduled, or a local activity's marker): its decisions, each once, whatever the call's attempts.
func scheduledSplits(t *testing.T, c client.Client, id string) []string {
	t.Helper()
	var out []string
	it := c.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if s, ok := workflows.SplitSet(ev); ok {
			out = append(out, fmt.Sprintf("%d/%d", s.PrimaryWeight, s.CanaryWeight))
		}
	}
	return out
}
