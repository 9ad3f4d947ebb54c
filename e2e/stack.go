// Package e2e runs canaryflow end to end on the local lab: the real worker binary (under the ServiceAccount of
// deploy/, with nothing but that token), the real starter CLI, the load tester, podinfo pods behind Traefik and
// Prometheus. The same scenarios serve `make demo` (narrated) and the e2e tests (asserted).
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	authv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

// Stack is the lab plus canaryflow's own processes.
type Stack struct {
	Lab  *labtest.Env
	Root string // repository root
	Bin  string // built binaries: worker, starter, loadtester
	Dir  string // files of this run: kubeconfig, logs, canary files

	Kube    kubernetes.Interface
	Dynamic dynamic.Interface

	// LoadTesterURL is the load tester's address, for webhooks.
	LoadTesterURL string
	// WorkerKubeconfig holds only the worker ServiceAccount's token.
	WorkerKubeconfig string
	// TaskQueue is the task queue of the worker and the starter; empty is the default (workflows.TaskQueue).
	TaskQueue string
	// PrometheusURL is the workers' default metrics server (CANARYFLOW_PROMETHEUS), which builtin metrics and
	// address-less MetricTemplates of a Canary without spec.metricsServer query; empty is the lab's Prometheus.
	PrometheusURL string
	// Say narrates (the demo prints; tests log).
	Say func(format string, args ...any)
	// WorkerEnv are more variables of every worker StartWorker starts.
	WorkerEnv []string

	mu      sync.Mutex
	metrics map[string]string    // worker name → its /metrics URL
	procs   map[string]*exec.Cmd // running processes by name
}

// The binaries are built once per process, for every Stack, into one directory of the cache per checkout that
// each run overwrites (go build is incremental), so runs leave no copies behind, and checkouts sharing the cache
// (worktrees) never run each other's worker.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// build compiles worker, starter and loadtester from the repository at root.
func build(ctx context.Context, root string) (string, error) {
	buildOnce.Do(func() {
		sum := sha256.Sum256([]byte(root))
		binDir = filepath.Join(labbin.CacheDir(), "e2e", "bin", hex.EncodeToString(sum[:4]))
		for _, b := range []string{"worker", "starter", "loadtester/cmd/loadtester"} {
			cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, filepath.Base(b)), "./"+b)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build ./%s: %v\n%s", b, err, out)
				return
			}
		}
	})
	return binDir, buildErr
}

// Start builds the binaries, gives the worker its ServiceAccount from deploy/, and starts the worker and the load
// tester. Close stops them.
func Start(ctx context.Context, env *labtest.Env, say func(string, ...any)) (*Stack, error) {
	return StartOnQueue(ctx, env, say, "")
}

// StartOnQueue is Start with the worker and the starter on a task queue of their own (empty: the default), so
// that no other worker sharing the lab's Temporal takes their tasks.
func StartOnQueue(ctx context.Context, env *labtest.Env, say func(string, ...any), queue string) (*Stack, error) {
	return StartWith(ctx, env, say, Options{TaskQueue: queue})
}

// Options vary what Start starts.
type Options struct {
	// TaskQueue of the workers and the starter; empty is the default (workflows.TaskQueue).
	TaskQueue string
	// PrometheusURL is the workers' default metrics server (a fault proxy, say); empty is the lab's Prometheus.
	PrometheusURL string
	// TemporalAddress replaces the lab's Temporal frontend for the workers, the starter and the scenarios' client:
	// a private server that a test may kill without disturbing the other tests sharing the lab's.
	TemporalAddress string
	// NoWorker starts no worker: the test starts its own with StartWorker.
	NoWorker bool
	// WorkerEnv are more variables of every worker (CANARYFLOW_GITOPS=true, say).
	WorkerEnv []string
}

// StartWith is Start with options.
func StartWith(ctx context.Context, env *labtest.Env, say func(string, ...any), opts Options) (*Stack, error) {
	if opts.TemporalAddress != "" {
		// A copy: the Env is the shared lab's, read by other tests of this process.
		own := *env
		own.TemporalAddress = opts.TemporalAddress
		env = &own
	}
	root, err := labtest.RepoRoot()
	if err != nil {
		return nil, err
	}
	say("building worker, starter and loadtester")
	bin, err := build(ctx, root)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "canaryflow-e2e-")
	if err != nil {
		return nil, err
	}
	s := &Stack{Lab: env, Root: root, Bin: bin, Dir: dir, Say: say, TaskQueue: opts.TaskQueue, PrometheusURL: opts.PrometheusURL,
		WorkerEnv: opts.WorkerEnv}
	cfg := env.RestConfig()
	if s.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if s.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if err := s.installWorkerIdentity(ctx); err != nil {
		return nil, err
	}
	if err := s.startLoadTester(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if opts.NoWorker {
		return s, nil
	}
	if err := s.StartWorker(ctx, "worker"); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// installWorkerIdentity applies deploy/rbac and the worker's namespace and ServiceAccount server-side and writes a
// kubeconfig holding only a token of that ServiceAccount. (TestDeployManifestsApplyServerSide checks the rest of
// deploy/ with a server-side dry run; the lab cannot run the worker's image.)
func (s *Stack) installWorkerIdentity(ctx context.Context) error {
	kubectl := func(args ...string) error {
		full := append([]string{"--kubeconfig", s.Lab.Kubeconfig}, args...)
		cmd := exec.CommandContext(ctx, labbin.Kubectl(), full...)
		cmd.Dir = s.Root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	// The e2e worker runs as a process with that token.
	if err := kubectl("apply", "--server-side", "--field-manager", "canaryflow-e2e",
		"-f", "deploy/worker/namespace.yaml", "-f", "deploy/rbac/serviceaccount.yaml",
		"-f", "deploy/rbac/clusterrole.yaml", "-f", "deploy/rbac/clusterrolebinding.yaml"); err != nil {
		return err
	}
	seconds := int64(4 * 3600)
	tok, err := s.Kube.CoreV1().ServiceAccounts("canaryflow-system").CreateToken(ctx, "canaryflow",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &seconds}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token for ServiceAccount canaryflow-system/canaryflow: %w", err)
	}
	s.WorkerKubeconfig = filepath.Join(s.Dir, "worker.kubeconfig")
	return WriteKubeconfig(s.WorkerKubeconfig, s.Lab.KubeServer, s.Lab.KubeCAFile, tok.Status.Token)
}

// WriteKubeconfig writes a kubeconfig that reaches server (whose serving certificate caFile signs) with a bearer
// token, and nothing else: how a process of a test runs under one identity.
func WriteKubeconfig(path, server, caFile, token string) error {
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: %q, certificate-authority: %q}
users:
- name: canaryflow
  user: {token: %q}
contexts:
- name: worker
  context: {cluster: lab, user: canaryflow}
current-context: worker
`, server, caFile, token)
	return os.WriteFile(path, []byte(kc), 0o600)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Stack) startLoadTester(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.LoadTesterURL = fmt.Sprintf("http://127.0.0.1:%d/", port)
	if err := s.spawn("loadtester", filepath.Join(s.Bin, "loadtester"), nil, fmt.Sprintf("-port=%d", port)); err != nil {
		return err
	}
	return waitHTTP(ctx, s.LoadTesterURL+"healthz", 30*time.Second)
}

// StartWorker starts a worker process named name (its log is <Dir>/<name>.log) with the ServiceAccount's
// kubeconfig, and waits until it is ready.
func (s *Stack) StartWorker(ctx context.Context, name string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	prom := s.PrometheusURL
	if prom == "" {
		prom = s.Lab.PrometheusURL
	}
	env := []string{
		"CANARYFLOW_TEMPORAL_ADDRESS=" + s.Lab.TemporalAddress,
		"CANARYFLOW_TEMPORAL_NAMESPACE=" + s.Lab.TemporalNamespace,
		"CANARYFLOW_KUBECONFIG=" + s.WorkerKubeconfig,
		"CANARYFLOW_PROMETHEUS=" + prom,
		"CANARYFLOW_LISTEN=" + fmt.Sprintf("127.0.0.1:%d", port),
		"CANARYFLOW_LOG_FORMAT=json",
		"CANARYFLOW_METRICS_REFRESH=1s",
		"CANARYFLOW_CLUSTER=lab",
	}
	if s.TaskQueue != "" {
		env = append(env, "CANARYFLOW_TASK_QUEUE="+s.TaskQueue)
	}
	env = append(env, s.WorkerEnv...)
	if err := s.spawn(name, filepath.Join(s.Bin, "worker"), env); err != nil {
		return err
	}
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", port), 60*time.Second); err != nil {
		return fmt.Errorf("%s not ready: %w\n%s", name, err, s.LogTail(name, 30))
	}
	s.Say("worker ready (metrics on http://127.0.0.1:%d/metrics), running under ServiceAccount canaryflow-system/canaryflow", port)
	s.mu.Lock()
	if s.metrics == nil {
		s.metrics = map[string]string{}
	}
	s.metrics[name] = fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	s.mu.Unlock()
	return nil
}

// KubeRequests reads from the named worker's /metrics how many requests it has made to the Kubernetes API.
func (s *Stack) KubeRequests(ctx context.Context, name string) (int, error) {
	byCode, err := s.KubeRequestsByCode(ctx, name)
	total := 0
	for _, n := range byCode {
		total += n
	}
	return total, err
}

// KubeRequestsByCode reads from the named worker's /metrics its requests to the Kubernetes API by response code
// ("200", "409", …, "error" when no response came back), all methods together.
func (s *Stack) KubeRequestsByCode(ctx context.Context, name string) (map[string]int, error) {
	return s.KubeRequestsBy(ctx, name, "code")
}

// KubeRequestsBy reads from the named worker's /metrics its requests to the Kubernetes API by one label of
// canaryflow_kube_requests_total: "code", "method", or "activity" (the activity type that made them, "none"
// outside activities).
func (s *Stack) KubeRequestsBy(ctx context.Context, name, label string) (map[string]int, error) {
	s.mu.Lock()
	u, ok := s.metrics[name]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no worker named %s was started", name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	// No series yet means no request yet: the counter vector exports nothing until its first request.
	by := map[string]int{}
	value := regexp.MustCompile(`[{,]` + regexp.QuoteMeta(label) + `="([^"]*)"`)
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "canaryflow_kube_requests_total{") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", u, line, err)
		}
		m := value.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("%s: %q has no %s label", u, line, label)
		}
		by[m[1]] += int(v)
	}
	return by, nil
}

func (s *Stack) spawn(name, bin string, env []string, args ...string) error {
	logf, err := os.Create(filepath.Join(s.Dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: a test process killed before its cleanup takes its worker and load tester with it, instead of
	// leaving them polling the lab.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	s.mu.Lock()
	if s.procs == nil {
		s.procs = map[string]*exec.Cmd{}
	}
	s.procs[name] = cmd
	s.mu.Unlock()
	return nil
}

// Kill stops the named process with SIGKILL, as a crash or an evicted pod would: no graceful shutdown, running
// activities are lost mid-flight.
func (s *Stack) Kill(name string) error {
	s.mu.Lock()
	cmd, ok := s.procs[name]
	delete(s.procs, name)
	delete(s.metrics, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("no process named %s", name)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", name, err)
	}
	_ = cmd.Wait()
	return nil
}

// Pid returns the process ID of the named process, 0 when none of that name runs.
func (s *Stack) Pid(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cmd, ok := s.procs[name]; ok {
		return cmd.Process.Pid
	}
	return 0
}

// LogTail returns the last lines of a process's log.
func (s *Stack) LogTail(name string, lines int) string {
	data, _ := os.ReadFile(filepath.Join(s.Dir, name+".log"))
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Close stops the processes (SIGTERM, then SIGKILL after 10 s) and removes the run's files.
func (s *Stack) Close() {
	defer os.RemoveAll(s.Dir)
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for _, p := range procs {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
}

func waitHTTP(ctx context.Context, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answered %d", url, resp.StatusCode)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not up within %s: %v", url, within, last)
}

// Result is what one starter invocation did.
type Result struct {
	Code   int
	Output string
	Took   time.Duration
}

// Starter runs the starter CLI against the lab, streaming its output lines to Say as they come.
func (s *Stack) Starter(ctx context.Context, args ...string) Result {
	return s.StarterTo(ctx, s.Say, args...)
}

// StarterTo runs the starter CLI like Starter, streaming its output lines to say (each rollout of concurrent
// scenarios to its own test log).
func (s *Stack) StarterTo(ctx context.Context, say func(string, ...any), args ...string) Result {
	cmd := exec.CommandContext(ctx, filepath.Join(s.Bin, "starter"), args...)
	cmd.Env = append(os.Environ(),
		"CANARYFLOW_TEMPORAL_ADDRESS="+s.Lab.TemporalAddress,
		"CANARYFLOW_TEMPORAL_NAMESPACE="+s.Lab.TemporalNamespace,
		"CANARYFLOW_UI_URL="+s.Lab.TemporalUIURL,
		"KUBECONFIG="+s.Lab.Kubeconfig,
	)
	if s.TaskQueue != "" {
		cmd.Env = append(cmd.Env, "CANARYFLOW_TASK_QUEUE="+s.TaskQueue)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			buf.WriteString(sc.Text() + "\n")
			say("  │ %s", sc.Text())
		}
		close(done)
	}()
	start := time.Now()
	err := cmd.Run()
	pw.Close()
	<-done
	r := Result{Output: buf.String(), Took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		r.Output += err.Error()
	}
	return r
}

// Reset deletes namespace ns (and waits until it is gone) and ends any rollout of its podinfo canary, so a demo
// can run again from the start.
func Reset(ctx context.Context, s *Stack, ns string) error {
	c, err := client.Dial(client.Options{HostPort: s.Lab.TemporalAddress, Namespace: s.Lab.TemporalNamespace})
	if err == nil {
		_ = c.TerminateWorkflow(ctx, v1beta1.WorkflowID(ns, "podinfo"), "", "demo restarted")
		c.Close()
	}
	if err := s.Kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, err := s.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("namespace %s still terminating after 2 minutes", ns)
}
