package activities_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/metrics"
	"github.com/canaryflow/canaryflow/providers/metrics/promtest"
)

func f64(v float64) *float64 { return &v }

// fakeSecrets is a SecretReader over a map "namespace/name" → data.
type fakeSecrets map[string]map[string][]byte

func (s fakeSecrets) ReadSecret(_ context.Context, namespace, name string) (map[string][]byte, error) {
	d, ok := s[namespace+"/"+name]
	if !ok {
		return nil, fmt.Errorf("secret %s/%s not found", namespace, name)
	}
	return d, nil
}

// builtinChecks are the two builtin metrics with the thresholds users write most.
func builtinChecks(interval string) []v1beta1.CanaryMetric {
	return []v1beta1.CanaryMetric{
		{Name: "request-success-rate", Interval: interval, ThresholdRange: &v1beta1.CanaryThresholdRange{Min: f64(99)}},
		{Name: "request-duration", Interval: interval, ThresholdRange: &v1beta1.CanaryThresholdRange{Max: f64(500)}},
	}
}

func canaryRef(provider, ns string) activities.CanaryRef {
	return activities.CanaryRef{Namespace: ns, Name: "podinfo", Target: "podinfo", Service: "podinfo",
		Ingress: "podinfo", Route: "podinfo", Provider: provider}
}

// The builtin queries of every provider, evaluated by a real Prometheus over series of exactly the shape that
// provider exports: a healthy canary passes both checks, a canary with 10% errors and 30% slow requests fails
// both, and the primary's (terrible) series next to them never leak into the result.
func TestBuiltinQueriesOfEveryProviderJudgeHealthyAndFailingCanaries(t *testing.T) {
	exp := newShapeExporter()
	defer exp.srv.Close()
	prom := promtest.Start(t, exp.target())
	a := &activities.Analysis{DefaultMetricsServer: prom}

	providers := []string{"traefik", "apisix", "nginx", "istio", "linkerd", "osm", "contour", "gloo", "kuma", "appmesh",
		"skipper", "kubernetes", "gatewayapi:v1"}
	require.ElementsMatch(t, []string{"traefik", "apisix", "nginx", "istio", "linkerd", "osm", "contour", "gloo", "kuma",
		"appmesh", "skipper", "kubernetes", "gatewayapi"}, metrics.BuiltinProviders())

	// Wait for two scrapes of everything: rate() needs two samples in its window.
	waitFor(t, 60*time.Second, func() error {
		r, err := a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{
			Canary: canaryRef("istio", "good"), Metrics: builtinChecks("10s")}))
		if err != nil {
			return err
		}
		for _, c := range r.Results {
			if c.Value == nil {
				return errors.New(c.Message)
			}
		}
		return nil
	})

	for _, p := range providers {
		t.Run(p, func(t *testing.T) {
			good, err := a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{Canary: canaryRef(p, "good"), Metrics: builtinChecks("10s")}))
			require.NoError(t, err)
			require.Len(t, good.Results, 2)
			sr, dur := good.Results[0], good.Results[1]
			require.Equal(t, activities.VerdictPass, sr.Verdict, "%s: %s", sr.Message, sr.Query)
			require.InDelta(t, 100, *sr.Value, 0.01)
			require.Equal(t, activities.VerdictPass, dur.Verdict, "%s: %s", dur.Message, dur.Query)
			require.Greater(t, *dur.Value, 0.0)
			require.Less(t, *dur.Value, 101.0, "healthy requests take 20ms; P99 (or the average) stays in the first buckets")
			require.Contains(t, sr.Query, "good", "the rendered query is recorded")

			bad, err := a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{Canary: canaryRef(p, "bad"), Metrics: builtinChecks("10s")}))
			require.NoError(t, err)
			sr, dur = bad.Results[0], bad.Results[1]
			require.Equal(t, activities.VerdictFail, sr.Verdict, sr.Query)
			require.InDelta(t, 90, *sr.Value, 0.01, "10%% of the canary's requests fail; the primary's 100%% must not count")
			require.Equal(t, fmt.Sprintf("success rate %.2f%% < 99%%", *sr.Value), sr.Message, "Flagger's wording")
			require.Equal(t, activities.VerdictFail, dur.Verdict, dur.Query)
			require.Greater(t, *dur.Value, 500.0)
			require.Regexp(t, `^request duration [0-9.]+m?s > 500ms$`, dur.Message, "Flagger's wording")
			require.Contains(t, dur.Message, "> 500")
		})
	}
}

func waitFor(t *testing.T, limit time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("not true within %s: %v", limit, err)
}

// A constant query through a MetricTemplate, judged against every kind of range, and every no-data policy,
// on a real Prometheus.
func TestThresholdRangeAndNoDataPolicies(t *testing.T) {
	exp := newShapeExporter()
	defer exp.srv.Close()
	prom := promtest.Start(t, exp.target())
	a := &activities.Analysis{DefaultMetricsServer: prom}
	tpl := func(name, q string) v1beta1.MetricTemplate {
		return v1beta1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "good"},
			Spec: v1beta1.MetricTemplateSpec{Provider: v1beta1.MetricTemplateProvider{Type: "prometheus"}, Query: q}}
	}
	ref := func(name string) *v1beta1.CrossNamespaceObjectReference {
		return &v1beta1.CrossNamespaceObjectReference{Name: name}
	}
	in := defaulted(activities.MetricChecksInput{
		Canary:    canaryRef("traefik", "good"),
		Templates: []v1beta1.MetricTemplate{tpl("answer", "vector({{ variables.value }})"), tpl("nothing", `absent_metric_xyz{namespace="{{ namespace }}"}`), tpl("nan", "vector(0) / 0")},
		Metrics: []v1beta1.CanaryMetric{
			{Name: "in-range", TemplateRef: ref("answer"), TemplateVariables: map[string]string{"value": "42"}, ThresholdRange: &v1beta1.CanaryThresholdRange{Min: f64(40), Max: f64(50)}},
			{Name: "below-min", TemplateRef: ref("answer"), TemplateVariables: map[string]string{"value": "42"}, ThresholdRange: &v1beta1.CanaryThresholdRange{Min: f64(42.5)}},
			{Name: "above-max", TemplateRef: ref("answer"), TemplateVariables: map[string]string{"value": "42"}, ThresholdRange: &v1beta1.CanaryThresholdRange{Max: f64(41)}},
			{Name: "on-the-bound", TemplateRef: ref("answer"), TemplateVariables: map[string]string{"value": "42"}, ThresholdRange: &v1beta1.CanaryThresholdRange{Max: f64(42)}},
			{Name: "no-data-default", TemplateRef: ref("nothing")},
			{Name: "no-data-fail", TemplateRef: ref("nothing"), OnNoData: v1beta1.NoDataFail},
			{Name: "no-data-pass", TemplateRef: ref("nothing"), OnNoData: v1beta1.NoDataPass},
			{Name: "no-data-hold", TemplateRef: ref("nothing"), OnNoData: v1beta1.NoDataHold},
			{Name: "nan-is-no-data", TemplateRef: ref("nan"), OnNoData: v1beta1.NoDataHold},
		},
	})
	r, err := a.RunMetricChecks(context.Background(), in)
	require.NoError(t, err)
	require.Len(t, r.Results, 9)
	want := []struct {
		verdict activities.Verdict
		message string
		value   bool
	}{
		{activities.VerdictPass, "in-range 42.00 within [40, 50]", true},
		{activities.VerdictFail, "below-min 42.00 < 42.5", true},
		{activities.VerdictFail, "above-max 42.00 > 41", true},
		{activities.VerdictPass, "on-the-bound 42.00 <= 42", true},
		{activities.VerdictFail, "no-data-default: no values found", false},
		{activities.VerdictFail, "no-data-fail: no values found", false},
		{activities.VerdictPass, "no-data-pass: no values found (onNoData: pass)", false},
		{activities.VerdictHold, "no-data-hold: no values found (onNoData: hold)", false},
		{activities.VerdictHold, "nan-is-no-data: no values found", false},
	}
	for i, w := range want {
		got := r.Results[i]
		require.Equal(t, in.Metrics[i].Name, got.Metric)
		require.Equal(t, w.verdict, got.Verdict, got.Message)
		require.True(t, strings.HasPrefix(got.Message, w.message), "%q does not start with %q", got.Message, w.message)
		require.Equal(t, w.value, got.Value != nil)
		require.NotEmpty(t, got.Query)
	}
	require.Equal(t, "vector(42)", r.Results[0].Query)
	require.Equal(t, `absent_metric_xyz{namespace="good"}`, r.Results[4].Query)
	require.Equal(t, 40.0, *r.Results[0].Min)
	require.Equal(t, 50.0, *r.Results[0].Max)

	// The result is what workflow history records: it must survive JSON.
	b, err := json.Marshal(r)
	require.NoError(t, err)
	require.Contains(t, string(b), `"verdict":"hold"`)
}

func requireAppErr(t *testing.T, err error, typ string, contains ...string) {
	t.Helper()
	require.Error(t, err)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an application error, got %T %v", err, err)
	require.Equal(t, typ, ae.Type())
	require.True(t, ae.NonRetryable())
	for _, c := range contains {
		require.Contains(t, err.Error(), c)
	}
}

// Problems of the spec are non-retryable errors that say what to fix; a backend that is down is a plain
// (retryable) error.
func TestMetricSpecProblemsAreNonRetryableAndBackendOutagesRetryable(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	a := &activities.Analysis{DefaultMetricsServer: downURL, Secrets: fakeSecrets{}}
	tpl := v1beta1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "t", Namespace: "good"},
		Spec: v1beta1.MetricTemplateSpec{Provider: v1beta1.MetricTemplateProvider{Type: "prometheus"}, Query: "vector({{ variables.missing }})"}}
	ctx := context.Background()

	_, err := a.RunMetricChecks(ctx, defaulted(activities.MetricChecksInput{Canary: canaryRef("traefik", "good"), Templates: []v1beta1.MetricTemplate{tpl},
		Metrics: []v1beta1.CanaryMetric{{Name: "m", TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "t"}}}}))
	requireAppErr(t, err, activities.ErrTypeInvalidMetric, "missing")

	_, err = a.RunMetricChecks(ctx, defaulted(activities.MetricChecksInput{Canary: canaryRef("smi", "good"), Metrics: builtinChecks("1m")}))
	requireAppErr(t, err, activities.ErrTypeInvalidMetric, `provider "smi" has no builtin query`)

	_, err = a.RunMetricChecks(ctx, defaulted(activities.MetricChecksInput{Canary: canaryRef("traefik", "good"),
		Metrics: []v1beta1.CanaryMetric{{Name: "m", TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "absent"}}}}))
	requireAppErr(t, err, activities.ErrTypeInvalidMetric, "MetricTemplate good/absent")

	tpl.Spec.Query = "vector(1)"
	tpl.Spec.Provider.Type = "appdynamics"
	_, err = a.RunMetricChecks(ctx, defaulted(activities.MetricChecksInput{Canary: canaryRef("traefik", "good"), Templates: []v1beta1.MetricTemplate{tpl},
		Metrics: []v1beta1.CanaryMetric{{Name: "m", TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "t"}}}}))
	requireAppErr(t, err, activities.ErrTypeInvalidMetric, `unknown provider type "appdynamics"`)

	tpl.Spec.Provider = v1beta1.MetricTemplateProvider{Type: "datadog", SecretRef: &corev1.LocalObjectReference{Name: "dd"}}
	a.Secrets = fakeSecrets{"good/dd": {"datadog_api_key": []byte("k")}}
	_, err = a.RunMetricChecks(ctx, defaulted(activities.MetricChecksInput{Canary: canaryRef("traefik", "good"), Templates: []v1beta1.MetricTemplate{tpl},
		Metrics: []v1beta1.CanaryMetric{{Name: "m", TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "t"}}}}))
	requireAppErr(t, err, activities.ErrTypeInvalidMetric, `no key "datadog_application_key"`)

	_, err = a.RunMetricChecks(ctx, defaulted(activities.MetricChecksInput{Canary: canaryRef("traefik", "good"), Metrics: builtinChecks("1m")}))
	require.Error(t, err)
	var ae *temporal.ApplicationError
	require.False(t, errors.As(err, &ae), "an unreachable backend is retried: %v", err)
	require.Contains(t, err.Error(), "request-success-rate")
}

// A MetricTemplate's Prometheus credentials come from its Secret, are sent as the backend expects, and appear
// nowhere in the result.
func TestPrometheusCredentialsFromTheTemplateSecretStayOutOfResults(t *testing.T) {
	var gotAuth, gotTenant, gotQuery string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		gotAuth, gotTenant, gotQuery = r.Header.Get("Authorization"), r.Header.Get("X-Scope-OrgID"), r.Form.Get("query")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"99.5"]}]}}`)
	}))
	defer srv.Close()
	a := &activities.Analysis{Secrets: fakeSecrets{"obs/prom-auth": {"token": []byte("s3cr3t-bearer"), "headers": []byte("X-Scope-OrgID: team-a\n")}}}
	tpl := v1beta1.MetricTemplate{ObjectMeta: metav1.ObjectMeta{Name: "rate", Namespace: "obs"},
		Spec: v1beta1.MetricTemplateSpec{
			Provider: v1beta1.MetricTemplateProvider{Type: "prometheus", Address: srv.URL, SecretRef: &corev1.LocalObjectReference{Name: "prom-auth"}},
			Query:    `sum(rate(x{ns="{{ namespace }}",app="{{ target }}"}[{{ interval }}]))`}}
	r, err := a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{
		Canary: canaryRef("traefik", "good"), Templates: []v1beta1.MetricTemplate{tpl},
		Metrics: []v1beta1.CanaryMetric{{Name: "rate", Interval: "2m", TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "rate", Namespace: "obs"},
			ThresholdRange: &v1beta1.CanaryThresholdRange{Min: f64(99)}}},
	}))
	require.NoError(t, err)
	require.Equal(t, "Bearer s3cr3t-bearer", gotAuth)
	require.Equal(t, "team-a", gotTenant)
	require.Equal(t, `sum(rate(x{ns="good",app="podinfo"}[2m]))`, gotQuery)
	require.Equal(t, activities.VerdictPass, r.Results[0].Verdict)
	b, _ := json.Marshal(r)
	require.NotContains(t, string(b), "s3cr3t")
	require.NotContains(t, string(b), "team-a")
}

// A metrics backend that accepts connections and never answers fails the check within the query timeout, as a
// failed check, instead of an activity error that Temporal would retry for minutes.
func TestAHungMetricsBackendFailsTheCheckWithinTheQueryTimeout(t *testing.T) {
	hung := hungServer(t)
	a := &activities.Analysis{DefaultMetricsServer: hung.URL}
	ref := canaryRef("traefik", "test")
	ref.Interval = "10s"

	done := make(chan struct{})
	var res activities.MetricChecksResult
	var err error
	go func() {
		defer close(done)
		res, err = a.RunMetricChecks(context.Background(), defaulted(activities.MetricChecksInput{Canary: ref, Metrics: builtinChecks("1m")}))
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second): // generous: two 5 s timeouts are expected
		t.Fatal("the checks did not return: the query is not bounded")
	}
	require.NoError(t, err, "a timeout is a failed check, not an error to retry")
	require.Len(t, res.Results, 2)
	for _, r := range res.Results {
		require.Equal(t, activities.VerdictFail, r.Verdict)
		require.Contains(t, r.Message, "query timed out after 5s: the metrics backend did not answer")
	}
}

func TestQueryTimeoutFollowsTheInterval(t *testing.T) {
	for interval, want := range map[string]time.Duration{"10s": 5 * time.Second, "1m": 15 * time.Second, "5m": 30 * time.Second, "": 5 * time.Second} {
		require.Equal(t, want, activities.QueryTimeout(interval), interval)
	}
}

// The activity words a check once, as Flagger words a failed check: the workflow halts with this message and
// `starter history` prints it, so it must read as Flagger's "Halt … advancement <why>" does.
func TestJudgeWordsAFailureAsFlaggerDoes(t *testing.T) {
	for _, tc := range []struct {
		metric  string
		v       float64
		lo, hi  *float64
		verdict activities.Verdict
		message string
	}{
		{v1beta1.MetricRequestSuccessRate, 53.421, f64(99), nil, activities.VerdictFail, "success rate 53.42% < 99%"},
		{v1beta1.MetricRequestSuccessRate, 99.5, f64(99), nil, activities.VerdictPass, "request-success-rate 99.50 >= 99"},
		{v1beta1.MetricRequestDuration, 812, nil, f64(500), activities.VerdictFail, "request duration 812ms > 500ms"},
		{v1beta1.MetricRequestDuration, 4873.33, nil, f64(500), activities.VerdictFail, "request duration 4.873s > 500ms"},
		{"error-rate", 3, nil, f64(1), activities.VerdictFail, "error-rate 3.00 > 1"},
		{"cpu", 0.2, f64(0.5), f64(2), activities.VerdictFail, "cpu 0.20 < 0.5"},
	} {
		verdict, message := activities.Judge(tc.metric, tc.v, tc.lo, tc.hi)
		require.Equal(t, tc.verdict, verdict, tc.message)
		require.Equal(t, tc.message, message)
	}
}
