package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/canaryflow/canaryflow/internal/temporalconn/temporalconntest"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/canaryflow/canaryflow/lab/labbin"
)

// The worker takes the same Temporal settings as the temporal CLI, below its own flags and CANARYFLOW_* variables.
func TestWorkerConfigHonoursTemporalSettingsBelowItsOwn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		flags    []string
		addr, ns string
		err      string
	}{
		{name: "TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE",
			env:  map[string]string{"TEMPORAL_ADDRESS": "temporal.example:7233", "TEMPORAL_NAMESPACE": "rollouts"},
			addr: "temporal.example:7233", ns: "rollouts"},
		{name: "a profile named by TEMPORAL_PROFILE",
			env:  map[string]string{"TEMPORAL_CONFIG_FILE": "$DIR/temporal.toml", "TEMPORAL_PROFILE": "prod"},
			addr: "prod.example:7233", ns: "from-profile"},
		{name: "CANARYFLOW_* over TEMPORAL_*, the flag over both",
			env: map[string]string{"TEMPORAL_ADDRESS": "temporal.example:7233", "TEMPORAL_NAMESPACE": "rollouts",
				"CANARYFLOW_TEMPORAL_ADDRESS": "ours.example:7233", "CANARYFLOW_TEMPORAL_NAMESPACE": "ours"},
			flags: []string{"--temporal-namespace", "flagged"},
			addr:  "ours.example:7233", ns: "flagged"},
		{name: "a bad TEMPORAL_TLS is refused with the other bad settings",
			env:   map[string]string{"TEMPORAL_TLS": "on"},
			flags: []string{"--log-level", "loud"},
			err:   "TEMPORAL_TLS=\"on\": write true or false\n--log-level \"loud\""},
		{name: "a missing profile",
			env: map[string]string{"TEMPORAL_CONFIG_FILE": "$DIR/temporal.toml", "TEMPORAL_PROFILE": "staging"},
			err: `TEMPORAL_PROFILE="staging": no such profile in $DIR/temporal.toml (its profiles: "prod")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			temporalconntest.Isolate(t)
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "temporal.toml"),
				[]byte("[profile.prod]\naddress = \"prod.example:7233\"\nnamespace = \"from-profile\"\n"), 0o600))
			for k, v := range tc.env {
				t.Setenv(k, strings.ReplaceAll(v, "$DIR", dir))
			}
			cfg, err := parseConfig(tc.flags)
			if tc.err != "" {
				require.Error(t, err)
				for _, line := range strings.Split(strings.ReplaceAll(tc.err, "$DIR", dir), "\n") {
					require.Contains(t, err.Error(), line)
				}
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.addr, cfg.temporal.Address)
			require.Equal(t, tc.ns, cfg.temporal.Namespace)
		})
	}
}

// The worker's client options, from TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE alone, reach a real server in that
// namespace (one that exists only there, so the default could not pass for it).
func TestWorkerReachesTemporalWithTemporalVariablesOnly(t *testing.T) {
	temporalconntest.Isolate(t)
	const ns = "canaryflow-worker-env"
	srv, err := labbin.DevServer(t.Context(), quietSDKLogger{}, ns)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	t.Setenv("TEMPORAL_ADDRESS", srv.FrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", ns)

	cfg, err := parseConfig(nil)
	require.NoError(t, err)
	opts, err := cfg.temporal.ClientOptions()
	require.NoError(t, err)
	opts.Logger = quietSDKLogger{}
	tc, err := client.DialContext(t.Context(), opts)
	require.NoError(t, err)
	defer tc.Close()
	// A workflow started through these options lands in that namespace: read it back from there.
	run, err := tc.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: "worker-env-probe", TaskQueue: "worker-env-probe"}, "Probe")
	require.NoError(t, err)
	there, err := client.DialContext(t.Context(), client.Options{HostPort: srv.FrontendHostPort(), Namespace: ns, Logger: quietSDKLogger{}})
	require.NoError(t, err)
	defer there.Close()
	d, err := there.DescribeWorkflowExecution(t.Context(), "worker-env-probe", run.GetRunID())
	require.NoError(t, err, "the probe is in namespace %s", ns)
	require.Equal(t, "Probe", d.GetWorkflowExecutionInfo().GetType().GetName())
}
