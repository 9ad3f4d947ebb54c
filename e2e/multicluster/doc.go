// Package multicluster runs a Release across two real clusters: the shared lab (cluster a) and a private lab's
// control plane (cluster b), each with its own worker on its own task queue and kubeconfig, both on the shared
// lab's Temporal. A package of its own so that its private lab (own network) runs beside the other e2e packages;
// its test carries the build tag lab.
package multicluster
