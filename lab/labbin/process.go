package labbin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"

	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// ServerProcess is a private Temporal dev server run as a process of its own on a database file (the lab's
// temporal binary), so that a test can kill it (SIGKILL, no shutdown) and start it again on the same file and
// port, as a crashed server is restarted. DevServer's servers live in memory and cannot be restarted; the lab's
// own server is shared by other tests and is never killed.
type ServerProcess struct {
	t              testing.TB
	db, logFile    string
	port, httpPort int
	cmd            *exec.Cmd
}

// StartServerProcess starts a ServerProcess with our search attributes, waits until its frontend answers, and
// kills it when the test ends. Its log is in the test's temporary directory (LogFile).
func StartServerProcess(t testing.TB) *ServerProcess {
	t.Helper()
	_, err := os.Stat(Temporal())
	require.NoError(t, err, "the lab's temporal binary (make lab-build)")
	dir := t.TempDir()
	s := &ServerProcess{t: t, db: filepath.Join(dir, "temporal.sqlite"), logFile: filepath.Join(dir, "temporal.log"),
		port: freePort(t), httpPort: freePort(t)}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr is the frontend's host:port.
func (s *ServerProcess) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// LogFile is where the server writes its log (warnings and errors), across restarts.
func (s *ServerProcess) LogFile() string { return s.logFile }

// Start runs the server and waits until its frontend answers; search attributes register on a new database only.
func (s *ServerProcess) Start() {
	s.t.Helper()
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--http-port", strconv.Itoa(s.httpPort), "--headless", "--db-filename", s.db, "--log-level", "warn"}
	for _, d := range searchattr.Definitions() {
		args = append(args, "--search-attribute", d.Name+"="+d.Type.String())
	}
	logf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(s.t, err)
	defer logf.Close()
	s.cmd = exec.Command(Temporal(), args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	// Its own process group, killed with the test process if the test dies first.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(s.t, s.cmd.Start())
	// Listening comes before the frontend answers its health check, which client.Dial requires.
	quiet := log.NewStructuredLogger(slog.New(slog.DiscardHandler))
	require.Eventually(s.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := client.DialContext(ctx, client.Options{HostPort: s.Addr(), Namespace: "default", Logger: quiet})
		if err == nil {
			c.Close()
		}
		return err == nil
	}, 2*time.Minute, 200*time.Millisecond, "the dev server at %s never became healthy", s.Addr())
}

// Kill stops the server at once, as a crash does.
func (s *ServerProcess) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *ServerProcess) String() string { return fmt.Sprintf("dev server %s (db %s)", s.Addr(), s.db) }
