package workflows

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// historiesDir holds the recorded histories that TestReplayRecordedHistories replays.
const historiesDir = "testdata/histories"

// recording is one rollout recorded on a real dev server: its canary, its fakes' script and its signals.
type recording struct {
	file    string
	canary  v1beta1.Canary
	script  func(*fakes)
	signals func(ctx context.Context, c client.Client, id string) error
	// cancelDuring, when set, cancels the workflow while the first call of that fake activity runs.
	cancelDuring string
	// during, when set, is called inside each fake activity call (fakes.during) with the client and workflow ID.
	during func(ctx context.Context, c client.Client, id string, call string, n int)
	// finalize records a CanaryFinalize run (starter delete) of the canary instead of a rollout.
	finalize bool
	// admission names an admission queue in the revision reads (a worker with --release-rate): "served" runs a
	// worker of that queue at 1 release a second; "stalled" runs none, so the release waits there until a signal.
	admission string
	// readiness names a readiness queue in the revision reads (a worker with --watch-readiness) and serves it.
	readiness bool
}

// recordings are the histories kept in testdata/histories. The canary of the ten-step one is the one whose
// event count the README quotes: 10 steps, 2 metrics, 1 rollout webhook.
func recordings() []recording {
	fast := func(c *v1beta1.Canary) { c.Spec.Analysis.Interval = "10s" }
	return []recording{
		{file: "promotion.json", canary: podinfo(fast, named("podinfo-promotion"))},
		{file: "rollback-failed-checks.json", canary: podinfo(fast, named("podinfo-rollback")), script: lowSuccessRate},
		{file: "abort-signal.json", canary: podinfo(fast, named("podinfo-abort")), signals: abortAfter(15 * time.Second)},
		{file: "confirm-promotion-approved.json", canary: podinfo(fast, named("podinfo-approval"), promotionGate), script: promotionGateClosed, signals: func(ctx context.Context, c client.Client, id string) error {
			// Steps at 0, 10, 20, 30, 40 s; the gate closes at 50 s and the approval comes 5 s later.
			time.Sleep(55 * time.Second)
			return c.SignalWorkflow(ctx, id, "", SignalApprove, ApproveSignal{Gate: GateConfirmPromotion, By: "recorder", Reason: "replay fixture"})
		}},
		{file: "ten-steps.json", canary: podinfo(fast, named("podinfo-ten-steps"), func(c *v1beta1.Canary) {
			c.Spec.Analysis.MaxWeight = 100
		})},
		// Recorded at revert-promotion: the abort lands while the promotion waits for the primary.
		{file: "abort-during-promotion.json", canary: podinfo(fast, named("podinfo-abort-promotion")), script: slowPrimary, signals: abortAfter(55 * time.Second)},
		// Recorded at lean-history: short Kubernetes calls as local activities, one RunChecks activity per step.
		{file: "ten-steps-v2.json", canary: podinfo(fast, named("podinfo-ten-steps-v2"), func(c *v1beta1.Canary) {
			c.Spec.Analysis.MaxWeight = 100
		})},
		{file: "rollback-failed-checks-v2.json", canary: podinfo(fast, named("podinfo-rollback-v2")), script: lowSuccessRate},
		{file: "abort-during-promotion-v2.json", canary: podinfo(fast, named("podinfo-abort-promotion-v2")), script: slowPrimary, signals: abortAfter(55 * time.Second)},
		{file: "confirm-promotion-approved-v2.json", canary: podinfo(fast, named("podinfo-approval-v2"), promotionGate), script: promotionGateClosed, signals: approveAfter(55 * time.Second)},
		// Recorded at keep-finished-promotion: cancelled during the post-rollout hooks, the promotion stays.
		{file: "cancel-after-promotion.json", canary: podinfo(fast, named("podinfo-cancel-after-promotion"), func(c *v1beta1.Canary) {
			c.Spec.Analysis.MaxWeight, c.Spec.Analysis.StepWeight = 20, 20
			c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks,
				hook(v1beta1.PostRolloutHook, "notify"), hook(v1beta1.PostRolloutHook, "audit"))
		}), cancelDuring: "CallWebhook post-rollout/notify"},
		// Recorded at signal-listeners: signals applied by listener goroutines, waits on workflow.Await.
		{file: "ten-steps-v3.json", canary: podinfo(fast, named("podinfo-ten-steps-v3"), func(c *v1beta1.Canary) {
			c.Spec.Analysis.MaxWeight = 100
		})},
		{file: "abort-signal-v3.json", canary: podinfo(fast, named("podinfo-abort-v3")), signals: abortAfter(15 * time.Second)},
		{file: "abort-during-promotion-v3.json", canary: podinfo(fast, named("podinfo-abort-promotion-v3")), script: slowPrimary, signals: abortAfter(55 * time.Second)},
		{file: "confirm-promotion-approved-v3.json", canary: podinfo(fast, named("podinfo-approval-v3"), promotionGate), script: promotionGateClosed, signals: approveAfter(55 * time.Second)},
		{file: "pause-resume-v3.json", canary: podinfo(fast, named("podinfo-pause-v3")), signals: pauseAtWeight20},
		// Recorded at signal-listeners: the router refuses (a local activity's failure), the rollout rolls back.
		{file: "refused-router-v3.json", canary: podinfo(fast, named("podinfo-refused-v3")), script: func(f *fakes) {
			f.reconcileErr = temporal.NewNonRetryableApplicationError("TraefikService test/podinfo exists and is not managed by canaryflow",
				activities.ErrTypeRefused, nil)
		}},
		// Recorded at signal-listeners: the metrics backend is down, each step counts a failed check, rolled back.
		{file: "metrics-down-v3.json", canary: podinfo(fast, named("podinfo-metrics-down-v3"), func(c *v1beta1.Canary) {
			c.Spec.Analysis.Threshold = 2
		}), script: func(f *fakes) {
			f.metricsErr = func(time.Duration) error {
				return errors.New("metric request-success-rate of canary test/podinfo: dial tcp 127.0.0.1:9090: connect: connection refused")
			}
		}},
		// Recorded once the workflow states its decisions (the summaries of its commands; no version gate: a
		// summary changes no command).
		{file: "ten-steps-v4.json", canary: podinfo(fast, named("podinfo-ten-steps-v4"), func(c *v1beta1.Canary) {
			c.Spec.Analysis.MaxWeight = 100
		})},
		{file: "metrics-down-v4.json", canary: podinfo(fast, named("podinfo-metrics-down-v4"), func(c *v1beta1.Canary) {
			c.Spec.Analysis.Threshold = 2
		}), script: func(f *fakes) {
			f.metricsErr = func(time.Duration) error {
				return errors.New("metric request-success-rate of canary test/podinfo: dial tcp 127.0.0.1:9090: connect: connection refused")
			}
		}},
		{file: "rollback-failed-checks-v4.json", canary: podinfo(fast, named("podinfo-rollback-v4")), script: lowSuccessRate},
		{file: "confirm-promotion-approved-v4.json", canary: podinfo(fast, named("podinfo-approval-v4"), promotionGate), script: promotionGateClosed, signals: approveAfter(55 * time.Second)},
		{file: "abort-signal-v4.json", canary: podinfo(fast, named("podinfo-abort-v4")), signals: abortAfter(15 * time.Second)},
		// Recorded at step-cadence: the wait after a step is what is left of the interval.
		{file: "ten-steps-v5.json", canary: podinfo(fast, named("podinfo-ten-steps-v5"), func(c *v1beta1.Canary) {
			c.Spec.Analysis.MaxWeight = 100
		})},
		{file: "checks-retried-v5.json", canary: podinfo(fast, named("podinfo-checks-retried-v5")), script: func(f *fakes) {
			f.checksErr = func(n int) error { // the step at 20 s is retried a second later; the next is due at 30 s
				if n == 2 {
					return errors.New("worker lost")
				}
				return nil
			}
		}},
		{file: "pause-resume-v5.json", canary: podinfo(fast, named("podinfo-pause-v5")), signals: pauseAtWeight20},
		// Recorded at local-checks: a step without webhooks checks its metrics in a local activity, in the workflow
		// task its timer woke; promoted in ten steps, rolled back by failed checks, and retried after a lost check.
		{file: "metrics-only-v6.json", canary: podinfo(fast, named("podinfo-metrics-only-v6"), metricsOnly, func(c *v1beta1.Canary) {
			c.Spec.Analysis.MaxWeight = 100
		})},
		{file: "metrics-only-rollback-v6.json", canary: podinfo(fast, named("podinfo-metrics-only-rollback-v6"), metricsOnly), script: lowSuccessRate},
		{file: "metrics-only-retried-v6.json", canary: podinfo(fast, named("podinfo-metrics-only-retried-v6"), metricsOnly), script: func(f *fakes) {
			f.checksErr = func(n int) error { // the step at 20 s is retried a second later; the next is due at 30 s
				if n == 2 {
					return errors.New("worker lost")
				}
				return nil
			}
		}},
		// Recorded with one listener coroutine per signal (before the single listener): a resume and then a pause
		// sent during the second step's readiness check (a local activity, so inside a workflow task) reach the
		// workflow in one task; the pause applies first, the resume after it, and the rollout goes on.
		{file: "signals-one-task-v6.json", canary: podinfo(fast, named("podinfo-signals-one-task-v6"), metricsOnly), during: resumeThenPauseDuring("CheckReady canary", 4)},
		// Recorded at rollback-while-waiting: a rollback webhook ends the wait at confirm-rollout.
		{file: "rollback-while-waiting.json", canary: podinfo(fast, named("podinfo-rollback-waiting"), func(c *v1beta1.Canary) {
			c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks,
				hook(v1beta1.ConfirmRolloutHook, "approval"), hook(v1beta1.RollbackHook, "rollback-gate"))
		}), script: func(f *fakes) {
			f.hookPasses = func(h v1beta1.CanaryWebhook, n int) bool {
				switch h.Type {
				case v1beta1.ConfirmRolloutHook:
					return false
				case v1beta1.RollbackHook:
					return n >= 3
				}
				return true
			}
		}},
		// The finalisation of a deleted Canary (starter delete), with revertOnDeletion and without.
		{file: "finalize-revert.json", finalize: true, canary: podinfo(named("podinfo-finalize"), func(c *v1beta1.Canary) {
			c.Spec.RevertOnDeletion = true
		})},
		{file: "finalize-keep.json", finalize: true, canary: podinfo(named("podinfo-finalize-keep"))},
		// Recorded at undo-failed-init: the first rollout fails at the router and undoes the initialisation.
		{file: "failed-init.json", canary: podinfo(fast, named("podinfo-failed-init")), script: func(f *fakes) {
			f.revisions = []activities.RevisionResult{{TargetRevision: "rev1"}}
			f.reconcileErr = temporal.NewNonRetryableApplicationError(`no router for provider "nginx"`, activities.ErrTypeUnsupportedProvider, nil)
		}},
		// Recorded at statefulset-partitions: a 5-replica StatefulSet promoted through partitions 4, 3, 2, 1 and 0,
		// its metric checked between steps; and rolled back at the second step, whose check fails (threshold 1).
		{file: "statefulset-promotion.json", canary: database(fast, named("db-promotion")), script: statefulSetRev2(0.5)},
		{file: "statefulset-rollback-failed-checks.json", canary: database(fast, named("db-rollback")), script: statefulSetRev2(7)},
		// Recorded at baseline-1: the canary of metrics-only-v6.json, every change taken at the one baseline
		// marker; and a canary whose canary and primary get ready at their third poll, promoted.
		{file: "baseline-metrics-only.json", canary: podinfo(fast, named("podinfo-baseline"), metricsOnly, func(c *v1beta1.Canary) {
			c.Spec.Analysis.MaxWeight = 100
		})},
		{file: "baseline-slow-ready.json", canary: podinfo(fast, named("podinfo-baseline-slow-ready")), script: func(f *fakes) {
			f.canaryReady = func(n int) (bool, string) { return n >= 3, "waiting for rollout to finish" }
			f.primaryReady = func(n int) (bool, string) { return n >= 3, "rolling out" }
		}},
		// Recorded with admissions (--release-rate): a release admitted by a worker of its admission queue and
		// promoted; and one that waits in a queue nobody serves until an abort takes it out.
		{file: "admission-promotion.json", canary: podinfo(fast, named("podinfo-admission"), metricsOnly), admission: "served"},
		{file: "admission-abort-waiting.json", canary: podinfo(fast, named("podinfo-admission-abort")), admission: "stalled",
			signals: abortAfter(5 * time.Second)},
		// Recorded when first rollouts were admitted too: an initialisation admitted by a worker of its admission
		// queue before it creates anything.
		{file: "admission-init.json", canary: podinfo(fast, named("podinfo-admission-init")), admission: "served",
			script: func(f *fakes) { f.revisions = []activities.RevisionResult{{TargetRevision: "rev1"}} }},
		// Recorded with readiness waits (--watch-readiness): the canary and the primary not ready at their first
		// look, each waited for in one AwaitReady on the readiness queue, promoted; and a canary never ready whose
		// wait an abort ends.
		{file: "readiness-promotion.json", canary: podinfo(fast, named("podinfo-readiness")), readiness: true,
			script: func(f *fakes) {
				f.canaryReady = func(n int) (bool, string) { return n >= 3, "waiting for rollout to finish" }
				f.primaryReady = func(n int) (bool, string) { return n >= 3, "rolling out" }
			}},
		{file: "readiness-abort-waiting.json", canary: podinfo(fast, named("podinfo-readiness-abort")), readiness: true,
			script: func(f *fakes) {
				f.canaryReady = func(int) (bool, string) { return false, "waiting for rollout to finish" }
				f.awaitBlocks = true
			}, signals: abortAfter(5 * time.Second)},
	}
}

// Pieces the recordings of several workflow versions share.
var (
	// lowSuccessRate: every check sees a 53.42% success rate (and a passing duration): failed checks.
	lowSuccessRate = func(f *fakes) {
		f.value = func(_ int, metric string) *float64 {
			v := 53.42
			if metric == v1beta1.MetricRequestDuration {
				v = 120
			}
			return &v
		}
	}
	// promotionGate adds a confirm-promotion webhook; promotionGateClosed keeps it closed (only an approval opens it).
	promotionGate = func(c *v1beta1.Canary) {
		c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, hook(v1beta1.ConfirmPromotionHook, "promotion-gate"))
	}
	promotionGateClosed = func(f *fakes) {
		f.hookPasses = func(h v1beta1.CanaryWebhook, _ int) bool { return h.Type != v1beta1.ConfirmPromotionHook }
	}
	// slowPrimary: the primary is ready at its fourth check (polled at 2, 4, 8 s after the promotion began).
	slowPrimary = func(f *fakes) {
		f.primaryReady = func(n int) (bool, string) { return n >= 4, "rolling out" }
	}
)

// statefulSetRev2 is the StatefulSet of database(): 5 replicas at partition 5, template rev2, rev1 recorded as
// stable; every error-rate check sees errorRate (the metric's maximum is 1).
func statefulSetRev2(errorRate float64) func(*fakes) {
	return func(f *fakes) {
		f.sts = fakeStatefulSet{replicas: 5, partition: 5, revision: "rev2", stable: "rev1"}
		f.value = func(int, string) *float64 { return &errorRate }
	}
}

// abortAfter sends the recorder's abort d after the start: 15 s is mid-interval after the second step (10 s
// intervals); 55 s is while the promotion waits for the primary (steps at 0…40 s, promotion at 50 s).
func abortAfter(d time.Duration) func(context.Context, client.Client, string) error {
	return func(ctx context.Context, c client.Client, id string) error {
		time.Sleep(d)
		return c.SignalWorkflow(ctx, id, "", SignalAbort, ActionSignal{By: "recorder", Reason: "replay fixture"})
	}
}

// pauseAtWeight20 pauses the rollout at 15 s (at weight 20) for 20 s; a whole interval follows the resume.
func pauseAtWeight20(ctx context.Context, c client.Client, id string) error {
	time.Sleep(15 * time.Second)
	if err := c.SignalWorkflow(ctx, id, "", SignalPause, ActionSignal{By: "recorder", Reason: "replay fixture"}); err != nil {
		return err
	}
	time.Sleep(20 * time.Second)
	return c.SignalWorkflow(ctx, id, "", SignalResume, ActionSignal{By: "recorder", Reason: "replay fixture"})
}

// resumeThenPauseDuring sends a resume and then a pause while the n-th call of the fake activity call runs.
func resumeThenPauseDuring(call string, n int) func(context.Context, client.Client, string, string, int) {
	return func(ctx context.Context, c client.Client, id, got string, i int) {
		if got != call || i != n {
			return
		}
		for _, name := range []string{SignalResume, SignalPause} {
			_ = c.SignalWorkflow(ctx, id, "", name, ActionSignal{By: "recorder", Reason: "replay fixture"})
		}
	}
}

// approveAfter approves the confirm-promotion gate d after the start: at 55 s the gate, closed at 50 s, waits.
func approveAfter(d time.Duration) func(context.Context, client.Client, string) error {
	return func(ctx context.Context, c client.Client, id string) error {
		time.Sleep(d)
		return c.SignalWorkflow(ctx, id, "", SignalApprove, ApproveSignal{Gate: GateConfirmPromotion, By: "recorder", Reason: "replay fixture"})
	}
}

// recordOnly, from CANARYFLOW_RECORD_ONLY (comma-separated file names), records just those histories, so the
// histories of earlier workflow versions stay as they were recorded.
func recordOnly(all []recording) []recording {
	only := os.Getenv("CANARYFLOW_RECORD_ONLY")
	if only == "" {
		return all
	}
	var out []recording
	for _, r := range all {
		if slices.Contains(strings.Split(only, ","), r.file) {
			out = append(out, r)
		}
	}
	return out
}

func named(name string) func(*v1beta1.Canary) { return func(c *v1beta1.Canary) { c.Name = name } }

// TestRecordHistories records the replay fixtures on a real Temporal dev server, with the fakes in place of the
// activities (so the histories are deterministic but go through a real server: real event IDs, real timers,
// real signals). It takes about two minutes of wall clock (10 s intervals). Re-record after a change of the
// workflow that is meant to change histories (and guard it with workflow.GetVersion when open rollouts exist):
//
//	CANARYFLOW_RECORD=1 go test ./workflows -run TestRecordHistories -v
//
// CANARYFLOW_RECORD_ONLY=a.json,b.json records only those (new fixtures for a new version gate), keeping the
// histories of the versions before it.
//
// It uses the lab's Temporal CLI ($CANARYFLOW_CACHE/lab/bin/temporal, built by `make lab-build`) or the binary
// named by CANARYFLOW_TEMPORAL.
func TestRecordHistories(t *testing.T) {
	if os.Getenv("CANARYFLOW_RECORD") != "1" {
		t.Skip("set CANARYFLOW_RECORD=1 to record the replay histories on a dev server")
	}
	bin := os.Getenv("CANARYFLOW_TEMPORAL")
	if bin == "" {
		bin = labbin.Temporal()
	}
	_, err := os.Stat(bin)
	require.NoError(t, err, "temporal CLI (make lab-build, or CANARYFLOW_TEMPORAL)")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	sas := []temporal.SearchAttributeUpdate{
		searchattr.CanaryName.ValueSet(""), searchattr.CanaryNamespace.ValueSet(""), searchattr.CanaryPhase.ValueSet(""),
		searchattr.CanaryRevision.ValueSet(""), searchattr.CanaryProvider.ValueSet(""), searchattr.CanaryWeight.ValueSet(0),
	}
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:     bin,
		LogLevel:         "error",
		SearchAttributes: temporal.NewSearchAttributes(sas...),
		ClientOptions:    &client.Options{Namespace: "default"},
	})
	require.NoError(t, err)
	defer func() { _ = srv.Stop() }()
	c := srv.Client()
	require.NoError(t, os.MkdirAll(historiesDir, 0o755))

	var wg sync.WaitGroup
	recs := recordOnly(recordings())
	errs := make([]error, len(recs))
	for i, rec := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = record(ctx, c, rec, i)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, recs[i].file)
	}
}

// record runs one recording on its own task queue (each with its own fakes) and writes its history as JSON.
func record(ctx context.Context, c client.Client, rec recording, i int) error {
	queue := fmt.Sprintf("record-%d", i)
	f := newFakes(time.Now)
	if rec.script != nil {
		rec.script(f)
	}
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(CanaryRollout, workflow.RegisterOptions{Name: WorkflowName})
	w.RegisterWorkflowWithOptions(CanaryFinalize, workflow.RegisterOptions{Name: FinalizeWorkflowName})
	w.RegisterActivity(f)
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()
	if rec.admission != "" {
		f.admissionQueue = queue + "-admission"
	}
	if rec.admission == "served" {
		aw := worker.New(c, f.admissionQueue, worker.Options{DisableWorkflowWorker: true, TaskQueueActivitiesPerSecond: 1})
		aw.RegisterActivity(f)
		if err := aw.Start(); err != nil {
			return err
		}
		defer aw.Stop()
	}
	if rec.readiness {
		f.readinessQueue = queue + "-readiness"
		rw := worker.New(c, f.readinessQueue, worker.Options{DisableWorkflowWorker: true})
		rw.RegisterActivity(f)
		if err := rw.Start(); err != nil {
			return err
		}
		defer rw.Stop()
	}
	if rec.finalize {
		return recordFinalize(ctx, c, rec, queue)
	}

	id := v1beta1.WorkflowID(rec.canary.Namespace, rec.canary.Name)
	if rec.cancelDuring != "" {
		f.during = func(call string, n int) {
			if call == rec.cancelDuring && n == 1 {
				_ = c.CancelWorkflow(ctx, id, "")
				time.Sleep(time.Second) // the activity ends after the workflow saw the cancel
			}
		}
	}
	if rec.during != nil {
		f.during = func(call string, n int) { rec.during(ctx, c, id, call, n) }
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, WorkflowName, RolloutInput{Canary: rec.canary})
	if err != nil {
		return err
	}
	if rec.signals != nil {
		if err := rec.signals(ctx, c, id); err != nil {
			return err
		}
	}
	var res RolloutResult
	if err := run.Get(ctx, &res); err != nil {
		return err
	}
	return writeHistory(ctx, c, rec.file, id, run.GetRunID(), string(res.Phase))
}

// recordFinalize records a CanaryFinalize run of rec's canary.
func recordFinalize(ctx context.Context, c client.Client, rec recording, queue string) error {
	id := FinalizeWorkflowID(rec.canary.Namespace, rec.canary.Name)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, FinalizeWorkflowName,
		FinalizeInput{Canary: rec.canary, By: "recorder", Reason: "replay fixture"})
	if err != nil {
		return err
	}
	var res FinalizeStatus
	if err := run.Get(ctx, &res); err != nil {
		return err
	}
	return writeHistory(ctx, c, rec.file, id, run.GetRunID(), string(res.Phase))
}

// writeHistory writes the history of a closed run into testdata/histories/file.
func writeHistory(ctx context.Context, c client.Client, file, id, runID, phase string) error {
	hist := &historypb.History{}
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return err
		}
		hist.Events = append(hist.Events, ev)
	}
	data, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(hist)
	if err != nil {
		return err
	}
	fmt.Printf("recorded %s: %s, %d events\n", file, phase, len(hist.Events))
	return os.WriteFile(filepath.Join(historiesDir, file), append(data, '\n'), 0o644)
}
