//go:build !linux

package loadtester

import (
	"os/exec"
	"syscall"
)

// startTied starts cmd in its own process group, so that the runner can kill a task with its children. Only
// Linux can also have the kernel kill it when the load tester dies (see spawn_linux.go).
func startTied(cmd *exec.Cmd) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	return cmd.Start()
}
