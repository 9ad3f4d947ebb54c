// Package labbin finds the lab's binaries in the build cache (make lab-build) and starts private Temporal dev
// servers from them. It never starts the lab, so tests that use only labbin stay unit tests (make test-unit).
package labbin

import (
	"os"
	"path/filepath"
)

// CacheDir is $CANARYFLOW_CACHE, by default ~/.cache/canaryflow.
func CacheDir() string {
	if d := os.Getenv("CANARYFLOW_CACHE"); d != "" {
		return d
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "canaryflow")
}

// Dir is where make lab-build puts the lab's binaries.
func Dir() string { return filepath.Join(CacheDir(), "lab", "bin") }

// Temporal returns the path of the lab's `temporal` CLI. It neither checks nor builds anything.
func Temporal() string { return filepath.Join(Dir(), "temporal") }

// Kubectl returns the path of the lab's kubectl (never the machine's).
func Kubectl() string { return filepath.Join(Dir(), "kubectl") }
