package metrics

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Dynatrace: GET /api/v2/metrics/query with metricSelector, resolution=Inf and a from/to window in epoch
// milliseconds of ten intervals, "Authorization: Api-Token …" (Dynatrace API docs, "Metrics API - GET metric
// data points"); the first value of the last series of the first result is the value, as in Flagger.
func TestDynatraceQueryFollowsTheDocumentedAPI(t *testing.T) {
	const selector = `builtin:service.response.time:filter(eq("dt.entity.service","SERVICE-1234")):percentile(99)`
	srv, problem := server(t, func(r *http.Request, _ string) error {
		v := r.URL.Query()
		return firstErr(
			expect("method", r.Method, http.MethodGet),
			expect("path", r.URL.Path, "/e/abc123/api/v2/metrics/query"),
			expect("Authorization", r.Header.Get("Authorization"), "Api-Token dt0c01.SECRET"),
			expect("metricSelector", v.Get("metricSelector"), selector),
			expect("resolution", v.Get("resolution"), "Inf"),
			expect("from", v.Get("from"), fmt.Sprint(fixedNow.UnixMilli()-10*30_000)),
			expect("to", v.Get("to"), fmt.Sprint(fixedNow.UnixMilli())),
		)
	}, 200, `{"totalCount":2,"nextPageKey":null,"resolution":"Inf","result":[{"metricId":"builtin:service.response.time:percentile(99)",
	  "dataPointCountRatio":0.0002,"dimensionCountRatio":0.01,"data":[
	    {"dimensions":["SERVICE-0001"],"dimensionMap":{"dt.entity.service":"SERVICE-0001"},"timestamps":[1772600767000],"values":[9999]},
	    {"dimensions":["SERVICE-1234"],"dimensionMap":{"dt.entity.service":"SERVICE-1234"},"timestamps":[1772600767000],"values":[431.5]}]}]}`)
	// A managed environment's URL has a path (/e/<env-id>); it is kept.
	p, err := New(Config{Type: "dynatrace", Address: srv.URL + "/e/abc123", Interval: 30 * time.Second, Now: fixedClock, HasSecret: true,
		Credentials: map[string][]byte{DynatraceTokenKey: []byte("dt0c01.SECRET")}})
	require.NoError(t, err)
	v, err := p.RunQuery(context.Background(), selector)
	require.NoError(t, err)
	require.NoError(t, *problem)
	require.Equal(t, 431.5, v)
}

func TestDynatraceAnswersMapToValueNoDataOrError(t *testing.T) {
	newProvider := func(u string) (Provider, error) {
		return NewDynatrace(Config{Address: u, HasSecret: true, Credentials: map[string][]byte{DynatraceTokenKey: []byte("dt0c01.SECRET")}})
	}
	requireAnswers(t, newProvider, "builtin:service.errors.total.rate", "dt0c01.SECRET", []answerCase{
		{name: "no result is no data", status: 200, body: `{"totalCount":0,"nextPageKey":null,"result":[]}`, wantErr: ErrNoValues},
		{name: "a result without series is no data", status: 200, body: `{"totalCount":0,"nextPageKey":null,"resolution":"Inf","result":[{"metricId":"x","data":[]}]}`, wantErr: ErrNoValues},
		{name: "a null value is no data", status: 200, body: `{"totalCount":1,"result":[{"metricId":"x","data":[{"dimensions":[],"timestamps":[1],"values":[null]}]}]}`, wantErr: ErrNoValues},
		{name: "an invalid selector (400) is rejected with Dynatrace's message", status: 400, wantErr: ErrQueryRejected,
			errText: "Cannot parse metric selector", body: `{"error":{"code":400,"message":"Cannot parse metric selector: unexpected token"}}`},
		{name: "a token without the metrics.read scope (403) is rejected", status: 403, wantErr: ErrQueryRejected,
			body: `{"error":{"code":403,"message":"Token is missing required scope. Use one of: metrics.read (Read metrics)"}}`},
		{name: "throttling (429) is retried", status: 429, errText: "429", body: `{"error":{"code":429,"message":"Too many requests"}}`},
		{name: "a garbled answer is an error", status: 200, errText: "decoding response", body: `<html>maintenance</html>`},
	})
}

func TestDynatraceConfigNamesWhatIsMissing(t *testing.T) {
	_, err := New(Config{Type: "dynatrace", HasSecret: true, Credentials: map[string][]byte{DynatraceTokenKey: []byte("t")}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, "dynatrace needs provider.address")
	_, err = New(Config{Type: "dynatrace", Address: "https://abc.live.dynatrace.com", HasSecret: true, Credentials: map[string][]byte{}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `no key "dynatrace_token"`)
}
