package workflows

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// fakes replaces every activity of the rollout with a deterministic test implementation that records its calls.
// Behaviour depends only on call counts, so the same script gives the same history in the time-skipping test
// environment and on a dev server (the recorder).
type fakes struct {
	mu    sync.Mutex
	now   func() time.Time
	start time.Time

	// revisions are the successive DetectRevision results; the last one repeats.
	revisions []activities.RevisionResult
	// admissionQueue, when set, is named by every DetectRevision result of a change or a first rollout (a worker with
	// --release-rate).
	admissionQueue string
	// readinessQueue, when set, is named by every DetectRevision result (a worker with --watch-readiness).
	readinessQueue string
	// awaitErr, when set, is what AwaitReady fails with (a readiness queue no worker serves).
	awaitErr error
	// awaitBlocks makes AwaitReady wait (heartbeating) until it is cancelled, as a watch on a workload that never
	// gets ready does.
	awaitBlocks bool
	// awaits are the AwaitReady inputs, in order.
	awaits []activities.AwaitReadyInput
	// canaryReady / primaryReady answer the n-th (1-based) readiness check of each workload; nil = ready.
	canaryReady, primaryReady func(n int) (bool, string)
	// metricsErr, when set, makes the metric checks fail to run (the metrics backend down) when it returns an
	// error; now is the test clock since the start.
	metricsErr func(now time.Duration) error
	// initErr, when set, makes InitializeWorkloads fail (an overloaded API server) when it returns an error; now is
	// the test clock since the start.
	initErr func(now time.Duration) error
	// reconcileErr, when set, is what ReconcileRouter and FinalizeRouter fail with (a provider without a router).
	reconcileErr error
	// checksErr, when set, makes the n-th (1-based) RunChecks call fail (a lost worker), so that Temporal
	// retries it.
	checksErr func(n int) error
	// readyErr, when set, makes a readiness check fail (an API server outage) when it returns an error.
	readyErr func(now time.Duration) error
	// value gives the n-th (1-based) metric run's value of a metric; nil = a passing value.
	value func(n int, metric string) *float64
	// hookPasses answers the n-th (1-based) call of a webhook; nil = Flagger's happy path (every hook passes,
	// except rollback hooks, whose passing means "roll back").
	hookPasses func(h v1beta1.CanaryWebhook, n int) bool

	// primary is the revision the primary runs: what Promote copied (the last detected target revision) or what
	// RevertPromotion put back; "" until either ran.
	primary  string
	detected string

	calls         []string
	routes        []route
	routeInput    []activities.RoutesInput
	metricsIn     []activities.MetricChecksInput
	alerts        []activities.Event
	events        []string
	eventPayloads []activities.WebhookPayload
	statuses      []activities.CanaryStatusInput

	// sts is the StatefulSet target of a StatefulSet canary.
	sts fakeStatefulSet

	counts map[string]int
	// during, when set, runs inside each activity call (after it is recorded, before it returns): a test sends
	// a signal there to have it arrive while that activity runs.
	during func(call string, n int)
}

// route is one SetRoutes call: the split and when (test clock) it was set.
type route struct {
	Primary, Canary int
	Mirrored        bool
	At              time.Duration // since the fakes' start
}

func (r route) String() string {
	m := ""
	if r.Mirrored {
		m = " mirrored"
	}
	return fmt.Sprintf("%d/%d%s", r.Primary, r.Canary, m)
}

func newFakes(now func() time.Time, revisions ...activities.RevisionResult) *fakes {
	return &fakes{now: now, start: now(), revisions: revisions, counts: map[string]int{}}
}

// newRevision is the DetectRevision result of a changed target.
func newRevision(target string) activities.RevisionResult {
	return activities.RevisionResult{TargetRevision: target, PrimaryRevision: "rev1", PrimaryExists: true, Changed: true}
}

func (f *fakes) record(call string) int {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.counts[call]++
	n, during := f.counts[call], f.during
	f.mu.Unlock()
	if during != nil {
		during(call, n)
	}
	return n
}

// readiness is the script of w's readiness observations (canaryReady or primaryReady); nil = ready.
func (f *fakes) readiness(w activities.Workload) func(n int) (bool, string) {
	if w == activities.WorkloadPrimary {
		return f.primaryReady
	}
	return f.canaryReady
}

// observe counts one more readiness observation of a workload (numbered with its CheckReady calls) without
// recording a call.
func (f *fakes) observe(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[call]++
	return f.counts[call]
}

func (f *fakes) DetectRevision(_ context.Context, _ activities.WorkloadInput) (activities.RevisionResult, error) {
	n := f.record("DetectRevision")
	rev := newRevision("rev2")
	if len(f.revisions) > 0 {
		rev = f.revisions[min(n, len(f.revisions))-1]
	}
	f.mu.Lock()
	f.detected = rev.TargetRevision
	if rev.Admissible() && f.admissionQueue != "" {
		rev.AdmissionQueue = f.admissionQueue
	}
	rev.ReadinessQueue = f.readinessQueue
	f.mu.Unlock()
	return rev, nil
}

func (f *fakes) InitializeWorkloads(_ context.Context, _ activities.WorkloadInput) (activities.ActionResult, error) {
	f.record("InitializeWorkloads")
	if f.initErr != nil {
		if err := f.initErr(f.now().Sub(f.start)); err != nil {
			return activities.ActionResult{}, err
		}
	}
	return activities.ActionResult{Summary: "initialised"}, nil
}

func (f *fakes) ReconcileRouter(_ context.Context, _ activities.RouterInput) (activities.ActionResult, error) {
	f.record("ReconcileRouter")
	if f.reconcileErr != nil {
		return activities.ActionResult{}, f.reconcileErr
	}
	return activities.ActionResult{Summary: "reconciled"}, nil
}

func (f *fakes) FinalizeRouter(_ context.Context, _ activities.RouterInput) (activities.ActionResult, error) {
	f.record("FinalizeRouter")
	if f.reconcileErr != nil {
		return activities.ActionResult{}, f.reconcileErr
	}
	return activities.ActionResult{}, nil
}

func (f *fakes) FinalizeWorkloads(_ context.Context, _ activities.WorkloadInput) (activities.ActionResult, error) {
	f.record("FinalizeWorkloads")
	return activities.ActionResult{}, nil
}

// Admit is the admission of a release: it completes at once here; a test that needs the wait in the admission
// queue mocks it with a delay on the test clock (env.OnActivity(...).After), and the recorder runs it on a worker
// of that queue.
func (f *fakes) Admit(_ context.Context, _ activities.AdmitInput) error {
	f.record("Admit")
	return nil
}

func (f *fakes) ScaleCanary(_ context.Context, in activities.ScaleInput) (activities.ActionResult, error) {
	if in.Up {
		f.record("ScaleCanary up")
	} else {
		f.record("ScaleCanary down")
	}
	return activities.ActionResult{}, nil
}

func (f *fakes) CheckReady(_ context.Context, in activities.ReadyInput) (activities.ReadyResult, error) {
	if f.readyErr != nil {
		if err := f.readyErr(f.now().Sub(f.start)); err != nil {
			f.record("CheckReady error")
			return activities.ReadyResult{}, err
		}
	}
	n := f.record("CheckReady " + string(in.Workload))
	fn := f.readiness(in.Workload)
	if fn == nil {
		return activities.ReadyResult{Ready: true}, nil
	}
	ok, reason := fn(n)
	return activities.ReadyResult{Ready: ok, Reason: reason}, nil
}

// AwaitReady answers as a watch would: the workload's next readiness observations, one per event, until one is
// ready; a workload that never gets ready within a hundred events is reported not ready (the activity's end before
// the deadline), which sends the workflow back to polling.
func (f *fakes) AwaitReady(ctx context.Context, in activities.AwaitReadyInput) (activities.ReadyResult, error) {
	f.record("AwaitReady " + string(in.Workload))
	f.mu.Lock()
	f.awaits = append(f.awaits, in)
	f.mu.Unlock()
	if f.awaitErr != nil {
		return activities.ReadyResult{}, f.awaitErr
	}
	for f.awaitBlocks && ctx.Err() == nil {
		activity.RecordHeartbeat(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := ctx.Err(); err != nil {
		return activities.ReadyResult{}, err
	}
	fn := f.readiness(in.Workload)
	if fn == nil {
		return activities.ReadyResult{Ready: true}, nil
	}
	reason := ""
	for range 100 {
		ok, why := fn(f.observe("CheckReady " + string(in.Workload)))
		if ok {
			return activities.ReadyResult{Ready: true}, nil
		}
		reason = why
	}
	return activities.ReadyResult{Reason: reason}, nil
}

func (f *fakes) Promote(_ context.Context, _ activities.WorkloadInput) (activities.ActionResult, error) {
	f.record("Promote")
	f.mu.Lock()
	f.primary = f.detected
	f.mu.Unlock()
	return activities.ActionResult{}, nil
}

func (f *fakes) RevertPromotion(_ context.Context, in activities.RevertInput) (activities.ActionResult, error) {
	f.record("RevertPromotion " + in.Revision)
	f.mu.Lock()
	f.primary = in.Revision
	f.mu.Unlock()
	return activities.ActionResult{}, nil
}

func (f *fakes) SetRoutes(_ context.Context, in activities.RoutesInput) (activities.RoutesResult, error) {
	r := route{Primary: in.PrimaryWeight, Canary: in.CanaryWeight, Mirrored: in.Mirrored, At: f.now().Sub(f.start)}
	f.record("SetRoutes " + r.String())
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes = append(f.routes, r)
	f.routeInput = append(f.routeInput, in)
	return activities.RoutesResult{PrimaryWeight: in.PrimaryWeight, CanaryWeight: in.CanaryWeight, Mirrored: in.Mirrored}, nil
}

// RunChecks answers as the real one does, from the answers of the fake webhooks and metric checks (called in
// spec order, each recorded under its own name), so that the scenarios hold for either way of checking.
func (f *fakes) RunChecks(ctx context.Context, in activities.ChecksInput) (activities.ChecksResult, error) {
	n := f.record("RunChecks")
	if f.checksErr != nil {
		if err := f.checksErr(n); err != nil {
			return activities.ChecksResult{}, err
		}
	}
	var out activities.ChecksResult
	for _, h := range in.Hooks {
		res, err := f.CallWebhook(ctx, activities.WebhookInput{Hook: h, Payload: in.Payload})
		if err != nil {
			res = activities.WebhookResult{Name: h.Name, Type: h.Type, Reason: err.Error()}
		}
		out.Webhooks = append(out.Webhooks, res)
	}
	if len(in.Metrics) > 0 {
		res, err := f.RunMetricChecks(ctx, activities.MetricChecksInput{Canary: in.Canary, Metrics: in.Metrics, Templates: in.Templates})
		if err != nil {
			out.MetricsError = err.Error()
		} else {
			out.Checks = res.Results
		}
	}
	return out, nil
}

func (f *fakes) RunMetricChecks(_ context.Context, in activities.MetricChecksInput) (activities.MetricChecksResult, error) {
	n := f.record("RunMetricChecks")
	f.mu.Lock()
	f.metricsIn = append(f.metricsIn, in)
	f.mu.Unlock()
	if f.metricsErr != nil {
		if err := f.metricsErr(f.now().Sub(f.start)); err != nil {
			return activities.MetricChecksResult{}, err
		}
	}
	var out activities.MetricChecksResult
	for _, m := range in.Metrics {
		var v *float64
		if f.value != nil {
			v = f.value(n, m.Name)
		} else {
			v = passing(m)
		}
		out.Results = append(out.Results, verdict(m, v))
	}
	return out, nil
}

// passing returns a value inside the metric's range.
func passing(m v1beta1.CanaryMetric) *float64 {
	v := 99.5
	if m.Name == v1beta1.MetricRequestDuration {
		v = 120
	}
	return &v
}

// verdict judges a value as the analysis activity does: in range passes; no value follows the metric's onNoData.
func verdict(m v1beta1.CanaryMetric, v *float64) activities.CheckResult {
	r := activities.CheckResult{Metric: m.Name, Value: v}
	if m.ThresholdRange != nil {
		r.Min, r.Max = m.ThresholdRange.Min, m.ThresholdRange.Max
	}
	if v == nil {
		r.Verdict, r.Message = activities.NoData(m.Name, m.OnNoData)
		return r
	}
	r.Verdict, r.Message = activities.Judge(m.Name, *v, r.Min, r.Max)
	return r
}

func (f *fakes) CallWebhook(_ context.Context, in activities.WebhookInput) (activities.WebhookResult, error) {
	h := in.Hook
	n := f.record("CallWebhook " + string(h.Type) + "/" + h.Name)
	if h.Type == v1beta1.EventHook {
		f.mu.Lock()
		f.events = append(f.events, in.Payload.Metadata["eventMessage"])
		f.eventPayloads = append(f.eventPayloads, in.Payload)
		f.mu.Unlock()
		return activities.WebhookResult{Name: h.Name, Type: h.Type, Passed: true, StatusCode: 200, Attempts: 1}, nil
	}
	ok := h.Type != v1beta1.RollbackHook
	if f.hookPasses != nil {
		ok = f.hookPasses(h, n)
	}
	res := activities.WebhookResult{Name: h.Name, Type: h.Type, Passed: ok, StatusCode: 200, Attempts: 1}
	if !ok {
		res.StatusCode, res.Reason = 403, "forbidden"
	}
	return res, nil
}

func (f *fakes) SendAlerts(_ context.Context, in activities.AlertInput) (activities.AlertResult, error) {
	f.record("SendAlerts")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alerts = append(f.alerts, in.Event)
	return activities.AlertResult{Sent: []string{in.Alerts[0].Name}}, nil
}

func (f *fakes) snapshotRoutes() []route {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]route(nil), f.routes...)
}

func (f *fakes) WriteCanaryStatus(_ context.Context, in activities.CanaryStatusInput) (activities.CanaryStatusResult, error) {
	f.record("WriteCanaryStatus")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses = append(f.statuses, in)
	return activities.CanaryStatusResult{}, nil
}

// fakeStatefulSet is the StatefulSet target of the fakes' StatefulSet activities: its controller is instant (every
// pod at or above the partition runs the template as soon as it is read), unless stsReady says otherwise.
type fakeStatefulSet struct {
	replicas, partition int
	// revision is the template's revision, stable the one recorded as stable ("" before the initialisation).
	revision, stable string
	// partitions are the partitions set, in order (SetStatefulSetPartition, and RecordStable's raise).
	partitions []int
	// stsReady answers the n-th (1-based) read of the StatefulSet; nil = ready.
	stsReady func(n int) (bool, string)
}

func (f *fakes) ReadStatefulSet(_ context.Context, _ activities.PartitionInput) (activities.StatefulSetState, error) {
	n := f.record("ReadStatefulSet")
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sts
	st := activities.StatefulSetState{Replicas: s.replicas, Partition: s.partition, Revision: s.revision, StableRevision: s.stable, Ready: true}
	if s.stsReady != nil {
		st.Ready, st.Reason = s.stsReady(n)
	}
	return st, nil
}

func (f *fakes) RecordStableStatefulSet(_ context.Context, _ activities.WorkloadInput) (activities.ActionResult, error) {
	f.record("RecordStableStatefulSet")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sts.stable, f.sts.partition = f.sts.revision, f.sts.replicas
	f.sts.partitions = append(f.sts.partitions, f.sts.replicas)
	return activities.ActionResult{}, nil
}

func (f *fakes) SetStatefulSetPartition(_ context.Context, in activities.PartitionInput) (activities.ActionResult, error) {
	f.record(fmt.Sprintf("SetStatefulSetPartition %d", in.Partition))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sts.partition = in.Partition
	f.sts.partitions = append(f.sts.partitions, in.Partition)
	return activities.ActionResult{}, nil
}

func (f *fakes) RestoreStatefulSet(_ context.Context, _ activities.WorkloadInput) (activities.ActionResult, error) {
	f.record("RestoreStatefulSet")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sts.revision, f.sts.partition = f.sts.stable, 0
	f.sts.partitions = append(f.sts.partitions, 0)
	return activities.ActionResult{}, nil
}

func (f *fakes) ReleaseStatefulSet(_ context.Context, _ activities.WorkloadInput) (activities.ActionResult, error) {
	f.record("ReleaseStatefulSet")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sts.stable, f.sts.partition = "", 0
	return activities.ActionResult{Summary: "released"}, nil
}
