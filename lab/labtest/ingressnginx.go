package labtest

// The ingress-nginx controller as a translator: it reads the lab's Ingresses, Services and EndpointSlices and
// derives what nginx would run, with a stand-in for the nginx binary (lab/translators/nginx). No data plane can be
// had here (ingress-nginx's canary split is Lua needing libraries Debian lacks), so tests read what the controller
// derived: the backends it posts to nginx's status server and the nginx.conf it renders.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/lab/labbin"
)

// IngressNginxVersion is the controller the lab runs: the only version of k8s.io/ingress-nginx the module proxy
// serves (controller v1.11.0). It is pinned in lab/translators/nginx/go.mod.
const IngressNginxVersion = "v1.11.0 (k8s.io/ingress-nginx v0.0.0-20240708192948-52c50467d67d)"

// IngressNginx is a running ingress-nginx controller watching one namespace.
type IngressNginx struct {
	statusURL  string // the nginx stand-in's status server
	metricsURL string // the controller's /metrics
	socket     string // the metrics socket monitor.lua writes to, as seen from the test
	conf       string // the rendered /etc/nginx/nginx.conf, as seen from the test
}

// NginxBackend is a backend as the controller posts it to nginx (the fields tests read).
type NginxBackend struct {
	Name                 string                `json:"name"`
	NoServer             bool                  `json:"noServer"`
	AlternativeBackends  []string              `json:"alternativeBackends"`
	TrafficShapingPolicy NginxTrafficShaping   `json:"trafficShapingPolicy"`
	SessionAffinity      NginxSessionAffinity  `json:"sessionAffinityConfig"`
	Endpoints            []NginxBackendAddress `json:"endpoints"`
}

// NginxTrafficShaping is a canary backend's rule: weight, or a header, header value or pattern, or a cookie.
type NginxTrafficShaping struct {
	Weight        int    `json:"weight"`
	WeightTotal   int    `json:"weightTotal"`
	Header        string `json:"header"`
	HeaderValue   string `json:"headerValue"`
	HeaderPattern string `json:"headerPattern"`
	Cookie        string `json:"cookie"`
}

// NginxSessionAffinity is a backend's session affinity.
type NginxSessionAffinity struct {
	Name   string `json:"name"`
	Cookie struct {
		Name   string `json:"name"`
		MaxAge string `json:"maxage"`
	} `json:"cookieSessionAffinity"`
}

// NginxBackendAddress is one endpoint of a backend.
type NginxBackendAddress struct {
	Address string `json:"address"`
	Port    string `json:"port"`
}

// NginxRequest is one request as nginx's monitor.lua reports it to the controller's metrics socket.
type NginxRequest struct {
	Host                 string  `json:"host"`
	Status               string  `json:"status"`
	Method               string  `json:"method"`
	Path                 string  `json:"path"`
	Namespace            string  `json:"namespace"`
	Ingress              string  `json:"ingress"`
	Service              string  `json:"service"`
	Canary               string  `json:"canary"`
	RequestLength        float64 `json:"requestLength"`
	RequestTime          float64 `json:"requestTime"`
	ResponseLength       float64 `json:"responseLength"`
	UpstreamLatency      float64 `json:"upstreamLatency"`
	UpstreamHeaderTime   float64 `json:"upstreamHeaderTime"`
	UpstreamResponseTime float64 `json:"upstreamResponseTime"`
}

// StartIngressNginx builds the controller if needed (once per recipe, under a lock, in the lab cache), starts it
// watching namespace (with ingress class "nginx" and extra controller flags such as --annotations-prefix), waits
// until its health check passes and stops it when the test ends. The controller hard-codes /etc/nginx,
// /etc/ingress-controller and /tmp/nginx, so it runs in private mount and PID namespaces (unshare) with an overlay
// on /etc and a private /tmp; it needs root, as the lab does.
func StartIngressNginx(t testing.TB, namespace string, extraArgs ...string) *IngressNginx {
	t.Helper()
	env := Lab(t)
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("labtest: %v", err)
	}
	dir, err := buildIngressNginx(root)
	if err != nil {
		t.Fatalf("labtest: building ingress-nginx: %v", err)
	}
	// Inside the namespaces /tmp is private: what the controller opens must live elsewhere.
	for _, p := range []string{dir, env.Kubeconfig} {
		if strings.HasPrefix(p, "/tmp/") {
			t.Fatalf("labtest: ingress-nginx runs with a private /tmp, so %s must not be under /tmp: set CANARYFLOW_CACHE elsewhere", p)
		}
	}
	// Short: the metrics socket path, below it, must fit a unix socket address.
	work, err := os.MkdirTemp("", "ingx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(work) })
	upper, ovl, tmp := filepath.Join(work, "etc"), filepath.Join(work, "ovl"), filepath.Join(work, "tmp")
	// The controller image ships these directories; it writes into them.
	for _, d := range []string{ovl, filepath.Join(tmp, "nginx"), filepath.Join(upper, "ingress-controller", "telemetry")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := copyTree(filepath.Join(dir, "etc-nginx"), filepath.Join(upper, "nginx")); err != nil {
		t.Fatalf("labtest: %v", err)
	}

	// The controller reads its own Pod; this one is never scheduled, so the lab runs nothing for it.
	_, cs := Kube(t)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ingress-nginx-controller", Namespace: namespace,
			Labels: map[string]string{"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"}},
		Spec: corev1.PodSpec{
			SchedulerName: "canaryflow-lab-unscheduled",
			Containers:    []corev1.Container{{Name: "controller", Image: "registry.k8s.io/ingress-nginx/controller:v1.11.0"}},
		},
	}
	if _, err := cs.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("labtest: the ingress-nginx controller's Pod: %v", err)
	}

	ports := make([]int, 7)
	for i := range ports {
		ports[i] = freePort(t)
	}
	status, healthz := ports[0], ports[1]
	args := []string{
		"--kubeconfig=" + env.Kubeconfig, "--watch-namespace=" + namespace,
		"--ingress-class=nginx", "--controller-class=k8s.io/ingress-nginx", "--election-id=ingress-nginx-leader",
		"--update-status=false", "--enable-metrics=true", "--profiling=false", "--post-shutdown-grace-period=0",
		fmt.Sprintf("--status-port=%d", status), fmt.Sprintf("--healthz-port=%d", healthz), "--healthz-host=127.0.0.1",
		fmt.Sprintf("--http-port=%d", ports[2]), fmt.Sprintf("--https-port=%d", ports[3]),
		fmt.Sprintf("--default-server-port=%d", ports[4]), fmt.Sprintf("--stream-port=%d", ports[5]),
		fmt.Sprintf("--profiler-port=%d", ports[6]),
	}
	args = append(args, extraArgs...)
	const script = `set -e
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc
mount --bind "$3" /tmp
shift 3
exec "$@"`
	cmd := exec.Command("unshare", append([]string{"--mount", "--pid", "--fork", "--mount-proc", "--kill-child", "--",
		"sh", "-c", script, "sh", upper, ovl, tmp, filepath.Join(dir, "nginx-ingress-controller")}, args...)...)
	cmd.Env = append(os.Environ(), "POD_NAME="+pod.Name, "POD_NAMESPACE="+namespace,
		"NGINX_BINARY="+filepath.Join(dir, "stub", "nginx"), fmt.Sprintf("CANARYFLOW_NGINX_STATUS_PORT=%d", status),
		fmt.Sprintf("CANARYFLOW_NGINX_STREAM_PORT=%d", ports[5]))
	// If the test process dies, the controller goes with it (and --kill-child takes every process of its PID namespace).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// The whole log stays in the lab's run directory; the test log gets its end on failure.
	logPath := filepath.Join(runDir(), "logs", "ingress-nginx-"+namespace+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	var logBuf syncBuffer
	cmd.Stdout = io.MultiWriter(&logBuf, logFile)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("labtest: starting ingress-nginx (needs unshare and root): %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// unshare passes SIGTERM on to nothing (it blocks it); killed, it takes its PID namespace with it.
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("ingress-nginx controller log %s ends with:\n%s", logPath, logBuf.tail(40))
		}
	})

	c := &IngressNginx{
		statusURL:  fmt.Sprintf("http://127.0.0.1:%d", status),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", healthz),
		socket:     filepath.Join(tmp, "nginx", "prometheus-nginx.socket"),
		conf:       filepath.Join(upper, "nginx", "nginx.conf"),
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case <-done:
			t.Fatal("labtest: ingress-nginx exited at start (its log follows)")
		default:
		}
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", healthz))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("labtest: ingress-nginx not healthy within 90 s (%v; its log follows)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// MetricsTarget is the host:port Prometheus scrapes for the controller's metrics (path /metrics).
func (c *IngressNginx) MetricsTarget() string {
	return strings.TrimSuffix(strings.TrimPrefix(c.metricsURL, "http://"), "/metrics")
}

// Backends returns the backends the controller last configured nginx with.
func (c *IngressNginx) Backends(ctx context.Context) ([]NginxBackend, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.statusURL+"/configuration/backends", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /configuration/backends: %s: %s", resp.Status, body)
	}
	var out []NginxBackend
	return out, json.Unmarshal(body, &out)
}

// WaitBackends polls the configured backends until ok accepts them (then returns them) or within passes (then it
// fails the test naming what it saw last).
func (c *IngressNginx) WaitBackends(t testing.TB, within time.Duration, what string, ok func(map[string]NginxBackend) bool) map[string]NginxBackend {
	t.Helper()
	var last map[string]NginxBackend
	var lastErr error
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		list, err := c.Backends(context.Background())
		if err == nil {
			last = map[string]NginxBackend{}
			for _, b := range list {
				last[b.Name] = b
			}
			if ok(last) {
				return last
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			b, _ := json.MarshalIndent(last, "", "  ")
			t.Fatalf("ingress-nginx did not configure %s within %s (last error %v); last backends:\n%s", what, within, lastErr, b)
		}
	}
}

// NginxConf returns the nginx.conf the controller rendered last.
func (c *IngressNginx) NginxConf(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(c.conf)
	if err != nil {
		t.Fatalf("labtest: the rendered nginx.conf: %v", err)
	}
	return string(b)
}

// Observe reports requests to the controller's metrics socket as nginx's monitor.lua does (one JSON batch per
// connection), so the controller's collector counts them in its Prometheus metrics.
func (c *IngressNginx) Observe(batch []NginxRequest) error {
	b, err := json.Marshal(batch)
	if err != nil {
		return err
	}
	conn, err := net.DialTimeout("unix", c.socket, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write(b)
	return err
}

// ---------------------------------------------------------------- building it

// buildIngressNginx builds the controller and the nginx stand-in from lab/translators/nginx into the lab cache,
// unless the build for the current recipe (its go.mod, go.sum and stand-in source) is there. A lock makes
// concurrent test packages build it once.
func buildIngressNginx(root string) (string, error) {
	src := filepath.Join(root, "lab", "translators", "nginx")
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "stub/main.go"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	stamp := hex.EncodeToString(h.Sum(nil))[:16]
	base := filepath.Join(labbin.CacheDir(), "lab", "translators")
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	lock, err := lockFile(filepath.Join(base, "ingress-nginx.lock"), syscall.LOCK_EX)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	dir := filepath.Join(base, "ingress-nginx")
	if b, err := os.ReadFile(filepath.Join(dir, "stamp")); err == nil && strings.TrimSpace(string(b)) == stamp {
		return dir, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	logPath := filepath.Join(base, "ingress-nginx-build.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	defer logf.Close()
	goCmd := func(out io.Writer, args ...string) error {
		cmd := exec.Command("go", args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false", "GOTOOLCHAIN=local")
		cmd.Stdout, cmd.Stderr = out, logf
		fmt.Fprintf(logf, "+ go %s\n", strings.Join(args, " "))
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s: %w (log %s)", strings.Join(args, " "), err, logPath)
		}
		return nil
	}
	start := time.Now()
	if err := goCmd(logf, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "nginx-ingress-controller"), "k8s.io/ingress-nginx/cmd/nginx"); err != nil {
		return "", err
	}
	if err := goCmd(logf, "build", "-trimpath", "-o", filepath.Join(dir, "stub", "nginx"), "./stub"); err != nil {
		return "", err
	}
	var modDir bytes.Buffer
	if err := goCmd(&modDir, "list", "-m", "-f", "{{.Dir}}", "k8s.io/ingress-nginx"); err != nil {
		return "", err
	}
	// The controller renders /etc/nginx/template/nginx.tmpl and writes beside the Lua files: the module's rootfs.
	if err := copyTree(filepath.Join(strings.TrimSpace(modDir.String()), "rootfs", "etc", "nginx"), filepath.Join(dir, "etc-nginx")); err != nil {
		return "", err
	}
	fmt.Fprintf(logf, "built in %s\n", time.Since(start).Round(time.Second))
	return dir, os.WriteFile(filepath.Join(dir, "stamp"), []byte(stamp+"\n"), 0o644)
}

// copyTree copies the regular files and directories below from to to, writable by their owner (the module
// cache's are read-only).
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

// freePort returns a TCP port free on every interface right now (the controller checks its ports that way).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatalf("labtest: a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a process's output for the test log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail returns the last n lines written.
func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := strings.Split(strings.TrimRight(b.buf.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
