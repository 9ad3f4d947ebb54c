package router

import (
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// tutorialIngress is the Ingress of Flagger's NGINX tutorial, as kubectl apply leaves it, with a stray canary
// annotation that must not reach the clone.
func tutorialIngress() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
		"metadata": map[string]any{
			"name": "podinfo", "namespace": "test",
			"labels": map[string]any{"app": "podinfo", "kustomize.toolkit.fluxcd.io/name": "apps"},
			"annotations": map[string]any{
				"kubernetes.io/ingress.class":                      "nginx",
				"kubectl.kubernetes.io/last-applied-configuration": "{}",
				"nginx.ingress.kubernetes.io/canary-weight":        "30",
				"nginx.ingress.kubernetes.io/proxy-body-size":      "8m",
			},
		},
		"spec": map[string]any{"rules": []any{
			map[string]any{"host": "app.example.com", "http": map[string]any{"paths": []any{
				map[string]any{"path": "/", "pathType": "Prefix",
					"backend": map[string]any{"service": map[string]any{"name": "podinfo", "port": map[string]any{"number": int64(80)}}}},
				map[string]any{"path": "/static", "pathType": "Prefix",
					"backend": map[string]any{"service": map[string]any{"name": "assets", "port": map[string]any{"number": int64(80)}}}},
			}}},
		}},
	}}
}

func nginxCanary(mod func(*v1beta1.Canary)) *v1beta1.Canary {
	return testCanary(func(c *v1beta1.Canary) {
		c.Spec.Provider = "nginx"
		c.Spec.Service.Port = 80
		c.Spec.IngressRef = &v1beta1.LocalObjectReference{APIVersion: "networking.k8s.io/v1", Kind: "Ingress", Name: "podinfo"}
		if mod != nil {
			mod(c)
		}
	})
}

// seedAB is the match of api/v1beta1/testdata/flagger/nginx-ab-testing.yaml.
func seedAB(c *v1beta1.Canary) {
	c.Spec.Analysis.Iterations = 10
	c.Spec.Analysis.Match = []v1beta1.HTTPMatchRequest{
		{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}},
		{Headers: map[string]v1beta1.StringMatch{"cookie": {Regex: "^(.*?;)?(canary=always)(;.*)?$"}}},
	}
}

func TestNGINXCanaryIngressAnnotationsAreFlaggers(t *testing.T) {
	const p = "nginx.ingress.kubernetes.io/"
	keep := map[string]string{
		"kubernetes.io/ingress.class": "nginx", p + "proxy-body-size": "8m",
		"kustomize.toolkit.fluxcd.io/reconcile": "disabled", "helm.toolkit.fluxcd.io/driftDetection": "disabled",
		"canaryflow.io/canary": "test/podinfo",
	}
	with := func(split map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range keep {
			out[k] = v
		}
		for k, v := range split {
			out[k] = v
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		mod    func(*v1beta1.Canary)
		weight int
		want   map[string]string
	}{
		{"initialised", nil, 0, with(map[string]string{p + "canary": "true", p + "canary-weight": "0"})},
		{"10 %", nil, 10, with(map[string]string{p + "canary": "true", p + "canary-weight": "10"})},
		{"50 %", nil, 50, with(map[string]string{p + "canary": "true", p + "canary-weight": "50"})},
		{"A/B on", seedAB, 100, with(map[string]string{p + "canary": "true", p + "canary-weight": "0",
			p + "canary-by-header": "x-canary", p + "canary-by-header-value": "insider", p + "canary-by-cookie": "canary"})},
		{"A/B reset at 0", seedAB, 0, with(map[string]string{p + "canary": "true", p + "canary-weight": "0"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &NGINX{prefix: DefaultIngressAnnotationsPrefix}
			c := nginxCanary(tc.mod)
			u, err := n.canaryIngress(c, tutorialIngress(), tc.weight)
			require.NoError(t, err)
			require.Equal(t, "podinfo-canary", u.GetName())
			require.Equal(t, tc.want, u.GetAnnotations())
			require.Equal(t, map[string]string{"app": "podinfo", "kustomize.toolkit.fluxcd.io/name": "apps",
				"app.kubernetes.io/managed-by": "canaryflow"}, u.GetLabels())
			paths, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
			backends := []string{}
			for _, p := range paths[0].(map[string]any)["http"].(map[string]any)["paths"].([]any) {
				backends = append(backends, p.(map[string]any)["backend"].(map[string]any)["service"].(map[string]any)["name"].(string))
			}
			require.Equal(t, []string{"podinfo-canary", "assets"}, backends, "only the apex backend moves to the canary Service")

			w, err := n.canaryWeightOf(c, u.DeepCopy())
			require.NoError(t, err)
			require.Equal(t, tc.weight, w, "the split reads back as written")
		})
	}
	user := tutorialIngress()
	_, err := (&NGINX{prefix: DefaultIngressAnnotationsPrefix}).canaryIngress(nginxCanary(nil), user, 0)
	require.NoError(t, err)
	require.Equal(t, tutorialIngress(), user, "the user's Ingress is not changed")
}

func TestNGINXAnnotationsPrefixIsConfigurable(t *testing.T) {
	n := NewRegistryForClients(Clients{IngressAnnotationsPrefix: "custom.ingress.kubernetes.io"})
	rt, err := n.Get("nginx")
	require.NoError(t, err)
	u, err := rt.(*NGINX).canaryIngress(nginxCanary(nil), tutorialIngress(), 50)
	require.NoError(t, err)
	a := u.GetAnnotations()
	require.Equal(t, "true", a["custom.ingress.kubernetes.io/canary"])
	require.Equal(t, "50", a["custom.ingress.kubernetes.io/canary-weight"])
	require.Equal(t, "30", a["nginx.ingress.kubernetes.io/canary-weight"], "another prefix's annotations are the user's, copied as they are")

	def, err := NewRegistryForClients(Clients{}).Get("nginx")
	require.NoError(t, err)
	require.Equal(t, DefaultIngressAnnotationsPrefix, def.(*NGINX).prefix)
}

func TestNGINXMatches(t *testing.T) {
	h := func(kv ...any) v1beta1.HTTPMatchRequest {
		m := v1beta1.HTTPMatchRequest{Headers: map[string]v1beta1.StringMatch{}}
		for i := 0; i+1 < len(kv); i += 2 {
			m.Headers[kv[i].(string)] = kv[i+1].(v1beta1.StringMatch)
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		match   []v1beta1.HTTPMatchRequest
		want    nginxMatch
		wantErr string
	}{
		{"seed: header or cookie", []v1beta1.HTTPMatchRequest{h("x-canary", v1beta1.StringMatch{Exact: "insider"}),
			h("cookie", v1beta1.StringMatch{Regex: "^(.*?;)?(canary=always)(;.*)?$"})},
			nginxMatch{header: "x-canary", value: "insider", cookie: "canary"}, ""},
		{"Flagger's cookie form", []v1beta1.HTTPMatchRequest{h("cookie", v1beta1.StringMatch{Exact: "canary"})}, nginxMatch{cookie: "canary"}, ""},
		{"regex", []v1beta1.HTTPMatchRequest{h("user-agent", v1beta1.StringMatch{Regex: ".*Firefox.*"})},
			nginxMatch{header: "user-agent", pattern: ".*Firefox.*"}, ""},
		{"prefix", []v1beta1.HTTPMatchRequest{h("user-agent", v1beta1.StringMatch{Prefix: "curl/7."})},
			nginxMatch{header: "user-agent", pattern: `^curl/7\.`}, ""},
		{"suffix", []v1beta1.HTTPMatchRequest{h("x-user", v1beta1.StringMatch{Suffix: "@example.com"})},
			nginxMatch{header: "x-user", pattern: `@example\.com$`}, ""},
		{"two headers in one match", []v1beta1.HTTPMatchRequest{h("a", v1beta1.StringMatch{Exact: "1"}, "b", v1beta1.StringMatch{Exact: "2"})},
			nginxMatch{}, "spec.analysis.match[0]: provider nginx cannot require 2 headers at once"},
		{"two header rules", []v1beta1.HTTPMatchRequest{h("a", v1beta1.StringMatch{Exact: "1"}), h("b", v1beta1.StringMatch{Exact: "2"})},
			nginxMatch{}, `spec.analysis.match[1]: a second header condition on "b" after one on "a"`},
		{"another cookie regex", []v1beta1.HTTPMatchRequest{h("cookie", v1beta1.StringMatch{Regex: "beta"})},
			nginxMatch{}, `spec.analysis.match[0].headers.cookie: provider nginx routes by a cookie set to "always" only`},
		{"uri", []v1beta1.HTTPMatchRequest{{URI: &v1beta1.StringMatch{Prefix: "/beta"}}},
			nginxMatch{}, "spec.analysis.match[0]: provider nginx matches headers only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := nginxMatchOf(tc.match)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, *got)
		})
	}
}

func TestNGINXRefusesWhatItCannotWrite(t *testing.T) {
	n := &NGINX{prefix: DefaultIngressAnnotationsPrefix}
	_, err := n.canaryIngress(nginxCanary(seedAB), tutorialIngress(), 50)
	require.ErrorContains(t, err, "A/B testing takes 0 or 100 % canary weight, not 50")

	other := tutorialIngress()
	other.Object["spec"] = map[string]any{"defaultBackend": map[string]any{"service": map[string]any{"name": "web"}}}
	_, err = n.canaryIngress(nginxCanary(nil), other, 0)
	require.ErrorContains(t, err, "Ingress test/podinfo (spec.ingressRef) has no backend on Service podinfo")

	catchAll := tutorialIngress()
	catchAll.Object["spec"] = map[string]any{"defaultBackend": map[string]any{"service": map[string]any{"name": "podinfo"}}}
	u, err := n.canaryIngress(nginxCanary(nil), catchAll, 0)
	require.NoError(t, err)
	name, _, _ := unstructured.NestedString(u.Object, "spec", "defaultBackend", "service", "name")
	require.Equal(t, "podinfo-canary", name)
}
