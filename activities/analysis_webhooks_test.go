package activities_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// hookServer records every payload and answers with the next status (the last one repeats).
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	payloads []activities.WebhookPayload
	ctypes   []string
	methods  []string
	calls    atomic.Int32
}

func newHookServer(t *testing.T, tls bool, body string, statuses ...int) *hookServer {
	h := &hookServer{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(h.calls.Add(1))
		raw, _ := io.ReadAll(r.Body)
		var p activities.WebhookPayload
		_ = json.Unmarshal(raw, &p)
		h.mu.Lock()
		h.payloads = append(h.payloads, p)
		h.ctypes = append(h.ctypes, r.Header.Get("Content-Type"))
		h.methods = append(h.methods, r.Method)
		h.mu.Unlock()
		w.WriteHeader(statuses[min(n, len(statuses))-1])
		_, _ = io.WriteString(w, body)
	})
	if tls {
		h.Server = httptest.NewTLSServer(handler)
	} else {
		h.Server = httptest.NewServer(handler)
	}
	t.Cleanup(h.Close)
	return h
}

// hungServer accepts requests and never answers them, until the test ends.
func hungServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv
}

func hookInput(url string, typ v1beta1.HookType) activities.WebhookInput {
	md := map[string]string{"type": "cmd", "cmd": "hey -z 1m http://podinfo-canary.test/"}
	return activities.WebhookInput{
		Hook:    v1beta1.CanaryWebhook{Type: typ, Name: "load-test", URL: url, Timeout: "2s", Metadata: &md},
		Payload: activities.WebhookPayload{Name: "podinfo", Namespace: "test", Phase: "Progressing", Checksum: "7f9c5d"},
	}
}

// Every hook type posts Flagger's JSON payload with the hook's metadata; 200, 201 and 202 pass, anything else
// fails with the response body as the reason.
func TestWebhookEveryTypeAndStatusCode(t *testing.T) {
	a := &activities.Analysis{WebhookBackoff: 10 * time.Millisecond}
	for _, typ := range v1beta1.HookTypes {
		for _, tc := range []struct {
			status int
			passed bool
		}{{200, true}, {201, true}, {202, true}, {204, false}, {400, false}, {403, false}, {500, false}} {
			srv := newHookServer(t, false, "  answer from hook \n", tc.status)
			r, err := a.CallWebhook(context.Background(), hookInput(srv.URL, typ))
			require.NoError(t, err)
			require.Equal(t, tc.passed, r.Passed, "%s %d", typ, tc.status)
			require.Equal(t, tc.status, r.StatusCode)
			require.Equal(t, typ, r.Type)
			require.Equal(t, "load-test", r.Name)
			require.Equal(t, 1, r.Attempts)
			if tc.status != 204 {
				require.Equal(t, "answer from hook", r.Reason)
			}
			require.Equal(t, []string{http.MethodPost}, srv.methods)
			require.Equal(t, "application/json", srv.ctypes[0])
			require.Equal(t, activities.WebhookPayload{Name: "podinfo", Namespace: "test", Phase: "Progressing", Checksum: "7f9c5d",
				Metadata: map[string]string{"type": "cmd", "cmd": "hey -z 1m http://podinfo-canary.test/"}}, srv.payloads[0])
		}
	}
}

// The raw JSON has exactly Flagger's field names.
func TestWebhookPayloadFieldNames(t *testing.T) {
	var raw map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&raw)
		w.WriteHeader(202)
	}))
	defer srv.Close()
	_, err := (&activities.Analysis{}).CallWebhook(context.Background(), hookInput(srv.URL, v1beta1.PreRolloutHook))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "7f9c5d",
		"metadata": map[string]any{"type": "cmd", "cmd": "hey -z 1m http://podinfo-canary.test/"}}, raw)
}

func TestWebhookRetriesUntilYesAndReportsAttempts(t *testing.T) {
	a := &activities.Analysis{WebhookBackoff: 10 * time.Millisecond}
	srv := newHookServer(t, false, "not yet", 500, 503, 200)
	in := hookInput(srv.URL, v1beta1.ConfirmRolloutHook)
	in.Hook.Retries = 3
	r, err := a.CallWebhook(context.Background(), in)
	require.NoError(t, err)
	require.True(t, r.Passed)
	require.Equal(t, 3, r.Attempts)
	require.EqualValues(t, 3, srv.calls.Load())

	srv = newHookServer(t, false, "still no", 500)
	in = hookInput(srv.URL, v1beta1.ConfirmRolloutHook)
	in.Hook.Retries = 2
	r, err = a.CallWebhook(context.Background(), in)
	require.NoError(t, err)
	require.False(t, r.Passed)
	require.Equal(t, 3, r.Attempts, "retries are extra attempts")
	require.Equal(t, "still no", r.Reason)
}

func TestWebhookTimeoutFailsTheHook(t *testing.T) {
	srv := hungServer(t)
	in := hookInput(srv.URL, v1beta1.RolloutHook)
	in.Hook.Timeout = "300ms"
	start := time.Now()
	r, err := (&activities.Analysis{}).CallWebhook(context.Background(), in)
	require.NoError(t, err)
	require.False(t, r.Passed)
	require.Contains(t, r.Reason, "no answer")
	require.Contains(t, r.Reason, "300ms")
	require.Less(t, time.Since(start), 5*time.Second)
}

// disableTLS accepts a self-signed certificate; without it the call fails on verification.
func TestWebhookDisableTLS(t *testing.T) {
	srv := newHookServer(t, true, "ok", 200)
	in := hookInput(srv.URL, v1beta1.RolloutHook)
	r, err := (&activities.Analysis{}).CallWebhook(context.Background(), in)
	require.NoError(t, err)
	require.False(t, r.Passed)
	require.Contains(t, r.Reason, "certificate")

	in.Hook.DisableTLS = true
	r, err = (&activities.Analysis{}).CallWebhook(context.Background(), in)
	require.NoError(t, err)
	require.True(t, r.Passed)
}

// The reason is capped so a chatty hook cannot bloat history; an unreachable hook's reason carries no token
// from its URL; a URL that is no URL is a non-retryable error.
func TestWebhookReasonIsCappedAndRedacted(t *testing.T) {
	srv := newHookServer(t, false, strings.Repeat("x", 5000), 500)
	r, err := (&activities.Analysis{}).CallWebhook(context.Background(), hookInput(srv.URL, v1beta1.RolloutHook))
	require.NoError(t, err)
	require.LessOrEqual(t, len(r.Reason), 1100)

	dead := httptest.NewServer(http.NotFoundHandler())
	u := dead.URL
	dead.Close()
	r, err = (&activities.Analysis{}).CallWebhook(context.Background(), hookInput(u+"/hooks/TOKEN-abc123?key=SECRETKEY", v1beta1.RolloutHook))
	require.NoError(t, err)
	require.False(t, r.Passed)
	require.NotContains(t, r.Reason, "TOKEN-abc123")
	require.NotContains(t, r.Reason, "SECRETKEY")

	_, err = (&activities.Analysis{}).CallWebhook(context.Background(), hookInput("podinfo-canary:9898/", v1beta1.RolloutHook))
	requireAppErr(t, err, activities.ErrTypeInvalidWebhook)
}

// Event webhooks get Flagger's event fields; the hook's own metadata does not override them.
func TestEventWebhookPayload(t *testing.T) {
	ev := activities.Event{Type: activities.EventRolledBack, Severity: v1beta1.SeverityError,
		Message: "Canary analysis failed: request-success-rate 90.00 < 99", Phase: "Failed", Revision: "abc",
		Canary: activities.CanaryRef{Name: "podinfo", Namespace: "test"}, Timestamp: time.UnixMilli(1772600767123)}
	srv := newHookServer(t, false, "", 200)
	md := map[string]string{"eventMessage": "from the hook", "team": "payments"}
	r, err := (&activities.Analysis{}).CallWebhook(context.Background(), activities.WebhookInput{
		Hook:    v1beta1.CanaryWebhook{Type: v1beta1.EventHook, Name: "events", URL: srv.URL, Metadata: &md},
		Payload: activities.EventWebhookPayload(ev),
	})
	require.NoError(t, err)
	require.True(t, r.Passed)
	require.Equal(t, activities.WebhookPayload{Name: "podinfo", Namespace: "test", Phase: "Failed", Checksum: "abc",
		Metadata: map[string]string{
			"eventMessage": "Canary analysis failed: request-success-rate 90.00 < 99", "eventType": "Warning",
			"timestamp": "1772600767123", "event": "rolled-back", "team": "payments",
		}}, srv.payloads[0])

	info := activities.EventWebhookPayload(activities.Event{Type: activities.EventAdvanced, Severity: v1beta1.SeverityInfo, Weight: 20,
		Canary: activities.CanaryRef{Name: "podinfo", Namespace: "test"}})
	require.Equal(t, "Normal", info.Metadata["eventType"])
	require.Equal(t, "Advance podinfo.test canary weight 20", info.Metadata["eventMessage"])
}

// A webhook target that is down fails the hook at once with the reason, and a target that hangs holds only its
// own call: another rollout's webhook answered meanwhile is not delayed by it.
func TestWebhookTargetDownOrHangingFailsOnlyItsOwnHook(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	downURL := "http://" + l.Addr().String() + "/"
	require.NoError(t, l.Close()) // nothing listens there any more

	r, err := (&activities.Analysis{}).CallWebhook(context.Background(), hookInput(downURL, v1beta1.RolloutHook))
	require.NoError(t, err, "a hook that fails is a result, not an activity error")
	require.False(t, r.Passed)
	require.Contains(t, r.Reason, "connection refused")

	hung := hungServer(t)
	healthy := newHookServer(t, false, "ok", 200)
	slow := hookInput(hung.URL, v1beta1.ConfirmPromotionHook)
	slow.Hook.Timeout = "20s"
	a := &activities.Analysis{}
	hungDone := make(chan struct{})
	go func() {
		defer close(hungDone)
		_, _ = a.CallWebhook(context.Background(), slow)
	}()
	other, err := a.CallWebhook(context.Background(), hookInput(healthy.URL, v1beta1.RolloutHook))
	require.NoError(t, err)
	require.True(t, other.Passed, "another rollout's hook answers while one target hangs")
	select {
	case <-hungDone:
		t.Fatal("the hanging call ended before its target answered or its timeout passed")
	default:
	}
}
