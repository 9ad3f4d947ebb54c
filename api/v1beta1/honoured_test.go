package v1beta1

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// flagger144Canary is a Canary using the options Flagger v1.44 added, for the given provider.
func flagger144Canary(provider string) string {
	return `
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: ` + provider + `
  targetRef: {kind: Deployment, name: podinfo}
  service:
    port: 9898
    gatewayRefs: [{name: gw}]
    backendTimeout: 5s
    rewrite: {uri: /v2, type: ReplaceFullPath}
    mirror:
      - backendRef: {name: shadow, port: 9898}
    headless: true
    trafficDistribution: PreferClose
    unmanagedMetadata: {annotations: [external-dns.alpha.kubernetes.io/hostname], labels: [team]}
  analysis:
    interval: 1m
    stepWeight: 10
    sessionAffinity:
      cookieName: canary
      domain: example.com
      path: /app
      sameSite: Strict
      secure: true
      httpOnly: false
      partitioned: true
status:
  sessionAffinityCookie: canary=abc
  primarySessionAffinityCookie: primary=def
  previousSessionAffinityCookie: canary=xyz
`
}

func TestFieldsIgnoredByTheChosenProviderAreNamedInWarnings(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []string // the paths that warn, in table order
	}{
		{"gatewayapi honours every v1.44 option", flagger144Canary("gatewayapi:v1"), nil},
		{"traefik sets the cookie attributes but has no backend timeout, mirror filters, rewrite or Partitioned",
			flagger144Canary("traefik"), []string{"spec.service.backendTimeout", "spec.service.mirror", "spec.service.rewrite",
				"spec.service.gatewayRefs", "spec.analysis.sessionAffinity.partitioned"}},
		{"a router this build lacks", strings.Replace(canaryWith("provider: kubernetes", "iterations: 3"), "service: {port: 9898}",
			"service: {port: 9898, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}, retries: {attempts: 3}}", 1),
			[]string{"spec.service.trafficPolicy", "spec.service.retries"}},
		{"primaryScalerQueries with an HPA", canaryWith("provider: kubernetes\n  autoscalerRef: {kind: HorizontalPodAutoscaler, name: podinfo, primaryScalerQueries: {a: up}}", "iterations: 3"),
			[]string{"spec.autoscalerRef.primaryScalerQueries"}},
		{"primaryScalerQueries with a ScaledObject", canaryWith("provider: kubernetes\n  autoscalerRef: {apiVersion: keda.sh/v1alpha1, kind: ScaledObject, name: podinfo, primaryScalerQueries: {a: up}}", "iterations: 3"), nil},
		{"MetricTemplate headers", `
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata: {name: latency, namespace: test}
spec:
  provider: {type: prometheus, address: http://prometheus:9090, headers: {X-Scope-OrgID: [tenant-a]}}
  query: up
`, []string{"spec.provider.headers"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set, err := Load(strings.NewReader(tc.doc), "inline", ValidateOptions{Capabilities: designCaps})
			require.NoError(t, err)
			var got []string
			for _, w := range set.Warnings {
				_, rest, _ := strings.Cut(w, ": ")
				path, _, _ := strings.Cut(rest, " ")
				require.Contains(t, w, "is ignored", "every warning here says the field is ignored")
				got = append(got, path)
			}
			require.Equal(t, tc.want, got, "warnings: %q", set.Warnings)
		})
	}
}

func TestFlagger144OptionsAreCheckedWithTheirPath(t *testing.T) {
	cases := []struct {
		name, from, to string
		path           string
	}{
		{"traffic distribution", "trafficDistribution: PreferClose", "trafficDistribution: Nearby", "spec.service.trafficDistribution"},
		{"rewrite type", "type: ReplaceFullPath", "type: Full", "spec.service.rewrite.type"},
		{"backend timeout", "backendTimeout: 5s", "backendTimeout: soon", "spec.service.backendTimeout"},
		{"mirror port of a Service", "{name: shadow, port: 9898}", "{name: shadow}", "spec.service.mirror[0].backendRef.port"},
		{"mirror name", "{name: shadow, port: 9898}", "{port: 9898}", "spec.service.mirror[0].backendRef.name"},
		{"cookie SameSite", "sameSite: Strict", "sameSite: strict", "spec.analysis.sessionAffinity.sameSite"},
		{"unmanaged key", "labels: [team]", `labels: [""]`, "spec.service.unmanagedMetadata.labels[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := flagger144Canary("gatewayapi:v1")
			require.Contains(t, doc, tc.from)
			_, err := Load(strings.NewReader(strings.Replace(doc, tc.from, tc.to, 1)), "inline", ValidateOptions{Capabilities: designCaps})
			var list ErrorList
			require.ErrorAs(t, err, &list)
			require.Equal(t, []string{tc.path}, list.Paths(), "%v", err)
		})
	}
}

func TestAutoscalerRefAcceptsKEDAScaledObjects(t *testing.T) {
	cases := []struct {
		name, ref, target string
		paths             []string
	}{
		{"HorizontalPodAutoscaler", "{kind: HorizontalPodAutoscaler, name: podinfo}", "Deployment", nil},
		{"ScaledObject", "{apiVersion: keda.sh/v1alpha1, kind: ScaledObject, name: podinfo}", "Deployment", nil},
		{"ScaledObject without apiVersion", "{kind: ScaledObject, name: podinfo}", "Deployment", nil},
		{"ScaledObject of another version", "{apiVersion: keda.sh/v2, kind: ScaledObject, name: podinfo}", "Deployment", []string{"spec.autoscalerRef.apiVersion"}},
		{"ScaledObject of a DaemonSet", "{kind: ScaledObject, name: podinfo}", "DaemonSet", []string{"spec.autoscalerRef.kind"}},
		{"another kind", "{kind: VerticalPodAutoscaler, name: podinfo}", "Deployment", []string{"spec.autoscalerRef.kind"}},
		{"no name", "{kind: ScaledObject}", "Deployment", []string{"spec.autoscalerRef.name"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(canaryWith("provider: kubernetes\n  autoscalerRef: "+tc.ref, "iterations: 3"),
				"kind: Deployment", "kind: "+tc.target, 1)
			_, err := Load(strings.NewReader(doc), "inline", ValidateOptions{Capabilities: designCaps})
			if tc.paths == nil {
				require.NoError(t, err)
				return
			}
			var list ErrorList
			require.ErrorAs(t, err, &list)
			require.Equal(t, tc.paths, list.Paths(), "%v", err)
		})
	}
}

// A part of a field the router acts on is named when the router ignores it (Istio rewrites the URI but has no
// Gateway API rewrite type); a field ignored as a whole is named once, not again for each of its parts.
func TestIgnoredPartOfAnHonouredFieldIsNamedOnce(t *testing.T) {
	caps := &Capabilities{Routers: map[string]Traffic{
		"istio":      {Honours: []string{"spec.service.rewrite"}},
		"gatewayapi": {Honours: []string{"spec.service.rewrite", "spec.service.rewrite.type"}},
		"traefik":    {},
	}}
	for provider, want := range map[string][]string{
		"istio":         {"spec.service.rewrite.type is ignored: provider istio does not act on it (Gateway API URL rewrite type; routers that do: gatewayapi)"},
		"gatewayapi:v1": nil,
		"traefik":       {"spec.service.rewrite is ignored: provider traefik does not act on it (URI rewrite; routers that do: gatewayapi, istio)"},
	} {
		c := &Canary{}
		c.Spec.Provider = provider
		c.Spec.Service.Rewrite = &HTTPRewrite{URI: "/", Type: "ReplaceFullPath"}
		require.Equal(t, want, c.NotHonoured(caps), provider)
	}
}
