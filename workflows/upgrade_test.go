//go:build lab

package workflows

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// previousWorker makes a worker run CanaryRollout as the worker before the version gates of this session did:
// those GetVersion calls answer DefaultVersion and record no marker, as code that did not call them. (That the
// DefaultVersion branches are that code is what the replay of the histories it recorded proves.)
type previousWorker struct {
	interceptor.WorkerInterceptorBase
}

// newGates are the change IDs the previous worker did not know.
var newGates = map[string]bool{
	versionLeanHistory: true, versionSignalListeners: true, versionKeepFinishedPromotion: true, versionContinueAsNewSuggested: true,
	versionStepCadence: true, versionLocalChecks: true, versionBaseline: true,
}

func (*previousWorker) InterceptWorkflow(_ workflow.Context, next interceptor.WorkflowInboundInterceptor) interceptor.WorkflowInboundInterceptor {
	return &previousInbound{WorkflowInboundInterceptorBase: interceptor.WorkflowInboundInterceptorBase{Next: next}}
}

type previousInbound struct {
	interceptor.WorkflowInboundInterceptorBase
}

func (i *previousInbound) Init(outbound interceptor.WorkflowOutboundInterceptor) error {
	return i.Next.Init(&previousOutbound{WorkflowOutboundInterceptorBase: interceptor.WorkflowOutboundInterceptorBase{Next: outbound}})
}

type previousOutbound struct {
	interceptor.WorkflowOutboundInterceptorBase
}

func (o *previousOutbound) GetVersion(ctx workflow.Context, changeID string, minSupported, maxSupported workflow.Version) workflow.Version {
	if newGates[changeID] {
		return workflow.DefaultVersion
	}
	return o.Next.GetVersion(ctx, changeID, minSupported, maxSupported)
}

// A rollout started by the previous worker finishes on the new one: the new worker replays what the previous one
// wrote (no version markers of the new gates), stays on the previous branches for that run (every call an
// activity, checks one at a time) and promotes it, with no workflow task failing on a nondeterminism.
func TestARolloutStartedByThePreviousWorkerFinishesOnTheNewOne(t *testing.T) {
	bin := os.Getenv("CANARYFLOW_TEMPORAL")
	if bin == "" {
		bin = labbin.Temporal()
	}
	_, err := os.Stat(bin)
	require.NoError(t, err, "temporal CLI (make lab-build, or CANARYFLOW_TEMPORAL)")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sas := []temporal.SearchAttributeUpdate{
		searchattr.CanaryName.ValueSet(""), searchattr.CanaryNamespace.ValueSet(""), searchattr.CanaryPhase.ValueSet(""),
		searchattr.CanaryRevision.ValueSet(""), searchattr.CanaryProvider.ValueSet(""), searchattr.CanaryWeight.ValueSet(0),
	}
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath: bin, LogLevel: "error", SearchAttributes: temporal.NewSearchAttributes(sas...),
		ClientOptions: &client.Options{Namespace: "default"},
	})
	require.NoError(t, err)
	defer func() { _ = srv.Stop() }()
	c := srv.Client()

	const queue = "upgrade"
	f := newFakes(time.Now)
	start := func(opts worker.Options) worker.Worker {
		w := worker.New(c, queue, opts)
		w.RegisterWorkflowWithOptions(CanaryRollout, workflow.RegisterOptions{Name: WorkflowName})
		w.RegisterActivity(f)
		require.NoError(t, w.Start())
		return w
	}
	previous := start(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&previousWorker{}}})
	canary := podinfo(named("podinfo-upgrade"), func(c *v1beta1.Canary) { c.Spec.Analysis.Interval = "10s" })
	id := v1beta1.WorkflowID(canary.Namespace, canary.Name)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, WorkflowName, RolloutInput{Canary: canary})
	require.NoError(t, err)

	// The previous worker sets 90/10 at once and 80/20 after an interval; the new one takes over from there.
	require.Eventually(t, func() bool { return len(f.snapshotRoutes()) >= 2 }, time.Minute, 100*time.Millisecond)
	previous.Stop()
	next := start(worker.Options{})
	defer next.Stop()

	var res RolloutResult
	require.NoError(t, run.Get(ctx, &res))
	require.True(t, res.Promoted)
	require.Equal(t, PhaseSucceeded, res.Phase)
	var weights []string
	for _, r := range f.snapshotRoutes() {
		weights = append(weights, r.String())
	}
	require.Equal(t, []string{"90/10", "80/20", "70/30", "60/40", "50/50", "100/0"}, weights)

	counts := map[enumspb.EventType]int{}
	activitiesScheduled := map[string]int{}
	it := c.GetWorkflowHistory(ctx, id, run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		counts[ev.GetEventType()]++
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			activitiesScheduled[a.GetActivityType().GetName()]++
		}
	}
	require.Zero(t, counts[enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED], "no workflow task failed (a nondeterminism would)")
	require.Zero(t, counts[enumspb.EVENT_TYPE_MARKER_RECORDED]-2, "only the markers of the gates the previous worker knew")
	require.Equal(t, 6, activitiesScheduled["SetRoutes"], "every split an activity, as the previous worker set them")
	require.Zero(t, activitiesScheduled["RunChecks"])
	require.Equal(t, 5, activitiesScheduled["RunMetricChecks"], "the metrics of each step after the first, one at a time")
}
