package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestConfigRefusesHalfATLSPairAndBadLogSettings(t *testing.T) {
	_, err := parseConfig([]string{"--tls-cert", "c.pem", "--log-format", "xml", "--log-level", "loud"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--tls-cert and --tls-key go together")
	assert.Contains(t, err.Error(), `--log-format "xml": use json or console`)
	assert.Contains(t, err.Error(), `--log-level "loud"`)
}

func TestConfigReadsEnvironmentAndFlagsWin(t *testing.T) {
	t.Setenv("CANARYFLOW_TASK_QUEUE", "from-env")
	t.Setenv("CANARYFLOW_TEMPORAL_NAMESPACE", "prod")
	cfg, err := parseConfig([]string{"--temporal-namespace", "staging"})
	require.NoError(t, err)
	assert.Equal(t, "from-env", cfg.taskQueue)
	assert.Equal(t, "staging", cfg.temporal.Namespace)
}

// The nginx router writes canary annotations under the prefix the user's ingress-nginx reads (Flagger's
// -ingress-annotations-prefix), by default nginx.ingress.kubernetes.io.
func TestConfigIngressAnnotationsPrefix(t *testing.T) {
	cfg, err := parseConfig(nil)
	require.NoError(t, err)
	assert.Equal(t, "nginx.ingress.kubernetes.io", cfg.ingressAnnotationsPrefix)
	t.Setenv("CANARYFLOW_INGRESS_ANNOTATIONS_PREFIX", "custom.ingress.kubernetes.io")
	cfg, err = parseConfig(nil)
	require.NoError(t, err)
	assert.Equal(t, "custom.ingress.kubernetes.io", cfg.ingressAnnotationsPrefix)
	_, err = parseConfig([]string{"--ingress-annotations-prefix", ""})
	require.ErrorContains(t, err, "--ingress-annotations-prefix must not be empty")
}

func TestAPIKeyImpliesTLSAndIsNotLogged(t *testing.T) {
	key := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(key, []byte("secret-api-key\n"), 0o600))
	cfg, err := parseConfig([]string{"--api-key-file", key, "--temporal-address", "ns.acct.tmprl.cloud:7233"})
	require.NoError(t, err)
	opts, err := cfg.temporal.ClientOptions()
	require.NoError(t, err)
	require.NotNil(t, opts.ConnectionOptions.TLS, "Temporal Cloud API keys need TLS")
	require.NotNil(t, opts.Credentials)
}

func TestBadCAFileIsAClearError(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, []byte("not a certificate"), 0o600))
	cfg, err := parseConfig([]string{"--tls-ca", ca})
	require.NoError(t, err)
	_, err = cfg.temporal.ClientOptions()
	require.ErrorContains(t, err, "holds no PEM certificate")
}

func TestSDKMetricsExportVaryingLabelSets(t *testing.T) {
	m := newSDKMetrics()
	h := m.Handler()
	h.WithTags(map[string]string{"task_queue": "canaryflow"}).Counter("temporal_poll_success").Inc(2)
	h.WithTags(map[string]string{"task_queue": "canaryflow", "activity_type": "SetRoutes"}).Counter("temporal_poll_success").Inc(1)
	h.Gauge("temporal_num_pollers").Update(4)
	h.Timer("temporal_activity_execution_latency").Record(30 * time.Millisecond)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	n, err := testutil.GatherAndCount(reg)
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP temporal_num_pollers Temporal SDK metric temporal_num_pollers
# TYPE temporal_num_pollers gauge
temporal_num_pollers 4
`), "temporal_num_pollers"))
}

func payload(t *testing.T, v any) *commonpb.Payload {
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	require.NoError(t, err)
	return p
}

func execution(t *testing.T, id, name, phase string, weight int64, status enumspb.WorkflowExecutionStatus, start time.Time) *workflowpb.WorkflowExecutionInfo {
	e := &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: id + "@" + start.Format(time.RFC3339)},
		Status:    status,
		StartTime: timestamppb.New(start),
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
			"CanaryName": payload(t, name), "CanaryNamespace": payload(t, "test"),
			"CanaryPhase": payload(t, phase), "CanaryWeight": payload(t, weight),
		}},
		Memo: &commonpb.Memo{Fields: map[string]*commonpb.Payload{
			"strategy": payload(t, "canary"), "target": payload(t, "Deployment/"+name+"-app"),
			"lastChecks": payload(t, map[string]float64{"request-success-rate": 99.5 - float64(weight)/10}),
		}},
	}
	if status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		e.CloseTime = timestamppb.New(start.Add(90 * time.Second))
	}
	return e
}

// Canary metrics come from what rollouts recorded in Temporal, so two workers reading the same visibility report
// the same figures.
func TestCanaryMetricsFoldVisibilityTheSameOnEveryWorker(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	// Oldest first: visibility promises no order (ORDER BY is refused), the newest run of a canary must still win.
	execs := []*workflowpb.WorkflowExecutionInfo{
		execution(t, "canary/test/b", "b", "Succeeded", 0, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, t0),
		execution(t, "canary/test/a", "a", "Succeeded", 0, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, t0.Add(time.Hour)),
		execution(t, "canary/test/b", "b", "Failed", 0, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, t0.Add(2*time.Hour)),
		execution(t, "canary/test/a", "a", "Progressing", 30, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, t0.Add(3*time.Hour)),
	}
	list := func(context.Context, *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
		return &workflowservice.ListWorkflowExecutionsResponse{Executions: execs}, nil
	}
	var outputs []string
	for range 2 {
		reg := prometheus.NewRegistry()
		reg.MustRegister(&canaryMetrics{list: list, ns: "default", refresh: time.Minute})
		mfs, err := reg.Gather()
		require.NoError(t, err)
		var b strings.Builder
		for _, mf := range mfs {
			b.WriteString(mf.String())
		}
		outputs = append(outputs, b.String())
		reg2 := prometheus.NewRegistry()
		reg2.MustRegister(&canaryMetrics{list: list, ns: "default", refresh: time.Minute})
		require.NoError(t, testutil.GatherAndCompare(reg2, strings.NewReader(`
# HELP canaryflow_canary_status Last rollout of a canary: 0 running, 1 done, 2 failed.
# TYPE canaryflow_canary_status gauge
canaryflow_canary_status{name="a",namespace="test"} 0
canaryflow_canary_status{name="b",namespace="test"} 2
# HELP canaryflow_canary_total Canaries known to canaryflow, by namespace.
# TYPE canaryflow_canary_total gauge
canaryflow_canary_total{namespace="test"} 2
# HELP canaryflow_canary_weight Traffic weight of the primary (<target>-primary) and of the canary (<target>).
# TYPE canaryflow_canary_weight gauge
canaryflow_canary_weight{namespace="test",workload="a-app"} 30
canaryflow_canary_weight{namespace="test",workload="a-app-primary"} 70
canaryflow_canary_weight{namespace="test",workload="b-app"} 0
canaryflow_canary_weight{namespace="test",workload="b-app-primary"} 100
# HELP canaryflow_canary_metric_analysis Last value of each metric check of a canary.
# TYPE canaryflow_canary_metric_analysis gauge
canaryflow_canary_metric_analysis{metric="request-success-rate",name="a",namespace="test"} 96.5
canaryflow_canary_metric_analysis{metric="request-success-rate",name="b",namespace="test"} 99.5
# HELP canaryflow_canary_successes_total Rollouts promoted, by strategy.
# TYPE canaryflow_canary_successes_total counter
canaryflow_canary_successes_total{deployment_strategy="canary",name="a",namespace="test"} 1
canaryflow_canary_successes_total{deployment_strategy="canary",name="b",namespace="test"} 1
# HELP canaryflow_canary_failures_total Rollouts that failed or were rolled back, by strategy.
# TYPE canaryflow_canary_failures_total counter
canaryflow_canary_failures_total{deployment_strategy="canary",name="b",namespace="test"} 1
`), "canaryflow_canary_status", "canaryflow_canary_total", "canaryflow_canary_weight",
			"canaryflow_canary_successes_total", "canaryflow_canary_failures_total", "canaryflow_canary_metric_analysis"))
	}
	assert.Equal(t, outputs[0], outputs[1])
}

// A run seen running that a later read finds neither running nor closed (visibility that lags more than the
// worker allows for) makes the worker list every run again at once, so the canary does not vanish from its
// metrics until the next full read.
func TestCanaryMetricsListEveryRunWhenARunningOneGoesMissing(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	running := execution(t, "canary/test/a", "a", "Progressing", 30, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, t0)
	closed := execution(t, "canary/test/a", "a", "Succeeded", 0, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, t0)
	var queries []string
	answers := [][]*workflowpb.WorkflowExecutionInfo{{running}, {}, {closed}}
	list := func(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
		queries = append(queries, req.GetQuery())
		require.LessOrEqual(t, len(queries), len(answers), "more reads than expected: %q", queries)
		return &workflowservice.ListWorkflowExecutionsResponse{Executions: answers[len(queries)-1]}, nil
	}
	m := &canaryMetrics{list: list, ns: "default", fullEvery: time.Hour, closedLag: time.Minute}
	status := func() float64 {
		s := m.read(t.Context())
		require.NoError(t, s.err)
		return s.status[[2]string{"a", "test"}]
	}
	require.Equal(t, 0.0, status(), "running at the first read")
	require.Equal(t, 1.0, status(), "done once the run is listed closed")
	require.Len(t, queries, 3)
	assert.Equal(t, "WorkflowType = 'CanaryRollout'", queries[0])
	assert.Contains(t, queries[1], "ExecutionStatus = 'Running' OR CloseTime >=")
	assert.Equal(t, queries[0], queries[2], "the read after a run went missing lists every run")
}
