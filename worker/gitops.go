package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canaryflow/canaryflow/gitops"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/workflows/rolloutclient"
)

// startGitOps runs the GitOps trigger in the background when --gitops is set, with kube (whose requests the
// worker's canaryflow_kube_requests_total counts; informers retry on their own, so not the retrying config). The
// returned function waits until it has stopped (ctx ended) and released its Lease.
func startGitOps(ctx context.Context, cfg *config, kube *rest.Config, tc client.Client, log *zap.Logger) (func(), error) {
	if !cfg.gitops {
		return func() {}, nil
	}
	// Informers hold watches open for minutes: no client-side request timeout may cut them.
	kube = rest.CopyConfig(kube)
	kube.Timeout = 0
	k, err := kubernetes.NewForConfig(kube)
	if err != nil {
		return nil, fmt.Errorf("GitOps trigger: kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(kube)
	if err != nil {
		return nil, fmt.Errorf("GitOps trigger: dynamic client: %w", err)
	}
	host, _ := os.Hostname()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := gitops.Run(ctx, gitops.Config{
			Kube: k, Dynamic: dyn,
			Rollouts:       rolloutclient.Client{Temporal: tc, TaskQueue: cfg.taskQueue},
			Capabilities:   catalog.Capabilities(),
			Namespaces:     cfg.namespaces,
			LeaseNamespace: cfg.gitopsLeaseNamespace,
			// Unique per process: two workers on one host (or a restarted pod) are two candidates.
			Identity: host + "_" + rand.Text()[:8],
			Log:      log.Named("gitops"),
		})
		if err != nil {
			log.Error("GitOps trigger failed", zap.Error(err))
		}
	}()
	return func() { <-done }, nil
}
