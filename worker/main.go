// Command worker runs canaryflow's CanaryRollout workflow and its activities against a Temporal server and a
// Kubernetes cluster.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryflow/canaryflow/worker/zaplog"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, err := parseConfig(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 2
	}
	log, err := newZap(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("worker stopped", zap.Error(err))
		return 1
	}
	return 0
}

// serve connects to Temporal and Kubernetes, runs the worker until ctx ends, then stops it gracefully: polling
// stops at once, running activities get --stop-timeout to finish, and whatever is left is retried by Temporal on
// another worker.
func serve(ctx context.Context, cfg *config, log *zap.Logger) error {
	reg := newRegistry()
	sdk := newSDKMetrics()
	reg.MustRegister(sdk)
	ops, err := newOpsServer(cfg.listen, reg, cfg.pprof)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.listen, err)
	}
	go func() {
		if err := ops.serve(); err != nil {
			log.Error("ops server failed", zap.Error(err))
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ops.shutdown(sctx)
	}()

	opts, err := cfg.temporal.ClientOptions()
	if err != nil {
		return err
	}
	opts.Logger = zaplog.New(log)
	opts.MetricsHandler = sdk.Handler()
	tc, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s (namespace %s): %w", cfg.temporal.Address, cfg.temporal.Namespace, err)
	}
	defer tc.Close()
	reg.MustRegister(&canaryMetrics{list: tc.ListWorkflow, ns: cfg.temporal.Namespace, refresh: cfg.metricsRefresh,
		fullEvery: fullReadsEvery * cfg.metricsRefresh, closedLag: defaultClosedLag, log: log})

	kube, err := kubeConfig(cfg.kubeconfig)
	if err != nil {
		return err
	}
	kube = cfg.withKubeLimits(kube)
	kubeReqs := newKubeRequests()
	reg.MustRegister(kubeReqs.total)
	// Counting first, then retrying on top: every try is counted.
	counted := kubeReqs.instrument(kube)
	kube = retryKube(counted)
	deps, err := newDependencies(cfg, kube, log)
	if err != nil {
		return err
	}
	worker.SetStickyWorkflowCacheSize(cfg.stickyCacheSize)
	w := worker.New(tc, cfg.taskQueue, cfg.workerOptions())
	register(w, deps)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker on task queue %s: %w", cfg.taskQueue, err)
	}
	stopAdmission, err := startAdmission(tc, cfg, log)
	if err != nil {
		w.Stop()
		return err
	}
	defer stopAdmission()
	stopReadiness, err := startReadiness(tc, cfg, deps.workloads, log)
	if err != nil {
		w.Stop()
		return err
	}
	defer stopReadiness()
	stopGitOps, err := startGitOps(ctx, cfg, counted, tc, log)
	if err != nil {
		w.Stop()
		return err
	}
	defer stopGitOps()
	ops.ready.Store(true)
	log.Info("worker started", zap.String("temporal", cfg.temporal.Address), zap.String("namespace", cfg.temporal.Namespace),
		zap.Bool("tls", cfg.temporal.TLS), zap.String("taskQueue", cfg.taskQueue), zap.String("listen", ops.addr()))
	<-ctx.Done()
	ops.ready.Store(false)
	log.Info("stopping: running activities get the stop timeout to finish", zap.Duration("stopTimeout", cfg.stopTimeout))
	w.Stop()
	return nil
}

func kubeConfig(path string) (*rest.Config, error) {
	if path == "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig and not running in a cluster: %w", err)
		}
		return c, nil
	}
	c, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	return c, nil
}

func newZap(cfg *config) (*zap.Logger, error) {
	var zc zap.Config
	if cfg.logFormat == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "ts"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	level, err := zapcore.ParseLevel(cfg.logLevel)
	if err != nil {
		return nil, err
	}
	zc.Level = zap.NewAtomicLevelAt(level)
	return zc.Build()
}
