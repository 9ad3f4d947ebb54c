//go:build lab

package loadtester_test

// Against the lab: a cmd task's hey really sends the rate it asks for through Traefik to podinfo, as
// Prometheus counts it; it is not started twice and stops by itself.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/loadtester"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

func until(t *testing.T, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", limit, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestCmdTaskSendsTheRequestedRateToPodinfoInTheLab(t *testing.T) {
	ns := labtest.Namespace(t, "loadtest")
	host := ns + ".lab"
	ctx := context.Background()
	labtest.ServeCanary(t, ns, host)
	traefik := labtest.TraefikURL(t)

	prom, err := metrics.NewPrometheus(metrics.Config{Address: labtest.PrometheusURL(t)})
	require.NoError(t, err)
	total := fmt.Sprintf(`sum(traefik_service_requests_total{service=~"%s-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd"})`, ns)
	count := func() float64 {
		v, err := prom.RunQuery(ctx, total)
		if err != nil {
			return 0
		}
		return v
	}
	// The readiness probe above counts too; start from what Prometheus has now.
	var before float64
	until(t, 30*time.Second, func() error {
		if before = count(); before < 1 {
			return fmt.Errorf("no series yet for %s", ns)
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond)
	before = count()

	s := loadtester.New(loadtester.Config{Allow: []string{"hey"}, MaxDuration: time.Minute})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	defer s.Runner().Stop()
	// 2 workers × 5 requests/s for 10 s: 10 requests/s, about 100 requests.
	cmd := fmt.Sprintf("hey -z 10s -q 5 -c 2 -host %s %s/", host, traefik)
	post := func() (int, string) {
		b, _ := json.Marshal(loadtester.Payload{Name: "podinfo", Namespace: ns, Metadata: map[string]string{"type": "cmd", "cmd": cmd}})
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(b))
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	start := time.Now()
	code, body := post()
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "started", body)
	time.Sleep(2 * time.Second)
	code, body = post()
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "already running", body, "the same canary and command run once")
	require.Equal(t, 1, s.Runner().Started())

	until(t, 30*time.Second, func() error {
		if r := s.Runner().Running(); len(r) > 0 {
			return fmt.Errorf("still running: %v", r)
		}
		return nil
	})
	ran := time.Since(start)
	require.GreaterOrEqual(t, ran, 10*time.Second)

	// Prometheus sees the requests hey sent: 10/s for 10 s.
	var got float64
	until(t, 30*time.Second, func() error {
		got = count() - before
		if got < 85 {
			return fmt.Errorf("Prometheus counts %v new requests", got)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // more scrapes: nothing is sent after hey stopped
	got = count() - before
	t.Logf("hey ran %v; Prometheus counted %v requests (%.1f/s)", ran.Round(time.Millisecond), got, got/10)
	require.InDelta(t, 100, got, 15, "10 requests/s for 10 s")
}
