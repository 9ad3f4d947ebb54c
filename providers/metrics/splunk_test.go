package metrics

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// sse frames SignalFlow messages (event type, JSON) as Server-Sent Events; a message spanning several lines
// (Splunk pretty-prints its JSON) becomes several data: lines.
func sse(events ...string) string {
	out := ""
	for i := 0; i+1 < len(events); i += 2 {
		out += "event: " + events[i] + "\ndata: " + strings.ReplaceAll(events[i+1], "\n", "\ndata: ") + "\n\n"
	}
	return out
}

// Splunk Observability: POST /v2/signalflow/execute on the realm's stream host with the program as a text/plain
// body, start/stop in epoch milliseconds (ten intervals, as in Flagger) and immediate=true, the token in
// X-SF-Token (dev.splunk.com, SignalFlow API, REST + SSE); the answer is a Server-Sent Events stream whose data
// messages carry [{tsId, value}].
func TestSplunkSignalFlowFollowsTheDocumentedAPI(t *testing.T) {
	const program = `A = data('http.server.duration', filter=filter('service.name', 'podinfo-canary')).percentile(99).publish('A')`
	srv, problem := server(t, func(r *http.Request, body string) error {
		v := r.URL.Query()
		return firstErr(
			expect("method", r.Method, http.MethodPost),
			expect("path", r.URL.Path, "/v2/signalflow/execute"),
			expect("X-SF-Token", r.Header.Get("X-SF-Token"), "sf-SECRET"),
			expect("Content-Type", r.Header.Get("Content-Type"), "text/plain"),
			expect("body", body, program),
			expect("start", v.Get("start"), fmt.Sprint(fixedNow.UnixMilli()-10*60_000)),
			expect("stop", v.Get("stop"), fmt.Sprint(fixedNow.UnixMilli())),
			expect("immediate", v.Get("immediate"), "true"),
		)
	}, 200, sse(
		"control-message", `{"event":"STREAM_START","timestampMs":1772600767100}`,
		"control-message", `{"event":"JOB_START","handle":"DxAbCdEfAAA","timestampMs":1772600767200}`,
		"metadata", `{"tsId":"AAAAAKqoUzQ","properties":{"sf_metric":"http.server.duration","sf_streamLabel":"A"}}`,
		"data", `{"data":[{"tsId":"AAAAAKqoUzQ","value":0.25}],"logicalTimestampMs":1772600700000}`,
		"data", `{"data":[{"tsId":"AAAAAKqoUzQ","value":null}],"logicalTimestampMs":1772600760000}`,
		"data", "{\n\"data\" : [ {\n\"tsId\" : \"AAAAAKqoUzQ\",\n\"value\" : 0.375\n} ],\n\"logicalTimestampMs\" : 1772600765000\n}",
		"control-message", `{"event":"END_OF_CHANNEL","timestampMs":1772600767300}`,
	)+": keep-alive after the end is ignored\n\n")
	p, err := New(Config{Type: "splunk", Address: srv.URL, Interval: time.Minute, Now: fixedClock, HasSecret: true,
		Credentials: map[string][]byte{SplunkTokenKey: []byte("sf-SECRET")}})
	require.NoError(t, err)
	v, err := p.RunQuery(context.Background(), program)
	require.NoError(t, err)
	require.NoError(t, *problem)
	require.Equal(t, 0.375, v, "the newest non-null value")
}

func TestSplunkAnswersMapToValueNoDataOrError(t *testing.T) {
	newProvider := func(u string) (Provider, error) {
		return NewSplunk(Config{Address: u, HasSecret: true, Credentials: map[string][]byte{SplunkTokenKey: []byte("sf-SECRET")}})
	}
	end := []string{"control-message", `{"event":"END_OF_CHANNEL","timestampMs":1}`}
	requireAnswers(t, newProvider, "data('x').publish()", "sf-SECRET", []answerCase{
		{name: "a multi-line data message", status: 200, want: 7, body: "event: data\ndata: {\ndata:  \"data\": [{\"tsId\": \"A\", \"value\": 7}]\ndata: }\n\n" + sse(end...)},
		{name: "a stream that ends without END_OF_CHANNEL still counts", status: 200, want: 2, body: sse("data", `{"data":[{"tsId":"A","value":2}]}`)},
		{name: "no data messages is no data", status: 200, wantErr: ErrNoValues, body: sse(append([]string{"control-message", `{"event":"JOB_START","handle":"h"}`}, end...)...)},
		{name: "only null values is no data", status: 200, wantErr: ErrNoValues, body: sse(append([]string{"data", `{"data":[{"tsId":"A","value":null}]}`}, end...)...)},
		{name: "two time series are refused, as in Flagger", status: 200, wantErr: ErrQueryRejected, errText: "publishes 2 time series (A, B)",
			body: sse(append([]string{"data", `{"data":[{"tsId":"A","value":1},{"tsId":"B","value":2}]}`}, end...)...)},
		{name: "a program error is rejected with SignalFlow's message", status: 200, wantErr: ErrQueryRejected, errText: "ANALYTICS_PROGRAM_NAME_ERROR",
			body: sse("error", `{"errors":[{"code":"ANALYTICS_PROGRAM_NAME_ERROR","context":{"line":1,"column":1,"identifier":"dta"}}]}`)},
		{name: "an aborted computation is retried", status: 200, errText: "aborted",
			body: sse("control-message", `{"event":"CHANNEL_ABORT","abortInfo":{"sf_job_abortReason":"computation timed out","sf_job_abortState":"TIMEOUT"}}`)},
		{name: "a bad token (401) is rejected", status: 401, wantErr: ErrQueryRejected, body: `{"code":401,"message":"Unauthorized"}`},
		{name: "an outage (502) is retried", status: 502, errText: "502", body: `bad gateway`},
		{name: "a garbled message is an error", status: 200, errText: "decoding data message", body: sse("data", `{"data":[`)},
	})
}

// Flagger lets provider.address be the realm's API URL or its stream URL; either way the computation goes to the
// stream host over https.
func TestSplunkAddressBecomesTheRealmsStreamHost(t *testing.T) {
	for _, tc := range []struct{ address, stream string }{
		{"https://api.us1.signalfx.com", "https://stream.us1.signalfx.com"},
		{"https://api.eu0.signalfx.com/", "https://stream.eu0.signalfx.com"},
		{"wss://stream.jp0.signalfx.com", "https://stream.jp0.signalfx.com"},
		{"https://stream.us0.signalfx.com", "https://stream.us0.signalfx.com"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
	} {
		t.Run(tc.address, func(t *testing.T) {
			p, err := NewSplunk(Config{Address: tc.address, HasSecret: true, Credentials: map[string][]byte{SplunkTokenKey: []byte("t")}})
			require.NoError(t, err)
			require.Equal(t, tc.stream, p.stream)
		})
	}
	_, err := NewSplunk(Config{HasSecret: true, Credentials: map[string][]byte{SplunkTokenKey: []byte("t")}})
	require.ErrorContains(t, err, "splunk needs provider.address")
	_, err = NewSplunk(Config{Address: "https://api.us1.signalfx.com"})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `no key "sf_token_key"`)
}
