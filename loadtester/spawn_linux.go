package loadtester

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// startTied starts cmd in its own process group (so a task's own children can be killed with it) and ties it to
// the load tester's life: the kernel sends it SIGKILL when the load tester dies, even by SIGKILL, when nothing
// of ours runs to clean up.
//
// That parent-death signal (Pdeathsig) fires when the OS thread that created the child exits, not when the
// process does, and Go threads do exit (a goroutine that ends while locked to its thread takes the thread with
// it). So every child is started from one goroutine locked to a thread for the life of the process.
func startTied(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	spawnOnce.Do(func() { go spawn() })
	done := make(chan error, 1)
	spawns <- spawnRequest{cmd: cmd, done: done}
	return <-done
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan<- error
}

var (
	spawnOnce sync.Once
	spawns    = make(chan spawnRequest)
)

// spawn starts the commands it is handed, from its own thread. It never unlocks the thread and never returns.
func spawn() {
	runtime.LockOSThread()
	for req := range spawns {
		req.done <- req.cmd.Start()
	}
}
