package loadtester

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Runner runs the load tester's commands: background ones (cmd tasks), at most one per canary and command line,
// each killed after maxDuration, and blocking ones (bash tasks). Every command dies with the load tester: Stop
// kills each one's process group, and on Linux the kernel kills the process started for each if the load tester
// dies without stopping (only that process: children a bash task starts itself can survive a SIGKILL).
type Runner struct {
	maxDuration time.Duration
	log         *zap.Logger
	// base ends when the runner stops; every command's context derives from it.
	base    context.Context
	stopAll context.CancelFunc

	mu      sync.Mutex
	running map[string]context.CancelFunc
	stopped bool
	wg      sync.WaitGroup
	started int
}

// ErrStopped is the answer to a command asked for after Stop: the load tester is shutting down.
var ErrStopped = errors.New("the load tester is shutting down")

// NewRunner returns an idle runner.
func NewRunner(maxDuration time.Duration, log *zap.Logger) *Runner {
	base, stopAll := context.WithCancel(context.Background())
	return &Runner{maxDuration: maxDuration, log: log, base: base, stopAll: stopAll, running: map[string]context.CancelFunc{}}
}

func taskKey(canary, command string) string { return canary + "\x00" + command }

// Start runs argv in the background unless the same command already runs for the canary; it reports whether it
// started it, and ErrStopped after Stop.
func (r *Runner) Start(canary, command string, argv []string, logOutput bool) (bool, error) {
	key := taskKey(canary, command)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false, ErrStopped
	}
	if _, ok := r.running[key]; ok {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(r.base, r.maxDuration)
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
		case r.base.Err() != nil:
			log.Info("command killed: the load tester is shutting down")
		case err != nil:
			log.Warn("command failed", zap.Error(err))
		default:
			log.Info("command finished")
		}
	}()
	return true, nil
}

// Run runs argv to its end, or until ctx ends or the runner stops, and returns its combined output.
func (r *Runner) Run(ctx context.Context, argv []string) ([]byte, error) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil, ErrStopped
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.base, cancel)()
	return runBlocking(ctx, argv)
}

// Stop kills every running command (its whole process group), waits for them, and refuses new ones.
func (r *Runner) Stop() {
	r.mu.Lock()
	r.stopped = true
	r.stopAll()
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

// runBlocking runs argv in its own process group, tied to the load tester's life (startTied), killing the whole
// group when ctx ends (a bash task's children die with it), and returns its combined output.
func runBlocking(ctx context.Context, argv []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var out cappedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := startTied(cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return out.Bytes(), err
}
