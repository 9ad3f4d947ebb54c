//go:build linux

package loadtester

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// proc is one process as /proc/<pid>/stat shows it.
type proc struct {
	pid, ppid int
	comm      string
	state     byte
	start     string // start time in clock ticks: tells a reused PID apart
}

func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return proc{}, false
	}
	f := strings.Fields(s[closing+1:]) // state, ppid, …; starttime is field 22 of the whole line
	if len(f) < 20 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	return proc{pid: pid, ppid: ppid, comm: s[open+1 : closing], state: f[0][0], start: f[19]}, true
}

// descendants are the live processes below root.
func descendants(root int) []proc {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]proc{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok && p.state != 'Z' {
			children[p.ppid] = append(children[p.ppid], p)
		}
	}
	var out []proc
	for queue := []int{root}; len(queue) > 0; queue = queue[1:] {
		for _, c := range children[queue[0]] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// gone says whether p has exited (a zombie waiting for its new parent to reap it has exited too).
func gone(p proc) bool {
	q, ok := readProc(p.pid)
	return !ok || q.start != p.start || q.state == 'Z'
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// Processes the load tester started die with it: a cmd task's hey and a bash task, whether the load tester is
// killed outright (SIGKILL: nothing of it runs, the kernel kills them) or stopped (SIGTERM: it kills each task's
// process group, a bash task's children too, before it exits).
func TestTasksDieWithTheLoadTester(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "loadtester")
	build := exec.Command("go", "build", "-o", bin, "./cmd/loadtester")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer target.Close()
	hey := map[string]string{"type": "cmd", "cmd": "hey -z 10m -q 1 -c 1 " + target.URL + "/"}

	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		task map[string]string
		comm string // the task's process to wait for before the load tester goes
	}{
		{"hey, load tester killed", syscall.SIGKILL, hey, "hey"},
		{"bash task, load tester killed", syscall.SIGKILL, map[string]string{"type": "bash", "cmd": "sleep 600"}, "sleep"},
		{"hey, load tester stopped", syscall.SIGTERM, hey, "hey"},
		{"bash task with a child, load tester stopped", syscall.SIGTERM, map[string]string{"type": "bash", "cmd": "sleep 600; echo never"}, "sleep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			lt := exec.Command(bin, "-port", port, "-allow", "hey,bash", "-max-duration", "15m")
			require.NoError(t, lt.Start())
			exited := make(chan struct{})
			go func() { _ = lt.Wait(); close(exited) }()
			defer func() {
				_ = lt.Process.Kill()
				<-exited
			}()
			url := "http://127.0.0.1:" + port
			eventually(t, 30*time.Second, "the load tester answers", func() bool {
				resp, err := http.Get(url + "/healthz")
				if err == nil {
					resp.Body.Close()
				}
				return err == nil && resp.StatusCode == http.StatusOK
			})
			body, err := json.Marshal(Payload{Name: "podinfo", Namespace: "test", Metadata: tc.task})
			require.NoError(t, err)
			go func() { // a bash task answers only when it ends
				if resp, err := http.Post(url, "application/json", bytes.NewReader(body)); err == nil {
					resp.Body.Close()
				}
			}()
			var tasks []proc
			eventually(t, 30*time.Second, tc.comm+" runs under the load tester", func() bool {
				tasks = descendants(lt.Process.Pid)
				for _, p := range tasks {
					if p.comm == tc.comm {
						return true
					}
				}
				return false
			})
			defer func() { // never leave a process behind, even when the test fails
				for _, p := range tasks {
					if !gone(p) {
						_ = syscall.Kill(p.pid, syscall.SIGKILL)
					}
				}
			}()

			require.NoError(t, lt.Process.Signal(tc.sig))
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("the load tester did not exit within 30s of %v", tc.sig)
			}
			eventually(t, 15*time.Second, "every process the load tester started is gone", func() bool {
				for _, p := range tasks {
					if !gone(p) {
						return false
					}
				}
				return true
			})
		})
	}
}

// The kernel sends the parent-death signal when the thread that started a child exits, not only the process: a
// task started on behalf of a goroutine whose locked thread then exits keeps running.
func TestATaskOutlivesTheThreadThatStartedIt(t *testing.T) {
	cmd := exec.Command("sleep", "600")
	type started struct {
		tid int
		err error
	}
	done := make(chan started, 1)
	go func() {
		// Never unlocked: the thread exits with this goroutine. Not the main thread, which Go never lets exit.
		for runtime.LockOSThread(); syscall.Gettid() == os.Getpid(); runtime.LockOSThread() {
			runtime.UnlockOSThread()
			time.Sleep(time.Millisecond) // to be resumed on another thread
		}
		err := startTied(cmd)
		done <- started{syscall.Gettid(), err}
	}()
	s := <-done
	require.NoError(t, s.err)
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
	}()
	eventually(t, 10*time.Second, "the thread exits", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", s.tid))
		return os.IsNotExist(err)
	})
	// The signal would be sent as the thread exits; a killed child is reaped within milliseconds.
	select {
	case <-waited:
		t.Fatalf("the task died with the thread that started it: %v", cmd.ProcessState)
	case <-time.After(2 * time.Second):
	}
}
