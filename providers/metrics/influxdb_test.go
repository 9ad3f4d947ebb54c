package metrics

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// An annotated CSV answer as InfluxDB 2.x writes it (CRLF line ends, one table, the annotation column first).
const influxAnswer = "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string\r\n" +
	"#group,false,false,true,true,false,false,true,true\r\n" +
	"#default,_result,,,,,,,\r\n" +
	",result,table,_start,_stop,_time,_value,_field,_measurement\r\n" +
	",,0,2026-03-04T05:05:07Z,2026-03-04T05:06:07Z,2026-03-04T05:06:00Z,99.5,success_rate,podinfo\r\n" +
	",,0,2026-03-04T05:05:07Z,2026-03-04T05:06:07Z,2026-03-04T05:06:07Z,98,success_rate,podinfo\r\n" +
	"\r\n"

// InfluxDB: POST /api/v2/query?org=… with "Authorization: Token …" and a JSON body holding the Flux query and
// the annotated CSV dialect (docs.influxdata.com, "Query data with the InfluxDB API"); the first record's _value
// is the value, as in Flagger.
func TestInfluxDBQueryFollowsTheDocumentedAPI(t *testing.T) {
	const flux = `from(bucket: "traefik")
  |> range(start: -1m)
  |> filter(fn: (r) => r._measurement == "podinfo" and r._field == "success_rate")`
	srv, problem := server(t, func(r *http.Request, body string) error {
		var got struct {
			Query   string `json:"query"`
			Type    string `json:"type"`
			Dialect struct {
				Annotations []string `json:"annotations"`
				Header      *bool    `json:"header"`
				Delimiter   string   `json:"delimiter"`
			} `json:"dialect"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			return err
		}
		return firstErr(
			expect("method", r.Method, http.MethodPost),
			expect("path", r.URL.Path, "/api/v2/query"),
			expect("org", r.URL.Query().Get("org"), "my-org"),
			expect("Authorization", r.Header.Get("Authorization"), "Token influx-secret-token"),
			expect("Content-Type", r.Header.Get("Content-Type"), "application/json"),
			expect("query", got.Query, flux),
			expect("type", got.Type, "flux"),
			expect("annotations", strings.Join(got.Dialect.Annotations, ","), "datatype,group,default"),
			expectBool("header", got.Dialect.Header != nil && *got.Dialect.Header, true),
			expect("delimiter", got.Dialect.Delimiter, ","),
		)
	}, 200, influxAnswer)
	p, err := New(Config{Type: "influxdb", Address: srv.URL + "/", HasSecret: true,
		Credentials: map[string][]byte{InfluxDBTokenKey: []byte("influx-secret-token\n"), InfluxDBOrgKey: []byte("my-org")}})
	require.NoError(t, err)
	v, err := p.RunQuery(context.Background(), flux+"\n")
	require.NoError(t, err)
	require.NoError(t, *problem)
	require.Equal(t, 99.5, v)
}

func TestInfluxDBAnswersMapToValueNoDataOrError(t *testing.T) {
	newProvider := func(u string) (Provider, error) {
		return NewInfluxDB(Config{Address: u, HasSecret: true,
			Credentials: map[string][]byte{InfluxDBTokenKey: []byte("influx-secret-token"), InfluxDBOrgKey: []byte("org")}})
	}
	requireAnswers(t, newProvider, `from(bucket: "b") |> range(start: -1m)`, "influx-secret-token", []answerCase{
		{name: "a long _value is a number too", status: 200, want: 1234, body: "#datatype,string,long,long\r\n#group,false,false,false\r\n" +
			"#default,_result,,\r\n,result,table,_value\r\n,,0,1234\r\n\r\n"},
		{name: "no tables is no data (Flagger says 0)", status: 200, body: "\r\n", wantErr: ErrNoValues},
		{name: "an empty body is no data", status: 200, body: "", wantErr: ErrNoValues},
		{name: "a null _value is no data", status: 200, wantErr: ErrNoValues, body: "#datatype,string,long,double\r\n#group,false,false,false\r\n" +
			"#default,_result,,\r\n,result,table,_value\r\n,,0,\r\n\r\n"},
		{name: "a NaN _value is no data", status: 200, wantErr: ErrNoValues, body: "#datatype,string,long,double\r\n#group,false,false,false\r\n" +
			"#default,_result,,\r\n,result,table,_value\r\n,,0,NaN\r\n\r\n"},
		{name: "an error table in the stream is a rejected query", status: 200, wantErr: ErrQueryRejected, errText: "runtime error @2:6-2:42: range: bad start",
			body: "#datatype,string,string\r\n#group,true,true\r\n#default,,\r\n,error,reference\r\n,runtime error @2:6-2:42: range: bad start,\r\n\r\n"},
		{name: "a string _value is a rejected query", status: 200, wantErr: ErrQueryRejected, errText: "_value is of type string",
			body: "#datatype,string,long,string\r\n#group,false,false,false\r\n#default,_result,,\r\n,result,table,_value\r\n,,0,up\r\n\r\n"},
		{name: "a Flux compile error (400) is rejected with InfluxDB's message", status: 400, wantErr: ErrQueryRejected,
			errText: "error @1:1-1:6: undefined identifier fromm", body: `{"code":"invalid","message":"compilation failed: error @1:1-1:6: undefined identifier fromm"}`},
		{name: "a bad token (401) is rejected", status: 401, wantErr: ErrQueryRejected, body: `{"code":"unauthorized","message":"unauthorized access"}`},
		{name: "an unavailable server (503) is retried", status: 503, errText: "influxdb http://127.0.0.1", body: `{"code":"unavailable","message":"service unavailable"}`},
		{name: "a table without _value is a garbled answer", status: 200, errText: "no _value column",
			body: "#datatype,string,long,double\r\n#group,false,false,false\r\n#default,_result,,\r\n,result,table,count\r\n,,0,3\r\n\r\n"},
		{name: "a garbled answer is an error", status: 200, errText: "decoding response", body: "#datatype,string\r\n,\"unterminated\r\n"},
	})
}

func TestInfluxDBConfigNamesWhatIsMissing(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no address", Config{}, "influxdb needs provider.address"},
		{"Secret without org", Config{Address: "http://influx:8086", HasSecret: true, Credentials: map[string][]byte{InfluxDBTokenKey: []byte("t")}}, `no key "org"`},
		{"Secret without token", Config{Address: "http://influx:8086", HasSecret: true, Credentials: map[string][]byte{InfluxDBOrgKey: []byte("o")}}, `no key "token"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Type = "influxdb"
			_, err := New(tc.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
