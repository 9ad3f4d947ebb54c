package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/worker"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/canaryflow/canaryflow/gitops"
	"github.com/canaryflow/canaryflow/internal/temporalconn"
	"github.com/canaryflow/canaryflow/providers/metrics"
	"github.com/canaryflow/canaryflow/providers/router"
	"github.com/canaryflow/canaryflow/workflows"
)

// defaultMetricsRefresh bounds how often a scrape of /metrics reads the rollouts from Temporal visibility. A full
// list (every tenth read, canaryMetrics) costs the Temporal server and its database about 1.9 ms of CPU per run
// kept (3.8 s for 2,000 runs, measured on PostgreSQL), and every worker reads for itself. 30 s is a usual
// Prometheus scrape interval.
const defaultMetricsRefresh = 30 * time.Second

// config is everything the worker is told, from flags or from CANARYFLOW_* environment variables (a flag wins);
// the connection also from Temporal's own variables and profiles (temporalconn.Precedence).
type config struct {
	temporal       temporalconn.Conn
	taskQueue      string
	kubeconfig     string
	prometheus     string
	cluster        string
	listen         string
	pprof          bool
	logLevel       string
	logFormat      string
	stopTimeout    time.Duration
	metricsRefresh time.Duration
	// ingressAnnotationsPrefix is the annotation prefix of the ingress-nginx the nginx router writes for.
	ingressAnnotationsPrefix string
	// namespaces, when set, are the only namespaces whose Canaries this worker runs (namespaced RBAC mode).
	namespaces []string
	// Limits that matter at scale: the Kubernetes client's rate (client-go's own default, 5 requests a second,
	// would hold back a few dozen concurrent rollouts), the Temporal pollers and concurrency, the sticky cache.
	kubeQPS                      float64
	kubeBurst                    int
	workflowTaskPollers          int
	activityTaskPollers          int
	maxConcurrentWorkflowTasks   int
	maxConcurrentActivities      int
	maxConcurrentLocalActivities int
	stickyCacheSize              int
	stickyScheduleToStart        time.Duration
	// releaseRate, when positive, is how many releases a second the workers of this task queue start (their
	// Admission queue, activities.Admission); 0 starts each at once.
	releaseRate float64
	// maxReleasesAtWork, when positive (with releaseRate), is how many rollouts of the task queue may be at work at
	// once: an admission waits while that many are (activities.Admission).
	maxReleasesAtWork int
	// admissionSettle is how long a release this worker admitted counts as at work on its own (0: the activity's
	// default, 15 s); tests shorten it.
	admissionSettle time.Duration
	// watchReadiness serves the readiness queue: rollouts wait there for their workloads on watch events
	// (activities.Workloads.AwaitReady) instead of polling on workflow timers.
	watchReadiness bool
	// gitops runs the GitOps trigger (package gitops) beside the worker, on the replica holding the Lease in
	// gitopsLeaseNamespace.
	gitops               bool
	gitopsLeaseNamespace string
}

// Defaults measured by the scale benchmark (make bench-scale; BENCHMARKS.md, "Scale"). An initialisation makes a
// dozen or more Kubernetes requests: with 1,000 of them at once behind a 100-a-second client limit, most waited past
// their 30 s deadline and were retried from the start, a storm that initialised 92 of 1,000 in 8 min. With the
// activities at once kept to what the limit serves within the deadline (100), all 1,000 went through with no failed
// attempt. The client limit stays Flagger's: on the scale lab, 300 a second (and 200 activities) per worker gained
// nothing at 1,000 canaries (the machine, not the limit, held them back), and two such workers made the API server
// throttle (HTTP 429). The sticky schedule-to-start timeout is longer than the SDK's 5 s: at 1,000
// canaries on one worker, tasks that waited 5 s on the worker's busy sticky queue moved to the task queue, behind
// the first tasks of a thousand new runs, and waited minutes there (step gap p99 401 s); at 30 s the p99 was 22.6 s.
// What it costs: after a worker is killed, a task already on its sticky queue waits up to 30 s for another worker
// (the server sends the next ones to the task queue once it sees no poller).
const (
	defaultKubeQPS                 = 100
	defaultKubeBurst               = 250
	defaultMaxConcurrentActivities = 100
	// defaultMaxConcurrentLocalActivities: with 1,000 canaries initialised at once, the old default (the SDK's
	// 1,000) let up to a thousand short Kubernetes calls (routes, readiness looks) wait on the client's limit
	// together, each in its goroutine: the worker peaked at 226.9 MiB, against 191.7 MiB at 200 for the same step
	// gaps (BENCHMARKS.md, tenth session).
	defaultMaxConcurrentLocalActivities = 200
	defaultStickyScheduleToStart        = 30 * time.Second
	defaultStickyCacheSize              = 10000
)

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
	var envErrs []error
	envDur := func(name string, def time.Duration) time.Duration {
		if v, ok := os.LookupEnv("CANARYFLOW_" + name); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("CANARYFLOW_%s %q: not a duration (write it as 30s or 2m)", name, v))
				return def
			}
			return d
		}
		return def
	}
	envFloat := func(name string, def float64) float64 {
		if v, ok := os.LookupEnv("CANARYFLOW_" + name); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("CANARYFLOW_%s %q: not a number (write it as 2 or 0.5)", name, v))
				return def
			}
			return f
		}
		return def
	}
	envInt := func(name string, def int) int {
		if v, ok := os.LookupEnv("CANARYFLOW_" + name); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("CANARYFLOW_%s %q: not a whole number", name, v))
				return def
			}
			return n
		}
		return def
	}
	envBool := func(name string, def bool) bool {
		if v, ok := os.LookupEnv("CANARYFLOW_" + name); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("CANARYFLOW_%s %q: write true or false", name, v))
				return def
			}
			return b
		}
		return def
	}
	fs.Float64Var(&c.kubeQPS, "kube-api-qps", float64(envInt("KUBE_API_QPS", defaultKubeQPS)),
		"Kubernetes API requests a second this worker may make, as Flagger's flag of the same name (CANARYFLOW_KUBE_API_QPS)")
	fs.IntVar(&c.kubeBurst, "kube-api-burst", envInt("KUBE_API_BURST", defaultKubeBurst),
		"Kubernetes API request burst, as Flagger's flag of the same name (CANARYFLOW_KUBE_API_BURST)")
	fs.IntVar(&c.workflowTaskPollers, "workflow-task-pollers", envInt("WORKFLOW_TASK_POLLERS", 2),
		"concurrent pollers of workflow tasks, at least 2 (the SDK's default); 0 scales them with the backlog (the SDK's "+
			"poller autoscaling, 1 to 100) (CANARYFLOW_WORKFLOW_TASK_POLLERS)")
	fs.IntVar(&c.activityTaskPollers, "activity-task-pollers", envInt("ACTIVITY_TASK_POLLERS", 2),
		"concurrent pollers of activity tasks (the SDK's default); 0 scales them with the backlog (CANARYFLOW_ACTIVITY_TASK_POLLERS)")
	fs.IntVar(&c.maxConcurrentWorkflowTasks, "max-concurrent-workflow-tasks", envInt("MAX_CONCURRENT_WORKFLOW_TASKS", 1000),
		"workflow tasks run at once (CANARYFLOW_MAX_CONCURRENT_WORKFLOW_TASKS)")
	fs.IntVar(&c.maxConcurrentActivities, "max-concurrent-activities", envInt("MAX_CONCURRENT_ACTIVITIES", defaultMaxConcurrentActivities),
		"activities run at once; keep it near what --kube-api-qps serves in a few seconds (CANARYFLOW_MAX_CONCURRENT_ACTIVITIES)")
	fs.IntVar(&c.maxConcurrentLocalActivities, "max-concurrent-local-activities", envInt("MAX_CONCURRENT_LOCAL_ACTIVITIES", defaultMaxConcurrentLocalActivities),
		"local activities (the short Kubernetes calls: a route, a readiness look) run at once; more than --kube-api-qps "+
			"serves in a second or two only wait on the client's limit, each with its goroutine (CANARYFLOW_MAX_CONCURRENT_LOCAL_ACTIVITIES)")
	fs.IntVar(&c.stickyCacheSize, "sticky-cache-size", envInt("STICKY_CACHE_SIZE", 0),
		fmt.Sprintf("rollouts whose workflow state this worker keeps in memory between tasks (each about 50 KiB); past it, "+
			"the least recently active rollout leaves the cache and its next task replays its history. 0: %d, or with "+
			"--max-releases-at-work N, N and half as many again (at least N+100), which the rollouts at work fit in "+
			"while those waiting for admission leave it (CANARYFLOW_STICKY_CACHE_SIZE)", defaultStickyCacheSize))
	fs.DurationVar(&c.stickyScheduleToStart, "sticky-schedule-to-start-timeout", envDur("STICKY_SCHEDULE_TO_START_TIMEOUT", defaultStickyScheduleToStart),
		"how long a rollout's next workflow task waits for this worker, which holds the rollout's state, before any "+
			"worker may take it from the task queue and replay the history (CANARYFLOW_STICKY_SCHEDULE_TO_START_TIMEOUT)")
	conn := temporalconn.FromEnv()
	conn.BindFlags(fs)
	fs.Float64Var(&c.releaseRate, "release-rate", envFloat("RELEASE_RATE", 0),
		"releases started a second, across every worker of the task queue (they wait for their turn in the task queue <task-queue>"+admissionSuffix+
			" before the canary is scaled up, and first rollouts before their initialisation); 0 starts each at once. Give every worker of the task queue the same rate (CANARYFLOW_RELEASE_RATE)")
	fs.IntVar(&c.maxReleasesAtWork, "max-releases-at-work", envInt("MAX_RELEASES_AT_WORK", 0),
		"with --release-rate: the most rollouts of the task queue at work at once (initialising, progressing, promoting, "+
			"finalising; not those waiting at a gate), counted in Temporal visibility; an admission waits while that many "+
			"are. 0: no bound. Give every worker of the task queue the same bound (CANARYFLOW_MAX_RELEASES_AT_WORK)")
	fs.BoolVar(&c.watchReadiness, "watch-readiness", envBool("WATCH_READINESS", true),
		"rollouts that find a workload not ready wait for it on this worker's task queue <task-queue>"+readinessSuffix+
			", which watches the Deployments of the namespaces with a wait open (one watch a namespace, none while no wait "+
			"is open), instead of looking again on a backing-off workflow timer (CANARYFLOW_WATCH_READINESS=false to poll)")
	fs.StringVar(&c.taskQueue, "task-queue", env("TASK_QUEUE", workflows.TaskQueue), "task queue the rollouts run on (CANARYFLOW_TASK_QUEUE)")
	fs.StringVar(&c.kubeconfig, "kubeconfig", env("KUBECONFIG", os.Getenv("KUBECONFIG")), "kubeconfig file; empty means in-cluster config (CANARYFLOW_KUBECONFIG or KUBECONFIG)")
	fs.StringVar(&c.prometheus, "prometheus", env("PROMETHEUS", metrics.DefaultPrometheus), "default Prometheus address for builtin metrics (CANARYFLOW_PROMETHEUS)")
	fs.StringVar(&c.cluster, "cluster", env("CLUSTER", ""), "cluster name shown in alerts (CANARYFLOW_CLUSTER)")
	fs.StringVar(&c.listen, "listen", env("LISTEN", ":8080"), "address of /healthz, /readyz and /metrics (CANARYFLOW_LISTEN)")
	fs.BoolVar(&c.pprof, "pprof", env("PPROF", "") == "true",
		"also serve Go's profiles (/debug/pprof/: heap, CPU, goroutines) on --listen, to see where a busy worker's memory "+
			"and CPU go; off by default: a profile shows the process's internals to whoever reaches the port (CANARYFLOW_PPROF=true)")
	fs.StringVar(&c.logLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (CANARYFLOW_LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", env("LOG_FORMAT", "json"), "json or console (CANARYFLOW_LOG_FORMAT)")
	fs.DurationVar(&c.stopTimeout, "stop-timeout", envDur("STOP_TIMEOUT", 30*time.Second), "on SIGTERM, how long running activities may finish before they are handed to another worker (CANARYFLOW_STOP_TIMEOUT)")
	fs.DurationVar(&c.metricsRefresh, "metrics-refresh", envDur("METRICS_REFRESH", defaultMetricsRefresh),
		"how often canary metrics are re-read from Temporal visibility, at a scrape: the running and lately closed "+
			"rollout runs, and every tenth read every run the namespace keeps (CANARYFLOW_METRICS_REFRESH)")
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
	if c.stickyCacheSize == 0 {
		c.stickyCacheSize = defaultStickyCacheSize
		if c.maxReleasesAtWork > 0 {
			c.stickyCacheSize = c.maxReleasesAtWork + max(c.maxReleasesAtWork/2, 100)
		}
	}
	var connErr error
	c.temporal, connErr = conn.Resolve()
	return c, errors.Join(append(envErrs, connErr, c.check())...)
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
	if c.stickyScheduleToStart <= 0 {
		problems = append(problems, fmt.Sprintf("--sticky-schedule-to-start-timeout %s must be positive (the default is %s)",
			c.stickyScheduleToStart, defaultStickyScheduleToStart))
	}
	if c.releaseRate < 0 || math.IsNaN(c.releaseRate) || math.IsInf(c.releaseRate, 0) {
		problems = append(problems, fmt.Sprintf("--release-rate %g: releases a second, 0 (no limit) or more", c.releaseRate))
	}
	switch {
	case c.maxReleasesAtWork < 0:
		problems = append(problems, fmt.Sprintf("--max-releases-at-work %d: rollouts at once, 0 (no bound) or more", c.maxReleasesAtWork))
	case c.maxReleasesAtWork > 0 && c.releaseRate <= 0:
		problems = append(problems, fmt.Sprintf("--max-releases-at-work %d needs --release-rate: the bound is kept by the "+
			"admission queue, which only a rate starts (--release-rate 2, say)", c.maxReleasesAtWork))
	case c.maxReleasesAtWork > 0 && strings.ContainsAny(c.taskQueue, `'"\`):
		problems = append(problems, fmt.Sprintf("--task-queue %q: with --max-releases-at-work the rollouts are counted by "+
			"a visibility query that names the task queue, so it must not hold quotes or backslashes", c.taskQueue))
	}
	if c.stopTimeout < 0 {
		problems = append(problems, "--stop-timeout must not be negative")
	}
	if c.kubeQPS <= 0 || c.kubeBurst <= 0 {
		problems = append(problems, fmt.Sprintf("--kube-api-qps %g and --kube-api-burst %d must be positive", c.kubeQPS, c.kubeBurst))
	}
	if c.workflowTaskPollers < 0 || c.workflowTaskPollers == 1 {
		// The SDK alternates a worker's workflow pollers between its sticky queue and the task queue.
		problems = append(problems, fmt.Sprintf("--workflow-task-pollers %d: 0 (scaled with the backlog) or at least 2", c.workflowTaskPollers))
	}
	if c.activityTaskPollers < 0 {
		problems = append(problems, fmt.Sprintf("--activity-task-pollers %d: 0 (scaled with the backlog) or at least 1", c.activityTaskPollers))
	}
	for _, n := range []struct {
		flag string
		v    int
	}{
		{"--max-concurrent-workflow-tasks", c.maxConcurrentWorkflowTasks}, {"--max-concurrent-activities", c.maxConcurrentActivities},
		{"--max-concurrent-local-activities", c.maxConcurrentLocalActivities}, {"--sticky-cache-size", c.stickyCacheSize},
	} {
		if n.v < 1 {
			problems = append(problems, fmt.Sprintf("%s %d: must be at least 1", n.flag, n.v))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	return nil
}

// workerOptions are the Temporal worker options of this configuration (the concurrency benchmark uses them too).
// The pollers are the SDK's fixed 2 of each kind unless asked otherwise; 0 asks for the SDK's poller autoscaling.
// On the 2-core scale lab, 1,000 rollouts fared worse with autoscaling (step gap p50 62.6 s against 11.5 s):
// every rollout then contends at once for a saturated machine, and workflow tasks time out (make bench-scale;
// BENCHMARKS.md). A Temporal cluster with room to spare is where autoscaling pays. (The sticky cache size is
// process-wide: see main.)
func (c *config) workerOptions() worker.Options {
	o := worker.Options{
		WorkerStopTimeout:                       c.stopTimeout,
		MaxConcurrentWorkflowTaskExecutionSize:  c.maxConcurrentWorkflowTasks,
		MaxConcurrentActivityExecutionSize:      c.maxConcurrentActivities,
		MaxConcurrentLocalActivityExecutionSize: c.maxConcurrentLocalActivities,
		StickyScheduleToStartTimeout:            c.stickyScheduleToStart,
	}
	if c.workflowTaskPollers == 0 {
		o.WorkflowTaskPollerBehavior = worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{})
	} else {
		o.MaxConcurrentWorkflowTaskPollers = c.workflowTaskPollers
	}
	if c.activityTaskPollers == 0 {
		o.ActivityTaskPollerBehavior = worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{})
	} else {
		o.MaxConcurrentActivityTaskPollers = c.activityTaskPollers
	}
	return o
}

// readinessSuffix ends the name of the task queue a worker with --watch-readiness serves readiness waits on.
const readinessSuffix = "-readiness"

// readinessQueue is the task queue of this configuration's readiness waits, "" without --watch-readiness.
func (c *config) readinessQueue() string {
	if !c.watchReadiness {
		return ""
	}
	return c.taskQueue + readinessSuffix
}

// readinessOptions are the options of the worker of the readiness queue: its AwaitReady activities only, each a
// goroutine blocked on the watch's events, so many at once cost little.
func (c *config) readinessOptions() worker.Options {
	return worker.Options{
		DisableWorkflowWorker:              true,
		MaxConcurrentActivityExecutionSize: maxReadinessWaits,
		MaxConcurrentActivityTaskPollers:   2,
		WorkerStopTimeout:                  c.stopTimeout,
	}
}

// maxReadinessWaits bounds the readiness waits one worker holds at once (a goroutine and a few KiB each).
const maxReadinessWaits = 2000

// admissionSuffix ends the name of the task queue a worker with --release-rate admits releases on.
const admissionSuffix = "-admission"

// admissionQueue is the task queue of this configuration's admission, "" without --release-rate.
func (c *config) admissionQueue() string {
	if c.releaseRate <= 0 {
		return ""
	}
	return c.taskQueue + admissionSuffix
}

// admissionOptions are the options of the worker of the admission queue: its Admit activities only, which the
// Temporal server hands out at --release-rate across all of the queue's workers (TaskQueueActivitiesPerSecond).
func (c *config) admissionOptions() worker.Options {
	return worker.Options{
		DisableWorkflowWorker:              true,
		TaskQueueActivitiesPerSecond:       c.releaseRate,
		MaxConcurrentActivityExecutionSize: 10,
		MaxConcurrentActivityTaskPollers:   2,
		WorkerStopTimeout:                  c.stopTimeout,
	}
}

// withKubeLimits sets the Kubernetes client's request rate of this configuration on r.
func (c *config) withKubeLimits(r *rest.Config) *rest.Config {
	r = rest.CopyConfig(r)
	r.QPS, r.Burst = float32(c.kubeQPS), c.kubeBurst
	return r
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
