// Package chaos runs canaryflow on the lab while its processes are killed: workers at random moments of
// consecutive rollouts, and the Temporal server mid-analysis. It is a package of its own so that `go test` runs
// it in parallel with package e2e, whose stack it uses.
package chaos
