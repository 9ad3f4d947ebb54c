package activities_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// connCounter is an HTTP server that counts the TCP connections its clients opened.
func connCounter(t *testing.T, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &opened
}

// Steps after steps, of one canary or of many, reuse the worker's connections to Prometheus and to the webhooks:
// a connection per check stayed open, idle, for 90 s with its goroutines and buffers, thousands of them at 1,000
// canaries.
func TestChecksReuseTheirConnections(t *testing.T) {
	prom, promConns := connCounter(t, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"99.5"]}]}}`)
	hook, hookConns := connCounter(t, `{}`)
	a := &activities.Analysis{DefaultMetricsServer: prom.URL}
	in := defaultedChecks(activities.ChecksInput{
		Canary:  canaryRef("traefik", "good"),
		Payload: activities.WebhookPayload{Name: "podinfo", Namespace: "good", Phase: "Progressing", Checksum: "7f9c5d"},
		Hooks:   []v1beta1.CanaryWebhook{{Type: v1beta1.RolloutHook, Name: "load-test", URL: hook.URL, Timeout: "5s"}},
		Metrics: []v1beta1.CanaryMetric{{Name: "success-rate", Query: "vector(99.5)",
			ThresholdRange: &v1beta1.CanaryThresholdRange{Min: f64(99)}}},
	})
	for range 20 {
		res, err := a.RunChecks(context.Background(), in)
		require.NoError(t, err)
		require.Empty(t, res.MetricsError)
		require.Len(t, res.Checks, 1)
		require.Equal(t, activities.VerdictPass, res.Checks[0].Verdict)
		require.True(t, res.Webhooks[0].Passed, res.Webhooks[0].Reason)
	}
	require.LessOrEqual(t, promConns.Load(), int64(2), "connections opened to Prometheus for 20 steps")
	require.LessOrEqual(t, hookConns.Load(), int64(2), "connections opened to the webhook for 20 steps")
}
