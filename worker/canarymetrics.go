package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"go.uber.org/zap"

	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// canaryMetrics exports Flagger's canary metrics (under the canaryflow_ prefix, same labels and meaning), derived
// from Temporal visibility: what the rollouts themselves recorded in their search attributes and memos. No worker
// counts anything in its own memory, so every replica reports the same numbers, and a restarted worker loses
// nothing.
//
//	canaryflow_canary_total{namespace}                      canaries known (one per workflow ID)
//	canaryflow_canary_status{name,namespace}                0 running, 1 done (initialised or promoted), 2 failed
//	canaryflow_canary_weight{workload,namespace}            traffic weight of <target>-primary and of <target>
//	canaryflow_canary_duration_seconds{name,namespace}      duration of the last finished rollout
//	canaryflow_canary_metric_analysis{metric,name,namespace} last value of each metric check
//	canaryflow_canary_successes_total{name,namespace,deployment_strategy}  promoted rollouts
//	canaryflow_canary_failures_total{name,namespace,deployment_strategy}   failed rollouts
//
// A read lists every run once (a full read), and after that only the runs still running and those closed since
// shortly before the last read: a closed run never changes, so the worker keeps it from the read that saw it. A
// full read comes again every fullEvery, to drop the runs Temporal no longer keeps, and at once when a run seen
// running is in neither list (visibility that lags more than closedLag).
type canaryMetrics struct {
	list    func(ctx context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error)
	ns      string
	refresh time.Duration
	log     *zap.Logger
	// fullEvery is how often a read lists every run; 0 means every read does.
	fullEvery time.Duration
	// closedLag is how far before the last read a run may have closed and still be missing from it: the lag of
	// visibility and the skew between the worker's clock and the Temporal server's.
	closedLag time.Duration

	mu       sync.Mutex
	snap     snapshot
	closed   map[string]listedRun // run ID: every closed run known, as much of it as the metrics need
	running  map[string]bool      // run IDs running at the last read
	lastFull time.Time
	lastRead time.Time
}

// Defaults of the worker's canary metrics: a full read every ten refreshes, and runs that closed up to two minutes
// before the last read listed again.
const (
	fullReadsEvery   = 10
	defaultClosedLag = 2 * time.Minute
)

// listedRun is what the metrics need of one listed execution. A worker keeps every closed run between reads, and
// a decoded listing (memo and search attributes as protobuf maps of payloads) holds about 8 KB on the heap where
// this holds about 0.7 KB: for a namespace that keeps 30,000 runs, 20 MB instead of 240 MB.
type listedRun struct {
	id, runID        string // workflow and run IDs
	name, ns, phase  string // search attributes
	strategy, target string // memo
	status           enumspb.WorkflowExecutionStatus
	start, close     time.Time // zero when not listed
	checks           map[string]float64
	weight           int64
}

// summarise keeps of e what the metrics read.
func summarise(e *workflowpb.WorkflowExecutionInfo) listedRun {
	sa := e.GetSearchAttributes()
	r := listedRun{
		id: e.GetExecution().GetWorkflowId(), runID: e.GetExecution().GetRunId(),
		name: keyword(sa, searchattr.CanaryName.GetName()), ns: keyword(sa, searchattr.CanaryNamespace.GetName()),
		phase:    keyword(sa, searchattr.CanaryPhase.GetName()),
		strategy: memoString(e, "strategy"), target: memoString(e, "target"),
		status: e.GetStatus(),
		checks: decode[map[string]float64](e.GetMemo().GetFields()["lastChecks"]),
		weight: decode[int64](sa.GetIndexedFields()[searchattr.CanaryWeight.GetName()]),
	}
	if t := e.GetStartTime(); t != nil {
		r.start = t.AsTime()
	}
	if t := e.GetCloseTime(); t != nil {
		r.close = t.AsTime()
	}
	return r
}

type snapshot struct {
	at       time.Time
	total    map[string]float64    // namespace
	status   map[[2]string]float64 // name, namespace
	weight   map[[2]string]float64 // workload, namespace
	duration map[[2]string]float64
	analysis map[[3]string]float64 // metric, name, namespace
	success  map[[3]string]float64 // name, namespace, strategy
	failure  map[[3]string]float64
	err      error
}

var (
	descTotal    = prometheus.NewDesc("canaryflow_canary_total", "Canaries known to canaryflow, by namespace.", []string{"namespace"}, nil)
	descStatus   = prometheus.NewDesc("canaryflow_canary_status", "Last rollout of a canary: 0 running, 1 done, 2 failed.", []string{"name", "namespace"}, nil)
	descWeight   = prometheus.NewDesc("canaryflow_canary_weight", "Traffic weight of the primary (<target>-primary) and of the canary (<target>).", []string{"workload", "namespace"}, nil)
	descDuration = prometheus.NewDesc("canaryflow_canary_duration_seconds", "Duration of a canary's last finished rollout.", []string{"name", "namespace"}, nil)
	descSuccess  = prometheus.NewDesc("canaryflow_canary_successes_total", "Rollouts promoted, by strategy.", []string{"name", "namespace", "deployment_strategy"}, nil)
	descFailure  = prometheus.NewDesc("canaryflow_canary_failures_total", "Rollouts that failed or were rolled back, by strategy.", []string{"name", "namespace", "deployment_strategy"}, nil)
	descAnalysis = prometheus.NewDesc("canaryflow_canary_metric_analysis", "Last value of each metric check of a canary.", []string{"metric", "name", "namespace"}, nil)
	descUp       = prometheus.NewDesc("canaryflow_visibility_up", "1 when the last read of Temporal visibility succeeded.", nil, nil)
)

// Describe lists the metrics.
func (m *canaryMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTotal, descStatus, descWeight, descDuration, descAnalysis, descSuccess, descFailure, descUp} {
		ch <- d
	}
}

// Collect serves the last snapshot, re-reading visibility when it is older than the refresh period.
func (m *canaryMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	if time.Since(m.snap.at) > m.refresh {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		m.snap = m.read(ctx)
		cancel()
		if m.snap.err != nil && m.log != nil {
			m.log.Warn("reading canary metrics from Temporal visibility failed", zap.Error(m.snap.err))
		}
	}
	s := m.snap
	m.mu.Unlock()
	up := 1.0
	if s.err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	for ns, v := range s.total {
		ch <- prometheus.MustNewConstMetric(descTotal, prometheus.GaugeValue, v, ns)
	}
	for k, v := range s.status {
		ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, v, k[0], k[1])
	}
	for k, v := range s.weight {
		ch <- prometheus.MustNewConstMetric(descWeight, prometheus.GaugeValue, v, k[0], k[1])
	}
	for k, v := range s.duration {
		ch <- prometheus.MustNewConstMetric(descDuration, prometheus.GaugeValue, v, k[0], k[1])
	}
	for k, v := range s.analysis {
		ch <- prometheus.MustNewConstMetric(descAnalysis, prometheus.GaugeValue, v, k[0], k[1], k[2])
	}
	for k, v := range s.success {
		ch <- prometheus.MustNewConstMetric(descSuccess, prometheus.CounterValue, v, k[0], k[1], k[2])
	}
	for k, v := range s.failure {
		ch <- prometheus.MustNewConstMetric(descFailure, prometheus.CounterValue, v, k[0], k[1], k[2])
	}
}

// read lists the CanaryRollout executions (see canaryMetrics for which) and folds them into a snapshot, newest
// first. Temporal's SQL visibility (the dev server) and Temporal Cloud refuse ORDER BY ("order by clause not
// supported"), so the executions are sorted here, as starter list does.
func (m *canaryMetrics) read(ctx context.Context) snapshot {
	now := time.Now()
	s := snapshot{at: now, total: map[string]float64{}, status: map[[2]string]float64{},
		weight: map[[2]string]float64{}, duration: map[[2]string]float64{}, analysis: map[[3]string]float64{},
		success: map[[3]string]float64{}, failure: map[[3]string]float64{}}
	query := fmt.Sprintf("WorkflowType = '%s'", workflows.WorkflowName)
	full := m.closed == nil || m.fullEvery <= 0 || now.Sub(m.lastFull) >= m.fullEvery
	if !full {
		since := m.lastRead.Add(-m.closedLag).UTC().Format(time.RFC3339Nano)
		query += fmt.Sprintf(" AND (ExecutionStatus = 'Running' OR CloseTime >= '%s')", since)
	}
	execs, err := m.listAll(ctx, query)
	if err != nil {
		s.err = err
		return s
	}
	running := map[string]bool{}
	var all []listedRun // the running runs, then every closed run known
	closed := m.closed
	if full {
		closed = map[string]listedRun{}
	}
	for _, e := range execs {
		if e.status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			running[e.runID] = true
			all = append(all, e)
		} else {
			closed[e.runID] = e
		}
	}
	if !full {
		for run := range m.running {
			if _, known := closed[run]; !running[run] && !known { // closed, but not yet in visibility as closed
				m.closed = nil
				return m.read(ctx)
			}
		}
	}
	m.closed, m.running, m.lastRead = closed, running, now
	if full {
		m.lastFull = now
	}
	all = slices.AppendSeq(all, maps.Values(closed))
	slices.SortFunc(all, func(a, b listedRun) int {
		if c := b.start.Compare(a.start); c != 0 {
			return c
		}
		return strings.Compare(a.runID, b.runID)
	})
	seen := map[string]bool{}
	for _, e := range all {
		s.add(e, seen)
	}
	return s
}

// listAll lists every execution the query matches, page by page, keeping of each what the metrics need (a page's
// listings are garbage before the next page is asked for).
func (m *canaryMetrics) listAll(ctx context.Context, query string) ([]listedRun, error) {
	var execs []listedRun
	var token []byte
	for {
		resp, err := m.list(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: m.ns, PageSize: 1000, NextPageToken: token, Query: query,
		})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.GetExecutions() {
			execs = append(execs, summarise(e))
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return execs, nil
		}
	}
}

func (s *snapshot) add(e listedRun, seen map[string]bool) {
	name, ns := e.name, e.ns
	if name == "" {
		return // started but not yet past its first task: nothing recorded
	}
	phase := workflows.Phase(e.phase)
	strategy, target := e.strategy, e.target
	if _, after, ok := strings.Cut(target, "/"); ok { // "Deployment/podinfo"
		target = after
	}
	if target == "" {
		target = name
	}
	running := e.status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	failed := !running && (phase == workflows.PhaseFailed || e.status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED &&
		e.status != enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW)
	if !running {
		k := [3]string{name, ns, strategy}
		switch {
		case failed:
			s.failure[k]++
		case phase == workflows.PhaseSucceeded:
			s.success[k]++
		}
	}
	if seen[e.id] {
		return // an older rollout of a canary already counted by its newest
	}
	seen[e.id] = true
	s.total[ns]++
	nk := [2]string{name, ns}
	switch {
	case running:
		s.status[nk] = 0
	case failed:
		s.status[nk] = 2
	default:
		s.status[nk] = 1
	}
	if !running && !e.close.IsZero() && !e.start.IsZero() {
		s.duration[nk] = e.close.Sub(e.start).Seconds()
	}
	for metric, v := range e.checks {
		s.analysis[[3]string{metric, name, ns}] = v
	}
	weight := float64(e.weight)
	s.weight[[2]string{target, ns}] = weight
	s.weight[[2]string{target + "-primary", ns}] = 100 - weight
}

// decode reads a search attribute or memo payload; the zero value when it is missing or of another type.
func decode[T any](p *commonpb.Payload) (v T) {
	if p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &v)
	}
	return v
}

func memoString(e *workflowpb.WorkflowExecutionInfo, key string) string {
	return decode[string](e.GetMemo().GetFields()[key])
}

func keyword(sa *commonpb.SearchAttributes, name string) string {
	return decode[string](sa.GetIndexedFields()[name])
}
