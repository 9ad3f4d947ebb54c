package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1alpha1"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

const (
	oldImage = "ghcr.io/stefanprodan/podinfo:6.0.0"
	newImage = "ghcr.io/stefanprodan/podinfo:6.0.1"
)

// fakeClusters are the clusters of a release test: each cluster's target and primary images, keyed by the task
// queue its worker serves (what tells clusters apart in a real deployment too), and a stand-in CanaryRollout that
// promotes the target onto the primary or fails, as each cluster is scripted.
type fakeClusters struct {
	mu      sync.Mutex
	target  map[string]string // task queue → image of container podinfo on the target
	primary map[string]string // task queue → image the primary runs
	// outcome per task queue: "promote" (default), "fail", or "hold" (runs until aborted).
	outcome map[string]string
	// starts records each rollout started: task queue, start time, whether the analysis was skipped.
	starts []rolloutStart
	// signals records the signals each rollout received.
	signals map[string][]string
	// analysis is how long a rollout analyses before it ends (10 minutes of test clock by default).
	analysis time.Duration
}

type rolloutStart struct {
	queue    string
	at       time.Time
	skipped  bool
	workflow string
}

func newFakeClusters(queues ...string) *fakeClusters {
	f := &fakeClusters{target: map[string]string{}, primary: map[string]string{}, outcome: map[string]string{}, signals: map[string][]string{},
		analysis: 10 * time.Minute}
	for _, q := range queues {
		f.target[q], f.primary[q] = oldImage, oldImage
	}
	return f
}

func (f *fakeClusters) TargetImages(ctx context.Context, _ *v1beta1.Canary, _ []string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.outcome[activity.GetInfo(ctx).TaskQueue] == "no-container" {
		return nil, temporal.NewNonRetryableApplicationError("Deployment test/podinfo has no container podinfo; its containers: app", activities.ErrTypePermanent, nil)
	}
	return map[string]string{"podinfo": f.target[activity.GetInfo(ctx).TaskQueue]}, nil
}

func (f *fakeClusters) SetTargetImages(ctx context.Context, _ *v1beta1.Canary, images map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.target[activity.GetInfo(ctx).TaskQueue] = images["podinfo"]
	return nil
}

// rollout stands in for CanaryRollout in one cluster.
func (f *fakeClusters) rollout(ctx workflow.Context, in RolloutInput) (RolloutResult, error) {
	info := workflow.GetInfo(ctx)
	q := info.TaskQueueName
	f.mu.Lock()
	f.starts = append(f.starts, rolloutStart{queue: q, at: workflow.Now(ctx), skipped: in.Canary.Spec.SkipAnalysis, workflow: info.WorkflowExecution.ID})
	outcome := f.outcome[q]
	if in.Canary.Spec.SkipAnalysis {
		outcome = "promote"
	}
	prev := f.primary[q]
	f.mu.Unlock()
	aborted := false
	for _, name := range []string{SignalAbort, SignalPause, SignalResume} {
		ch := workflow.GetSignalChannel(ctx, name)
		workflow.Go(ctx, func(ctx workflow.Context) {
			for {
				var s ActionSignal
				ch.Receive(ctx, &s)
				f.mu.Lock()
				f.signals[q] = append(f.signals[q], name)
				f.mu.Unlock()
				aborted = aborted || name == SignalAbort
			}
		})
	}
	if err := workflow.Sleep(ctx, f.analysis); err != nil {
		return RolloutResult{}, err
	}
	if outcome == "hold" {
		_ = workflow.Await(ctx, func() bool { return aborted })
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if (outcome == "" || outcome == "promote") && !aborted {
		f.primary[q] = f.target[q]
		return RolloutResult{Phase: PhaseSucceeded, Promoted: true, Revision: "rev-" + f.target[q]}, nil
	}
	return RolloutResult{Phase: PhaseFailed, Revision: "rev-" + f.target[q], Reason: "Canary analysis failed",
		Status: Status{PrimaryRevision: "rev-" + prev}}, nil
}

func (f *fakeClusters) startOf(queue string, skipped bool) rolloutStart {
	for _, s := range f.starts {
		if s.queue == queue && s.skipped == skipped {
			return s
		}
	}
	return rolloutStart{}
}

// releaseHarness runs CanaryRelease in the time-skipping test environment over fake clusters.
type releaseHarness struct {
	env *testsuite.TestWorkflowEnvironment
	f   *fakeClusters
	t0  time.Time
}

func newReleaseHarness(queues ...string) *releaseHarness {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := newFakeClusters(queues...)
	env.RegisterWorkflowWithOptions(CanaryRelease, workflow.RegisterOptions{Name: ReleaseWorkflowName})
	env.RegisterWorkflowWithOptions(f.rollout, workflow.RegisterOptions{Name: WorkflowName})
	env.RegisterActivity(&activities.Targets{Kube: f})
	return &releaseHarness{env: env, f: f, t0: env.Now()}
}

// plan is staging → eu-1, eu-2 → us-1, with 30 minutes of bake time after staging.
func plan(onFailure v1alpha1.OnFailure, edit ...func(*v1alpha1.Plan)) v1alpha1.Plan {
	c := v1beta1.Canary{}
	c.Name, c.Namespace = "podinfo", "test"
	c.Spec.TargetRef = v1beta1.LocalObjectReference{Kind: "Deployment", Name: "podinfo"}
	cl := func(name string) v1alpha1.PlanCluster {
		return v1alpha1.PlanCluster{Name: name, TaskQueue: v1alpha1.DefaultTaskQueue(name), Canary: c}
	}
	p := v1alpha1.Plan{Name: "podinfo-601", Images: map[string]string{"podinfo": newImage}, OnFailure: onFailure, Waves: []v1alpha1.PlanWave{
		{Name: "staging", Gate: v1alpha1.GateAuto, BakeTime: 30 * time.Minute, Clusters: []v1alpha1.PlanCluster{cl("staging")}},
		{Name: "eu", Gate: v1alpha1.GateAuto, Clusters: []v1alpha1.PlanCluster{cl("eu-1"), cl("eu-2")}},
		{Name: "us", Gate: v1alpha1.GateAuto, Clusters: []v1alpha1.PlanCluster{cl("us-1")}},
	}}
	for _, e := range edit {
		e(&p)
	}
	return p
}

var allQueues = []string{"canaryflow-staging", "canaryflow-eu-1", "canaryflow-eu-2", "canaryflow-us-1"}

func (h *releaseHarness) run(t *testing.T, p v1alpha1.Plan) ReleaseResult {
	t.Helper()
	h.env.ExecuteWorkflow(ReleaseWorkflowName, ReleaseInput{Plan: p})
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res ReleaseResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	return res
}

func phases(st ReleaseStatus) map[string]ClusterPhase {
	out := map[string]ClusterPhase{}
	for _, c := range st.Clusters {
		out[c.Cluster] = c.Phase
	}
	return out
}

func TestReleaseRunsWavesInOrderClustersOfAWaveTogetherAndBakesBetween(t *testing.T) {
	h := newReleaseHarness(allQueues...)
	res := h.run(t, plan(v1alpha1.OnFailureHalt))

	require.Equal(t, ReleaseSucceeded, res.Phase)
	require.Equal(t, map[string]ClusterPhase{"staging": ClusterPromoted, "eu-1": ClusterPromoted, "eu-2": ClusterPromoted, "us-1": ClusterPromoted}, phases(res.Status))
	staging, eu1, eu2, us1 := h.f.startOf("canaryflow-staging", false), h.f.startOf("canaryflow-eu-1", false), h.f.startOf("canaryflow-eu-2", false), h.f.startOf("canaryflow-us-1", false)
	require.Equal(t, "canary/test/podinfo@eu-1", eu1.workflow, "each cluster's rollout has its own ID")
	// staging's rollout takes 10 minutes, then 30 minutes of bake time; eu-1 and eu-2 start together.
	require.Equal(t, 40*time.Minute, eu1.at.Sub(staging.at))
	require.Equal(t, eu1.at, eu2.at)
	require.Equal(t, 10*time.Minute, us1.at.Sub(eu1.at), "the last wave starts when the eu wave ended, no bake time set")
	for _, q := range allQueues {
		require.Equal(t, newImage, h.f.primary[q], q)
	}
	require.Contains(t, res.Status.Decisions, "Cluster eu-2 (wave eu): promoted revision rev-"+newImage+" (podinfo="+newImage+")")
	require.Contains(t, res.Status.Decisions, "Baking wave staging for 30m0s before wave eu")
	require.Contains(t, res.Reason, "us-1 Promoted runs podinfo="+newImage)
}

func TestReleaseFailureHaltKeepsPromotedClustersAndRollbackAllRestoresThem(t *testing.T) {
	for _, tc := range []struct {
		policy      v1alpha1.OnFailure
		wantPhases  map[string]ClusterPhase
		wantPrimary string // of staging, eu-1 and eu-2
		wantUSTgt   string
	}{
		{v1alpha1.OnFailureHalt,
			map[string]ClusterPhase{"staging": ClusterPromoted, "eu-1": ClusterPromoted, "eu-2": ClusterPromoted, "us-1": ClusterFailed},
			newImage, newImage},
		{v1alpha1.OnFailureRollbackAll,
			map[string]ClusterPhase{"staging": ClusterRolledBack, "eu-1": ClusterRolledBack, "eu-2": ClusterRolledBack, "us-1": ClusterFailed},
			oldImage, oldImage},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			h := newReleaseHarness(allQueues...)
			h.f.outcome["canaryflow-us-1"] = "fail"
			res := h.run(t, plan(tc.policy))

			require.Equal(t, ReleaseFailed, res.Phase)
			require.Equal(t, tc.wantPhases, phases(res.Status))
			for _, q := range allQueues[:3] {
				require.Equal(t, tc.wantPrimary, h.f.primary[q], q)
			}
			require.Equal(t, oldImage, h.f.primary["canaryflow-us-1"], "the failed rollout kept its primary")
			require.Equal(t, tc.wantUSTgt, h.f.target["canaryflow-us-1"])
			require.Contains(t, res.Status.Decisions, "Release podinfo-601 stopped at wave us: cluster us-1 failed; onFailure "+string(tc.policy))
			if tc.policy == v1alpha1.OnFailureRollbackAll {
				rb := h.f.startOf("canaryflow-eu-1", true)
				require.Equal(t, "canary/test/podinfo@eu-1", rb.workflow, "the rollback is a rollout with the analysis skipped")
				require.Contains(t, res.Status.Decisions, "Cluster eu-1 (wave eu): rolled back to revision rev-"+oldImage+" (podinfo="+oldImage+")")
				require.Contains(t, res.Reason, "eu-1 RolledBack runs podinfo="+oldImage)
			} else {
				require.Len(t, h.f.starts, 4, "halt starts no rollback")
				require.Contains(t, res.Reason, "eu-1 Promoted runs podinfo="+newImage)
			}
		})
	}
}

func TestReleaseApprovalGateHoldsTheWaveUntilApproved(t *testing.T) {
	h := newReleaseHarness(allQueues...)
	p := plan(v1alpha1.OnFailureHalt, func(p *v1alpha1.Plan) { p.Waves[2].Gate = v1alpha1.GateApproval })
	var waiting ReleaseStatus
	h.env.RegisterDelayedCallback(func() {
		v, err := h.env.QueryWorkflow(QueryStatus)
		require.NoError(t, err)
		require.NoError(t, v.Get(&waiting))
		h.env.SignalWorkflow(SignalApprove, ApproveSignal{Gate: "eu", By: "mallory", Reason: "wrong wave"})
		h.env.SignalWorkflow(SignalApprove, ApproveSignal{Gate: "us", By: "alice", Reason: "eu looks good"})
	}, 5*time.Hour)
	res := h.run(t, p)

	require.Equal(t, ReleaseWaitingApproval, waiting.Phase)
	require.Equal(t, "us", waiting.PendingGate)
	require.Equal(t, ClusterPending, phases(waiting)["us-1"])
	require.Equal(t, ReleaseSucceeded, res.Phase)
	require.Equal(t, 5*time.Hour, h.f.startOf("canaryflow-us-1", false).at.Sub(h.t0), "us-1 starts when approved, not before")
	require.Len(t, res.Status.Approvals, 1, "an approval of another gate opens nothing")
	require.Contains(t, res.Status.Decisions, "Wave us approved by alice: eu looks good")
}

func TestReleaseAbortStopsTheWaveForwardsToRolloutsAndAppliesThePolicy(t *testing.T) {
	h := newReleaseHarness(allQueues...)
	h.f.outcome["canaryflow-us-1"] = "hold"
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(SignalAbort, ActionSignal{By: "bob", Reason: "pager"})
	}, 3*time.Hour)
	res := h.run(t, plan(v1alpha1.OnFailureRollbackAll))

	require.Equal(t, ReleaseFailed, res.Phase)
	require.Equal(t, "bob", res.Status.AbortedBy)
	require.Equal(t, []string{SignalAbort}, h.f.signals["canaryflow-us-1"], "the running rollout was aborted")
	require.Equal(t, map[string]ClusterPhase{"staging": ClusterRolledBack, "eu-1": ClusterRolledBack, "eu-2": ClusterRolledBack, "us-1": ClusterFailed}, phases(res.Status))
	require.Contains(t, res.Reason, "aborted by bob: pager")
	require.Empty(t, h.f.signals["canaryflow-eu-1"], "rollbacks are not aborted")
}

func TestReleasePauseStopsTheBakeClockAndPausesRunningRollouts(t *testing.T) {
	h := newReleaseHarness(allQueues...)
	// staging's rollout runs 0-10m; bake 10m-40m. Pause at 5m (forwarded to staging's rollout), resume at 1h.
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalPause, ActionSignal{By: "carol"}) }, 5*time.Minute)
	h.env.RegisterDelayedCallback(func() { h.env.SignalWorkflow(SignalResume, ActionSignal{By: "carol"}) }, time.Hour)
	res := h.run(t, plan(v1alpha1.OnFailureHalt))

	require.Equal(t, ReleaseSucceeded, res.Phase)
	// The stand-in rollout ignores a pause and ends at 10m: the resume at 1h finds no rollout running.
	require.Equal(t, []string{SignalPause}, h.f.signals["canaryflow-staging"], "a pause reaches the rollout running")
	require.Equal(t, time.Hour+30*time.Minute, h.f.startOf("canaryflow-eu-1", false).at.Sub(h.t0),
		"the whole bake time runs after the resume: the release was paused when it began")
	require.Contains(t, res.Status.Decisions, "Release podinfo-601 paused by carol")
}

func TestReleaseStopsBeforeAnyChangeInAClusterWhoseTargetLacksTheContainer(t *testing.T) {
	h := newReleaseHarness(allQueues...)
	h.f.outcome["canaryflow-eu-2"] = "no-container"
	res := h.run(t, plan(v1alpha1.OnFailureHalt))

	require.Equal(t, ReleaseFailed, res.Phase)
	got := phases(res.Status)
	require.Equal(t, ClusterPromoted, got["staging"])
	require.Equal(t, ClusterFailed, got["eu-2"])
	require.Equal(t, ClusterSkipped, got["us-1"])
	// eu-1 runs beside eu-2: its rollout is aborted when it started, or it is never started.
	require.Contains(t, []ClusterPhase{ClusterFailed, ClusterSkipped}, got["eu-1"])
	require.Contains(t, res.Status.Clusters[2].Message, "reading the target's images failed")
	require.Contains(t, res.Status.Clusters[2].Message, "has no container podinfo; its containers: app")
	require.Equal(t, oldImage, h.f.target["canaryflow-eu-2"], "nothing was set on eu-2")
	if got["eu-1"] == ClusterFailed {
		require.Equal(t, []string{SignalAbort}, h.f.signals["canaryflow-eu-1"], "eu-1's rollout, started beside it, is aborted")
	}
	require.Equal(t, oldImage, h.f.primary["canaryflow-eu-1"], "eu-1 stays on the previous revision")
	require.Empty(t, h.f.startOf("canaryflow-us-1", false).queue, "the next wave never starts")
}

func TestReleaseCancelledRollsBackItsRolloutsAndWithRollbackAllThePromotedClusters(t *testing.T) {
	h := newReleaseHarness(allQueues...)
	h.f.outcome["canaryflow-us-1"] = "hold"
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 3*time.Hour)
	h.env.ExecuteWorkflow(ReleaseWorkflowName, ReleaseInput{Plan: plan(v1alpha1.OnFailureRollbackAll)})
	require.True(t, h.env.IsWorkflowCompleted())
	var ce *temporal.CanceledError
	require.ErrorAs(t, h.env.GetWorkflowError(), &ce)
	var res ReleaseResult
	require.NoError(t, ce.Details(&res), "the cancelled release reports how it ended")

	require.Equal(t, ReleaseFailed, res.Phase)
	require.Equal(t, map[string]ClusterPhase{"staging": ClusterRolledBack, "eu-1": ClusterRolledBack, "eu-2": ClusterRolledBack, "us-1": ClusterFailed}, phases(res.Status))
	for _, q := range allQueues {
		require.Equal(t, oldImage, h.f.primary[q], q)
		require.Equal(t, oldImage, h.f.target[q], q)
	}
}
