package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/rest"
)

// The limits that matter at scale are the worker's flags (and CANARYFLOW_* variables): the Kubernetes client gets
// Flagger's rate by default (not client-go's 5 requests a second, which would hold back a few dozen rollouts), no
// more activities at once than that rate serves within their deadline, and the Temporal worker gets the pollers and
// concurrency asked for.
func TestScaleLimitsAreFlagsThatReachTheClients(t *testing.T) {
	cfg, err := parseConfig(nil)
	require.NoError(t, err)
	k := cfg.withKubeLimits(&rest.Config{Host: "https://kube"})
	assert.Equal(t, float32(100), k.QPS, "Flagger's -kube-api-qps default")
	assert.Equal(t, 250, k.Burst, "Flagger's -kube-api-burst default")
	o := cfg.workerOptions()
	assert.Equal(t, 100, o.MaxConcurrentActivityExecutionSize, "what the client limit serves within an activity's deadline")
	assert.Equal(t, 2, o.MaxConcurrentWorkflowTaskPollers)
	assert.Nil(t, o.WorkflowTaskPollerBehavior, "fixed pollers unless asked")
	assert.Equal(t, 200, o.MaxConcurrentLocalActivityExecutionSize, "not the SDK's 1,000: measured at 1,000 canaries")
	assert.Equal(t, 10000, cfg.stickyCacheSize)
	assert.Equal(t, 30*time.Second, o.StickyScheduleToStartTimeout, "not the SDK's 5s: measured at 1,000 canaries")

	t.Setenv("CANARYFLOW_KUBE_API_QPS", "400")
	t.Setenv("CANARYFLOW_ACTIVITY_TASK_POLLERS", "8")
	cfg, err = parseConfig([]string{"--workflow-task-pollers", "0", "--kube-api-burst", "800", "--max-concurrent-activities", "300", "--sticky-cache-size", "2000",
		"--sticky-schedule-to-start-timeout", "10s"})
	require.NoError(t, err)
	k = cfg.withKubeLimits(&rest.Config{Host: "https://kube"})
	assert.Equal(t, float32(400), k.QPS)
	assert.Equal(t, 800, k.Burst)
	o = cfg.workerOptions()
	assert.Equal(t, 8, o.MaxConcurrentActivityTaskPollers)
	assert.Nil(t, o.ActivityTaskPollerBehavior)
	assert.NotNil(t, o.WorkflowTaskPollerBehavior, "0: the pollers scale with the backlog")
	assert.Zero(t, o.MaxConcurrentWorkflowTaskPollers, "the SDK refuses a fixed count beside autoscaling")
	assert.Equal(t, 300, o.MaxConcurrentActivityExecutionSize)
	assert.Equal(t, 2000, cfg.stickyCacheSize)
	assert.Equal(t, 10*time.Second, o.StickyScheduleToStartTimeout)
}

func TestScaleLimitsRefuseNonsenseNamingTheFlag(t *testing.T) {
	t.Setenv("CANARYFLOW_WORKFLOW_TASK_POLLERS", "two")
	_, err := parseConfig([]string{"--kube-api-qps", "0", "--max-concurrent-activities", "0"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `CANARYFLOW_WORKFLOW_TASK_POLLERS "two": not a whole number`)
	assert.Contains(t, err.Error(), "--kube-api-qps 0 and --kube-api-burst 250 must be positive")
	assert.Contains(t, err.Error(), "--max-concurrent-activities 0: must be at least 1")

	_, err = parseConfig([]string{"--workflow-task-pollers", "1", "--activity-task-pollers", "-1"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--workflow-task-pollers 1: 0 (scaled with the backlog) or at least 2")
	assert.Contains(t, err.Error(), "--activity-task-pollers -1: 0 (scaled with the backlog) or at least 1")

	t.Setenv("CANARYFLOW_WORKFLOW_TASK_POLLERS", "2")
	t.Setenv("CANARYFLOW_STICKY_SCHEDULE_TO_START_TIMEOUT", "30")
	_, err = parseConfig(nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `CANARYFLOW_STICKY_SCHEDULE_TO_START_TIMEOUT "30": not a duration (write it as 30s or 2m)`)
	_, err = parseConfig([]string{"--sticky-schedule-to-start-timeout", "0s"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--sticky-schedule-to-start-timeout 0s must be positive (the default is 30s)")
}
