package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// GitOps mode is off unless asked for; its Lease lives in the worker's own namespace (the Downward API's
// POD_NAMESPACE in deploy/ and the chart), and a name that is not a namespace is refused before anything starts.
func TestConfigGitOpsFlagAndLeaseNamespace(t *testing.T) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		flags     []string
		gitops    bool
		leaseNS   string
		wantError string
	}{
		{name: "off by default", leaseNS: "canaryflow-system"},
		{name: "deploy/'s false", env: map[string]string{"CANARYFLOW_GITOPS": "false"}, leaseNS: "canaryflow-system"},
		{name: "on from the environment, Lease in the pod's namespace", env: map[string]string{"CANARYFLOW_GITOPS": "true", "POD_NAMESPACE": "cf"},
			gitops: true, leaseNS: "cf"},
		{name: "flags win", env: map[string]string{"POD_NAMESPACE": "cf"}, flags: []string{"--gitops", "--gitops-lease-namespace", "ops"},
			gitops: true, leaseNS: "ops"},
		{name: "not a namespace", flags: []string{"--gitops", "--gitops-lease-namespace", "Ops_1"},
			wantError: `--gitops-lease-namespace "Ops_1" is not a namespace name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CANARYFLOW_GITOPS", "")
			t.Setenv("POD_NAMESPACE", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := parseConfig(tc.flags)
			if tc.wantError != "" {
				require.ErrorContains(t, err, tc.wantError)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.gitops, cfg.gitops)
			require.Equal(t, tc.leaseNS, cfg.gitopsLeaseNamespace)
		})
	}
}
