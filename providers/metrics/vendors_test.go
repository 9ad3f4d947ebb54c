package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var fixedNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func fixedClock() time.Time { return fixedNow }

// server answers with body after check has looked at the request (failing the test from the handler is not
// allowed, so it records the first problem).
func server(t *testing.T, check func(r *http.Request, body string) error, status int, body string) (*httptest.Server, *error) {
	var problem error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := check(r, string(b)); err != nil && problem == nil {
			problem = err
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &problem
}

func expect(what, got, want string) error {
	if got != want {
		return fmt.Errorf("%s: got %q, want %q", what, got, want)
	}
	return nil
}

func firstErr(errs ...error) error { return errors.Join(errs...) }

// Datadog: GET /api/v1/query with from/to/query parameters and both keys as headers (docs.datadoghq.com/api,
// "Query timeseries points"); the first point of the first series is the value.
func TestDatadogQueryFollowsTheDocumentedAPI(t *testing.T) {
	const q = "sum:trace.http.request.errors{service:podinfo,env:prod}.as_count() / sum:trace.http.request.hits{service:podinfo}.as_count()"
	srv, problem := server(t, func(r *http.Request, _ string) error {
		v := r.URL.Query()
		return firstErr(
			expect("method", r.Method, http.MethodGet),
			expect("path", r.URL.Path, "/api/v1/query"),
			expect("DD-API-KEY", r.Header.Get("DD-API-KEY"), "api-123"),
			expect("DD-APPLICATION-KEY", r.Header.Get("DD-APPLICATION-KEY"), "app-456"),
			expect("query", v.Get("query"), q),
			expect("from", v.Get("from"), fmt.Sprint(fixedNow.Unix()-600)),
			expect("to", v.Get("to"), fmt.Sprint(fixedNow.Unix())),
			expectBool("raw encoding", strings.Contains(r.URL.RawQuery, "query=sum%3Atrace.http.request.errors%7Bservice%3Apodinfo%2Cenv%3Aprod%7D"), true),
		)
	}, 200, `{"status":"ok","res_type":"time_series","series":[{"metric":"trace.http.request.errors","pointlist":[[1772600767000,0.75],[1772600827000,null]],"scope":"service:podinfo","expression":"x","unit":null}],"query":"x","from_date":1,"to_date":2}`)
	p, err := New(Config{Type: "datadog", Address: srv.URL, HasSecret: true, Interval: time.Minute, Now: fixedClock,
		Credentials: map[string][]byte{DatadogAPIKeyKey: []byte("api-123"), DatadogAppKeyKey: []byte("app-456")}})
	require.NoError(t, err)
	v, err := p.RunQuery(context.Background(), q)
	require.NoError(t, err)
	require.NoError(t, *problem)
	require.Equal(t, 0.75, v)
}

func expectBool(what string, got, want bool) error {
	if got != want {
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}

func TestDatadogEmptySeriesIsNoValuesAndForbiddenIsRejected(t *testing.T) {
	creds := map[string][]byte{DatadogAPIKeyKey: []byte("a"), DatadogAppKeyKey: []byte("b")}
	srv, _ := server(t, func(*http.Request, string) error { return nil }, 200, `{"status":"ok","series":[]}`)
	p, err := NewDatadog(Config{Address: srv.URL, Credentials: creds, HasSecret: true})
	require.NoError(t, err)
	_, err = p.RunQuery(context.Background(), "avg:x{*}")
	require.ErrorIs(t, err, ErrNoValues)

	srv, _ = server(t, func(*http.Request, string) error { return nil }, 403, `{"errors":["Forbidden"]}`)
	p, _ = NewDatadog(Config{Address: srv.URL, Credentials: creds, HasSecret: true})
	_, err = p.RunQuery(context.Background(), "avg:x{*}")
	require.ErrorIs(t, err, ErrQueryRejected)
	require.ErrorContains(t, err, "Forbidden")
}

// New Relic: GET /v1/accounts/<id>/query?nrql=… with X-Query-Key (Insights query API); SINCE the interval is
// appended, and the value is read from the documented answer shapes.
func TestNewRelicQueryFollowsTheDocumentedAPI(t *testing.T) {
	const q = "SELECT percentage(count(*), WHERE httpResponseCode >= 500) FROM Transaction WHERE appName = 'podinfo'"
	for _, tc := range []struct {
		answer string
		want   float64
	}{
		{`{"results":[{"result":1.25}],"metadata":{"eventTypes":["Transaction"]}}`, 1.25},
		{`{"results":[{"percentiles":{"99":0.431}}]}`, 0.431},
		{`{"results":[{"count":1234}]}`, 1234},
	} {
		srv, problem := server(t, func(r *http.Request, _ string) error {
			return firstErr(
				expect("method", r.Method, http.MethodGet),
				expect("path", r.URL.Path, "/v1/accounts/1234567/query"),
				expect("X-Query-Key", r.Header.Get("X-Query-Key"), "NRIQ-secret"),
				expect("Accept", r.Header.Get("Accept"), "application/json"),
				expect("nrql", r.URL.Query().Get("nrql"), q+" SINCE 120 seconds ago"),
			)
		}, 200, tc.answer)
		p, err := New(Config{Type: "newrelic", Address: srv.URL, Interval: 2 * time.Minute, HasSecret: true,
			Credentials: map[string][]byte{NewRelicAccountIDKey: []byte("1234567"), NewRelicQueryKeyKey: []byte("NRIQ-secret")}})
		require.NoError(t, err)
		v, err := p.RunQuery(context.Background(), q)
		require.NoError(t, err)
		require.NoError(t, *problem)
		require.Equal(t, tc.want, v)
	}
}

// Graphite: GET /render with the query's parameters plus format=json, basic auth from the Secret; the newest
// non-null datapoint ([value, timestamp]) is the value.
func TestGraphiteRenderFollowsTheDocumentedAPI(t *testing.T) {
	srv, problem := server(t, func(r *http.Request, _ string) error {
		u, p, ok := r.BasicAuth()
		v := r.URL.Query()
		return firstErr(
			expect("method", r.Method, http.MethodGet),
			expect("path", r.URL.Path, "/render"),
			expectBool("basic auth", ok, true), expect("user", u, "graphite"), expect("password", p, "pw"),
			expect("target", v.Get("target"), "summarize(stats.podinfo.errors, '1min', 'sum', false)"),
			expect("from", v.Get("from"), "-5min"),
			expect("format", v.Get("format"), "json"),
		)
	}, 200, `[{"target":"x","tags":{},"datapoints":[[1.0,1311836008],[3.5,1311836068],[null,1311836128]]}]`)
	p, err := New(Config{Type: "graphite", Address: srv.URL, HasSecret: true,
		Credentials: map[string][]byte{GraphiteUsernameKey: []byte("graphite"), GraphitePasswordKey: []byte("pw")}})
	require.NoError(t, err)
	v, err := p.RunQuery(context.Background(), "target=summarize(stats.podinfo.errors, '1min', 'sum', false)\n &from=-5min")
	require.NoError(t, err)
	require.NoError(t, *problem)
	require.Equal(t, 3.5, v)
}

// The signer reproduces AWS's worked Signature Version 4 example (IAM ListUsers, 2015-08-30).
func TestSigV4MatchesAWSsWorkedExample(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	signV4(r, nil, awsCredentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
		"us-east-1", "iam", time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
	require.Equal(t, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "+
		"SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
		r.Header.Get("Authorization"))
}

// CloudWatch: GetMetricData through the Query API (POST form, Action/Version, MetricDataQueries flattened as
// .member.N, ISO 8601 times), SigV4 for service monitoring; the XML answer's newest value is the value.
func TestCloudWatchGetMetricDataFollowsTheDocumentedAPI(t *testing.T) {
	const q = `[
	  {"Id": "e1", "Expression": "m1 / m2", "Label": "ErrorRate"},
	  {"Id": "m1", "MetricStat": {"Metric": {"Namespace": "MyApp", "MetricName": "ErrorCount",
	     "Dimensions": [{"Name": "Service", "Value": "podinfo"}]}, "Period": 60, "Stat": "Sum", "Unit": "Count"}, "ReturnData": false},
	  {"Id": "m2", "MetricStat": {"Metric": {"Namespace": "MyApp", "MetricName": "RequestCount"}, "Period": 60, "Stat": "Sum"}, "ReturnData": false}
	]`
	srv, problem := server(t, func(r *http.Request, body string) error {
		form, err := url.ParseQuery(body)
		if err != nil {
			return err
		}
		auth := r.Header.Get("Authorization")
		return firstErr(
			expect("method", r.Method, http.MethodPost),
			expect("path", r.URL.Path, "/"),
			expect("content-type", r.Header.Get("Content-Type"), "application/x-www-form-urlencoded; charset=utf-8"),
			expect("x-amz-date", r.Header.Get("X-Amz-Date"), "20260304T050607Z"),
			expect("x-amz-security-token", r.Header.Get("X-Amz-Security-Token"), "session-tok"),
			expectBool("authorization "+auth, strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260304/eu-west-1/monitoring/aws4_request, "+
				"SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="), true),
			expect("Action", form.Get("Action"), "GetMetricData"),
			expect("Version", form.Get("Version"), "2010-08-01"),
			expect("StartTime", form.Get("StartTime"), "2026-03-04T05:01:07Z"),
			expect("EndTime", form.Get("EndTime"), "2026-03-04T05:06:07Z"),
			expect("e1 id", form.Get("MetricDataQueries.member.1.Id"), "e1"),
			expect("e1 expr", form.Get("MetricDataQueries.member.1.Expression"), "m1 / m2"),
			expect("m1 ns", form.Get("MetricDataQueries.member.2.MetricStat.Metric.Namespace"), "MyApp"),
			expect("m1 dim", form.Get("MetricDataQueries.member.2.MetricStat.Metric.Dimensions.member.1.Name"), "Service"),
			expect("m1 dim value", form.Get("MetricDataQueries.member.2.MetricStat.Metric.Dimensions.member.1.Value"), "podinfo"),
			expect("m1 period", form.Get("MetricDataQueries.member.2.MetricStat.Period"), "60"),
			expect("m1 returnData", form.Get("MetricDataQueries.member.2.ReturnData"), "false"),
			expect("m2 metric", form.Get("MetricDataQueries.member.3.MetricStat.Metric.MetricName"), "RequestCount"),
		)
	}, 200, `<GetMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">
  <GetMetricDataResult>
    <MetricDataResults>
      <member>
        <Timestamps><member>2026-03-04T05:05:00Z</member><member>2026-03-04T05:04:00Z</member></Timestamps>
        <Label>ErrorRate</Label>
        <Values><member>0.0125</member><member>0.5</member></Values>
        <Id>e1</Id>
        <StatusCode>Complete</StatusCode>
      </member>
    </MetricDataResults>
    <Messages/>
  </GetMetricDataResult>
  <ResponseMetadata><RequestId>3b9d5a4e-0000-0000-0000-000000000000</RequestId></ResponseMetadata>
</GetMetricDataResponse>`)
	p, err := New(Config{Type: "cloudwatch", Address: srv.URL, Region: "eu-west-1", Interval: time.Minute, Now: fixedClock, HasSecret: true,
		Credentials: map[string][]byte{CloudWatchAccessKeyIDKey: []byte("AKIAEXAMPLE"), CloudWatchSecretAccessKeyKey: []byte("secretkey"),
			CloudWatchSessionTokenKey: []byte("session-tok")}})
	require.NoError(t, err)
	v, err := p.RunQuery(context.Background(), q)
	require.NoError(t, err)
	require.NoError(t, *problem)
	require.Equal(t, 0.0125, v)
}

func TestCloudWatchErrorAnswerIsRejectedWithAWSsCode(t *testing.T) {
	srv, _ := server(t, func(*http.Request, string) error { return nil }, 400,
		`<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameterValue</Code><Message>The expression is invalid</Message></Error></ErrorResponse>`)
	p, err := NewCloudWatch(Config{Address: srv.URL, Region: "us-east-1", HasSecret: true,
		Credentials: map[string][]byte{CloudWatchAccessKeyIDKey: []byte("a"), CloudWatchSecretAccessKeyKey: []byte("b")}})
	require.NoError(t, err)
	_, err = p.RunQuery(context.Background(), `[{"Id":"e1","Expression":"bad("}]`)
	require.ErrorIs(t, err, ErrQueryRejected)
	require.ErrorContains(t, err, "InvalidParameterValue: The expression is invalid")
}

// Prometheus: basic auth from the Secret, insecureSkipVerify for a self-signed server, a bad query is rejected
// (not retried), an outage is not.
func TestPrometheusAuthTLSAndErrorClasses(t *testing.T) {
	var user, pass string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ = r.BasicAuth()
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if r.Form.Get("query") == "bad(" {
			w.WriteHeader(400)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}`)
			return
		}
		if r.Form.Get("query") == "overloaded" {
			w.WriteHeader(503)
			fmt.Fprint(w, `{"status":"error","errorType":"unavailable","error":"too busy"}`)
			return
		}
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"7"]}}`)
	}))
	defer srv.Close()
	insecure := &http.Client{Transport: srv.Client().Transport}
	p, err := New(Config{Address: srv.URL, HTTPClient: insecure, HasSecret: true,
		Credentials: map[string][]byte{PrometheusUsernameKey: []byte("prom"), PrometheusPasswordKey: []byte("pw")}})
	require.NoError(t, err)
	v, err := p.RunQuery(context.Background(), "scalar(vector(7))")
	require.NoError(t, err)
	require.Equal(t, 7.0, v)
	require.Equal(t, "prom", user)
	require.Equal(t, "pw", pass)

	_, err = p.RunQuery(context.Background(), "bad(")
	require.ErrorIs(t, err, ErrQueryRejected)
	require.ErrorContains(t, err, "parse error")
	_, err = p.RunQuery(context.Background(), "overloaded")
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrQueryRejected)

	_, err = New(Config{Address: srv.URL, HasSecret: true, Credentials: map[string][]byte{PrometheusUsernameKey: []byte("only-user")}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.NotContains(t, err.Error(), "only-user")
}

func TestRedactURLKeepsOnlySchemeAndHost(t *testing.T) {
	require.Equal(t, "https://hooks.slack.com", RedactURL("https://hooks.slack.com/services/T000/B000/XXXXSECRET?x=1"))
	require.Equal(t, "<invalid URL>", RedactURL("::"))
}

// answerCase is one answer a vendor's server gives and what RunQuery must make of it.
type answerCase struct {
	name   string
	status int
	body   string
	want   float64
	// wantErr is ErrNoValues or ErrQueryRejected, or nil with errText set for an error worth retrying.
	wantErr error
	errText string
}

// requireAnswers runs query against a server answering each case in turn, through the provider newProvider
// builds for the server's URL; no error may quote secret.
func requireAnswers(t *testing.T, newProvider func(url string) (Provider, error), query, secret string, cases []answerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := server(t, func(*http.Request, string) error { return nil }, tc.status, tc.body)
			p, err := newProvider(srv.URL)
			require.NoError(t, err)
			v, err := p.RunQuery(context.Background(), query)
			if err != nil {
				require.NotContains(t, err.Error(), secret)
			}
			switch {
			case tc.wantErr != nil:
				require.ErrorIs(t, err, tc.wantErr)
				if tc.errText != "" {
					require.ErrorContains(t, err, tc.errText)
				}
			case tc.errText != "":
				require.ErrorContains(t, err, tc.errText)
				require.NotErrorIs(t, err, ErrNoValues)
				require.NotErrorIs(t, err, ErrQueryRejected, "an outage or a garbled answer is retried, not a verdict")
			default:
				require.NoError(t, err)
				require.Equal(t, tc.want, v)
			}
		})
	}
}
