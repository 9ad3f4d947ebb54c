package loadtester

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func post(t *testing.T, url string, md map[string]string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(Payload{Name: "podinfo", Namespace: "test", Phase: "Progressing", Metadata: md})
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newTestServer(t *testing.T, cfg Config) (*Server, string) {
	s := New(cfg)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(func() { srv.Close(); s.Runner().Stop() })
	return s, srv.URL
}

// A cmd task runs hey in the background (202), is not started a second time while it runs, generates the rate
// it asks for, and ends by itself after its -z.
func TestCmdTaskRunsOnceInTheBackgroundAndStops(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer target.Close()
	s, url := newTestServer(t, Config{})
	cmd := "hey -z 3s -q 10 -c 1 " + target.URL + "/"

	start := time.Now()
	code, body := post(t, url, map[string]string{"type": "cmd", "cmd": cmd, "logCmdOutput": "true"})
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "started", body)
	require.Less(t, time.Since(start), 2*time.Second, "cmd tasks do not block the webhook")
	code, body = post(t, url, map[string]string{"cmd": cmd}) // type defaults to cmd
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, "already running", body)
	require.Equal(t, 1, s.Runner().Started())
	require.Len(t, s.Runner().Running(), 1)

	eventually(t, 15*time.Second, "hey finishes after -z 3s", func() bool { return len(s.Runner().Running()) == 0 })
	require.GreaterOrEqual(t, time.Since(start), 3*time.Second)
	// 10 requests/s for 3s from one worker: about 30, and certainly not two runs' worth.
	require.InDelta(t, 30, hits.Load(), 8)

	// Once finished, the same task may run again.
	code, _ = post(t, url, map[string]string{"cmd": "hey -n 1 -c 1 " + target.URL + "/"})
	require.Equal(t, http.StatusAccepted, code)
	eventually(t, 10*time.Second, "second run finishes", func() bool { return len(s.Runner().Running()) == 0 })
	require.Equal(t, 2, s.Runner().Started())
}

func TestCmdTaskIsKilledAfterMaxDuration(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, _ *http.Request) {}))
	defer target.Close()
	s, url := newTestServer(t, Config{MaxDuration: time.Second})
	code, _ := post(t, url, map[string]string{"cmd": "hey -z 60s -q 2 -c 1 " + target.URL + "/"})
	require.Equal(t, http.StatusAccepted, code)
	require.Len(t, s.Runner().Running(), 1)
	eventually(t, 10*time.Second, "killed after 1s", func() bool { return len(s.Runner().Running()) == 0 })
}

// A bash task blocks; exit 0 is 200 (with the output when returnCmdOutput), anything else 500 with the output.
func TestBashTaskExitCodeIsTheStatus(t *testing.T) {
	_, url := newTestServer(t, Config{})
	code, body := post(t, url, map[string]string{"type": "bash", "cmd": "echo checking; exit 3"})
	require.Equal(t, http.StatusInternalServerError, code)
	require.Contains(t, body, "exit status 3")
	require.Contains(t, body, "checking")

	code, body = post(t, url, map[string]string{"type": "bash", "cmd": "echo ok | tr a-z A-Z", "returnCmdOutput": "true"})
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "OK\n", body)

	code, body = post(t, url, map[string]string{"type": "bash", "cmd": "echo quiet"})
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, body)
}

// Commands outside the allow-list are refused, and cmd tasks cannot smuggle one in through shell syntax.
func TestAllowListIsEnforced(t *testing.T) {
	_, url := newTestServer(t, Config{Allow: []string{"hey", "curl"}})
	code, body := post(t, url, map[string]string{"cmd": "rm -rf /tmp/canaryflow-should-not-exist"})
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, `"rm" is not allowed`)

	code, body = post(t, url, map[string]string{"cmd": "/usr/bin/python3 -c 'print(1)'"})
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "python3")

	code, body = post(t, url, map[string]string{"cmd": "curl -s http://127.0.0.1:1/; rm -rf /"})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "use a bash task")

	code, body = post(t, url, map[string]string{"type": "bash", "cmd": "echo hi"})
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "bash tasks are not allowed")

	code, body = post(t, url, map[string]string{"type": "helm", "cmd": "helm test x"})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "unknown task type helm")

	code, body = post(t, url, map[string]string{"type": "cmd"})
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "cmd not found in metadata", body)
	code, body = post(t, url, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, "metadata not found in payload", body)
}

func TestHealthAndFlaggerGates(t *testing.T) {
	_, url := newTestServer(t, Config{})
	for path, want := range map[string]int{"/healthz": 200, "/gate/approve": 200, "/gate/halt": 403, "/gate/check": 403, "/rollback/check": 403} {
		resp, err := http.Post(url+path, "application/json", bytes.NewReader([]byte(`{"name":"podinfo","namespace":"test"}`)))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, want, resp.StatusCode, path)
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		`hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/`:   {"hey", "-z", "1m", "-q", "10", "-c", "2", "http://podinfo-canary.test:9898/"},
		`curl -sd 'test' http://podinfo-canary/token`:             {"curl", "-sd", "test", "http://podinfo-canary/token"},
		`hey -H "Cookie: canary=always" -H 'X-Canary: insider' u`: {"hey", "-H", "Cookie: canary=always", "-H", "X-Canary: insider", "u"},
		`grpcurl -plaintext -d "{\"x\":1}" host:9999 a.B/C`:       {"grpcurl", "-plaintext", "-d", `{"x":1}`, "host:9999", "a.B/C"},
		`curl a\ b`: {"curl", "a b"},
	} {
		got, err := SplitCommand(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{`hey u | tee x`, `curl $URL`, "curl `id`", `hey u > /tmp/x`, `curl "$(id)"`, `hey 'unterminated`, `  `} {
		_, err := SplitCommand(in)
		require.Error(t, err, in)
	}
}
