//go:build tools

// Package benchflagger pins Flagger (github.com/fluxcd/flagger v1.36.1, the version the Go module proxy serves)
// for the side-by-side benchmark (make bench-scale FLAGGER=1), with Flagger's own module versions. Benchmarks
// only: Flagger is never part of canaryflow.
package benchflagger

import _ "github.com/fluxcd/flagger/cmd/flagger"
