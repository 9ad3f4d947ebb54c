package labtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/canaryflow/canaryflow/lab/labbin"
)

// PrivateNet is the network of a private lab: its pods' namespace, veth pair and addresses. Each private lab
// that may run beside another needs its own.
type PrivateNet struct {
	Netns      string // e.g. cflab-kf
	VethHost   string // e.g. cfkf0 (interface names are at most 15 bytes)
	VethNS     string // e.g. cfkf1
	LinkHostIP string // e.g. 10.246.255.1, the host end of a /30
	LinkNSIP   string // e.g. 10.246.255.2
	PodCIDR    string // e.g. 10.246.0.0/24, the fake node's podCIDR
}

// privatePorts are the lab/env.sh port variables a private lab overrides with free ports.
var privatePorts = []string{
	"LAB_TEMPORAL_PORT", "LAB_TEMPORAL_UI_PORT", "LAB_TEMPORAL_HTTP_PORT", "LAB_TEMPORAL_METRICS_PORT",
	"LAB_ETCD_PORT", "LAB_ETCD_PEER_PORT", "LAB_APISERVER_PORT", "LAB_KCM_PORT", "LAB_SCHEDULER_PORT",
	"LAB_KWOK_PORT", "LAB_TRAEFIK_WEB_PORT", "LAB_TRAEFIK_GATEWAY_PORT", "LAB_TRAEFIK_METRICS_PORT",
	"LAB_PROMETHEUS_PORT",
}

// PrivateLab starts a second, separate lab (its own API server, etcd, kwok node, Temporal, Traefik and
// Prometheus) on free loopback ports and the network net, for a test that must break a lab component (stop the
// API server, say) without disturbing the tests sharing the usual lab. The lab is stopped with lab/down.sh when
// the test ends, and also if the test process dies first (a watcher waits on a lock the process holds).
func PrivateLab(t testing.TB, net PrivateNet) *Env {
	t.Helper()
	env, stop, err := StartPrivateLab(net)
	if err != nil {
		t.Fatalf("labtest: private lab: %v", err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("labtest: stopping the private lab: %v", err)
		}
	})
	return env
}

// StartPrivateLab is PrivateLab for callers without a test (TestMain): it returns the lab and the function that
// stops it and removes its files.
func StartPrivateLab(pn PrivateNet) (*Env, func() error, error) {
	if os.Getenv("CANARYFLOW_LAB") == "off" {
		return nil, nil, errors.New("CANARYFLOW_LAB=off (make test-unit) forbids starting a lab")
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == pn.Netns {
				return nil, nil, fmt.Errorf("network namespace %s exists already: another private lab runs, or one was left behind "+
					"(stop it with lab/down.sh under its LAB_* variables, or `ip netns del %s`)", pn.Netns, pn.Netns)
			}
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	run, err := os.MkdirTemp("", "canaryflow-lab-"+pn.Netns+"-")
	if err != nil {
		return nil, nil, err
	}
	vars := []string{
		"CANARYFLOW_CACHE=" + labbin.CacheDir(), "CANARYFLOW_LAB_CALLER=labtest", "CANARYFLOW_LAB_RUN=" + run,
		"LAB_NETNS=" + pn.Netns, "LAB_VETH_HOST=" + pn.VethHost, "LAB_VETH_NS=" + pn.VethNS,
		"LAB_LINK_HOST_IP=" + pn.LinkHostIP, "LAB_LINK_NS_IP=" + pn.LinkNSIP, "LAB_POD_CIDR=" + pn.PodCIDR,
		"LAB_NODE=" + pn.Netns + "-node",
	}
	ports, err := freePorts(len(privatePorts))
	if err != nil {
		return nil, nil, err
	}
	for i, name := range privatePorts {
		vars = append(vars, name+"="+strconv.Itoa(ports[i]))
	}
	// The variables are kept beside the lab, so that a person can stop a lab left behind with them.
	if err := os.WriteFile(filepath.Join(run, "overrides.env"), []byte(strings.Join(vars, "\n")+"\n"), 0o644); err != nil {
		return nil, nil, err
	}
	script := func(name string, extra ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(root, "lab", name))
		cmd.Dir = root
		cmd.Env = append(append(os.Environ(), vars...), extra...)
		return cmd
	}
	// Held shared for the life of this process; the watcher below takes it exclusively, i.e. once this process
	// is gone however it ended, and then stops the lab.
	users, err := lockFile(filepath.Join(run, "users.lock"), syscall.LOCK_SH)
	if err != nil {
		return nil, nil, err
	}
	logPath := filepath.Join(run, "labtest.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	defer logf.Close()
	w := exec.Command("setsid", "flock", "-x", filepath.Join(run, "users.lock"),
		"sh", "-c", `"$0" && rm -rf "$1"`, filepath.Join(root, "lab", "down.sh"), run)
	w.Dir, w.Env = root, append(os.Environ(), vars...)
	w.Stdout, w.Stderr = logf, logf
	if err := w.Start(); err != nil {
		return nil, nil, fmt.Errorf("starting the private lab's stop watcher: %w", err)
	}
	go func() { _ = w.Wait() }()

	stop := func() error {
		// The watcher first, while it still waits for the lock, so that down.sh runs once.
		_ = w.Process.Kill()
		out, err := script("down.sh").CombinedOutput()
		users.Close()
		if err != nil {
			return fmt.Errorf("lab/down.sh (run dir %s): %v\n%s", run, err, out)
		}
		return os.RemoveAll(run)
	}
	up := script("up.sh")
	out, err := up.CombinedOutput()
	if err != nil {
		serr := stop()
		return nil, nil, fmt.Errorf("lab/up.sh of the private lab failed (%v; stopping it: %v):\n%s", err, serr, tail(string(out), 40))
	}
	env, err := EnvAt(run)
	if err != nil {
		serr := stop()
		return nil, nil, fmt.Errorf("%w (stopping it: %v)", err, serr)
	}
	return env, stop, nil
}

// EnvAt reads the lab whose run directory is run (what lab/up.sh was started with as CANARYFLOW_LAB_RUN) and
// checks that it answers.
func EnvAt(run string) (*Env, error) {
	env, err := readEnv(filepath.Join(run, "lab.env"))
	if err != nil {
		return nil, err
	}
	env.Run = run
	return env, healthy(env)
}

// PID returns the process ID of a running lab component (kube-apiserver, etcd, temporal, …) from the lab's pid
// file, checking that the process is still the one the lab started.
func (env *Env) PID(component string) (int, error) {
	if env.Run == "" {
		return 0, errors.New("this Env does not know its run directory")
	}
	f := filepath.Join(env.Run, "pids", component+".pid")
	data, err := os.ReadFile(f)
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return 0, fmt.Errorf("%s: want \"<pid> <start time>\", got %q", f, data)
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", f, err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("lab component %s (pid %d) is not running: %w", component, pid, err)
	}
	i := strings.LastIndexByte(string(stat), ')')
	if st := strings.Fields(string(stat[i+1:])); len(st) <= 19 || st[19] != fields[1] {
		return 0, fmt.Errorf("lab component %s: pid %d is another process now", component, pid)
	}
	return pid, nil
}

// freePorts finds n consecutive free loopback ports between 21000 and 29999: below the kernel's ephemeral range
// (32768 and up), so that no outgoing connection takes one between this check and the lab's start, and away
// from the usual lab's ports.
func freePorts(n int) ([]int, error) {
	for range 50 {
		base := 21000 + rand.IntN(9000-n)
		var ls []net.Listener
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if len(ls) == n {
			ports := make([]int, n)
			for i := range ports {
				ports[i] = base + i
			}
			return ports, nil
		}
	}
	return nil, fmt.Errorf("no %d consecutive free ports between 21000 and 29999 after 50 tries", n)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
