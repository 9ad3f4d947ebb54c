package loadtester

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// hostileRequest is one request an attacker able to reach the load tester could send.
type hostileRequest struct {
	name        string
	allow       []string // the load tester's allow-list; nil is the default (bash included)
	method      string
	contentType string
	body        func(marker string) []byte
	wantCode    int
	wantBody    string
}

func payload(md map[string]string) []byte {
	b, _ := json.Marshal(Payload{Name: "podinfo", Namespace: "test", Phase: "Progressing", Metadata: md})
	return b
}

func cmdTask(cmd string) func(string) []byte {
	return func(marker string) []byte {
		return payload(map[string]string{"type": "cmd", "cmd": strings.ReplaceAll(cmd, "MARKER", marker)})
	}
}

// Every hostile request is answered with a 4xx that says why, and runs nothing: the marker file each one tries to
// create never appears, and the runner started no command.
func TestHostileRequestsAreRefusedWith4xxAndRunNothing(t *testing.T) {
	// A program named like an allowed command outside PATH: the allow-list must not accept it by its last element.
	fakeDir := t.TempDir()
	fakeMarker := filepath.Join(t.TempDir(), "fake-hey-ran")
	require.NoError(t, os.WriteFile(filepath.Join(fakeDir, "hey"), []byte("#!/bin/sh\ntouch "+fakeMarker+"\n"), 0o755))
	noBash := []string{"hey", "curl"}

	cases := []hostileRequest{
		{name: "semicolon", body: cmdTask("curl -s http://127.0.0.1:1/; touch MARKER"), wantCode: 400, wantBody: "use a bash task"},
		{name: "and-and", body: cmdTask("curl -s http://127.0.0.1:1/ && touch MARKER"), wantCode: 400, wantBody: "use a bash task"},
		{name: "command substitution", body: cmdTask("curl -s http://127.0.0.1:1/$(touch MARKER)"), wantCode: 400, wantBody: "use a bash task"},
		{name: "command substitution in double quotes", body: cmdTask(`curl -s "$(touch MARKER)"`), wantCode: 400, wantBody: "use a bash task"},
		{name: "backticks", body: cmdTask("curl -s `touch MARKER`"), wantCode: 400, wantBody: "use a bash task"},
		{name: "newline", body: cmdTask("curl -s http://127.0.0.1:1/\ntouch MARKER"), wantCode: 400, wantBody: "use a bash task"},
		{name: "carriage return", body: cmdTask("curl -s http://127.0.0.1:1/\rtouch MARKER"), wantCode: 400, wantBody: "use a bash task"},
		{name: "pipe", body: cmdTask("curl -s http://127.0.0.1:1/ | sh -c 'touch MARKER'"), wantCode: 400, wantBody: "use a bash task"},
		{name: "redirection", body: cmdTask("curl -s http://127.0.0.1:1/ > MARKER"), wantCode: 400, wantBody: "use a bash task"},
		{name: "command not allowed", body: cmdTask("touch MARKER"), wantCode: 403, wantBody: `"touch" is not allowed`},
		{name: "allowed name outside PATH", body: cmdTask(filepath.Join(fakeDir, "hey") + " MARKER"), wantCode: 403, wantBody: "name it without a path"},
		{name: "path traversal to an allowed name", body: cmdTask("../../../../../.." + filepath.Join(fakeDir, "hey") + " MARKER"),
			wantCode: 403, wantBody: "name it without a path"},
		{name: "path traversal to a shell", body: cmdTask("/usr/bin/../../bin/sh -c 'touch MARKER'"), wantCode: 403, wantBody: `"/usr/bin/../../bin/sh" is not allowed`},
		{name: "bash task when bash is not allowed", allow: noBash, body: func(m string) []byte {
			return payload(map[string]string{"type": "bash", "cmd": "touch " + m})
		}, wantCode: 403, wantBody: "bash tasks are not allowed"},
		{name: "bash smuggled through a cmd task", allow: noBash, body: cmdTask("bash -c 'touch MARKER'"), wantCode: 403, wantBody: `"bash" is not allowed`},
		{name: "task type spelled otherwise", allow: noBash, body: func(m string) []byte {
			return payload(map[string]string{"type": "Bash", "cmd": "touch " + m})
		}, wantCode: 400, wantBody: "unknown task type Bash"},
		{name: "huge body", body: func(m string) []byte {
			return payload(map[string]string{"type": "bash", "cmd": "touch " + m, "pad": strings.Repeat("x", 5<<20)})
		}, wantCode: 413, wantBody: "payload over 1048576 bytes"},
		{name: "form post (what a browser sends cross-site)", contentType: "application/x-www-form-urlencoded", body: func(m string) []byte {
			return payload(map[string]string{"type": "bash", "cmd": "touch " + m})
		}, wantCode: 415, wantBody: "send the webhook payload as application/json"},
		{name: "text/plain post", contentType: "text/plain", body: func(m string) []byte {
			return payload(map[string]string{"type": "bash", "cmd": "touch " + m})
		}, wantCode: 415, wantBody: "application/json"},
		{name: "GET", method: http.MethodGet, body: func(m string) []byte {
			return payload(map[string]string{"type": "bash", "cmd": "touch " + m})
		}, wantCode: 405, wantBody: "POST a webhook payload"},
		{name: "not JSON", body: func(m string) []byte { return []byte("cmd=touch " + m) }, wantCode: 400, wantBody: "decoding the payload"},
		{name: "binary garbage", body: func(string) []byte { return []byte{0xff, 0xfe, 0x00, 0x01, '{', 0x80} }, wantCode: 400, wantBody: "decoding the payload"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, url := newTestServer(t, Config{Allow: tc.allow, MaxDuration: 5 * time.Second})
			marker := filepath.Join(t.TempDir(), "ran")
			method, ct := tc.method, tc.contentType
			if method == "" {
				method = http.MethodPost
			}
			if ct == "" {
				ct = "application/json"
			}
			req, err := http.NewRequest(method, url+"/", bytes.NewReader(tc.body(marker)))
			require.NoError(t, err)
			req.Header.Set("Content-Type", ct)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			require.Equal(t, tc.wantCode, resp.StatusCode, string(body))
			require.Contains(t, string(body), tc.wantBody)
			require.Zero(t, s.Runner().Started(), "no command was started")
			s.Runner().Stop() // waits for anything that might have run
			require.NoFileExists(t, marker)
			require.NoFileExists(t, fakeMarker)
		})
	}
}

// With bash allowed, a bash task runs exactly its cmd: the other payload fields, which an attacker also controls,
// never reach a shell.
func TestBashTaskRunsOnlyItsCmdNeverTheOtherFields(t *testing.T) {
	_, url := newTestServer(t, Config{})
	marker := filepath.Join(t.TempDir(), "ran")
	inject := "$(touch " + marker + ")`touch " + marker + "`;touch " + marker
	b, _ := json.Marshal(Payload{Name: inject, Namespace: inject, Phase: inject, Checksum: inject,
		Metadata: map[string]string{"type": "bash", "cmd": "echo ok", "returnCmdOutput": "true", "logCmdOutput": inject}})
	resp, err := http.Post(url+"/", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "ok\n", string(body))
	require.NoFileExists(t, marker)
}
