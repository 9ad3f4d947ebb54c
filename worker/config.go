package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"go.temporal.io/sdk/worker"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/canaryflow/canaryflow/gitops"
	"github.com/canaryflow/canaryflow/internal/temporalconn"
	"github.com/canaryflow/canaryflow/providers/metrics"
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/workflows"
)

// config is everything the worker is told, from flags or from CANARYFLOW_* environment variables (a flag wins);
// the connection also from Temporal's own variables and profiles (temporalconn.Precedence).
type config struct {
	temporal       temporalconn.Conn
	taskQueue      string
	kubeconfig     string
	prometheus     string
	cluster        string
	listen         string
	logLevel       string
	logFormat      string
	stopTimeout    time.Duration
	metricsRefresh time.Duration
	// ingressAnnotationsPrefix is the annotation prefix of the ingress-nginx the nginx router writes for.
	ingressAnnotationsPrefix string
	// namespaces, when set, are the only namespaces whose Canaries this worker runs (namespaced RBAC mode).
	namespaces []string
	// gitops runs the GitOps trigger (package gitops) beside the worker, on the replica holding the Lease in
	// gitopsLeaseNamespace.
	gitops               bool
	gitopsLeaseNamespace string
}

func parseConfig(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of worker (every flag also has the CANARYFLOW_* variable its help names):\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\n%s\n", temporalconn.Precedence)
	}
	env := func(name, def string) string {
		if v, ok := os.LookupEnv("CANARYFLOW_" + name); ok {
			return v
		}
		return def
	}
	envDur := func(name string, def time.Duration) time.Duration {
		if v, ok := os.LookupEnv("CANARYFLOW_" + name); ok {
			if d, err := time.ParseDuration(v); err == nil {
				return d
			}
		}
		return def
	}
	conn := temporalconn.FromEnv()
	conn.BindFlags(fs)
	fs.StringVar(&c.taskQueue, "task-queue", env("TASK_QUEUE", workflows.TaskQueue), "task queue the rollouts run on (CANARYFLOW_TASK_QUEUE)")
	fs.StringVar(&c.kubeconfig, "kubeconfig", env("KUBECONFIG", os.Getenv("KUBECONFIG")), "kubeconfig file; empty means in-cluster config (CANARYFLOW_KUBECONFIG or KUBECONFIG)")
	fs.StringVar(&c.prometheus, "prometheus", env("PROMETHEUS", metrics.DefaultPrometheus), "default Prometheus address for builtin metrics (CANARYFLOW_PROMETHEUS)")
	fs.StringVar(&c.cluster, "cluster", env("CLUSTER", ""), "cluster name shown in alerts (CANARYFLOW_CLUSTER)")
	fs.StringVar(&c.listen, "listen", env("LISTEN", ":8080"), "address of /healthz, /readyz and /metrics (CANARYFLOW_LISTEN)")
	fs.StringVar(&c.logLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (CANARYFLOW_LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", env("LOG_FORMAT", "json"), "json or console (CANARYFLOW_LOG_FORMAT)")
	fs.DurationVar(&c.stopTimeout, "stop-timeout", envDur("STOP_TIMEOUT", 30*time.Second), "on SIGTERM, how long running activities may finish before they are handed to another worker (CANARYFLOW_STOP_TIMEOUT)")
	fs.DurationVar(&c.metricsRefresh, "metrics-refresh", envDur("METRICS_REFRESH", 10*time.Second), "how often canary metrics are re-read from Temporal visibility (CANARYFLOW_METRICS_REFRESH)")
	fs.StringVar(&c.ingressAnnotationsPrefix, "ingress-annotations-prefix", env("INGRESS_ANNOTATIONS_PREFIX", router.DefaultIngressAnnotationsPrefix),
		"annotation prefix of NGINX canary Ingresses, as ingress-nginx's --annotations-prefix and Flagger's flag of this name (CANARYFLOW_INGRESS_ANNOTATIONS_PREFIX)")
	namespaces := fs.String("namespaces", env("NAMESPACES", ""), "comma-separated namespaces whose Canaries this worker runs, for "+
		"namespaced RBAC (deploy/namespaced); a Canary elsewhere is refused before any write. Empty: every namespace (CANARYFLOW_NAMESPACES)")
	fs.BoolVar(&c.gitops, "gitops", env("GITOPS", "") == "true", "GitOps mode: watch Canary objects (flagger.app/v1beta1) and their targets, and start or signal "+
		"their rollouts when a target changes; one replica triggers at a time, through a Lease (CANARYFLOW_GITOPS=true)")
	fs.StringVar(&c.gitopsLeaseNamespace, "gitops-lease-namespace", env("GITOPS_LEASE_NAMESPACE", envOr("POD_NAMESPACE", "canaryflow-system")),
		"with --gitops: the namespace of the Lease "+gitops.LeaseName+", the worker's own (CANARYFLOW_GITOPS_LEASE_NAMESPACE, else POD_NAMESPACE)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: the worker takes flags only", fs.Args())
	}
	for _, ns := range strings.Split(*namespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			c.namespaces = append(c.namespaces, ns)
		}
	}
	var connErr error
	c.temporal, connErr = conn.Resolve()
	return c, errors.Join(connErr, c.check())
}

func (c *config) check() error {
	var problems []string
	switch c.logFormat {
	case "json", "console":
	default:
		problems = append(problems, fmt.Sprintf("--log-format %q: use json or console", c.logFormat))
	}
	switch c.logLevel {
	case "debug", "info", "warn", "error":
	default:
		problems = append(problems, fmt.Sprintf("--log-level %q: use debug, info, warn or error", c.logLevel))
	}
	if c.ingressAnnotationsPrefix == "" {
		problems = append(problems, "--ingress-annotations-prefix must not be empty (ingress-nginx's default is "+router.DefaultIngressAnnotationsPrefix+")")
	}
	if c.taskQueue == "" {
		problems = append(problems, "--task-queue must not be empty")
	}
	for _, ns := range c.namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("--namespaces: %q is not a namespace name: %s", ns, strings.Join(errs, "; ")))
		}
	}
	if c.gitops {
		if errs := validation.IsDNS1123Label(c.gitopsLeaseNamespace); len(errs) > 0 {
			problems = append(problems, fmt.Sprintf("--gitops-lease-namespace %q is not a namespace name: %s", c.gitopsLeaseNamespace, strings.Join(errs, "; ")))
		}
	}
	if c.stopTimeout < 0 {
		problems = append(problems, "--stop-timeout must not be negative")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// workerOptions are the Temporal worker options of this configuration (the concurrency benchmark uses them too).
// The SDK's poller counts are kept: BenchmarkConcurrentRollouts measured no gain from 8 pollers of each kind
// over the default 2 at 1,000 rollouts.
func (c *config) workerOptions() worker.Options {
	return worker.Options{WorkerStopTimeout: c.stopTimeout}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
