package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
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
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// devServerProcess is a Temporal dev server run as a process of its own on a database file, so a test can kill
// it (SIGKILL, no shutdown) and start it again on the same file and port, as a crashed server is restarted.
type devServerProcess struct {
	t              *testing.T
	db             string
	port, httpPort int
	cmd            *exec.Cmd
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startDevServerProcess(t *testing.T) *devServerProcess {
	t.Helper()
	_, err := os.Stat(labbin.Temporal())
	require.NoError(t, err, "the lab's temporal binary (make lab-build)")
	s := &devServerProcess{t: t, db: filepath.Join(t.TempDir(), "temporal.sqlite"),
		port: freeLoopbackPort(t), httpPort: freeLoopbackPort(t)}
	s.start()
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *devServerProcess) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start runs the server and waits until it answers; search attributes register on a new database only.
func (s *devServerProcess) start() {
	s.t.Helper()
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--http-port", strconv.Itoa(s.httpPort), "--headless", "--db-filename", s.db, "--log-level", "error"}
	for _, d := range searchattr.Definitions() {
		args = append(args, "--search-attribute", d.Name+"="+d.Type.String())
	}
	s.cmd = exec.Command(labbin.Temporal(), args...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(s.t, s.cmd.Start())
	// Listening comes before the frontend answers its health check, which client.Dial requires.
	require.Eventually(s.t, func() bool {
		c, err := client.Dial(client.Options{HostPort: s.addr(), Namespace: "default", Logger: quietLogger{}})
		if err == nil {
			c.Close()
		}
		return err == nil
	}, time.Minute, 200*time.Millisecond, "the dev server at %s never became healthy", s.addr())
}

// kill stops the server at once, as a crash does.
func (s *devServerProcess) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// The Temporal server is killed (SIGKILL) mid-analysis and comes back 15 s later on the same database: the
// rollout resumes and is promoted with every step decided exactly once, and `starter rollout --wait` follows it
// through the outage to exit 0 (the SDK client retries its history reads until --timeout) instead of reporting a
// failure that did not happen.
func TestRolloutWaitFollowsThroughATemporalServerCrash(t *testing.T) {
	t.Parallel()
	srv := startDevServerProcess(t)
	c, err := client.Dial(client.Options{HostPort: srv.addr(), Namespace: "default", Logger: quietLogger{}})
	require.NoError(t, err)
	defer c.Close()
	const queue = "server-crash"
	cluster := activitiestest.NewCluster()
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(cluster.Activities())
	require.NoError(t, w.Start())
	defer w.Stop()
	e := &temporalEnv{addr: srv.addr(), client: c, cluster: cluster}
	starter := func(args ...string) []string {
		return append([]string{"--temporal-address", srv.addr(), "--task-queue", queue}, args...)
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
	srv.kill()
	killedAt := time.Now()
	routesAtKill := len(cluster.Get("test", "survives").Routes)
	time.Sleep(15 * time.Second) // the outage itself
	srv.start()
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
