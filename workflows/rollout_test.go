package workflows

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/worker/zaplog"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// t0 is the test clock's start. It lies ahead of the machine's clock because the test environment gives a local
// activity a deadline from the test clock but checks it against the real one: a start in the past would time out
// every local activity that does not answer at once.
var t0 = time.Date(2036, 11, 22, 10, 0, 0, 0, time.UTC)

// podinfo is the canary of Flagger's tutorial: stepWeight 10 up to 50, every minute, two builtin metrics and a
// load-test rollout webhook, threshold 3.
func podinfo(mutate ...func(*v1beta1.Canary)) v1beta1.Canary {
	min99, max500 := 99.0, 500.0
	c := v1beta1.Canary{}
	c.Name, c.Namespace = "podinfo", "test"
	c.Spec.Provider = "traefik"
	c.Spec.TargetRef = v1beta1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"}
	c.Spec.Service = v1beta1.CanaryService{Port: 9898}
	md := map[string]string{"cmd": "hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/"}
	c.Spec.Analysis = &v1beta1.CanaryAnalysis{
		Interval: "1m", Threshold: 3, MaxWeight: 50, StepWeight: 10,
		Metrics: []v1beta1.CanaryMetric{
			{Name: v1beta1.MetricRequestSuccessRate, Interval: "1m", ThresholdRange: &v1beta1.CanaryThresholdRange{Min: &min99}},
			{Name: v1beta1.MetricRequestDuration, Interval: "1m", ThresholdRange: &v1beta1.CanaryThresholdRange{Max: &max500}},
		},
		Webhooks: []v1beta1.CanaryWebhook{
			{Name: "load-test", Type: v1beta1.RolloutHook, URL: "http://flagger-loadtester.test/", Timeout: "5s", Metadata: &md},
		},
	}
	for _, m := range mutate {
		m(&c)
	}
	return c
}

func hook(t v1beta1.HookType, name string) v1beta1.CanaryWebhook {
	return v1beta1.CanaryWebhook{Name: name, Type: t, URL: "http://flagger-loadtester.test/gate/check"}
}

// harness runs CanaryRollout in the time-skipping test environment with fakes and records the phases (from
// the search attribute upserts) and the decision log lines.
type harness struct {
	// memos are the memo upserts, in order.
	memos  []map[string]any
	t      *testing.T
	env    *testsuite.TestWorkflowEnvironment
	f      *fakes
	phases []Phase
	// from is the phase the run started in: none for a fresh run, the carried one for a continued run.
	from Phase
	logs *observer.ObservedLogs
}

func newHarness(t *testing.T, revisions ...activities.RevisionResult) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	var s testsuite.WorkflowTestSuite
	s.SetLogger(zaplog.New(zap.New(core)))
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	h := &harness{t: t, env: env, f: newFakes(env.Now, revisions...), logs: logs}
	env.RegisterWorkflow(CanaryRollout)
	env.RegisterActivity(h.f)
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		if p, ok := sa.GetKeyword(searchattr.CanaryPhase); ok {
			h.phases = append(h.phases, Phase(p))
		}
	}).Return(nil)
	env.OnUpsertMemo(mock.Anything).Run(func(args mock.Arguments) {
		h.memos = append(h.memos, args.Get(0).(map[string]any))
	}).Return(nil)
	t.Cleanup(func() {
		if t.Failed() {
			for _, e := range logs.AllUntimed() {
				t.Log(e.Level, e.Message)
			}
			t.Log("calls:", strings.Join(h.f.calls, ", "))
		}
	})
	// Registered last, so it runs first: a transition missing from the package doc shows in the dump above.
	t.Cleanup(h.checkTransitionsAreDocumented)
	return h
}

// at schedules fn at d after the start on the test clock.
func (h *harness) at(d time.Duration, fn func()) { h.env.RegisterDelayedCallback(fn, d) }

func (h *harness) signal(d time.Duration, name string, payload any) {
	h.at(d, func() { h.env.SignalWorkflow(name, payload) })
}

// run executes the rollout to its end and returns its result; the status query must agree with it.
func (h *harness) run(c v1beta1.Canary) RolloutResult {
	h.t.Helper()
	return h.runInput(RolloutInput{Canary: c})
}

// execute runs the workflow to its end, whatever that is.
func (h *harness) execute(in RolloutInput) {
	if in.Status != nil {
		h.from = in.Status.Phase
	}
	h.env.ExecuteWorkflow(CanaryRollout, &in)
}

func (h *harness) runInput(in RolloutInput) RolloutResult {
	h.t.Helper()
	h.execute(in)
	require.True(h.t, h.env.IsWorkflowCompleted())
	require.NoError(h.t, h.env.GetWorkflowError())
	var res RolloutResult
	require.NoError(h.t, h.env.GetWorkflowResult(&res))
	require.Equal(h.t, res.Status, h.status())
	return res
}

func (h *harness) status() Status {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(QueryStatus)
	require.NoError(h.t, err)
	var st Status
	require.NoError(h.t, v.Get(&st))
	return st
}

// requireRoutes asserts the exact splits set on the router and when (offset from the start).
func (h *harness) requireRoutes(want ...route) {
	h.t.Helper()
	require.Equal(h.t, want, h.f.snapshotRoutes())
}

func (h *harness) requirePhases(want ...Phase) {
	h.t.Helper()
	require.Equal(h.t, want, h.phases)
}

func (h *harness) requireLogged(msgs ...string) {
	h.t.Helper()
	var got []string
	for _, e := range h.logs.AllUntimed() {
		got = append(got, e.Message)
	}
	for _, m := range msgs {
		require.Contains(h.t, got, m)
	}
}

func (h *harness) count(call string) int {
	n := 0
	for _, c := range h.f.calls {
		if c == call {
			n++
		}
	}
	return n
}

func r(p, c int, at time.Duration) route { return route{Primary: p, Canary: c, At: at} }
func rm(p, c int, at time.Duration) route {
	return route{Primary: p, Canary: c, Mirrored: true, At: at}
}

const m = time.Minute

// summary is the part of the final status every scenario pins.
type summary struct {
	Phase                       Phase
	Primary, Canary             int
	Mirrored                    bool
	FailedChecks, Iterations    int
	Revision                    string
	Promoted                    ConditionStatus
	PromotedReason, PendingGate string
}

func summarize(st Status) summary {
	s := summary{Phase: st.Phase, Primary: st.PrimaryWeight, Canary: st.CanaryWeight, Mirrored: st.Mirrored,
		FailedChecks: st.FailedChecks, Iterations: st.Iterations, Revision: st.Revision, PendingGate: string(st.PendingGate)}
	if len(st.Conditions) == 1 {
		s.Promoted, s.PromotedReason = st.Conditions[0].Status, st.Conditions[0].Reason
	}
	return s
}

var (
	succeeded = func(rev string) summary {
		return summary{Phase: PhaseSucceeded, Primary: 100, Revision: rev, Promoted: ConditionTrue, PromotedReason: "Succeeded"}
	}
	failed = func(rev string, failedChecks int) summary {
		return summary{Phase: PhaseFailed, Primary: 100, Revision: rev, FailedChecks: failedChecks, Promoted: ConditionFalse, PromotedReason: "Failed"}
	}
	promotedPhases = []Phase{PhaseProgressing, PhasePromoting, PhaseFinalising, PhaseSucceeded}
	// podinfoRoutes are the splits of the podinfo canary: one step a minute up to 50, then all to the primary.
	podinfoRoutes = []route{r(90, 10, 0), r(80, 20, 1*m), r(70, 30, 2*m), r(60, 40, 3*m), r(50, 50, 4*m), r(100, 0, 5*m)}
)

// An initialisation that fails after its first write undoes what it made, so the next run initialises again
// instead of reporting "no new run" on a primary that never served.
func TestFailedInitialisationIsUndone(t *testing.T) {
	h := newHarness(t, activities.RevisionResult{TargetRevision: "rev1"})
	h.f.reconcileErr = temporal.NewNonRetryableApplicationError(`no router for provider "nginx"`, activities.ErrTypeUnsupportedProvider, nil)
	res := h.run(podinfo())

	h.requirePhases(PhaseInitializing, PhaseFailed)
	require.Equal(t, []string{"DetectRevision", "InitializeWorkloads", "ReconcileRouter", "FinalizeRouter", "FinalizeWorkloads"}, h.f.calls)
	require.Equal(t, PhaseFailed, res.Status.Phase)
	require.Contains(t, res.Reason, `Initialization of podinfo.test failed: `)
	require.NotContains(t, res.Reason, "by hand", "a provider without a router made nothing to undo")
	h.requireRoutes()
}

// Cancelling the workflow while it initialises undoes the initialisation as well.
func TestCancelledInitialisationIsUndone(t *testing.T) {
	h := newHarness(t, activities.RevisionResult{TargetRevision: "rev1"})
	h.f.primaryReady = func(int) (bool, string) { return false, "starting" }
	h.at(5*time.Second, func() { h.env.CancelWorkflow() })
	h.execute(RolloutInput{Canary: podinfo()})
	require.True(t, h.env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	require.ErrorAs(t, h.env.GetWorkflowError(), &canceled)
	require.Contains(t, h.f.calls, "FinalizeWorkloads")
	require.Contains(t, h.f.calls, "FinalizeRouter")
}

// When a thousand canaries are created at once, their initialisations wait in the task queue, and an API server
// overloaded by them turns some away (HTTP 429). The activities of an initialisation (and the revision read before
// it) keep retrying until they succeed, as Flagger retries an initialisation at every interval: no deadline from
// their schedule, which the wait in the queue would spend (they gave up 5 min after being scheduled). Here the API
// server turns the initialisation away 9 times (the test environment allows an activity 10 attempts), over 2.5 min
// of backoffs, and the canary ends Initialized.
func TestInitialisationOutlastsAnOverloadedAPIServer(t *testing.T) {
	h := newHarness(t, activities.RevisionResult{TargetRevision: "rev1"})
	deadlines := map[string]time.Duration{}
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		deadlines[info.ActivityType.Name] = info.ScheduleToCloseTimeout
	})
	h.f.initErr = func(time.Duration) error {
		if h.count("InitializeWorkloads") < 10 {
			return errors.New("initialise podinfo.test: the server has received too many requests and has asked us to try again later")
		}
		return nil
	}
	res := h.run(podinfo())

	h.requirePhases(PhaseInitializing, PhaseInitialized)
	require.Equal(t, PhaseInitialized, res.Status.Phase)
	require.Equal(t, 10, h.count("InitializeWorkloads"))
	h.requireRoutes(r(100, 0, 151*time.Second)) // backoffs 1, 2, 4, 8, 16, then 30 s
	for _, name := range []string{"DetectRevision", "InitializeWorkloads", "ReconcileRouter", "ScaleCanary"} {
		require.Contains(t, deadlines, name)
		require.NotEqual(t, 5*time.Minute, deadlines[name], "%s: no deadline from its schedule (the run's: %s)", name, deadlines[name])
	}
}

func TestFirstRolloutInitialisesAndEndsInitialized(t *testing.T) {
	h := newHarness(t, activities.RevisionResult{TargetRevision: "rev1"})
	res := h.run(podinfo())

	h.requirePhases(PhaseInitializing, PhaseInitialized)
	h.requireRoutes(r(100, 0, 0))
	require.Equal(t, []string{"DetectRevision", "InitializeWorkloads", "ReconcileRouter", "SetRoutes 100/0",
		"CheckReady primary", "ScaleCanary down"}, h.f.calls)
	require.Equal(t, summary{Phase: PhaseInitialized, Primary: 100, Revision: "rev1", Promoted: ConditionTrue, PromotedReason: "Initialized"},
		summarize(res.Status))
	require.False(t, res.Promoted)
	h.requireLogged("Initialization done! podinfo.test")
}

func TestNewRevisionIsPromotedStepByStepWithStepWeight(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo())

	h.requirePhases(promotedPhases...)
	h.requireRoutes(podinfoRoutes...)
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.True(t, res.Promoted)
	// One step: a readiness observation, then one activity for the webhook and the metric checks together.
	step := []string{"CheckReady canary", "RunChecks", "CallWebhook rollout/load-test", "RunMetricChecks"}
	var want []string
	want = append(want, "DetectRevision", "ReconcileRouter", "ScaleCanary up", "CheckReady canary",
		"CheckReady canary", "SetRoutes 90/10")
	for _, w := range []string{"80/20", "70/30", "60/40", "50/50"} {
		want = append(append(want, step...), "SetRoutes "+w)
	}
	want = append(append(want, step...), "Promote", "CheckReady primary", "SetRoutes 100/0", "ScaleCanary down")
	require.Equal(t, want, h.f.calls)
	require.Len(t, res.Status.LastChecks, 2)
	require.Equal(t, activities.VerdictPass, res.Status.LastChecks[0].Verdict)
	h.requireLogged("New revision detected! Scaling up podinfo.test", "Advance podinfo.test canary weight 10",
		"Advance podinfo.test canary weight 50", "Copying podinfo.test template spec to podinfo-primary.test",
		"Promotion completed! Scaling down podinfo.test")
}

func TestStepWeightsAreFollowedInOrder(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.StepWeight = 0
		c.Spec.Analysis.StepWeights = []int{1, 5, 10, 20, 50}
	}))

	h.requirePhases(promotedPhases...)
	h.requireRoutes(r(99, 1, 0), r(95, 5, m), r(90, 10, 2*m), r(80, 20, 3*m), r(50, 50, 4*m), r(100, 0, 5*m))
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
}

func TestStepWeightPromotionMovesTrafficBackOneIntervalPerStep(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo(func(c *v1beta1.Canary) { c.Spec.Analysis.StepWeightPromotion = 20 }))

	h.requirePhases(promotedPhases...)
	h.requireRoutes(r(90, 10, 0), r(80, 20, m), r(70, 30, 2*m), r(60, 40, 3*m), r(50, 50, 4*m),
		r(70, 30, 5*m), r(90, 10, 6*m), r(100, 0, 7*m))
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	h.requireLogged("Advance podinfo.test primary weight 70", "Advance podinfo.test primary weight 100")
}

func TestFailedChecksReachingTheThresholdRollBack(t *testing.T) {
	h := newHarness(t)
	h.f.value = func(_ int, metric string) *float64 {
		v := 53.42
		if metric == v1beta1.MetricRequestDuration {
			v = 120
		}
		return &v
	}
	res := h.run(podinfo())

	h.requirePhases(PhaseProgressing, PhaseFailed)
	// Step 1 advances (no metrics before traffic); steps 2, 3 and 4 fail; the third failure rolls back at once.
	h.requireRoutes(r(90, 10, 0), r(100, 0, 3*m))
	require.Equal(t, failed("rev2", 3), summarize(res.Status))
	require.Equal(t, "Rolling back podinfo.test failed checks threshold reached 3", res.Reason)
	require.Equal(t, 1, h.count("ScaleCanary down"))
	h.requireLogged("Halt podinfo.test advancement success rate 53.42% < 99%",
		"Rolling back podinfo.test failed checks threshold reached 3", "Canary failed! Scaling down podinfo.test")
}

func TestCanaryNotReadyPastTheProgressDeadlineRollsBack(t *testing.T) {
	h := newHarness(t)
	h.f.canaryReady = func(int) (bool, string) {
		return false, "waiting for rollout to finish: 0 of 1 updated replicas are available"
	}
	res := h.run(podinfo(func(c *v1beta1.Canary) { s := int32(60); c.Spec.ProgressDeadlineSeconds = &s }))

	h.requirePhases(PhaseProgressing, PhaseFailed)
	h.requireRoutes(r(100, 0, 60*time.Second))
	require.Equal(t, failed("rev2", 0), summarize(res.Status))
	require.Equal(t, "Rolling back podinfo.test progress deadline exceeded canary deployment podinfo.test not ready: "+
		"waiting for rollout to finish: 0 of 1 updated replicas are available", res.Reason)
	// Polls back off: at 0, 2, 6, 14, 30 and 60 s.
	require.Equal(t, 6, h.count("CheckReady canary"))
	require.Zero(t, h.count("RunMetricChecks"))
}

func TestPrimaryNotReadyDuringPromotionRollsBack(t *testing.T) {
	h := newHarness(t)
	h.f.primaryReady = func(int) (bool, string) {
		return false, "waiting for rollout to finish: 1 old replicas are pending termination"
	}
	res := h.run(podinfo(func(c *v1beta1.Canary) { s := int32(60); c.Spec.ProgressDeadlineSeconds = &s }))

	h.requirePhases(PhaseProgressing, PhasePromoting, PhaseFailed)
	h.requireRoutes(append(podinfoRoutes[:5:5], r(100, 0, 6*m))...)
	require.Equal(t, summary{Phase: PhaseFailed, Primary: 100, Revision: "rev2", Promoted: ConditionFalse, PromotedReason: "Failed"},
		summarize(res.Status))
	require.Equal(t, "rev1", h.f.primary, "the primary is put back on the revision it ran before the promotion")
	require.Equal(t, 1, h.count("RevertPromotion rev1"))
	require.Equal(t, "Rolling back podinfo.test progress deadline exceeded primary deployment podinfo-primary.test not ready: "+
		"waiting for rollout to finish: 1 old replicas are pending termination", res.Reason)
}

func TestSkipAnalysisPromotesOnceTheCanaryIsReady(t *testing.T) {
	h := newHarness(t)
	h.f.canaryReady = func(n int) (bool, string) { return n > 1, "starting" }
	res := h.run(podinfo(func(c *v1beta1.Canary) { c.Spec.SkipAnalysis = true }))

	h.requirePhases(promotedPhases...)
	h.requireRoutes() // traffic never left the primary
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, []string{"DetectRevision", "ReconcileRouter", "ScaleCanary up", "CheckReady canary", "CheckReady canary",
		"Promote", "CheckReady primary", "ScaleCanary down"}, h.f.calls)
	h.requireLogged("Promotion completed! Canary analysis was skipped for podinfo.test")
}

func TestABTestingRoutesMatchingRequestsForTheIterationsThenPromotes(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		a := c.Spec.Analysis
		a.StepWeight, a.MaxWeight, a.Iterations = 0, 0, 3
		a.Match = []v1beta1.HTTPMatchRequest{{Headers: map[string]v1beta1.StringMatch{"x-canary": {Exact: "insider"}}}}
	}))

	h.requirePhases(promotedPhases...)
	h.requireRoutes(r(0, 100, 0), r(100, 0, 3*m))
	require.Equal(t, summary{Phase: PhaseSucceeded, Primary: 100, Iterations: 3, Revision: "rev2", Promoted: ConditionTrue, PromotedReason: "Succeeded"},
		summarize(res.Status))
	require.Equal(t, v1beta1.StrategyABTesting, res.Status.Strategy)
	require.NotEmpty(t, h.f.routeInput[0].Canary.Spec.Analysis.Match, "the router gets the match with the split")
	h.requireLogged("Advance podinfo.test canary iteration 1/3", "Advance podinfo.test canary iteration 3/3")
}

func TestBlueGreenTestsWithoutTrafficThenSwitches(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Provider = "kubernetes"
		a := c.Spec.Analysis
		a.StepWeight, a.MaxWeight, a.Iterations = 0, 0, 3
	}))

	h.requirePhases(promotedPhases...)
	h.requireRoutes(r(0, 100, 3*m), r(100, 0, 3*m))
	require.Equal(t, summary{Phase: PhaseSucceeded, Primary: 100, Iterations: 3, Revision: "rev2", Promoted: ConditionTrue, PromotedReason: "Succeeded"},
		summarize(res.Status))
	require.Equal(t, v1beta1.StrategyBlueGreen, res.Status.Strategy)
	require.Equal(t, 3, h.count("RunMetricChecks"))
	h.requireLogged("Routing all traffic to canary podinfo.test")
}

func TestBlueGreenMirroringMirrorsDuringTheIterations(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		a := c.Spec.Analysis
		a.StepWeight, a.MaxWeight, a.Iterations, a.Mirror = 0, 0, 3, true
	}))

	h.requirePhases(promotedPhases...)
	h.requireRoutes(rm(100, 0, 0), r(0, 100, 3*m), r(100, 0, 3*m))
	require.Equal(t, summary{Phase: PhaseSucceeded, Primary: 100, Iterations: 3, Revision: "rev2", Promoted: ConditionTrue, PromotedReason: "Succeeded"},
		summarize(res.Status))
	require.Equal(t, v1beta1.StrategyBlueGreenMirroring, res.Status.Strategy)
	require.Equal(t, 100, h.f.routeInput[0].Canary.Spec.Analysis.MirrorWeight, "mirrorWeight defaults to 100")
}

// A step that takes time (here its checks, retried after a lost worker) does not delay the steps after it: they
// keep the interval's cadence, as Flagger's ticker does, and the rollout ends when it would have.
func TestStepsKeepTheIntervalsCadence(t *testing.T) {
	h := newHarness(t)
	h.f.checksErr = func(n int) error {
		if n == 2 {
			return errors.New("worker lost")
		}
		return nil
	}
	res := h.run(podinfo())

	h.requirePhases(promotedPhases...)
	// The first step has no checks: the second RunChecks is the step at 2 min, whose retry comes a second later
	// (the default first backoff). The next step is due 3 min after the first all the same.
	h.requireRoutes(r(90, 10, 0), r(80, 20, 1*m), r(70, 30, 2*m+time.Second), r(60, 40, 3*m), r(50, 50, 4*m), r(100, 0, 5*m))
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, 6, h.count("RunChecks"), "five steps and one retry")
}

// metricsOnly takes the webhooks out of a canary: its steps check metrics only.
func metricsOnly(c *v1beta1.Canary) { c.Spec.Analysis.Webhooks = nil }

// checksRunAs records the activities started as local activities and as activities, by type.
func (h *harness) checksRunAs() (local, remote map[string]int) {
	local, remote = map[string]int{}, map[string]int{}
	h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		local[info.ActivityType.Name]++
	})
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		remote[info.ActivityType.Name]++
	})
	return local, remote
}

// A canary whose steps check metrics and call no webhook runs each step's checks in the workflow task its timer
// woke, as a local activity: no activity task per step for the server to match and record. The steps keep their
// cadence, checks lost with a worker run again a second later, and the release is promoted.
func TestMetricsOnlyStepsCheckInTheirWorkflowTask(t *testing.T) {
	h := newHarness(t)
	local, remote := h.checksRunAs()
	h.f.checksErr = func(n int) error {
		if n == 2 {
			return errors.New("worker lost")
		}
		return nil
	}
	res := h.run(podinfo(metricsOnly))

	h.requirePhases(promotedPhases...)
	h.requireRoutes(r(90, 10, 0), r(80, 20, 1*m), r(70, 30, 2*m+time.Second), r(60, 40, 3*m), r(50, 50, 4*m), r(100, 0, 5*m))
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, 6, local[activities.ActivityRunChecks], "five steps and one retry, each a local activity")
	require.Zero(t, remote[activities.ActivityRunChecks], "no step's checks an activity")
	require.Len(t, res.Status.LastChecks, 2, "the last step's two metric checks recorded")
}

// Metric checks run as a local activity count failed checks as the activity's do: the third failure rolls back.
func TestMetricsOnlyFailedChecksRollBack(t *testing.T) {
	h := newHarness(t)
	local, remote := h.checksRunAs()
	h.f.value = func(_ int, metric string) *float64 {
		v := 53.42
		if metric == v1beta1.MetricRequestDuration {
			v = 120
		}
		return &v
	}
	res := h.run(podinfo(metricsOnly))

	h.requirePhases(PhaseProgressing, PhaseFailed)
	h.requireRoutes(r(90, 10, 0), r(100, 0, 3*m))
	require.Equal(t, failed("rev2", 3), summarize(res.Status))
	require.Equal(t, "Rolling back podinfo.test failed checks threshold reached 3", res.Reason)
	require.Equal(t, 3, local[activities.ActivityRunChecks])
	require.Zero(t, remote[activities.ActivityRunChecks])
	h.requireLogged("Halt podinfo.test advancement success rate 53.42% < 99%")
}

// A step with a webhook keeps its checks an activity (a load test may take minutes, and the activity heartbeats).
func TestStepsWithWebhooksCheckInAnActivity(t *testing.T) {
	h := newHarness(t)
	local, remote := h.checksRunAs()
	h.run(podinfo())

	h.requirePhases(promotedPhases...)
	require.Equal(t, 5, remote[activities.ActivityRunChecks])
	require.Zero(t, local[activities.ActivityRunChecks])
}

func TestSessionAffinityCanaryPassesTheCookieToTheRouter(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.SessionAffinity = &v1beta1.SessionAffinity{CookieName: "flagger-cookie"}
	}))

	h.requirePhases(promotedPhases...)
	h.requireRoutes(podinfoRoutes...)
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, v1beta1.StrategyCanarySessionAffinity, res.Status.Strategy)
	for _, in := range h.f.routeInput {
		require.Equal(t, &v1beta1.SessionAffinity{CookieName: "flagger-cookie", MaxAge: v1beta1.DefaultCookieMaxAge},
			in.Canary.Spec.Analysis.SessionAffinity)
	}
}

func TestNewRevisionMidAnalysisRestartsFromThePrimary(t *testing.T) {
	h := newHarness(t, newRevision("rev2"), newRevision("rev3"))
	h.signal(90*time.Second, SignalRevision, ActionSignal{By: "starter", Reason: "image podinfo:6.0.2"})
	res := h.run(podinfo())

	h.requirePhases(promotedPhases...)
	const s = 90 * time.Second
	h.requireRoutes(r(90, 10, 0), r(80, 20, m),
		r(100, 0, s), // back to the primary at once
		r(90, 10, s), r(80, 20, s+m), r(70, 30, s+2*m), r(60, 40, s+3*m), r(50, 50, s+4*m), r(100, 0, s+5*m))
	require.Equal(t, succeeded("rev3"), summarize(res.Status))
	h.requireLogged("New revision detected! Restarting analysis for podinfo.test")
}

func TestConfirmRolloutGateOpensWhenItsWebhookPasses(t *testing.T) {
	h := newHarness(t)
	h.f.hookPasses = func(hk v1beta1.CanaryWebhook, n int) bool { return hk.Type != v1beta1.ConfirmRolloutHook || n >= 3 }
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.ConfirmRolloutHook, "gate"))
	}))

	h.requirePhases(PhaseWaiting, PhaseProgressing, PhasePromoting, PhaseFinalising, PhaseSucceeded)
	h.requireRoutes(shift(podinfoRoutes, 2*m)...)
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, 0, h.count("ScaleCanary up")-1, "the canary is scaled up once, after the gate")
	h.requireLogged("Halt podinfo.test advancement waiting for approval confirm-rollout")
}

func TestConfirmRolloutGateOpensOnAnApproveSignal(t *testing.T) {
	h := newHarness(t)
	h.f.hookPasses = func(hk v1beta1.CanaryWebhook, _ int) bool { return hk.Type != v1beta1.ConfirmRolloutHook }
	h.signal(30*time.Second, SignalApprove, ApproveSignal{Gate: GateConfirmRollout, By: "alice", Reason: "change window open"})
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.ConfirmRolloutHook, "gate"))
	}))

	h.requirePhases(PhaseWaiting, PhaseProgressing, PhasePromoting, PhaseFinalising, PhaseSucceeded)
	h.requireRoutes(shift(podinfoRoutes, 30*time.Second)...) // at once, not at the next interval
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, []Approval{{Gate: GateConfirmRollout, By: "alice", Reason: "change window open", At: t0.Add(30 * time.Second)}},
		res.Status.Approvals)
	require.Empty(t, res.Status.OpenGates)
	h.requireLogged("Gate confirm-rollout of podinfo.test opened by alice: change window open")
}

func TestConfirmPromotionWaitsThenPromotesWhenApproved(t *testing.T) {
	h := newHarness(t)
	h.f.hookPasses = func(hk v1beta1.CanaryWebhook, _ int) bool { return hk.Type != v1beta1.ConfirmPromotionHook }
	h.at(6*m+30*time.Second, func() {
		require.Equal(t, PhaseWaitingPromotion, h.status().Phase)
		require.Equal(t, GateConfirmPromotion, h.status().PendingGate)
		h.env.SignalWorkflow(SignalApprove, ApproveSignal{Gate: GateConfirmPromotion, By: "carol", Reason: "dashboards green"})
	})
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.ConfirmPromotionHook, "promotion-gate"))
	}))

	h.requirePhases(PhaseProgressing, PhaseWaitingPromotion, PhasePromoting, PhaseFinalising, PhaseSucceeded)
	h.requireRoutes(append(podinfoRoutes[:5:5], r(100, 0, 6*m+30*time.Second))...)
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, 2, h.count("CallWebhook confirm-promotion/promotion-gate"), "the gate is tried at 5m and 6m")
	require.Equal(t, "carol", res.Status.Approvals[0].By)
}

func TestAbortMidIntervalRollsBackWithoutWaitingForTheInterval(t *testing.T) {
	h := newHarness(t)
	const abortAt = 90 * time.Second
	h.signal(abortAt, SignalAbort, ActionSignal{By: "bob", Reason: "error budget burning"})
	res := h.run(podinfo())

	h.requirePhases(PhaseProgressing, PhaseFailed)
	// The rollback's split is set at the very instant of the abort on the test clock: no timer fired in between.
	h.requireRoutes(r(90, 10, 0), r(80, 20, m), r(100, 0, abortAt))
	require.Equal(t, failed("rev2", 0), summarize(res.Status))
	require.Equal(t, "bob", res.Status.AbortedBy)
	require.Equal(t, "error budget burning", res.Status.AbortReason)
	require.Equal(t, "Rolling back podinfo.test aborted by bob: error budget burning", res.Reason)
	require.Equal(t, 1, h.count("RunMetricChecks"), "no analysis step ran after the abort")
}

func TestPauseHoldsTheWeightAcrossIntervalsThenResumeContinues(t *testing.T) {
	h := newHarness(t)
	h.signal(90*time.Second, SignalPause, ActionSignal{By: "dave", Reason: "incident elsewhere"})
	h.at(5*m+30*time.Second, func() {
		st := h.status()
		require.True(t, st.Paused)
		require.Equal(t, 20, st.CanaryWeight)
		require.Equal(t, 1, h.count("RunMetricChecks"), "no step ran while paused")
		h.env.SignalWorkflow(SignalResume, ActionSignal{By: "dave", Reason: "all clear"})
	})
	res := h.run(podinfo())

	h.requirePhases(promotedPhases...)
	// Resumed at 5m30s, the next step comes a full interval later.
	h.requireRoutes(r(90, 10, 0), r(80, 20, m), r(70, 30, 6*m+30*time.Second), r(60, 40, 7*m+30*time.Second),
		r(50, 50, 8*m+30*time.Second), r(100, 0, 9*m+30*time.Second))
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.False(t, res.Status.Paused)
	require.Equal(t, "dave", res.Status.PausedBy)
}

func TestPromoteSignalSkipsTheRestOfTheAnalysis(t *testing.T) {
	h := newHarness(t)
	h.signal(90*time.Second, SignalPromote, ActionSignal{By: "erin", Reason: "hotfix"})
	res := h.run(podinfo())

	h.requirePhases(promotedPhases...)
	h.requireRoutes(r(90, 10, 0), r(80, 20, m), r(100, 0, 90*time.Second))
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, "erin", res.Status.PromotedBy)
	require.Equal(t, "hotfix", res.Status.PromoteReason)
}

func TestCancellationRollsBackAndEndsCanceledWithAFailedResult(t *testing.T) {
	h := newHarness(t)
	h.at(90*time.Second, h.env.CancelWorkflow)
	h.execute(RolloutInput{Canary: podinfo()})

	require.True(t, h.env.IsWorkflowCompleted())
	err := h.env.GetWorkflowError()
	var canceled *temporal.CanceledError
	require.ErrorAs(t, err, &canceled)
	var res RolloutResult
	require.NoError(t, canceled.Details(&res))
	h.requirePhases(PhaseProgressing, PhaseFailed)
	h.requireRoutes(r(90, 10, 0), r(80, 20, m), r(100, 0, 90*time.Second))
	require.Equal(t, failed("rev2", 0), summarize(res.Status))
	require.Equal(t, "Rolling back podinfo.test: workflow cancelled", res.Reason)
	require.Equal(t, 1, h.count("ScaleCanary down"))
}

func TestRollbackWebhookRollsBack(t *testing.T) {
	h := newHarness(t)
	// Called before the confirm-rollout gate (1), then at each step: it opens at the third step.
	h.f.hookPasses = func(hk v1beta1.CanaryWebhook, n int) bool { return hk.Type != v1beta1.RollbackHook || n >= 4 }
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.RollbackHook, "rollback-gate"))
	}))

	h.requirePhases(PhaseProgressing, PhaseFailed)
	h.requireRoutes(r(90, 10, 0), r(80, 20, m), r(100, 0, 2*m))
	require.Equal(t, failed("rev2", 0), summarize(res.Status))
	require.Equal(t, "Rolling back podinfo.test manual webhook invoked", res.Reason)
}

// A release waiting for approval at confirm-rollout is rolled back by a rollback webhook, as Flagger calls them in
// every waiting phase: a pipeline can cancel a release nobody approved, and its canary never gets traffic.
func TestRollbackWebhookRollsBackARolloutWaitingForApproval(t *testing.T) {
	h := newHarness(t)
	h.f.hookPasses = func(hk v1beta1.CanaryWebhook, n int) bool {
		switch hk.Type {
		case v1beta1.ConfirmRolloutHook:
			return false
		case v1beta1.RollbackHook:
			return n >= 3 // the third try, two intervals into the wait
		}
		return true
	}
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks,
			hook(v1beta1.ConfirmRolloutHook, "approval"), hook(v1beta1.RollbackHook, "rollback-gate"))
	}))

	h.requirePhases(PhaseWaiting, PhaseFailed)
	require.Equal(t, "Rolling back podinfo.test manual webhook invoked", res.Reason)
	require.Zero(t, h.count("ScaleCanary up"), "the canary never scaled up")
	require.Equal(t, 0, res.Status.CanaryWeight)
}

func TestNoNewRunWhenTheTargetEqualsThePrimary(t *testing.T) {
	h := newHarness(t, activities.RevisionResult{TargetRevision: "rev1", PrimaryRevision: "rev1", PrimaryExists: true})
	res := h.run(podinfo())

	h.requirePhases(PhaseInitialized)
	h.requireRoutes()
	require.Equal(t, []string{"DetectRevision"}, h.f.calls)
	require.True(t, res.NoNewRun)
	require.False(t, res.Promoted)
	require.Equal(t, summary{Phase: PhaseInitialized, Primary: 100, Revision: "rev1", Promoted: ConditionTrue, PromotedReason: "Initialized"},
		summarize(res.Status))
}

// A revision that was rolled back stays failed while the target is unchanged (as Flagger), without touching the
// cluster; a changed target runs again.
func TestRolledBackRevisionIsNotAnalysedAgainUntilTheTargetChanges(t *testing.T) {
	h := newHarness(t)
	res := h.runInput(RolloutInput{Canary: podinfo(), FailedRevision: "rev2"})
	h.requirePhases(PhaseFailed)
	h.requireRoutes()
	require.Equal(t, []string{"DetectRevision"}, h.f.calls)
	require.False(t, res.Promoted)
	require.False(t, res.NoNewRun)
	require.Contains(t, res.Reason, "revision rev2 was rolled back and the target has not changed since")

	h = newHarness(t)
	res = h.runInput(RolloutInput{Canary: podinfo(), FailedRevision: "rev-older"})
	require.True(t, res.Promoted, "another revision is analysed as usual")
}

func TestMetricWithNoValues(t *testing.T) {
	noSuccessRate := func(n int, metric string) *float64 {
		if metric == v1beta1.MetricRequestSuccessRate && n <= 2 {
			return nil
		}
		return passing(v1beta1.CanaryMetric{Name: metric})
	}
	t.Run("counts as a failed check by default", func(t *testing.T) {
		h := newHarness(t)
		h.f.value = noSuccessRate
		res := h.run(podinfo(func(c *v1beta1.Canary) { c.Spec.Analysis.Threshold = 2 }))

		h.requirePhases(PhaseProgressing, PhaseFailed)
		h.requireRoutes(r(90, 10, 0), r(100, 0, 2*m))
		require.Equal(t, failed("rev2", 2), summarize(res.Status))
		require.Equal(t, v1beta1.NoDataFail, h.f.metricsIn[0].Metrics[0].OnNoData, "the workflow sends the defaulted policy")
		h.requireLogged("Halt podinfo.test advancement request-success-rate: no values found (is the canary receiving traffic?)")
	})
	t.Run("holds the step without counting under onNoData hold", func(t *testing.T) {
		h := newHarness(t)
		h.f.value = noSuccessRate
		res := h.run(podinfo(func(c *v1beta1.Canary) {
			c.Spec.Analysis.Threshold = 2
			c.Spec.Analysis.Metrics[0].OnNoData = v1beta1.NoDataHold
		}))

		h.requirePhases(promotedPhases...)
		h.requireRoutes(shiftFrom(podinfoRoutes, 1, 2*m)...)
		require.Equal(t, succeeded("rev2"), summarize(res.Status))
	})
}

// The metrics backend down (every attempt of the checks fails to reach it): each step counts one failed check,
// as Flagger does, and the rollout rolls back at the threshold; it is never promoted on missing data. When the
// backend comes back before the threshold, the analysis goes on.
func TestMetricsBackendDown(t *testing.T) {
	down := errors.New("dial tcp 127.0.0.1:9090: connect: connection refused")
	t.Run("rolls back at the threshold", func(t *testing.T) {
		h := newHarness(t)
		h.f.metricsErr = func(time.Duration) error { return down }
		res := h.run(podinfo(func(c *v1beta1.Canary) { c.Spec.Analysis.Threshold = 2 }))

		h.requirePhases(PhaseProgressing, PhaseFailed)
		require.Equal(t, PhaseFailed, res.Status.Phase)
		require.False(t, res.Promoted)
		require.Equal(t, 2, res.Status.FailedChecks)
		require.Zero(t, h.count("Promote"))
		h.requireLogged("Halt podinfo.test advancement metric checks could not run: " + down.Error())
	})
	t.Run("a short outage costs one failed check", func(t *testing.T) {
		h := newHarness(t)
		h.f.metricsErr = func(now time.Duration) error {
			if now < 90*time.Second {
				return down
			}
			return nil
		}
		res := h.run(podinfo(func(c *v1beta1.Canary) { c.Spec.Analysis.Threshold = 2 }))
		require.True(t, res.Promoted)
		require.Equal(t, 1, h.count("Promote"))
	})
}

func TestLongHistoryContinuesAsNewCarryingTheStatus(t *testing.T) {
	h := newHarness(t)
	h.env.SetCurrentHistoryLength(historyLimit + 1)
	h.execute(RolloutInput{Canary: podinfo()})

	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, h.env.GetWorkflowError(), &can)
	require.Equal(t, WorkflowName, can.WorkflowType.Name)
	var next RolloutInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.Status)
	require.Equal(t, PhaseProgressing, next.Status.Phase)
	require.Equal(t, 10, next.Status.CanaryWeight)
	require.Equal(t, 1, next.Status.Runs)
	h.requireRoutes(r(90, 10, 0))

	// The next run picks up at weight 10 and finishes the release.
	h2 := newHarness(t)
	h2.execute(next)
	require.NoError(t, h2.env.GetWorkflowError())
	var res RolloutResult
	require.NoError(t, h2.env.GetWorkflowResult(&res))
	h2.requirePhases(promotedPhases...) // the new run upserts its search attributes again
	h2.requireRoutes(r(80, 20, m), r(70, 30, 2*m), r(60, 40, 3*m), r(50, 50, 4*m), r(100, 0, 5*m))
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Equal(t, 2, res.Status.Runs)
	require.NotContains(t, h2.f.calls, "DetectRevision", "a continued run does not start over")
}

// The server's suggestion to continue as new is followed between steps, as a long history is: the next run
// carries the status and finishes the release.
func TestContinueAsNewSuggestedByTheServerCarriesTheStatus(t *testing.T) {
	h := newHarness(t)
	h.env.SetContinueAsNewSuggested(true)
	h.execute(RolloutInput{Canary: podinfo()})

	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, h.env.GetWorkflowError(), &can)
	var next RolloutInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.Status)
	require.Equal(t, PhaseProgressing, next.Status.Phase)
	require.Equal(t, 10, next.Status.CanaryWeight)
	h.requireRoutes(r(90, 10, 0))

	h2 := newHarness(t)
	h2.execute(next)
	var res RolloutResult
	require.NoError(t, h2.env.GetWorkflowError())
	require.NoError(t, h2.env.GetWorkflowResult(&res))
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
}

func TestSuspendedCanaryStartsNoRollout(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo(func(c *v1beta1.Canary) { c.Spec.Suspend = true }))
	require.True(t, res.Suspended)
	require.Empty(t, h.f.calls)
}

func TestAlertsAndEventWebhooksReceiveTheDecisions(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		a := c.Spec.Analysis
		a.Alerts = []v1beta1.CanaryAlert{{Name: "on-call", Severity: v1beta1.SeverityInfo, ProviderRef: v1beta1.CrossNamespaceObjectReference{Name: "slack"}}}
		a.Webhooks = append(a.Webhooks, auditHook())
	}))
	require.True(t, res.Promoted)
	var types []activities.EventType
	for _, e := range h.f.alerts {
		types = append(types, e.Type)
		require.False(t, e.Timestamp.IsZero())
	}
	require.Equal(t, []activities.EventType{activities.EventNewRevision, activities.EventPromoted}, types)
	require.Equal(t, "New revision detected! Scaling up podinfo.test", h.f.events[0])
	require.Contains(t, h.f.events, "Advance podinfo.test canary weight 30")
	require.Equal(t, "Promotion completed! Scaling down podinfo.test", h.f.events[len(h.f.events)-1])
	// Flagger's event payload: eventType Normal (Warning for warn and error events), a millisecond timestamp, and
	// the hook's own metadata kept.
	for _, p := range h.f.eventPayloads {
		require.Equal(t, "Normal", p.Metadata["eventType"], p.Metadata["eventMessage"])
		require.Regexp(t, `^\d{13}$`, p.Metadata["timestamp"])
		require.Equal(t, "audit-value", p.Metadata["audit-key"])
	}
}

func auditHook() v1beta1.CanaryWebhook {
	h := hook(v1beta1.EventHook, "audit")
	h.Metadata = &map[string]string{"audit-key": "audit-value"}
	return h
}

func TestRollbackEventsAreWarnings(t *testing.T) {
	h := newHarness(t)
	h.f.hookPasses = func(hk v1beta1.CanaryWebhook, n int) bool {
		return hk.Type == v1beta1.EventHook || hk.Type != v1beta1.RollbackHook || n >= 4
	}
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.RollbackHook, "rollback-gate"), auditHook())
	}))
	require.False(t, res.Promoted)
	last := h.f.eventPayloads[len(h.f.eventPayloads)-1]
	require.Equal(t, "Warning", last.Metadata["eventType"], last.Metadata["eventMessage"])
	require.Contains(t, last.Metadata["eventMessage"], "Rolling back podinfo.test")
}

// shift delays every route by d.
func shift(rs []route, d time.Duration) []route { return shiftFrom(rs, 0, d) }

// shiftFrom delays the routes from index i on by d.
func shiftFrom(rs []route, i int, d time.Duration) []route {
	out := append([]route(nil), rs...)
	for j := i; j < len(out); j++ {
		out[j].At += d
	}
	return out
}

func TestApprovalWhilePausedWaitsForResume(t *testing.T) {
	h := newHarness(t)
	h.f.hookPasses = func(hk v1beta1.CanaryWebhook, _ int) bool { return hk.Type != v1beta1.ConfirmPromotionHook }
	h.signal(5*m+30*time.Second, SignalPause, ActionSignal{By: "dave", Reason: "freeze"})
	h.signal(6*m, SignalApprove, ApproveSignal{Gate: GateConfirmPromotion, By: "carol", Reason: "looks good"})
	h.signal(8*m, SignalResume, ActionSignal{By: "dave", Reason: "freeze over"})
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.ConfirmPromotionHook, "promotion-gate"))
	}))

	h.requirePhases(PhaseProgressing, PhaseWaitingPromotion, PhasePromoting, PhaseFinalising, PhaseSucceeded)
	// The approval (6m) is used on resume (8m), not while paused.
	h.requireRoutes(append(podinfoRoutes[:5:5], r(100, 0, 8*m))...)
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
}

func TestAbortAtTheConfirmRolloutGateRollsBack(t *testing.T) {
	h := newHarness(t)
	h.f.hookPasses = func(hk v1beta1.CanaryWebhook, _ int) bool { return hk.Type != v1beta1.ConfirmRolloutHook }
	h.signal(30*time.Second, SignalAbort, ActionSignal{By: "bob", Reason: "wrong image"})
	res := h.run(podinfo(func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.ConfirmRolloutHook, "gate"))
	}))

	h.requirePhases(PhaseWaiting, PhaseFailed)
	h.requireRoutes(r(100, 0, 30*time.Second))
	require.Equal(t, failed("rev2", 0), summarize(res.Status))
	require.Zero(t, h.count("ScaleCanary up"))
}

func TestRevisionSignalledDuringPromotionStartsANewRun(t *testing.T) {
	h := newHarness(t, newRevision("rev2"), newRevision("rev3"))
	h.f.primaryReady = func(n int) (bool, string) { return n >= 3, "rolling out" }
	h.signal(5*m+time.Second, SignalRevision, ActionSignal{By: "starter", Reason: "image podinfo:6.0.3"})
	h.execute(RolloutInput{Canary: podinfo()})

	// The promotion of rev2 finishes (at 5m6s, after three primary checks), then a new run starts for rev3.
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, h.env.GetWorkflowError(), &can)
	var next RolloutInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Nil(t, next.Status, "a new release starts from scratch")
	h.requirePhases(promotedPhases...)
	h.requireRoutes(append(podinfoRoutes[:5:5], r(100, 0, 5*m+6*time.Second))...)
	require.Equal(t, 2, h.count("DetectRevision"))
}

// A revision that arrives between the steps of a stepped promotion waits for the promotion to finish: users are
// moved all the way to the primary, never back to the canary, and the new revision gets a run of its own.
func TestRevisionSignalledBetweenPromotionStepsWaitsForThePromotion(t *testing.T) {
	h := newHarness(t, newRevision("rev2"), newRevision("rev3"))
	h.signal(5*m+30*time.Second, SignalRevision, ActionSignal{By: "starter", Reason: "image podinfo:6.0.3"})
	h.execute(RolloutInput{Canary: podinfo(func(c *v1beta1.Canary) { c.Spec.Analysis.StepWeightPromotion = 20 })})

	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, h.env.GetWorkflowError(), &can)
	h.requirePhases(promotedPhases...)
	h.requireRoutes(append(podinfoRoutes[:5:5], r(70, 30, 5*m), r(90, 10, 6*m), r(100, 0, 7*m))...)
	require.Equal(t, 2, h.count("DetectRevision"))
}

func TestReadinessUnknownDuringAnAPIOutageHaltsInsteadOfRollingBack(t *testing.T) {
	h := newHarness(t)
	h.f.readyErr = func(now time.Duration) error {
		if now >= 50*time.Second && now < 2*m+30*time.Second {
			return errors.New("connect: connection refused")
		}
		return nil
	}
	res := h.run(podinfo())

	h.requirePhases(promotedPhases...)
	var weights []string
	for _, rt := range h.f.snapshotRoutes() {
		weights = append(weights, rt.String())
	}
	require.Equal(t, []string{"90/10", "80/20", "70/30", "60/40", "50/50", "100/0"}, weights)
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	require.Positive(t, h.count("CheckReady error"))
	halted := false
	for _, e := range h.logs.AllUntimed() {
		halted = halted || strings.HasPrefix(e.Message, "Halt advancement podinfo.test readiness unknown: ") &&
			strings.Contains(e.Message, "connection refused")
	}
	require.True(t, halted, "the outage halts the step with a reason that says so")
}

// Each analysis step records its metric values in the memo, where every worker's canary metrics read them.
func TestMetricValuesAreRecordedInTheMemo(t *testing.T) {
	h := newHarness(t)
	res := h.run(podinfo())
	require.True(t, res.Promoted)
	var last map[string]float64
	steps := 0
	for _, m := range h.memos {
		if v, ok := m["lastChecks"]; ok {
			steps++
			last = v.(map[string]float64)
		}
	}
	require.Positive(t, steps)
	require.Equal(t, len(h.f.metricsIn), steps, "one memo upsert per metric step")
	require.Contains(t, last, v1beta1.MetricRequestSuccessRate)
}

// The signals move a run between phases as the package doc's map says: a promote signal promotes from any phase
// before the promotion, a revision signal back to the primary's revision ends the run Initialized (nothing left
// to roll out), and a new revision restarts the analysis at the confirm-rollout gate.
func TestSignalsMoveBetweenPhasesAsThePhaseMapSays(t *testing.T) {
	backToPrimary := activities.RevisionResult{TargetRevision: "rev1", PrimaryRevision: "rev1", PrimaryExists: true}
	closed := func(gates []v1beta1.HookType, firstPasses bool) func(v1beta1.CanaryWebhook, int) bool {
		return func(hk v1beta1.CanaryWebhook, n int) bool {
			return !slices.Contains(gates, hk.Type) || (firstPasses && hk.Type == v1beta1.ConfirmRolloutHook && n == 1)
		}
	}
	promote := ActionSignal{By: "erin", Reason: "hotfix"}
	revision := ActionSignal{By: "starter", Reason: "target changed"}
	abort := ActionSignal{By: "bob", Reason: "enough"}
	for _, tc := range []struct {
		name      string
		revisions []activities.RevisionResult
		gates     []v1beta1.HookType // closed gates, each with one webhook that fails
		// firstPasses opens a closed confirm-rollout gate on its webhook's first call: the first revision gets
		// through, the next one waits there.
		firstPasses bool
		signals     func(h *harness)
		phases      []Phase
		noNewRun    bool
	}{
		{
			name:    "promote before the first phase",
			signals: func(h *harness) { h.duringFirst("DetectRevision", SignalPromote, promote) },
			phases:  []Phase{PhasePromoting, PhaseFinalising, PhaseSucceeded},
		},
		{
			name:    "promote while waiting at confirm-rollout",
			gates:   []v1beta1.HookType{v1beta1.ConfirmRolloutHook},
			signals: func(h *harness) { h.signal(30*time.Second, SignalPromote, promote) },
			phases:  []Phase{PhaseWaiting, PhasePromoting, PhaseFinalising, PhaseSucceeded},
		},
		{
			name:      "target back at the primary while waiting at confirm-rollout",
			revisions: []activities.RevisionResult{newRevision("rev2"), backToPrimary},
			gates:     []v1beta1.HookType{v1beta1.ConfirmRolloutHook},
			signals:   func(h *harness) { h.signal(30*time.Second, SignalRevision, revision) },
			phases:    []Phase{PhaseWaiting, PhaseInitialized},
			noNewRun:  true,
		},
		{
			name:      "target back at the primary while progressing",
			revisions: []activities.RevisionResult{newRevision("rev2"), backToPrimary},
			signals:   func(h *harness) { h.signal(90*time.Second, SignalRevision, revision) },
			phases:    []Phase{PhaseProgressing, PhaseInitialized},
			noNewRun:  true,
		},
		{
			name:      "target back at the primary while waiting for promotion",
			revisions: []activities.RevisionResult{newRevision("rev2"), backToPrimary},
			gates:     []v1beta1.HookType{v1beta1.ConfirmPromotionHook},
			signals:   func(h *harness) { h.signal(5*m+30*time.Second, SignalRevision, revision) },
			phases:    []Phase{PhaseProgressing, PhaseWaitingPromotion, PhaseInitialized},
			noNewRun:  true,
		},
		{
			name:      "new revision while progressing, its confirm-rollout closed",
			revisions: []activities.RevisionResult{newRevision("rev2"), newRevision("rev3")},
			gates:     []v1beta1.HookType{v1beta1.ConfirmRolloutHook}, firstPasses: true,
			signals: func(h *harness) {
				h.signal(90*time.Second, SignalRevision, revision)
				h.signal(3*m, SignalAbort, abort)
			},
			phases: []Phase{PhaseProgressing, PhaseWaiting, PhaseFailed},
		},
		{
			name:      "new revision while waiting for promotion",
			revisions: []activities.RevisionResult{newRevision("rev2"), newRevision("rev3")},
			gates:     []v1beta1.HookType{v1beta1.ConfirmPromotionHook},
			signals: func(h *harness) {
				h.signal(5*m+30*time.Second, SignalRevision, revision)
				h.signal(8*m, SignalAbort, abort)
			},
			phases: []Phase{PhaseProgressing, PhaseWaitingPromotion, PhaseProgressing, PhaseFailed},
		},
		{
			name:      "new revision while waiting for promotion, its confirm-rollout closed",
			revisions: []activities.RevisionResult{newRevision("rev2"), newRevision("rev3")},
			gates:     []v1beta1.HookType{v1beta1.ConfirmRolloutHook, v1beta1.ConfirmPromotionHook}, firstPasses: true,
			signals: func(h *harness) {
				h.signal(5*m+30*time.Second, SignalRevision, revision)
				h.signal(7*m, SignalAbort, abort)
			},
			phases: []Phase{PhaseProgressing, PhaseWaitingPromotion, PhaseWaiting, PhaseFailed},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.revisions...)
			h.f.hookPasses = closed(tc.gates, tc.firstPasses)
			tc.signals(h)
			res := h.run(podinfo(func(c *v1beta1.Canary) {
				for _, g := range tc.gates {
					c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(g, "gate"))
				}
			}))

			h.requirePhases(tc.phases...)
			require.Equal(t, tc.phases[len(tc.phases)-1], res.Status.Phase)
			require.Equal(t, tc.noNewRun, res.NoNewRun)
		})
	}
}

// duringFirst sends a signal while the first call of an activity runs.
func (h *harness) duringFirst(call, name string, payload any) {
	sent := false
	h.f.during = func(c string, _ int) {
		if c == call && !sent {
			sent = true
			h.env.SignalWorkflow(name, payload)
		}
	}
}

// In GitOps mode the workflow keeps the Canary object's status as Flagger does: each state the rollout stays in
// is written once, when it enters it (never on a timer), and the last write says Succeeded with the Promoted
// condition True, which is what `kubectl wait --for=condition=promoted` waits for.
func TestGitOpsModeWritesEachStateToTheCanaryStatus(t *testing.T) {
	h := newHarness(t)
	res := h.runInput(RolloutInput{Canary: podinfo(), WriteStatus: true})
	require.True(t, res.Promoted)
	st := h.f.statuses
	require.NotEmpty(t, st)
	for i := 1; i < len(st); i++ {
		require.NotEqual(t, st[i-1], st[i], "write %d repeats the one before", i)
	}
	var weights []int
	for _, s := range st {
		require.Equal(t, "test/podinfo", s.Canary.Namespace+"/"+s.Canary.Name)
		require.Equal(t, "rev2", s.LastAppliedSpec)
		if s.Phase == string(PhaseProgressing) && (len(weights) == 0 || weights[len(weights)-1] != s.CanaryWeight) {
			weights = append(weights, s.CanaryWeight)
		}
	}
	require.Equal(t, []int{10, 20, 30, 40, 50}, weights, "every weight the canary held is shown")
	last := st[len(st)-1]
	require.Equal(t, string(PhaseSucceeded), last.Phase)
	require.Equal(t, "rev2", last.LastPromotedSpec)
	require.Len(t, last.Conditions, 1)
	require.Equal(t, "Promoted", last.Conditions[0].Type)
	require.Equal(t, "True", last.Conditions[0].Status)
	require.LessOrEqual(t, len(st), 10, "a write per state, not per poll")

	// Without WriteStatus (every rollout the starter runs) nothing is written.
	h = newHarness(t)
	h.run(podinfo())
	require.Zero(t, h.count("WriteCanaryStatus"))
}

// A rolled-back release shows Failed with the Promoted condition False, and its failed checks.
func TestGitOpsModeShowsARollbackInTheCanaryStatus(t *testing.T) {
	h := newHarness(t)
	h.f.value = func(_ int, metric string) *float64 {
		v := 42.0
		if metric == v1beta1.MetricRequestDuration {
			v = 120
		}
		return &v
	}
	res := h.runInput(RolloutInput{Canary: podinfo(), WriteStatus: true})
	require.False(t, res.Promoted)
	last := h.f.statuses[len(h.f.statuses)-1]
	require.Equal(t, string(PhaseFailed), last.Phase)
	require.Equal(t, "False", last.Conditions[0].Status)
	require.Equal(t, 0, last.CanaryWeight)
	require.Equal(t, "rev1", last.LastPromotedSpec, "the primary still runs the revision before")
	var failed []int
	for _, s := range h.f.statuses {
		failed = append(failed, s.FailedChecks)
	}
	require.Contains(t, failed, 1, "each failed check is shown")
}

// A run started by hand without an input (the temporal CLI without --input, or "null") ends at once, failed,
// saying what it needs, instead of failing its workflow task again and again on a nil input.
func TestARunWithoutInputFailsSayingWhatItNeeds(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.ExecuteWorkflow(CanaryRollout, (*RolloutInput)(nil))
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	require.Contains(t, err.Error(), "CanaryRollout has no input: it needs a RolloutInput with the Canary to roll out")
}
