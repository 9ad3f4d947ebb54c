package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canaryflow/canaryflow/internal/temporalconn/temporalconntest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/workflows"
)

// starterEnvOnly runs the CLI with no connection flag: only the environment says where Temporal is.
func starterEnvOnly(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(append([]string{"--task-queue", testTaskQueue}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// The same environment serves `temporal` and `starter`: a private dev server whose rollouts run in a namespace
// of their own is reached with TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE alone, then through a profile of a
// Temporal config file, as the temporal CLI reads them.
func TestStarterReachesTemporalThroughTemporalVariablesAndProfiles(t *testing.T) {
	temporalconntest.Isolate(t)
	const ns = "canaryflow-starter-env"
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	srv, err := labbin.DevServer(ctx, quietLogger{}, ns)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	tc, err := client.DialContext(ctx, client.Options{HostPort: srv.FrontendHostPort(), Namespace: ns, Logger: quietLogger{}})
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	cluster := activitiestest.NewCluster()
	w := worker.New(tc, testTaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(cluster.Activities())
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	t.Setenv("TEMPORAL_ADDRESS", srv.FrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", ns)
	f := canaryFile(t, "test", "envonly", "stepWeight: 50\n    maxWeight: 50", "")
	code, out, errOut := starterEnvOnly("rollout", "-f", f, "--wait")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Regexp(t, `(?m) promoted revision rev2$`, out)
	assert.Contains(t, out, "/namespaces/"+ns+"/workflows/", "the Web UI link names the namespace the variables chose")
	assert.Equal(t, []string{"50/50", "100/0"}, cluster.Get("test", "envonly").Routes)

	// The rollout is in that namespace only: the server's default namespace does not know it.
	t.Setenv("TEMPORAL_NAMESPACE", "default")
	code, out, errOut = starterEnvOnly("status", "envonly", "-n", "test")
	require.NotEqual(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)

	// The same server through a profile: TEMPORAL_PROFILE picks it from TEMPORAL_CONFIG_FILE.
	temporalconntest.Isolate(t)
	conf := filepath.Join(t.TempDir(), "temporal.toml")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, "[profile.default]\naddress = \"127.0.0.1:1\"\n\n"+
		"[profile.lab]\naddress = %q\nnamespace = %q\n", srv.FrontendHostPort(), ns), 0o600))
	t.Setenv("TEMPORAL_CONFIG_FILE", conf)
	t.Setenv("TEMPORAL_PROFILE", "lab")
	code, out, errOut = starterEnvOnly("list", "-n", "test")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Regexp(t, `(?m)^test\s+envonly\s+Succeeded\s`, out)
	var cs canaryStatus
	code, out, errOut = starterEnvOnly("status", "envonly", "-n", "test", "-o", "json")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.NoError(t, jsonUnmarshal(out, &cs), out)
	assert.Equal(t, workflows.PhaseSucceeded, cs.Status.Phase)
}

// A Temporal setting that cannot work is bad input (exit 2) naming the variable, before anything connects.
func TestStarterRefusesABadTemporalVariableNamingIt(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"TEMPORAL_TLS": "yes"}, `TEMPORAL_TLS="yes": write true or false`},
		{map[string]string{"TEMPORAL_ADDRESS": "temporal.example"}, `Temporal address "temporal.example" (from TEMPORAL_ADDRESS) is not host:port`},
		{map[string]string{"TEMPORAL_PROFILE": "prod"}, `TEMPORAL_PROFILE="prod": no such profile`},
		{map[string]string{"TEMPORAL_TLS_CLIENT_CERT_PATH": "/nowhere/cert.pem"}, "the TLS client certificate (from TEMPORAL_TLS_CLIENT_CERT_PATH) has no key"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			temporalconntest.Isolate(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			code, out, errOut := starterEnvOnly("list", "-A")
			require.Equal(t, exitBadInput, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			assert.Contains(t, errOut, tc.want)
		})
	}
}
