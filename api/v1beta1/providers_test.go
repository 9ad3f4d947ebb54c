package v1beta1

import (
	"testing"

	"github.com/stretchr/testify/require"
)

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
