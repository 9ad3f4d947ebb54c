// Package labtest gives tests the local lab (lab/README.md): a Kubernetes API
// server with controllers and a kwok node whose pods run as real podinfo
// processes, a Temporal dev server, Traefik and Prometheus.
//
// The first call in a test binary finds the running lab (through
// $CANARYFLOW_CACHE/lab/run/lab.env) or, when it is not up, builds and starts it
// with lab/build.sh and lab/up.sh, under a lock so that parallel test packages
// start it once. A lab started that way is stopped by a watcher once the last
// test process using it exits. `make test` starts the lab once, around the whole
// `go test ./...`, through lab/with-lab.sh.
//
// Tests that need the lab never skip: if the lab cannot be had they fail with
// the reason. With CANARYFLOW_LAB=off (make test-unit) they fail at once
// without starting anything.
package labtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/canaryflow/canaryflow/lab/labbin"

	"go.temporal.io/sdk/client"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Env is the running lab, as lab/up.sh describes it in lab.env.
type Env struct {
	Kubeconfig        string // path of an admin kubeconfig (static token)
	KubeServer        string // https://127.0.0.1:16443
	KubeCAFile        string // CA of the API server's serving certificate
	KubeToken         string // admin bearer token (group system:masters)
	TemporalAddress   string // 127.0.0.1:7233
	TemporalNamespace string // default
	TemporalUIURL     string // http://127.0.0.1:8233
	PrometheusURL     string // http://127.0.0.1:19090
	TraefikURL        string // entrypoint "web": IngressRoutes
	TraefikGatewayURL string // entrypoint "gateway": the lab Gateway's listener
	TraefikMetricsURL string // Traefik's /metrics and /ping
	GatewayNamespace  string // namespace of the lab Gateway (parentRef of HTTPRoutes)
	GatewayName       string // name of the lab Gateway
	GatewayListener   string // the Gateway's HTTP listener (parentRef sectionName)
	Bin               string // directory of temporal, kubectl, …
	Netns             string // network namespace of the pods
	PodCIDR           string // pod IPs of the fake node
	Node              string // the fake node
	Run               string // the run directory (pids, logs, lab.env); set for a private lab (EnvAt)
	// ScaleNodes is the scale lab's number of kwok nodes (lab/scale.sh), 0 for the usual lab. The scale lab has no
	// Traefik process, no Prometheus and no pod network: their URLs are empty.
	ScaleNodes int
	// TemporalServer is "dev" (the CLI's dev server, with the Web UI) or "postgres" (Temporal's production server,
	// no Web UI: TemporalUIURL is empty).
	TemporalServer string
}

// Lab returns the running lab, starting it if needed; it fails the test if the
// lab cannot be had.
func Lab(t testing.TB) *Env {
	t.Helper()
	env, err := ensure()
	if err != nil {
		t.Fatalf("labtest: this test needs the lab: %v", err)
	}
	return env
}

// Kube returns a client config (admin token) and a clientset for the lab's API server.
func Kube(t testing.TB) (*rest.Config, kubernetes.Interface) {
	t.Helper()
	cfg := RestConfig(t)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("labtest: clientset: %v", err)
	}
	return cfg, cs
}

// RestConfig returns a fresh client config for the lab's API server (admin token).
func RestConfig(t testing.TB) *rest.Config {
	t.Helper()
	return Lab(t).RestConfig()
}

// RestConfig returns a fresh client config for the lab's API server (admin token).
func (env *Env) RestConfig() *rest.Config {
	return &rest.Config{
		Host:            env.KubeServer,
		BearerToken:     env.KubeToken,
		TLSClientConfig: rest.TLSClientConfig{CAFile: env.KubeCAFile},
		QPS:             200,
		Burst:           400,
		Timeout:         30 * time.Second,
	}
}

// Dynamic returns a dynamic client for the lab's API server (for TraefikService,
// IngressRoute, HTTPRoute and other custom resources).
func Dynamic(t testing.TB) dynamic.Interface {
	t.Helper()
	dc, err := dynamic.NewForConfig(RestConfig(t))
	if err != nil {
		t.Fatalf("labtest: dynamic client: %v", err)
	}
	return dc
}

// Kubeconfig returns the path of the lab's admin kubeconfig.
func Kubeconfig(t testing.TB) string { t.Helper(); return Lab(t).Kubeconfig }

// Temporal returns a client of the lab's Temporal dev server (namespace
// default), closed when the test ends.
func Temporal(t testing.TB) client.Client {
	t.Helper()
	env := Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, client.Options{HostPort: env.TemporalAddress, Namespace: env.TemporalNamespace})
	if err != nil {
		t.Fatalf("labtest: temporal client for %s: %v", env.TemporalAddress, err)
	}
	t.Cleanup(c.Close)
	return c
}

// TemporalUIURL returns the Web UI's base URL.
func TemporalUIURL(t testing.TB) string { t.Helper(); return Lab(t).TemporalUIURL }

// PrometheusURL returns Prometheus' base URL (it scrapes Traefik every second).
func PrometheusURL(t testing.TB) string { t.Helper(); return Lab(t).PrometheusURL }

// TraefikURL returns the base URL of Traefik's "web" entrypoint, which serves
// IngressRoutes (select one with a Host rule and the request's Host header).
func TraefikURL(t testing.TB) string { t.Helper(); return Lab(t).TraefikURL }

// GatewayURL returns the base URL of the lab Gateway's HTTP listener
// (Traefik's "gateway" entrypoint), which serves HTTPRoutes attached to Gateway().
func GatewayURL(t testing.TB) string { t.Helper(); return Lab(t).TraefikGatewayURL }

// Gateway returns the lab Gateway that HTTPRoutes name in parentRefs, and its
// listener (sectionName).
func Gateway(t testing.TB) (namespace, name, listener string) {
	t.Helper()
	env := Lab(t)
	return env.GatewayNamespace, env.GatewayName, env.GatewayListener
}

// Namespace creates a Kubernetes namespace named after prefix with a random
// suffix, waits until its default ServiceAccount exists (pods need it), and
// deletes it when the test ends. Before deleting it, it fails the test if the value of any of its Secrets is in
// a workflow history of the lab's Temporal tied to it (ScanHistoriesForSecrets).
func Namespace(t testing.TB, prefix string) string {
	t.Helper()
	return Lab(t).Namespace(t, prefix)
}

// Namespace is labtest.Namespace on this lab (a private one, say).
func (env *Env) Namespace(t testing.TB, prefix string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(env.RestConfig())
	if err != nil {
		t.Fatalf("labtest: clientset: %v", err)
	}
	ctx := context.Background()
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("labtest: creating namespace: %v", err)
	}
	t.Cleanup(func() {
		// Before the namespace and its Secrets go: no Secret value may be in a history of its rollouts.
		scanAtCleanup(t, env, cs, ns.Name)
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return ns.Name
		}
		if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
			t.Fatalf("labtest: default ServiceAccount of %s: %v", ns.Name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- finding or starting the lab

var (
	once   sync.Once
	theEnv *Env
	theErr error
	//lint:ignore U1000 never read: holding the open file keeps the shared lock for the life of the process
	usersLck *os.File // shared lock held for the life of the process: "a test uses the lab"
)

func runDir() string {
	if d := os.Getenv("CANARYFLOW_LAB_RUN"); d != "" {
		return d
	}
	return filepath.Join(labbin.CacheDir(), "lab", "run")
}

func ensure() (*Env, error) {
	if os.Getenv("CANARYFLOW_LAB") == "off" {
		return nil, errors.New("CANARYFLOW_LAB=off (make test-unit) forbids using the lab; " +
			"lab tests carry //go:build lab: run this test with `make test-lab`, `lab/with-lab.sh go test -tags lab ./...` or plain `go test -tags lab` (which starts the lab)")
	}
	once.Do(func() { theEnv, theErr = findOrStart() })
	return theEnv, theErr
}

func findOrStart() (*Env, error) {
	run := runDir()
	if err := os.MkdirAll(run, 0o755); err != nil {
		return nil, err
	}
	// Shared while this process lives; the watcher of a lab that labtest
	// started waits for the exclusive lock, i.e. for the last user to exit.
	f, err := lockFile(filepath.Join(run, "users.lock"), syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	usersLck = f
	start, err := lockFile(filepath.Join(run, "labtest-start.lock"), syscall.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer start.Close()

	if env, err := readEnv(filepath.Join(run, "lab.env")); err == nil {
		env.Run = run
		if err = healthy(env); err == nil {
			return env, nil
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(run, "labtest-up.log")
	for _, script := range []string{"lab/build.sh", "lab/up.sh"} {
		out, err := runScript(root, script, logPath)
		if err != nil {
			return nil, fmt.Errorf("%s failed (%v); log %s ends with:\n%s", script, err, logPath, out)
		}
	}
	// Stop the lab once no test process holds the shared lock any more.
	w := exec.Command("setsid", "flock", "-x", filepath.Join(run, "users.lock"), filepath.Join(root, "lab/down.sh"))
	if lf, err := os.OpenFile(filepath.Join(run, "labtest-down.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		w.Stdout, w.Stderr = lf, lf
		defer lf.Close()
	}
	w.Dir = root
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("starting the lab's stop watcher: %w", err)
	}
	// up.sh and down.sh run by a person cancel this watcher (the lab is then theirs).
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", w.Process.Pid)); err == nil {
		if i := bytes.LastIndexByte(st, ')'); i > 0 {
			if f := strings.Fields(string(st[i+1:])); len(f) > 19 {
				_ = os.WriteFile(filepath.Join(run, "labtest-watcher.pid"), []byte(fmt.Sprintf("%d %s\n", w.Process.Pid, f[19])), 0o644)
			}
		}
	}
	go func() { _ = w.Wait() }()
	env, err := readEnv(filepath.Join(run, "lab.env"))
	if err != nil {
		return nil, err
	}
	env.Run = run
	return env, healthy(env)
}

func lockFile(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// runScript runs a lab script, appending its output to logPath; on failure it
// returns the last lines of that output.
func runScript(root, script, logPath string) (string, error) {
	var buf bytes.Buffer
	cmd := exec.Command(filepath.Join(root, script))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CANARYFLOW_CACHE="+labbin.CacheDir(), "CANARYFLOW_LAB_CALLER=labtest")
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if lf, lerr := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); lerr == nil {
		_, _ = lf.Write(buf.Bytes())
		lf.Close()
	}
	if err != nil {
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		return strings.Join(lines, "\n"), err
	}
	return "", nil
}

// RepoRoot finds the repository (the directory holding lab/up.sh) from the
// working directory, or else from this source file's location.
func RepoRoot() (string, error) {
	if d, err := os.Getwd(); err == nil {
		for ; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "lab", "up.sh")); err == nil {
				return d, nil
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		d := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		if _, err := os.Stat(filepath.Join(d, "lab", "up.sh")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("cannot find the repository (lab/up.sh) to start the lab")
}

func readEnv(path string) (*Env, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	env := &Env{
		Kubeconfig: m["LAB_KUBECONFIG"], KubeServer: m["LAB_KUBE_SERVER"], KubeCAFile: m["LAB_KUBE_CA"],
		KubeToken: m["LAB_KUBE_TOKEN"], TemporalAddress: m["LAB_TEMPORAL_ADDRESS"],
		TemporalNamespace: m["LAB_TEMPORAL_NAMESPACE"], TemporalUIURL: m["LAB_TEMPORAL_UI_URL"],
		PrometheusURL: m["LAB_PROMETHEUS_URL"], TraefikURL: m["LAB_TRAEFIK_URL"],
		TraefikGatewayURL: m["LAB_TRAEFIK_GATEWAY_URL"], TraefikMetricsURL: m["LAB_TRAEFIK_METRICS_URL"],
		GatewayNamespace: m["LAB_GATEWAY_NAMESPACE"], GatewayName: m["LAB_GATEWAY_NAME"],
		GatewayListener: m["LAB_GATEWAY_LISTENER"], Bin: m["LAB_BIN"], Netns: m["LAB_NETNS"],
		PodCIDR: m["LAB_POD_CIDR"], Node: m["LAB_NODE"], TemporalServer: m["LAB_TEMPORAL"],
	}
	if v := m["LAB_SCALE_NODES"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("%s: LAB_SCALE_NODES=%q: %w", path, v, err)
		}
		env.ScaleNodes = n
	}
	if env.KubeServer == "" || env.TemporalAddress == "" ||
		(env.ScaleNodes == 0 && (env.PrometheusURL == "" || env.TraefikURL == "")) {
		return nil, fmt.Errorf("%s is incomplete", path)
	}
	return env, nil
}

// healthy probes every endpoint of the lab once.
func healthy(env *Env) error {
	ca, err := os.ReadFile(env.KubeCAFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool},
	}}
	get := func(url, token string) error {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
	// A part the lab variant has not (the scale lab's Traefik, the production server's Web UI) has no URL.
	optional := func(base, path string) func() error {
		return func() error {
			if base == "" {
				return nil
			}
			return get(base+path, "")
		}
	}
	checks := []func() error{
		func() error { return get(env.KubeServer+"/readyz", env.KubeToken) },
		optional(env.PrometheusURL, "/-/ready"),
		optional(env.TraefikMetricsURL, "/ping"),
		optional(env.TemporalUIURL, "/"),
		func() error {
			c, err := net.DialTimeout("tcp", env.TemporalAddress, 3*time.Second)
			if err == nil {
				c.Close()
			}
			return err
		},
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return fmt.Errorf("lab not healthy: %w", err)
		}
	}
	return nil
}
