package v1beta1

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func metricTemplateDoc(provider, query string) string {
	return "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: m, namespace: test}\nspec:\n  provider: " +
		provider + "\n  query: |\n    " + query + "\n"
}

// Each backend Flagger has validates as Flagger's docs write its MetricTemplate; the ones that need an address
// or credentials are refused without them, naming the field and what to put there.
func TestMetricTemplatesOfEveryFlaggerBackend(t *testing.T) {
	for _, tc := range []struct {
		name, provider, query string
		path, message         string // empty: valid
	}{
		{name: "influxdb", provider: "{type: influxdb, address: 'http://influxdb.monitoring:8086', secretRef: {name: influx}}",
			query: `from(bucket: "{{ namespace }}") |> range(start: -{{ interval }})`},
		{name: "influxdb without address", provider: "{type: influxdb}", query: "x",
			path: "spec.provider.address", message: "required with influxdb: the InfluxDB URL"},
		{name: "stackdriver", provider: "{type: stackdriver, secretRef: {name: gcloud}}",
			query: "fetch k8s_container | metric 'istio.io/service/server/response_latencies' | filter (metric.destination_service_name == '{{ service }}-canary')"},
		{name: "stackdriver without Secret", provider: "{type: stackdriver}", query: "fetch k8s_container",
			path: "spec.provider.secretRef", message: "required with stackdriver: name a Secret holding project"},
		{name: "dynatrace", provider: "{type: dynatrace, address: 'https://xxxxxxxx.live.dynatrace.com', secretRef: {name: dynatrace}}",
			query: `builtin:service.response.time:filter(eq(dt.entity.service,"{{ target }}")):percentile(99)`},
		{name: "dynatrace without token", provider: "{type: dynatrace, address: 'https://xxxxxxxx.live.dynatrace.com'}", query: "x",
			path: "spec.provider.secretRef", message: "dynatrace_token"},
		{name: "keptn", provider: "{type: keptn}", query: "analysis/{{ namespace }}/{{ target }}-slo/2m/workload={{ target }}"},
		{name: "splunk", provider: "{type: splunk, address: 'https://api.us1.signalfx.com', secretRef: {name: splunk}}",
			query: `data("requests", filter=filter("service", "{{ target }}-canary")).sum().publish()`},
		{name: "splunk without address", provider: "{type: splunk, secretRef: {name: splunk}}", query: "x",
			path: "spec.provider.address", message: "the realm's API URL"},
		{name: "graphite without address", provider: "{type: graphite}", query: "target=x",
			path: "spec.provider.address", message: "required with graphite"},
		{name: "unknown type names the field and every accepted value", provider: "{type: appdynamics}", query: "x",
			path: "spec.provider.type", message: `unknown metric provider "appdynamics": use one of cloudwatch, datadog, dynatrace, graphite, influxdb, keptn, newrelic, prometheus, splunk, stackdriver`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(metricTemplateDoc(tc.provider, tc.query)), "doc", ValidateOptions{Capabilities: designCaps})
			if tc.path == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.path+": ")
			require.ErrorContains(t, err, tc.message)
		})
	}
}

// A build without one of Flagger's backends says so, rather than calling Flagger's name unknown.
func TestAFlaggerBackendMissingFromTheBuildIsNamedAsSuch(t *testing.T) {
	caps := *designCaps
	caps.MetricBackends = map[string]bool{"prometheus": true}
	_, err := Load(strings.NewReader(metricTemplateDoc("{type: keptn}", "keptnmetric/test/m")), "doc", ValidateOptions{Capabilities: &caps})
	require.ErrorContains(t, err, `spec.provider.type: metric provider "keptn" has no backend in this build of canaryflow: use one of prometheus`)
}
