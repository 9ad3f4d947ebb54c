// Package temporalconntest helps tests of code that resolves a Temporal connection (internal/temporalconn and
// its callers, the starter and the worker).
package temporalconntest

import (
	"os"
	"strings"
	"testing"
)

// Isolate unsets every TEMPORAL_* and CANARYFLOW_* variable of the test process, and points the default Temporal
// config file ($XDG_CONFIG_HOME/temporalio/temporal.toml) at an empty directory, until the test ends, so that the
// machine's own settings do not leak into a test.
func Isolate(t testing.TB) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "TEMPORAL_") || strings.HasPrefix(name, "CANARYFLOW_") {
			t.Setenv(name, "") // registers the restore
			if err := os.Unsetenv(name); err != nil {
				t.Fatalf("unset %s: %v", name, err)
			}
		}
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
}
