package loadtester

import (
	"bytes"
	"context"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Runner runs background commands, at most one per canary and command line, each killed after maxDuration.
type Runner struct {
	maxDuration time.Duration
	log         *zap.Logger

	mu      sync.Mutex
	running map[string]context.CancelFunc
	wg      sync.WaitGroup
	started int
}

// NewRunner returns an idle runner.
func NewRunner(maxDuration time.Duration, log *zap.Logger) *Runner {
	return &Runner{maxDuration: maxDuration, log: log, running: map[string]context.CancelFunc{}}
}

func taskKey(canary, command string) string { return canary + "\x00" + command }

// Start runs argv in the background unless the same command already runs for the canary; it reports whether it
// started it.
func (r *Runner) Start(canary, command string, argv []string, logOutput bool) bool {
	key := taskKey(canary, command)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.running[key]; ok {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.maxDuration)
	r.running[key] = cancel
	r.started++
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			cancel()
			r.mu.Lock()
			delete(r.running, key)
			r.mu.Unlock()
		}()
		out, err := runBlocking(ctx, argv)
		log := r.log.With(zap.String("canary", canary), zap.String("cmd", command))
		if logOutput {
			log.Info("command output", zap.ByteString("output", out))
		}
		switch {
		case ctx.Err() == context.DeadlineExceeded:
			log.Warn("command killed after the maximum duration", zap.Duration("maxDuration", r.maxDuration))
		case err != nil:
			log.Warn("command failed", zap.Error(err))
		default:
			log.Info("command finished")
		}
	}()
	return true
}

// Running lists the commands running now, as "canary: command".
func (r *Runner) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.running))
	for k := range r.running {
		canary, command, _ := strings.Cut(k, "\x00")
		out = append(out, canary+": "+command)
	}
	sort.Strings(out)
	return out
}

// Started is how many commands the runner has started in all.
func (r *Runner) Started() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started
}

// Stop kills every running command and waits for them.
func (r *Runner) Stop() {
	r.mu.Lock()
	for _, cancel := range r.running {
		cancel()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// maxOutput caps what is kept of a command's output (for the log or the answer).
const maxOutput = 64 << 10

type cappedBuffer struct {
	bytes.Buffer
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// runBlocking runs argv in its own process group, killing the whole group when ctx ends (a bash task's
// children die with it), and returns its combined output.
func runBlocking(ctx context.Context, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var out cappedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}
