package main

import (
	"context"
	"fmt"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/workflows"
)

// startAdmission starts, with --release-rate, the worker of the admission queue: the Admit activities every
// release (and every first rollout's initialisation) waits for (activities.Admission), handed out by the Temporal
// server at the rate. Without the flag it starts nothing. The returned stop stops it.
func startAdmission(tc client.Client, cfg *config, log *zap.Logger) (stop func(), err error) {
	q := cfg.admissionQueue()
	if q == "" {
		return func() {}, nil
	}
	w := worker.New(tc, q, cfg.admissionOptions())
	w.RegisterActivity(&activities.Admission{MaxAtWork: cfg.maxReleasesAtWork, TaskQueue: cfg.taskQueue, Settle: cfg.admissionSettle,
		AtWork: workflows.AtWorkQuery(cfg.taskQueue),
		Count: func(ctx context.Context, query string) (int64, error) {
			res, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: query})
			return res.GetCount(), err
		}})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start the admission worker on task queue %s: %w", q, err)
	}
	log.Info("admitting releases at a rate", zap.String("taskQueue", q), zap.Float64("releasesPerSecond", cfg.releaseRate),
		zap.Int("maxReleasesAtWork", cfg.maxReleasesAtWork), zap.Int("stickyCacheSize", cfg.stickyCacheSize))
	return w.Stop, nil
}

// startReadiness starts, with --watch-readiness, the worker of the readiness queue: the AwaitReady activities in
// which rollouts wait for their workloads (activities.Workloads.AwaitReady). Without the flag it starts nothing.
func startReadiness(tc client.Client, cfg *config, wl *activities.Workloads, log *zap.Logger) (stop func(), err error) {
	q := cfg.readinessQueue()
	if q == "" {
		return func() {}, nil
	}
	w := worker.New(tc, q, cfg.readinessOptions())
	w.RegisterActivityWithOptions(wl.AwaitReady, activity.RegisterOptions{Name: "AwaitReady"})
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start the readiness worker on task queue %s: %w", q, err)
	}
	log.Info("waiting for readiness on watch events", zap.String("taskQueue", q))
	return w.Stop, nil
}
