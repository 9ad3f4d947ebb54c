package labtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SkipperVersion is the Skipper the lab builds: the only version the module proxy serves. Its go.mod asks for
// Go 1.27, so that one build runs with SkipperToolchain, which the go command fetches from the module proxy.
const (
	SkipperVersion   = "v0.27.65"
	SkipperToolchain = "go1.27.3"
)

// Skipper is a running Skipper proxy reading the Ingresses of one namespace from the lab API server: a real data
// plane, so requests sent to URL reach the podinfo processes of the lab's pods.
type Skipper struct {
	// URL is the proxy listener (send requests with the Ingress's Host).
	URL string
	// supportURL serves /routes and /metrics.
	supportURL string
	logBuf     *syncBuffer
}

// StartSkipper builds Skipper (once, cached) and starts it for the Ingresses of class "skipper" in namespace,
// waits until it serves its route table and stops it when the test ends.
func StartSkipper(t testing.TB, namespace string) *Skipper {
	t.Helper()
	env := Lab(t)
	bin, err := buildSkipper()
	if err != nil {
		t.Fatalf("labtest: building skipper: %v", err)
	}
	work := t.TempDir()
	tokenFile := filepath.Join(work, "token")
	if err := os.WriteFile(tokenFile, []byte(env.KubeToken), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy, support := freePort(t), freePort(t)
	cmd := exec.Command(bin,
		"-kubernetes", "-kubernetes-url", env.KubeServer, "-kubernetes-token-file", tokenFile,
		"-kubernetes-namespace", namespace, "-kubernetes-ingress-class", "skipper",
		"-enable-kubernetes-endpointslices", "-kubernetes-https-redirect=false", "-kubernetes-healthcheck=false",
		"-address", fmt.Sprintf("127.0.0.1:%d", proxy), "-support-listener", fmt.Sprintf("127.0.0.1:%d", support),
		"-metrics-flavour", "prometheus", "-serve-route-metrics", "-source-poll-timeout", "500",
		// Without it Skipper keeps serving for 45 s after SIGTERM.
		"-wait-for-healthcheck-interval=0")
	// Skipper has no CA flag: the lab's CA reaches its Kubernetes client this way.
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+env.KubeCAFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logPath := filepath.Join(runDir(), "logs", "skipper-"+namespace+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	s := &Skipper{URL: fmt.Sprintf("http://127.0.0.1:%d", proxy), supportURL: fmt.Sprintf("http://127.0.0.1:%d", support), logBuf: &syncBuffer{}}
	cmd.Stdout = io.MultiWriter(s.logBuf, logFile)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("labtest: starting skipper: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("skipper log %s ends with:\n%s", logPath, s.logBuf.tail(40))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("labtest: skipper exited at start; its log ends with:\n%s", s.logBuf.tail(40))
		default:
		}
		if _, err := s.Routes(context.Background()); err == nil {
			return s
		} else if time.Now().After(deadline) {
			t.Fatalf("labtest: skipper did not serve its routes within 60 s (%v); its log ends with:\n%s", err, s.logBuf.tail(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Routes returns Skipper's route table in eskip form (GET /routes on the support listener).
func (s *Skipper) Routes(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.supportURL+"/routes", nil)
	if err != nil {
		return "", err
	}
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /routes: %s", resp.Status)
	}
	return string(b), nil
}

// MetricsTarget is the host:port Prometheus scrapes for Skipper's metrics (path /metrics).
func (s *Skipper) MetricsTarget() string { return strings.TrimPrefix(s.supportURL, "http://") }

// buildSkipper builds Skipper from the tools module lab/translators/skipper (see buildTool).
func buildSkipper() (string, error) {
	dir, err := buildTool("skipper", SkipperVersion+" "+SkipperToolchain, []string{"github.com/zalando/skipper/cmd/skipper"}, "GOTOOLCHAIN="+SkipperToolchain)
	return filepath.Join(dir, "skipper"), err
}
