// Package livefault injects faults into live rollouts on the lab (lab/README.md): the real worker binary, starter
// and load tester of package e2e, podinfo pods behind Traefik, Prometheus. Its tests are apart from e2e's so the
// two packages run in parallel; each test has its own task queue, namespaces and fault servers, and never stops a
// shared lab process (a fault proxy stands in front of the lab's Prometheus for one worker instead).
package livefault
