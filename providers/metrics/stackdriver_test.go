package metrics

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	testRSAOnce sync.Once
	testRSAKey  *rsa.PrivateKey
)

// serviceAccountKey is a Google service account JSON key (the file the console downloads) whose token_uri is
// tokenURI, and the RSA key that signs its JWTs.
func serviceAccountKey(t *testing.T, tokenURI string) ([]byte, *rsa.PrivateKey) {
	testRSAOnce.Do(func() {
		var err error
		testRSAKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
	})
	der, err := x509.MarshalPKCS8PrivateKey(testRSAKey)
	require.NoError(t, err)
	key, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "my-project", "private_key_id": "0123abcd",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "canaryflow@my-project.iam.gserviceaccount.com", "client_id": "1234567890",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": tokenURI,
	})
	require.NoError(t, err)
	return key, testRSAKey
}

// checkJWTBearerGrant checks a token request as Google's OAuth 2.0 server documents it for service accounts: a
// form POST with grant_type jwt-bearer and an RS256 JWT assertion signed by the key, for the monitoring.read
// scope, issued by the account, with the token endpoint as audience.
func checkJWTBearerGrant(r *http.Request, body string, key *rsa.PublicKey, tokenURI string) error {
	form, err := url.ParseQuery(body)
	if err != nil {
		return err
	}
	parts := strings.Split(form.Get("assertion"), ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion is not a JWT: %q", form.Get("assertion"))
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig); err != nil {
		return fmt.Errorf("JWT signature: %w", err)
	}
	var header, claims map[string]any
	for i, into := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, into); err != nil {
			return err
		}
	}
	return firstErr(
		expect("token method", r.Method, http.MethodPost),
		expect("token content type", r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"),
		expect("grant_type", form.Get("grant_type"), "urn:ietf:params:oauth:grant-type:jwt-bearer"),
		expect("alg", fmt.Sprint(header["alg"]), "RS256"),
		expect("kid", fmt.Sprint(header["kid"]), "0123abcd"),
		expect("iss", fmt.Sprint(claims["iss"]), "canaryflow@my-project.iam.gserviceaccount.com"),
		expect("scope", fmt.Sprint(claims["scope"]), "https://www.googleapis.com/auth/monitoring.read"),
		expect("aud", fmt.Sprint(claims["aud"]), tokenURI),
	)
}

// Cloud Monitoring: the service account key is exchanged for an access token at its token_uri, then the MQL is
// POSTed as {"query": …} to /v3/projects/<project>/timeSeries:query with "Authorization: Bearer …" (Cloud
// Monitoring API v3 reference, projects.timeSeries.query); the first value of the first point of the first series
// is the value, as in Flagger.
func TestStackdriverQueryFollowsTheDocumentedAPI(t *testing.T) {
	const mql = `fetch k8s_container
| metric 'istio.io/service/server/response_latencies'
| filter (metric.destination_service_name == 'podinfo-canary' && metric.destination_service_namespace == 'test')
| align delta(1m) | every 1m
| group_by [], [value_response_latencies_percentile: percentile(value.response_latencies, 99)]`
	var mu sync.Mutex
	var problems []error
	var tokenURI string
	var key *rsa.PrivateKey
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/token":
			problems = append(problems, checkJWTBearerGrant(r, string(b), &key.PublicKey, tokenURI))
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"ya29.ACCESS","expires_in":3599,"token_type":"Bearer"}`)
		case "/v3/projects/my-project/timeSeries:query":
			var got map[string]any
			problems = append(problems, json.Unmarshal(b, &got), firstErr(
				expect("method", r.Method, http.MethodPost),
				expect("Authorization", r.Header.Get("Authorization"), "Bearer ya29.ACCESS"),
				expect("Content-Type", r.Header.Get("Content-Type"), "application/json"),
				expect("query", fmt.Sprint(got["query"]), mql),
			))
			fmt.Fprint(w, `{"timeSeriesDescriptor":{"pointDescriptors":[{"key":"value_response_latencies_percentile","valueType":"DOUBLE","metricKind":"GAUGE","unit":"ms"}]},
			  "timeSeriesData":[{"labelValues":[],"pointData":[
			    {"values":[{"doubleValue":120.5}],"timeInterval":{"startTime":"2026-03-04T05:05:00Z","endTime":"2026-03-04T05:06:00Z"}},
			    {"values":[{"doubleValue":80}],"timeInterval":{"startTime":"2026-03-04T05:04:00Z","endTime":"2026-03-04T05:05:00Z"}}]}]}`)
		default:
			problems = append(problems, fmt.Errorf("unexpected request %s %s", r.Method, r.URL.Path))
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	tokenURI = srv.URL + "/token"
	saKey, key := serviceAccountKey(t, tokenURI)
	p, err := New(Config{Type: "stackdriver", Address: srv.URL, HasSecret: true,
		Credentials: map[string][]byte{StackdriverProjectKey: []byte("my-project"), StackdriverServiceAccountKey: saKey}})
	require.NoError(t, err)
	v, err := p.RunQuery(context.Background(), mql)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.NoError(t, errors.Join(problems...))
	require.Len(t, problems, 3, "one token request, one query")
	require.Equal(t, 120.5, v)
}

func TestStackdriverAnswersMapToValueNoDataOrError(t *testing.T) {
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"ya29.ACCESS","expires_in":3599,"token_type":"Bearer"}`)
	}))
	defer tokens.Close()
	saKey, _ := serviceAccountKey(t, tokens.URL+"/token")
	newProvider := func(u string) (Provider, error) {
		return NewStackdriver(Config{Address: u, HasSecret: true,
			Credentials: map[string][]byte{StackdriverProjectKey: []byte("my-project"), StackdriverServiceAccountKey: saKey}})
	}
	requireAnswers(t, newProvider, "fetch k8s_container", "ya29.ACCESS", []answerCase{
		{name: "an int64 value (a JSON string) is a number too", status: 200, want: 42,
			body: `{"timeSeriesData":[{"pointData":[{"values":[{"int64Value":"42"}]}]}]}`},
		{name: "no series is no data", status: 200, wantErr: ErrNoValues,
			body: `{"timeSeriesDescriptor":{"pointDescriptors":[{"key":"v","valueType":"DOUBLE"}]}}`},
		{name: "a series without points is no data", status: 200, wantErr: ErrNoValues, body: `{"timeSeriesData":[{"labelValues":[],"pointData":[]}]}`},
		{name: "NaN (proto3 writes it as a string) is no data", status: 200, wantErr: ErrNoValues,
			body: `{"timeSeriesData":[{"pointData":[{"values":[{"doubleValue":"NaN"}]}]}]}`},
		{name: "a distribution is a rejected query", status: 200, wantErr: ErrQueryRejected, errText: "neither a double nor an int64",
			body: `{"timeSeriesData":[{"pointData":[{"values":[{"distributionValue":{"count":"3"}}]}]}]}`},
		{name: "an MQL error (400) is rejected with Google's message", status: 400, wantErr: ErrQueryRejected, errText: "Line 1, column 1",
			body: `{"error":{"code":400,"message":"Line 1, column 1, token 'fetchh': unknown table operation","status":"INVALID_ARGUMENT"}}`},
		{name: "a missing permission (403) is rejected", status: 403, wantErr: ErrQueryRejected, errText: "PERMISSION_DENIED",
			body: `{"error":{"code":403,"message":"Permission monitoring.timeSeries.list denied","status":"PERMISSION_DENIED"}}`},
		{name: "an outage (503) is retried", status: 503, errText: "UNAVAILABLE", body: `{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}`},
		{name: "a garbled answer is an error", status: 200, errText: "decoding response", body: `{"timeSeriesData":[{"pointData":`},
	})
}

func TestStackdriverCredentialsProblemsNameTheFix(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
	}))
	defer refusing.Close()
	saKey, _ := serviceAccountKey(t, refusing.URL+"/token")
	p, err := NewStackdriver(Config{Address: refusing.URL, HasSecret: true,
		Credentials: map[string][]byte{StackdriverProjectKey: []byte("p"), StackdriverServiceAccountKey: saKey}})
	require.NoError(t, err)
	_, err = p.RunQuery(context.Background(), "fetch x")
	require.ErrorIs(t, err, ErrQueryRejected)
	require.ErrorContains(t, err, "invalid_grant")
	require.ErrorContains(t, err, "check the service account key")
	require.NotContains(t, err.Error(), "PRIVATE KEY")

	_, err = NewStackdriver(Config{Address: refusing.URL, HasSecret: true,
		Credentials: map[string][]byte{StackdriverProjectKey: []byte("p"), StackdriverServiceAccountKey: []byte(`{"type":"authorized_user","client_secret":"s3cr3t"}`)}})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `Secret key "serviceAccountKey" is not a service account JSON key`)
	require.NotContains(t, err.Error(), "s3cr3t")

	_, err = New(Config{Type: "stackdriver"})
	require.ErrorIs(t, err, ErrInvalidConfig)
	require.ErrorContains(t, err, `stackdriver needs a secretRef whose Secret holds "project"`)
	_, err = New(Config{Type: "stackdriver", HasSecret: true, Credentials: map[string][]byte{StackdriverServiceAccountKey: saKey}})
	require.ErrorContains(t, err, `no key "project"`)
}
