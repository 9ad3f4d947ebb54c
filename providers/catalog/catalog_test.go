package catalog

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/router"
)

// Every seed document validates against this build exactly when this build can run it: its provider has a
// router here that does what the document asks. The rest are refused naming the field, never accepted and then
// broken at the first activity.
func TestSeedDocumentsValidateExactlyWhenThisBuildCanRunThem(t *testing.T) {
	files, err := filepath.Glob("../../api/v1beta1/testdata/flagger/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	caps := Capabilities()
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := v1beta1.LoadFile(f, v1beta1.ValidateOptions{Capabilities: caps})
			provider := strings.SplitN(filepath.Base(f), "-", 2)[0]
			if _, ok := caps.Routers[provider]; !ok {
				require.Error(t, err)
				assert.Contains(t, err.Error(), `spec.provider: provider "`+provider+`" has no router in this build`)
				assert.Contains(t, err.Error(), strings.Join(router.Providers(), ", "), "the error names the routers this build has")
				return
			}
			if provider == "apisix" && strings.Contains(f, "session-affinity") {
				require.ErrorContains(t, err, "spec.analysis.sessionAffinity: provider apisix cannot keep session affinity")
				return
			}
			// ingress-nginx takes mirror-target and the affinity cookie from the main Ingress only, the user's,
			// which canaryflow does not write (providers/router/lab_nginx_test.go): Flagger ignores both there.
			if provider == "nginx" && strings.Contains(f, "mirroring") {
				require.ErrorContains(t, err, "spec.analysis.mirror: provider nginx cannot mirror traffic")
				return
			}
			if provider == "nginx" && strings.Contains(f, "session-affinity") {
				require.ErrorContains(t, err, "spec.analysis.sessionAffinity: provider nginx cannot keep session affinity")
				return
			}
			require.NoError(t, err)
		})
	}
}

// A comparison can be validated for exactly what the build can run: a primary form for every builtin provider but
// apisix (one route carries both backends), range queries on prometheus.
func TestCapabilitiesForComparisons(t *testing.T) {
	caps := Capabilities()
	for p := range caps.BuiltinMetrics {
		require.Equal(t, p != "apisix", caps.ComparableBuiltins[p], p)
	}
	require.Equal(t, map[string]bool{"prometheus": true}, caps.RangeBackends)
}
