package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// ContourVersion is the Contour the lab builds as the translator of HTTPProxies; its CRDs come from the same
// module.
const ContourVersion = "v1.33.8"

// ContourModule is the Contour module at ContourVersion (for ModuleFile).
const ContourModule = "github.com/projectcontour/contour@" + ContourVersion

// Contour is a running `contour serve`: it reads HTTPProxies of one namespace from the lab API server, writes
// their status and serves the Envoy configuration it derives over xDS. There is no Envoy here: tests read that
// configuration back with `contour cli`.
type Contour struct {
	bin, xds string
	logBuf   *syncBuffer
}

// StartContour builds Contour (once, cached), installs its CRDs, and starts `contour serve` watching namespace
// on free loopback ports until the test ends.
func StartContour(t testing.TB, namespace string) *Contour {
	t.Helper()
	env := Lab(t)
	CRDs(t, ModuleFile(t, ContourModule, "examples/contour/01-crds.yaml"))
	bin, err := buildContour()
	if err != nil {
		t.Fatalf("labtest: building contour: %v", err)
	}
	ports := make([]int, 6)
	for i := range ports {
		ports[i] = freePort(t)
	}
	c := &Contour{bin: bin, xds: fmt.Sprintf("127.0.0.1:%d", ports[0]), logBuf: &syncBuffer{}}
	cmd := exec.Command(bin, "serve", "--insecure", "--kubeconfig", env.Kubeconfig, "--disable-leader-election",
		"--watch-namespaces", namespace, "--root-namespaces", namespace,
		"--xds-address", "127.0.0.1", "--xds-port", fmt.Sprint(ports[0]),
		"--debug-http-address", "127.0.0.1", "--debug-http-port", fmt.Sprint(ports[1]),
		"--http-address", "127.0.0.1", "--http-port", fmt.Sprint(ports[2]),
		"--health-address", "127.0.0.1", "--health-port", fmt.Sprint(ports[3]),
		// Ports Envoy would listen on; nothing binds them here.
		"--envoy-service-http-port", fmt.Sprint(ports[4]), "--envoy-service-https-port", fmt.Sprint(ports[5]))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	logPath := filepath.Join(runDir(), "logs", "contour-"+namespace+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logFile.Close() })
	cmd.Stdout = io.MultiWriter(c.logBuf, logFile)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("labtest: starting contour: %v", err)
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
			t.Logf("contour log %s ends with:\n%s", logPath, c.logBuf.tail(40))
		}
	})
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("labtest: contour exited at start; its log ends with:\n%s", c.logBuf.tail(40))
		default:
		}
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", ports[3]))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("labtest: contour not healthy within 60 s (%v); its log ends with:\n%s", err, c.logBuf.tail(40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Routes returns the route configurations Contour serves to Envoy over RDS (the resources of its latest
// discovery response, as `contour cli rds` prints them in protojson with proto field names).
func (c *Contour) Routes(ctx context.Context) ([]map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, c.bin, "cli", "rds", "--contour", c.xds)
	cmd.Stdout = &out
	_ = cmd.Run() // it watches until killed
	dec := json.NewDecoder(&out)
	var last []map[string]any
	for {
		var msg struct {
			Resources []map[string]any `json:"resources"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) || last != nil {
				break
			}
			return nil, fmt.Errorf("contour cli rds: %w", err)
		}
		if msg.Resources != nil {
			last = msg.Resources
		}
	}
	if last == nil {
		return nil, errors.New("contour cli rds: no discovery response within 3 s")
	}
	return last, nil
}

// buildContour builds contour from the tools module lab/translators/contour (see buildTool).
func buildContour() (string, error) {
	dir, err := buildTool("contour", ContourVersion, []string{"github.com/projectcontour/contour/cmd/contour"})
	return filepath.Join(dir, "contour"), err
}
