package v1beta1

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Provider names are read as Flagger's router factory reads them; the names Flagger silently sends to its Istio
// router are refused, each with what to write instead.
func TestParseProviderReadsFlaggersNamesAndRefusesItsIstioFallback(t *testing.T) {
	for _, tc := range []struct {
		provider, base, err string
	}{
		{"", "kubernetes", ""},
		{"istio", "istio", ""},
		{"contour", "contour", ""},
		{"skipper", "skipper", ""},
		{"linkerd", "linkerd", ""},
		{"osm", "osm", ""},
		{"kuma", "kuma", ""},
		{"appmesh", "appmesh", ""},
		{"appmesh:v1beta2", "appmesh", ""},
		{"gatewayapi:v1", "gatewayapi", ""},
		{"gatewayapi:v1beta1", "gatewayapi", ""},
		{"smi:v1alpha1", "smi", ""},
		{"smi:v1alpha3:linkerd", "smi", ""},
		{"smi:v1alpha2:osm", "smi", ""},
		{"gloo", "gloo", ""},
		{"gloo:v1", "gloo", ""},
		{" traefik ", "traefik", ""},
		{"gatewayapi", "", "write gatewayapi:v1"},
		{"gatewayapi:v0", "", "write gatewayapi:v1"},
		{"smi", "", "write smi:v1alpha1, smi:v1alpha2 or smi:v1alpha3"},
		{"smi:v1beta1", "", "write smi:v1alpha1"},
		{"appmesh:v1beta1", "", "write appmesh:v1beta2"},
		{"Istio", "", "write istio"},
		{"istio:v1", "", "write istio"},
		{"contour:v1", "", "write contour"},
		{"NGINX", "", "write nginx"},
		{"haproxy", "", `unknown provider "haproxy"`},
		{"istioo", "", `unknown provider "istioo"`},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			base, err := ParseProvider(tc.provider)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				require.ErrorContains(t, err, "istio", "the message says what Flagger would have done")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.base, base)
		})
	}
}

func TestValidationRefusesAProviderFlaggerWouldReadAsIstio(t *testing.T) {
	caps := &Capabilities{Routers: map[string]Traffic{"istio": {Weights: true}, "gatewayapi": {Weights: true}, "kubernetes": {}}}
	for provider, want := range map[string]string{
		"gatewayapi": "write gatewayapi:v1",
		"Istio":      "write istio",
		"mesh":       `unknown provider "mesh"`,
	} {
		c := &Canary{}
		c.Name, c.Namespace = "podinfo", "test"
		c.Spec.Provider = provider
		c.Spec.TargetRef = LocalObjectReference{Kind: "Deployment", Name: "podinfo"}
		c.Spec.Service.Port = 9898
		c.Spec.SkipAnalysis = true
		errs := c.Validate(caps, RefCheck{})
		require.NotEmpty(t, errs, provider)
		require.Contains(t, errs[0].Error(), "spec.provider")
		require.Contains(t, errs[0].Error(), want)
		require.Contains(t, errs[0].Error(), "this build has routers for gatewayapi, istio, kubernetes")
	}
}

// The TrafficSplit version each provider name selects is Flagger's factory's; what Flagger would silently route
// with Istio is an error naming the choices.
func TestSMIVersionIsFlaggersChoiceOrAnError(t *testing.T) {
	for _, tc := range []struct {
		provider, version string
	}{
		{"linkerd", "v1alpha1"},
		{"osm", "v1alpha2"},
		{"smi:v1alpha1", "v1alpha1"},
		{"smi:v1alpha1:linkerd", "v1alpha1"},
		{"SMI:v1alpha2:osm", "v1alpha2"},
		{"smi:v1alpha3", "v1alpha3"},
		{"smi:v1alpha3:istio", "v1alpha3"},
		{"smi", ""},
		{"smi:istio", ""},
		{"smi:v1alpha4", ""},
		{"smi:v1alpha10", ""},
	} {
		t.Run(tc.provider, func(t *testing.T) {
			v, err := SMIVersion(tc.provider)
			if tc.version == "" {
				require.ErrorContains(t, err, "names no TrafficSplit version: use smi:v1alpha1, smi:v1alpha2 or smi:v1alpha3")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.version, v)
		})
	}
}
