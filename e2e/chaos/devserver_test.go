//go:build lab

package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"log/slog"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// devServer is a private Temporal dev server, the lab's temporal binary run as a process of its own on a
// database file, so a test can kill it (SIGKILL, no shutdown) and start it again on the same file and port, as a
// crashed server is restarted. The lab's own server is shared by other tests and is never killed.
type devServer struct {
	t              *testing.T
	db, logFile    string
	port, httpPort int
	cmd            *exec.Cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startDevServer(t *testing.T) *devServer {
	t.Helper()
	_, err := os.Stat(labbin.Temporal())
	require.NoError(t, err, "the lab's temporal binary (make lab-build)")
	dir := t.TempDir()
	s := &devServer{t: t, db: filepath.Join(dir, "temporal.sqlite"), logFile: filepath.Join(dir, "temporal.log"),
		port: freePort(t), httpPort: freePort(t)}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *devServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// start runs the server and waits until its frontend answers; search attributes register on a new database only.
func (s *devServer) start() {
	s.t.Helper()
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--http-port", strconv.Itoa(s.httpPort), "--headless", "--db-filename", s.db, "--log-level", "warn"}
	for _, d := range searchattr.Definitions() {
		args = append(args, "--search-attribute", d.Name+"="+d.Type.String())
	}
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(s.t, err)
	defer logf.Close()
	s.cmd = exec.Command(labbin.Temporal(), args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(s.t, s.cmd.Start())
	// Listening comes before the frontend answers its health check, which client.Dial requires.
	require.Eventually(s.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := client.DialContext(ctx, client.Options{HostPort: s.addr(), Namespace: "default", Logger: log.NewStructuredLogger(slog.New(slog.DiscardHandler))})
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 2*time.Minute, 200*time.Millisecond, "the dev server at %s never became healthy", s.addr())
}

// kill stops the server at once, as a crash does.
func (s *devServer) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *devServer) String() string { return fmt.Sprintf("dev server %s (db %s)", s.addr(), s.db) }
