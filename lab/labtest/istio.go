package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IstioVersion is the istio.io/istio module the lab builds pilot-discovery (istiod) from: a pseudo-version, the
// only kind the module proxy serves. Istio's CRDs come from istio.io/api (IstioAPIModule).
const (
	IstioVersion   = "v0.0.0-20260827124520-eed52ebb66ad"
	IstioAPIModule = "istio.io/api@v1.32.0"
)

// Istiod is a running pilot-discovery against the lab API server: it reads VirtualServices, DestinationRules
// and Services and serves Envoy configuration over plain-text xDS. There is no Envoy: tests read that
// configuration back with the tools module's xdsdump, posing as a sidecar.
type Istiod struct {
	xdsdump, grpc string
	logBuf        *syncBuffer
}

// StartIstiod builds istiod and xdsdump (once, cached), installs Istio's CRDs, and starts istiod on free
// loopback ports until the test ends. It watches every namespace.
func StartIstiod(t testing.TB) *Istiod {
	t.Helper()
	env := Lab(t)
	CRDs(t, ModuleFile(t, IstioAPIModule, "kubernetes/customresourcedefinitions.gen.yaml"))
	dir, err := buildIstiod()
	if err != nil {
		t.Fatalf("labtest: building istiod: %v", err)
	}
	_, cs := Kube(t)
	_, err = cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("labtest: namespace istio-system: %v", err)
	}
	ports := make([]int, 3)
	for i := range ports {
		ports[i] = freePort(t)
	}
	d := &Istiod{xdsdump: filepath.Join(dir, "xdsdump"), grpc: fmt.Sprintf("127.0.0.1:%d", ports[1]), logBuf: &syncBuffer{}}
	cmd := exec.Command(filepath.Join(dir, "pilot-discovery"), "discovery", "--kubeconfig", env.Kubeconfig,
		"--httpAddr", fmt.Sprintf("127.0.0.1:%d", ports[0]), "--httpsAddr=", "--grpcAddr", d.grpc, "--secureGRPCAddr=",
		"--monitoringAddr", fmt.Sprintf("127.0.0.1:%d", ports[2]), "--domain", "cluster.local")
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=istio-system", "POD_NAME=istiod-0", "INJECTION_WEBHOOK_CONFIG_NAME=",
		"VALIDATION_WEBHOOK_CONFIG_NAME=", "XDS_AUTH=false")
	cmd.Dir = t.TempDir() // istiod writes files relative to its working directory
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logPath := filepath.Join(runDir(), "logs", "istiod.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	cmd.Stdout = io.MultiWriter(d.logBuf, logFile)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("labtest: starting istiod: %v", err)
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
			t.Logf("istiod log %s ends with:\n%s", logPath, d.logBuf.tail(40))
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(120 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("labtest: istiod exited at start; its log ends with:\n%s", d.logBuf.tail(40))
		default:
		}
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", ports[0]))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("labtest: istiod not ready within 120 s (%v); its log ends with:\n%s", err, d.logBuf.tail(40))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// Routes asks istiod, as the sidecar of a pod in namespace, for the route configurations named routes (for a
// sidecar, the port numbers of the Services it calls, such as "9898") and returns them as protojson objects
// with proto field names.
func (d *Istiod) Routes(ctx context.Context, namespace string, routes ...string) ([]map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	node := fmt.Sprintf("sidecar~10.244.0.250~client.%s~%s.svc.cluster.local", namespace, namespace)
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, d.xdsdump, append([]string{"-istiod", d.grpc, "-node", node, "-namespace", namespace}, routes...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("xdsdump: %w: %s", err, errb.String())
	}
	var configs []map[string]any
	if err := json.Unmarshal(out.Bytes(), &configs); err != nil {
		return nil, fmt.Errorf("xdsdump: %w", err)
	}
	return configs, nil
}

// buildIstiod builds pilot-discovery and xdsdump from the tools module lab/translators/istio (see buildTool) and
// returns their directory.
func buildIstiod() (string, error) {
	return buildTool("istio", IstioVersion, []string{"istio.io/istio/pilot/cmd/pilot-discovery",
		"github.com/canaryflow/canaryflow/lab/translators/istio/xdsdump"})
}
