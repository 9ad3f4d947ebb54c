// Package promtest starts a real Prometheus (the Debian /usr/bin/prometheus the lab installs) for a test,
// scraping the given targets every second, and stops it when the test ends.
package promtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary is the Prometheus server the tests run.
var Binary = "/usr/bin/prometheus"

// Promtool is Prometheus' own tool (same Debian package), which backfills recorded samples into a TSDB.
var Promtool = "/usr/bin/promtool"

// Start runs Prometheus on a free 127.0.0.1 port scraping targets ("127.0.0.1:port", path /metrics) every second
// and returns its base URL once it is ready. It fails the test (never skips) when Prometheus cannot be started.
func Start(t testing.TB, targets ...string) string {
	t.Helper()
	return start(t, t.TempDir(), targets)
}

// StartWithHistory runs Prometheus on a TSDB backfilled with the samples of openMetrics (the OpenMetrics text
// format, timestamps in seconds, ending with "# EOF"), so a test can query past time: range queries and instant
// queries at a given time see exactly these samples. Samples must lie within Prometheus' retention (15 days
// before now) and not in the future. It scrapes nothing.
func StartWithHistory(t testing.TB, openMetrics string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "history.om")
	if err := os.WriteFile(src, []byte(openMetrics), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(Promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
		src, filepath.Join(dir, "data")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool could not backfill the recorded samples: %v: %s", err, out)
	}
	return start(t, dir, nil)
}

// start runs Prometheus with its TSDB in dir/data.
func start(t testing.TB, dir string, targets []string) string {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("prometheus is needed at %s (lab/build.sh installs it from Debian): %v", Binary, err)
	}
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = fmt.Sprintf("%q", tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: test
    scrape_interval: 1s
    scrape_timeout: 900ms
    static_configs:
      - targets: [%s]
`, strings.Join(quoted, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Binary, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
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
		_ = logf.Close()
	})
	base := "http://" + addr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/-/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("prometheus exited: %s", b)
		case <-ctx.Done():
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("prometheus not ready within 60s: %s", b)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
