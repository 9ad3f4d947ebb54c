package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/rolloutclient"
)

func TestReleaseRateIsAFlagThatNamesTheAdmissionQueue(t *testing.T) {
	cfg, err := parseConfig([]string{"--task-queue", "team-a"})
	require.NoError(t, err)
	assert.Empty(t, cfg.admissionQueue(), "without --release-rate a release starts at once")

	t.Setenv("CANARYFLOW_RELEASE_RATE", "1.5")
	cfg, err = parseConfig([]string{"--task-queue", "team-a"})
	require.NoError(t, err)
	assert.Equal(t, "team-a-admission", cfg.admissionQueue())
	assert.InDelta(t, 1.5, cfg.admissionOptions().TaskQueueActivitiesPerSecond, 1e-9)
	assert.True(t, cfg.admissionOptions().DisableWorkflowWorker)

	cfg, err = parseConfig([]string{"--release-rate", "4"})
	require.NoError(t, err, "the flag wins over the variable")
	assert.InDelta(t, 4, cfg.releaseRate, 1e-9)

	_, err = parseConfig([]string{"--release-rate", "-1"})
	require.ErrorContains(t, err, "--release-rate -1: releases a second, 0 (no limit) or more")
	t.Setenv("CANARYFLOW_RELEASE_RATE", "fast")
	_, err = parseConfig(nil)
	require.ErrorContains(t, err, `CANARYFLOW_RELEASE_RATE "fast": not a number`)
}

// --max-releases-at-work bounds the rollouts at work through the admission queue, so it needs --release-rate, and
// it sizes the sticky cache a little above the bound unless the cache is given.
func TestMaxReleasesAtWorkIsAFlagThatSizesTheStickyCache(t *testing.T) {
	cfg, err := parseConfig([]string{"--release-rate", "2", "--max-releases-at-work", "200"})
	require.NoError(t, err)
	assert.Equal(t, 200, cfg.maxReleasesAtWork)
	assert.Equal(t, 300, cfg.stickyCacheSize, "the bound and half as many again")
	cfg, err = parseConfig([]string{"--release-rate", "2", "--max-releases-at-work", "20"})
	require.NoError(t, err)
	assert.Equal(t, 120, cfg.stickyCacheSize, "at least 100 over the bound")
	t.Setenv("CANARYFLOW_STICKY_CACHE_SIZE", "5000")
	cfg, err = parseConfig([]string{"--release-rate", "2", "--max-releases-at-work", "200"})
	require.NoError(t, err)
	assert.Equal(t, 5000, cfg.stickyCacheSize, "a cache asked for is kept")

	_, err = parseConfig([]string{"--max-releases-at-work", "200"})
	require.ErrorContains(t, err, "--max-releases-at-work 200 needs --release-rate")
	_, err = parseConfig([]string{"--release-rate", "2", "--max-releases-at-work", "-1"})
	require.ErrorContains(t, err, "--max-releases-at-work -1: rollouts at once, 0 (no bound) or more")
	_, err = parseConfig([]string{"--release-rate", "2", "--max-releases-at-work", "5", "--task-queue", "team'a"})
	require.ErrorContains(t, err, "must not hold quotes")
}

// admissionCanary is a Canary of the admission tests: its name, twice, and its analysis.
const admissionCanary = `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: %s, namespace: admission}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  service: {port: 9898}
  analysis: %s
`

// oneStep is a one-step analysis (50 %, then promotion) with 1 s steps, so that sixteen releases end in seconds.
const oneStep = "{interval: 1s, threshold: 1, stepWeight: 50, maxWeight: 50}"

// devServerClient starts a Temporal dev server for the test and returns its client.
func devServerClient(t *testing.T) client.Client {
	t.Helper()
	srv, err := labbin.DevServer(t.Context(), quietSDKLogger{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	return srv.Client()
}

// Sixteen canaries released in the same second, on a worker started with --release-rate 2 and wired as main wires
// it, on a real Temporal server: the server hands out their admissions no faster than 2 a second, so their first
// traffic shifts spread over seconds instead of landing together, and every release is still promoted. The same
// releases on a worker without the flag shift within a few seconds of each other even on a loaded machine (the
// control: the spread comes from the rate, not from the machine).
func TestReleasesStartAtTheWorkersReleaseRate(t *testing.T) {
	tc := devServerClient(t)

	run := func(t *testing.T, queue string, args ...string) (spread time.Duration, admissionTasks int) {
		cfg, err := parseConfig(append([]string{"--task-queue", queue}, args...))
		require.NoError(t, err)
		cluster := startWiredWorker(t, tc, cfg)

		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		const n = 16
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("%s-%02d", queue, i)
		}
		runs := releaseTogether(ctx, t, tc, queue, oneStep, names)
		var first []time.Time
		for i := range n {
			c := cluster.Get("admission", names[i])
			require.Equal(t, []string{"50/50", "100/0"}, c.Routes)
			first = append(first, c.RouteTimes[0])

			it := tc.GetWorkflowHistory(ctx, runs[i].GetID(), runs[i].GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				require.NoError(t, err)
				if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == "Admit" {
					assert.Equal(t, queue+"-admission", a.GetTaskQueue().GetName())
					admissionTasks++
				}
			}
		}
		return slices.MaxFunc(first, time.Time.Compare).Sub(slices.MinFunc(first, time.Time.Compare)), admissionTasks
	}

	spread, admitted := run(t, "canaryflow-unlimited")
	assert.Zero(t, admitted, "without --release-rate no release waits for an admission")
	assert.Less(t, spread, 4*time.Second, "releases on a worker without a rate start together")

	// 2 a second, which the server divides over the task queue's partitions (4 by default; each starts with a
	// burst of one task): sixteen admissions take at least 6 s whichever partitions they land on (the busiest
	// holds at least four, at half a task a second), 7.5 s on one partition, and 4 s even on eight.
	spread, admitted = run(t, "canaryflow-rated", "--release-rate", "2")
	assert.Equal(t, 16, admitted, "every release waited for one admission on the admission queue")
	assert.GreaterOrEqual(t, spread, 4*time.Second, "the server handed out the admissions at the rate")
	t.Logf("first traffic shifts of 16 releases at 2 a second spread over %s", spread)
}

// twoSteps takes two steps of 25 % to 50 % at the shortest interval (10 s): a release shifts traffic for about
// 20 s.
const twoSteps = "{interval: 10s, threshold: 1, stepWeight: 25, maxWeight: 50}"

// Four canaries released in the same second, on a worker started with --release-rate 10 --max-releases-at-work 2
// and wired as main wires it, on a real Temporal server: at no moment do more than two of them shift traffic
// (from a release's first route to its last), though the rate alone would let all four in within a second, and
// every release is promoted. A release stays at work several times as long as the worker counts its own
// admissions on its own, so the bound is kept by the count of the rollouts at work in the server's visibility in between.
func TestReleasesAtWorkStayUnderTheWorkersBound(t *testing.T) {
	tc := devServerClient(t)

	const queue = "canaryflow-bounded"
	cfg, err := parseConfig([]string{"--task-queue", queue, "--release-rate", "10", "--max-releases-at-work", "2"})
	require.NoError(t, err)
	cfg.admissionSettle = 3 * time.Second
	cluster := startWiredWorker(t, tc, cfg)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	names := []string{"bounded-0", "bounded-1", "bounded-2", "bounded-3"}
	releaseTogether(ctx, t, tc, queue, twoSteps, names)
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	var longest time.Duration
	for _, name := range names {
		c := cluster.Get("admission", name)
		require.Equal(t, []string{"75/25", "50/50", "100/0"}, c.Routes)
		first, last := c.RouteTimes[0], c.RouteTimes[len(c.RouteTimes)-1]
		longest = max(longest, last.Sub(first))
		edges = append(edges, edge{first, 1}, edge{last, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // one ending as another starts is not two at once
	})
	most, now := 0, 0
	for _, e := range edges {
		now += e.delta
		most = max(most, now)
	}
	assert.Equal(t, 2, most, "releases shifting traffic at once, with at most 2 at work")
	assert.Greater(t, longest, cfg.admissionSettle, "a release outlasts the worker's own count of it, so visibility's count is what bounds it")
	t.Logf("four releases, at most 2 at work: at most %d shifted traffic at once; the longest shifted for %s", most, longest.Round(100*time.Millisecond))
}

// startWiredWorker starts, on tc, a rollout worker with cfg's options over a fake cluster and the admission worker
// as main starts it; both stop with the test.
func startWiredWorker(t *testing.T, tc client.Client, cfg *config) *activitiestest.Cluster {
	t.Helper()
	cluster := activitiestest.NewCluster()
	cluster.AdmissionQueue = cfg.admissionQueue()
	w := worker.New(tc, cfg.taskQueue, cfg.workerOptions())
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(cluster.Activities())
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	stop, err := startAdmission(tc, cfg, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(stop)
	return cluster
}

// releaseTogether releases the canaries named names with the analysis given, all at once on queue, and waits until
// every release is promoted.
func releaseTogether(ctx context.Context, t *testing.T, tc client.Client, queue, analysis string, names []string) []client.WorkflowRun {
	t.Helper()
	runs := make([]client.WorkflowRun, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		set, err := v1beta1.Load(strings.NewReader(fmt.Sprintf(admissionCanary, name, name, analysis)), "canary.yaml",
			v1beta1.ValidateOptions{Capabilities: catalog.Capabilities()})
		require.NoError(t, err)
		c := *set.Canaries()[0]
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i], errs[i] = rolloutclient.Client{Temporal: tc, TaskQueue: queue}.Release(ctx, workflows.RolloutInput{Canary: c},
				workflows.ActionSignal{By: "test"})
		}()
	}
	wg.Wait()
	for i := range names {
		require.NoError(t, errs[i])
		var res workflows.RolloutResult
		require.NoError(t, runs[i].Get(ctx, &res))
		require.True(t, res.Promoted, "release of %s: %+v", names[i], res)
	}
	return runs
}

func TestReadinessWaitsAreOnByDefaultAndAFlagTurnsThemOff(t *testing.T) {
	cfg, err := parseConfig(nil)
	require.NoError(t, err)
	assert.Equal(t, workflows.TaskQueue+"-readiness", cfg.readinessQueue(), "on by default, beside the task queue")
	cfg, err = parseConfig([]string{"--watch-readiness=false"})
	require.NoError(t, err)
	assert.Empty(t, cfg.readinessQueue(), "off: rollouts poll, no readiness worker")
	t.Setenv("CANARYFLOW_WATCH_READINESS", "false")
	cfg, err = parseConfig([]string{"--task-queue", "team-a"})
	require.NoError(t, err)
	assert.Empty(t, cfg.readinessQueue())
	t.Setenv("CANARYFLOW_WATCH_READINESS", "yes please")
	_, err = parseConfig(nil)
	require.ErrorContains(t, err, `CANARYFLOW_WATCH_READINESS "yes please": write true or false`)
}
