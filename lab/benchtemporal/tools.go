//go:build tools

// Package benchtemporal pins the Temporal server and its SQL schema tool for the benchmarks (make bench-temporal):
// the same module versions as the lab's temporal CLI (v1.5.1, which embeds server v1.29.1), so that a build reuses
// the packages the CLI's build already compiled.
package benchtemporal

import (
	_ "go.temporal.io/server/cmd/server"
	_ "go.temporal.io/server/cmd/tools/sql"
)
