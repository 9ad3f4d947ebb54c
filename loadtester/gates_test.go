package loadtester

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// gateCall is one request to a gate endpoint and what it must answer.
type gateCall struct {
	path     string
	body     string
	method   string            // POST unless set
	ctype    string            // curl -d's form type unless set: Flagger's documented command sends that
	header   map[string]string // extra headers
	wantCode int
	wantBody string // the body starts with it
	wantHas  string // and contains it
}

const podinfoTest = `{"name":"podinfo","namespace":"test"}`

func call(t *testing.T, url string, c gateCall) (int, string) {
	t.Helper()
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, url+c.path, strings.NewReader(c.body))
	require.NoError(t, err)
	ctype := c.ctype
	if ctype == "" {
		ctype = "application/x-www-form-urlencoded"
	}
	req.Header.Set("Content-Type", ctype)
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// Flagger's manual gating, call by call: gates are keyed by the canary's name and namespace, a check answers 200
// when open and 403 when closed, open and close answer 202, an open gate stays open after checks (as Flagger's)
// until closed, and the answers say who opened or closed the gate, when and why, when the request says.
func TestGatesBehaveAsFlaggersLoadTester(t *testing.T) {
	const at = `at 20` // the RFC 3339 time of the open or close
	for _, tc := range []struct {
		name  string
		calls []gateCall
	}{
		{"unknown canary: both gates closed", []gateCall{
			{path: "/gate/check", body: podinfoTest, wantCode: 403,
				wantBody: `Forbidden: gate of test/podinfo is closed; POST {"name":"podinfo","namespace":"test"} to /gate/open`},
			{path: "/rollback/check", body: podinfoTest, wantCode: 403, wantBody: "Forbidden: no rollback of test/podinfo asked for"},
		}},
		{"Flagger's curl -d body opens the gate; checks keep it open; close closes it", []gateCall{
			{path: "/gate/open", body: podinfoTest, wantCode: 202, wantBody: "test/podinfo: gate opened " + at},
			{path: "/gate/check", body: podinfoTest, wantCode: 200, wantBody: "Approved: gate opened " + at},
			{path: "/gate/check", body: podinfoTest, ctype: "application/json", wantCode: 200, wantBody: "Approved"},
			{path: "/rollback/check", body: podinfoTest, wantCode: 403, wantBody: "Forbidden: no rollback"},
			{path: "/gate/close", body: podinfoTest, wantCode: 202, wantBody: "test/podinfo: gate closed " + at},
			{path: "/gate/check", body: podinfoTest, wantCode: 403, wantBody: "Forbidden: gate closed " + at},
		}},
		{"by and reason are in the check's answer", []gateCall{
			{path: "/gate/open", body: `{"name":"podinfo","namespace":"test","by":"alice","reason":"change 42 approved"}`, wantCode: 202,
				wantBody: "test/podinfo: gate opened by alice " + at, wantHas: ": change 42 approved"},
			{path: "/gate/check", body: podinfoTest, wantCode: 200, wantBody: "Approved: gate opened by alice " + at, wantHas: "Z: change 42 approved"},
			{path: "/gate/close", body: `{"name":"podinfo","namespace":"test","by":"carol","reason":"incident 7"}`, wantCode: 202},
			{path: "/gate/check", body: podinfoTest, wantCode: 403, wantBody: "Forbidden: gate closed by carol " + at, wantHas: ": incident 7"},
		}},
		{"a webhook's full payload is a check of its canary", []gateCall{
			{path: "/gate/open", body: podinfoTest, wantCode: 202},
			{path: "/gate/check", ctype: "application/json", wantCode: 200, wantBody: "Approved",
				body: `{"name":"podinfo","namespace":"test","phase":"Waiting","checksum":"7f9c5d","metadata":{"cmd":"x"}}`},
		}},
		{"gates are per canary: name and namespace", []gateCall{
			{path: "/gate/open", body: podinfoTest, wantCode: 202},
			{path: "/gate/check", body: `{"name":"podinfo","namespace":"prod"}`, wantCode: 403},
			{path: "/gate/check", body: `{"name":"backend","namespace":"test"}`, wantCode: 403},
			{path: "/gate/check", body: podinfoTest, wantCode: 200},
		}},
		{"rollback open, check, close: apart from the gate", []gateCall{
			{path: "/rollback/open", body: `{"name":"podinfo","namespace":"test","by":"bob"}`, wantCode: 202, wantBody: "test/podinfo: rollback opened by bob " + at},
			{path: "/rollback/check", body: podinfoTest, wantCode: 200, wantBody: "Approved: rollback opened by bob " + at},
			{path: "/rollback/check", body: podinfoTest, wantCode: 200, wantBody: "Approved: rollback opened by bob"},
			{path: "/gate/check", body: podinfoTest, wantCode: 403},
			{path: "/rollback/close", body: podinfoTest, wantCode: 202},
			{path: "/rollback/check", body: podinfoTest, wantCode: 403, wantBody: "Forbidden: rollback closed " + at},
		}},
		{"bad requests say what to send, and change nothing", []gateCall{
			{path: "/gate/open", body: `name=podinfo&namespace=test`, wantCode: 400,
				wantBody: "decoding the gate request: ", wantHas: `send JSON such as {"name":"podinfo","namespace":"test"}`},
			{path: "/gate/check", body: `{"name":"podinfo"`, wantCode: 400, wantBody: "decoding the gate request: unexpected EOF"},
			{path: "/rollback/check", body: ``, wantCode: 400, wantBody: "decoding the gate request: EOF"},
			{path: "/gate/open", body: `{"name":"podinfo"}`, wantCode: 400, wantBody: `name and namespace are required (got name "podinfo", namespace "")`},
			{path: "/gate/open", body: `{"name":"podinfo","namespace":"test","by":"alice\nbob"}`, wantCode: 400, wantBody: "by: one line of at most 128 bytes"},
			{path: "/gate/open", body: `{"name":"podinfo","namespace":"test","reason":"` + strings.Repeat("x", 513) + `"}`, wantCode: 400,
				wantBody: "reason: one line of at most 512 bytes"},
			{path: "/gate/open", method: http.MethodGet, wantCode: 405, wantBody: `POST {"name":"podinfo","namespace":"test"} (the Canary's) to /gate/open`},
			{path: "/gate/open", body: podinfoTest, header: map[string]string{"Origin": "https://evil.example"}, wantCode: 403,
				wantBody: "Forbidden: a browser page (Origin https://evil.example) may not open or close gates"},
			{path: "/gate/open", body: `{"name":"podinfo","namespace":"test","reason":"` + strings.Repeat("x", maxBody) + `"}`, wantCode: 413,
				wantBody: "gate request over 1048576 bytes"},
			{path: "/gate/check", body: podinfoTest, wantCode: 403, wantBody: "Forbidden: gate of test/podinfo is closed"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, url := newTestServer(t, Config{})
			for i, c := range tc.calls {
				code, body := call(t, url, c)
				what := fmt.Sprintf("call %d: %s %s", i, c.path, c.body[:min(len(c.body), 80)])
				require.Equal(t, c.wantCode, code, "%s: %s", what, body)
				require.True(t, strings.HasPrefix(body, c.wantBody), "%s: body %q, want it to start with %q", what, body, c.wantBody)
				require.Contains(t, body, c.wantHas, what)
			}
			require.LessOrEqual(t, s.GatesRemembered(), 2, "checks store nothing")
		})
	}
}

// The store is bounded: checks of any number of canaries remember nothing, a new gate past the bound replaces the
// oldest closed one, and with the bound reached by open gates an open is refused (503, saying what to do) while
// the open gates stay open.
func TestGatesAreBounded(t *testing.T) {
	s, url := newTestServer(t, Config{MaxGates: 3})
	body := func(name string) string { return fmt.Sprintf(`{"name":%q,"namespace":"test"}`, name) }
	for i := range 50 {
		code, _ := call(t, url, gateCall{path: "/gate/check", body: body(fmt.Sprint("c", i))})
		require.Equal(t, 403, code)
	}
	require.Zero(t, s.GatesRemembered(), "checks of unknown canaries store nothing")

	for _, name := range []string{"a", "b", "c"} {
		code, _ := call(t, url, gateCall{path: "/gate/open", body: body(name)})
		require.Equal(t, 202, code)
	}
	code, msg := call(t, url, gateCall{path: "/gate/open", body: body("d")})
	require.Equal(t, 503, code)
	require.Equal(t, "gate of test/d not opened: 3 gates are open; close those no longer needed (/gate/close, /rollback/close)", msg)
	code, _ = call(t, url, gateCall{path: "/gate/open", body: body("a")})
	require.Equal(t, 202, code, "opening an open gate again needs no room")

	code, _ = call(t, url, gateCall{path: "/gate/close", body: body("b")})
	require.Equal(t, 202, code)
	code, _ = call(t, url, gateCall{path: "/gate/open", body: body("d")})
	require.Equal(t, 202, code, "d takes the place of the closed b")
	require.Equal(t, 3, s.GatesRemembered())
	for name, want := range map[string]int{"a": 200, "b": 403, "c": 200, "d": 200} {
		code, _ := call(t, url, gateCall{path: "/gate/check", body: body(name)})
		require.Equal(t, want, code, name)
	}
	// Full of open gates, a close of an unknown gate is accepted: it is closed already.
	code, _ = call(t, url, gateCall{path: "/gate/close", body: body("e")})
	require.Equal(t, 202, code)
	require.Equal(t, 3, s.GatesRemembered())
}

// Concurrent opens, closes and checks (run with -race) leave each gate as its last request left it.
func TestGatesUnderConcurrentRequests(t *testing.T) {
	s, url := newTestServer(t, Config{})
	const workers, rounds = 8, 60
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				// Every worker has a canary of its own and shares "shared" with the others.
				for _, name := range []string{fmt.Sprint("own-", w), "shared"} {
					b := fmt.Sprintf(`{"name":%q,"namespace":"race","by":"w%d"}`, name, w)
					op := []string{"/gate/open", "/gate/close", "/rollback/open", "/gate/check", "/rollback/check"}[(i+w)%5]
					code, _ := call(t, url, gateCall{path: op, body: b})
					if code != 200 && code != 202 && code != 403 {
						t.Errorf("%s %s: %d", op, b, code)
					}
				}
			}
			// The last word on its own canary: gate open, rollback closed.
			own := fmt.Sprintf(`{"name":"own-%d","namespace":"race"}`, w)
			call(t, url, gateCall{path: "/gate/open", body: own})
			call(t, url, gateCall{path: "/rollback/close", body: own})
		}()
	}
	wg.Wait()
	for w := range workers {
		own := fmt.Sprintf(`{"name":"own-%d","namespace":"race"}`, w)
		code, _ := call(t, url, gateCall{path: "/gate/check", body: own})
		require.Equal(t, 200, code, own)
		code, _ = call(t, url, gateCall{path: "/rollback/check", body: own})
		require.Equal(t, 403, code, own)
	}
	require.Equal(t, 2*(workers+1), s.GatesRemembered(), "a gate and a rollback per canary, no more")
}
