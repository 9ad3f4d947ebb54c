//go:build lab

package activities_test

// Against the lab's real Traefik and Prometheus: the traefik builtin checks judge live podinfo traffic.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/providers/metrics"
)

var (
	// labHTTP talks to loopback only (Traefik), never through a proxy.
	labHTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 32}}
)

func labGet(u, host string) int {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0
	}
	req.Host = host
	resp, err := labHTTP.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// labTraffic sends n requests to host through Traefik with 4 workers; path(i) chooses each request's path.
func labTraffic(base, host string, n int, path func(i int) string) (sent int64) {
	var count atomic.Int64
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if labGet(base+path(i), host) != 0 {
					count.Add(1)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return count.Load()
}

// The traefik builtin checks on live traffic: a healthy podinfo passes both; 10% of canary requests to
// /status/500 fail the success rate; canary requests to /delay/1 fail request-duration (max 500 ms).
func TestTraefikBuiltinChecksOnLiveTraffic(t *testing.T) {
	prom := labtest.PrometheusURL(t)
	base := labtest.TraefikURL(t)
	scenarios := []struct {
		name string
		n    int
		path func(i int) string
	}{
		{"healthy", 400, func(int) string { return "/" }},
		{"errors", 400, func(i int) string {
			if i%10 == 9 {
				return "/status/500"
			}
			return "/"
		}},
		{"slow", 24, func(int) string { return "/delay/1" }},
	}
	ns := map[string]string{}
	for _, s := range scenarios {
		ns[s.name] = labtest.Namespace(t, "metrics-"+s.name)
		labtest.ServeCanary(t, ns[s.name], ns[s.name]+".lab")
	}

	prom8s, err := metrics.NewPrometheus(metrics.Config{Address: prom})
	require.NoError(t, err)
	sent := make([]int64, len(scenarios))
	// Send each scenario's traffic (all scenarios at once) and wait until Prometheus has scraped all of it.
	round := func(n func(total int) int) {
		var wg sync.WaitGroup
		for i, s := range scenarios {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sent[i] += labTraffic(base, ns[s.name]+".lab", n(s.n), s.path)
			}()
		}
		wg.Wait()
		for i, s := range scenarios {
			q := fmt.Sprintf(`sum(traefik_service_requests_total{service=~"%s-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd"})`, ns[s.name])
			waitFor(t, 30*time.Second, func() error {
				v, err := prom8s.RunQuery(context.Background(), q)
				// The readiness probe of labCanary is counted too.
				if err != nil || int64(v) < sent[i] {
					return fmt.Errorf("%s: Prometheus counts %v of %d requests (%v)", s.name, v, sent[i], err)
				}
				return nil
			})
		}
	}
	// A small first round with the same mix makes every series (2xx and 5xx) exist before the measured traffic:
	// rate() cannot count what a series held when it first appeared.
	round(func(total int) int { return max(total/20, 2) })
	time.Sleep(1500 * time.Millisecond)
	round(func(total int) int { return total })

	a := &activities.Analysis{DefaultMetricsServer: prom}
	check := func(name string) activities.MetricChecksResult {
		ref := activities.CanaryRef{Namespace: ns[name], Name: "podinfo", Target: "podinfo", Service: "podinfo", Provider: "traefik"}
		r, err := a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{Canary: ref, Metrics: builtinChecks("1m")}))
		require.NoError(t, err)
		return r
	}

	healthy := check("healthy")
	t.Logf("healthy: %s; %s", healthy.Results[0].Message, healthy.Results[1].Message)
	require.Equal(t, activities.VerdictPass, healthy.Results[0].Verdict, healthy.Results[0].Message)
	require.Equal(t, activities.VerdictPass, healthy.Results[1].Verdict, healthy.Results[1].Message)
	require.InDelta(t, 100, *healthy.Results[0].Value, 0.001)

	errs := check("errors")
	t.Logf("errors: %s; %s", errs.Results[0].Message, errs.Results[1].Message)
	require.Equal(t, activities.VerdictFail, errs.Results[0].Verdict)
	require.InDelta(t, 90, *errs.Results[0].Value, 1)
	require.Contains(t, errs.Results[0].Message, "< 99")

	slow := check("slow")
	t.Logf("slow: %s; %s", slow.Results[0].Message, slow.Results[1].Message)
	require.Equal(t, activities.VerdictPass, slow.Results[0].Verdict)
	require.Equal(t, activities.VerdictFail, slow.Results[1].Verdict)
	require.Greater(t, *slow.Results[1].Value, 1000.0)
	require.Contains(t, slow.Results[1].Message, "> 500")
}
