package metrics

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRenderOffersEveryVariableAsFunctionAndAsData(t *testing.T) {
	m := Model{Name: "app", Namespace: "prod", Target: "app-deploy", Service: "app-svc", Ingress: "app-ing",
		Route: "app-route", Interval: "1m", Variables: map[string]string{"region": "eu-1"}}
	// Flagger's spelling (functions)…
	got, err := Render(`{{ name }}|{{ namespace }}|{{ target }}|{{ service }}|{{ ingress }}|{{ route }}|{{ interval }}|{{ variables.region }}`, m)
	require.NoError(t, err)
	require.Equal(t, "app|prod|app-deploy|app-svc|app-ing|app-route|1m|eu-1", got)
	// …and the data spelling give the same values.
	got, err = Render(`{{ .name }}|{{ .namespace }}|{{ .target }}|{{ .service }}|{{ .ingress }}|{{ .route }}|{{ .interval }}|{{ .variables.region }}`, m)
	require.NoError(t, err)
	require.Equal(t, "app|prod|app-deploy|app-svc|app-ing|app-route|1m|eu-1", got)
}

func TestRenderRefusesAMissingKeyAndNamesIt(t *testing.T) {
	m := Model{Namespace: "prod", Variables: map[string]string{"region": "eu-1"}}
	for _, q := range []string{`x{a="{{ variables.zone }}"}`, `x{a="{{ .variables.zone }}"}`} {
		_, err := Render(q, m)
		require.Error(t, err, q)
		require.Contains(t, err.Error(), `"zone"`, q)
	}
	_, err := Render(`{{ .nmespace }}`, m)
	require.ErrorContains(t, err, "nmespace")
	_, err = Render(`{{ nmespace }}`, m)
	require.ErrorContains(t, err, "nmespace")
	// No variables at all is a missing key too, not an empty string.
	_, err = Render(`{{ variables.zone }}`, Model{})
	require.ErrorContains(t, err, "zone")
}

func TestSkipperRouteNamesUseUnderscoresForNonWordCharacters(t *testing.T) {
	q, ok := BuiltinQuery("skipper", RequestSuccessRate)
	require.True(t, ok)
	got, err := Render(q, Model{Namespace: "my-ns", Ingress: "web.app", Service: "web-app", Interval: "1m"})
	require.NoError(t, err)
	require.Contains(t, got, `route=~"kube(ew)?_my_ns__web_app_canary__.*__web_app_canary(_[0-9]+)?"`)
}

// The apisix router names its route after the apex Service (spec.service.name when set), so the builtin queries
// select it by service, not by the target's name.
func TestAPISIXQueriesSelectTheCanaryRouteNamedAfterTheApexService(t *testing.T) {
	for _, metric := range []string{RequestSuccessRate, RequestDuration} {
		q, ok := BuiltinQuery("apisix", metric)
		require.True(t, ok)
		got, err := Render(q, Model{Namespace: "test", Target: "podinfo", Service: "web", Route: "gateway", Interval: "1m"})
		require.NoError(t, err)
		require.Contains(t, got, `route=~"test_gateway-web-canary_.+"`)
	}
}
