package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1alpha1"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// tgt names the target-image activities (registered on every worker, run on each cluster's task queue).
var tgt *activities.Targets

// CanaryRelease rolls one Canary out across clusters in waves (workflow ID release/<name>). Waves run in order,
// the clusters of a wave in parallel; each cluster's release is the target's images set by an activity on the
// cluster's task queue, then a child CanaryRollout on that queue (ID canary/<ns>/<name>@<cluster>), served by the
// worker inside the cluster. After a wave, its bake time runs on a timer; a wave with gate approval waits for an
// approve signal naming it.
//
// A cluster that fails (its rollout rolled back, or a step failed) stops the release: the other rollouts of its
// wave are aborted, later waves are skipped, and onFailure decides the rest: halt leaves promoted clusters on the
// new revision; rollback-all puts every cluster the release changed back on its previous images (a child
// CanaryRollout with the analysis skipped promotes them onto the primary). Abort does the same as a failure;
// pause holds the release (bake time and gates included) and pauses the running rollouts; resume continues both.
// Every decision, per cluster, is stated in history (the summary of the next command) and in the result.
//
// The code is the state machine of a release only; a rollout's own decisions are in its child's history.
func CanaryRelease(ctx workflow.Context, in ReleaseInput) (ReleaseResult, error) {
	r := newRelease(ctx, in)
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (ReleaseStatus, error) { return r.st, nil }); err != nil {
		return ReleaseResult{}, fmt.Errorf("register status query of release %s: %w", in.Plan.Name, err)
	}
	r.listen()
	res := r.run()
	if ctx.Err() != nil {
		return res, temporal.NewCanceledError(res)
	}
	return res, nil
}

// release is one run of CanaryRelease.
type release struct {
	ctx  workflow.Context
	plan v1alpha1.Plan
	st   ReleaseStatus
	log  log.Logger

	// abort is the abort received (nil: none); stop the reason the release stops ("" while it goes on).
	abort *ActionSignal
	stop  string
	// running holds each cluster's open child rollout (by index in st.Clusters), for forwarding signals.
	running []workflow.ChildWorkflowFuture
	// pauseSig is the pause signal in force (nil when not paused), forwarded to rollouts started while paused.
	pauseSig *ActionSignal

	unsaid []string
}

func newRelease(ctx workflow.Context, in ReleaseInput) *release {
	r := &release{ctx: ctx, plan: in.Plan, log: workflow.GetLogger(ctx)}
	r.st = ReleaseStatus{Name: in.Plan.Name, Phase: ReleaseProgressing, OnFailure: in.Plan.OnFailure}
	for _, w := range in.Plan.Waves {
		for _, c := range w.Clusters {
			r.st.Clusters = append(r.st.Clusters, ClusterStatus{Cluster: c.Name, Wave: w.Name, TaskQueue: c.TaskQueue, Phase: ClusterPending})
		}
	}
	r.running = make([]workflow.ChildWorkflowFuture, len(r.st.Clusters))
	return r
}

// listen applies the signals as they arrive (as a rollout's listeners do); the waits are conditions on that state.
func (r *release) listen() {
	on := func(name string, apply func(ActionSignal)) {
		ch := workflow.GetSignalChannel(r.ctx, name)
		workflow.Go(r.ctx, func(ctx workflow.Context) {
			for {
				var s ActionSignal
				ch.Receive(ctx, &s)
				apply(s)
			}
		})
	}
	approve := workflow.GetSignalChannel(r.ctx, SignalApprove)
	workflow.Go(r.ctx, func(ctx workflow.Context) {
		for {
			var s ApproveSignal
			approve.Receive(ctx, &s)
			r.applyApprove(s)
		}
	})
	on(SignalAbort, r.applyAbort)
	on(SignalPause, r.applyPause)
	on(SignalResume, r.applyResume)
}

func (r *release) applyApprove(s ApproveSignal) {
	if r.st.PendingGate == "" || string(s.Gate) != r.st.PendingGate {
		r.log.Info(fmt.Sprintf("Ignoring approval of %q by %s in release %s: the gate waiting is %q", s.Gate, s.By, r.plan.Name, r.st.PendingGate))
		return
	}
	r.st.Approvals = append(r.st.Approvals, Approval{Gate: s.Gate, By: s.By, Reason: s.Reason, At: workflow.Now(r.ctx)})
}

func (r *release) applyAbort(s ActionSignal) {
	if r.abort != nil || r.st.Phase == ReleaseSucceeded || r.st.Phase == ReleaseFailed {
		return
	}
	r.abort = &s
	r.st.AbortedBy, r.st.AbortReason = s.By, s.Reason
	r.forward(SignalAbort, s)
}

func (r *release) applyPause(s ActionSignal) {
	if r.pauseSig != nil {
		return
	}
	r.pauseSig = &s
	r.st.Paused, r.st.PausedBy = true, s.By
	r.decide(fmt.Sprintf("Release %s paused by %s%s", r.plan.Name, s.By, because(s.Reason)))
	r.forward(SignalPause, s)
}

func (r *release) applyResume(s ActionSignal) {
	if r.pauseSig == nil {
		return
	}
	r.pauseSig = nil
	r.st.Paused, r.st.PausedBy = false, ""
	r.decide(fmt.Sprintf("Release %s resumed by %s%s", r.plan.Name, s.By, because(s.Reason)))
	r.forward(SignalResume, s)
}

// forward sends a signal to every cluster rollout running, in the order of the clusters. A rollout that ends
// meanwhile refuses it, which changes nothing.
func (r *release) forward(name string, s ActionSignal) {
	if r.st.Phase == ReleaseRollingBack {
		return // the rollouts running put the previous revision back: what an abort asks for, not to be held
	}
	for i, f := range r.running {
		if f != nil {
			r.log.Info(fmt.Sprintf("Forwarding %s to the rollout of cluster %s", name, r.st.Clusters[i].Cluster))
			f.SignalChildWorkflow(r.ctx, name, s)
		}
	}
}

// run goes through the waves and ends the release.
func (r *release) run() ReleaseResult {
	r.decide(fmt.Sprintf("Release %s of %s: %d waves, onFailure %s", r.plan.Name, activities.FormatImages(r.plan.Images), len(r.plan.Waves), r.plan.OnFailure))
	for i, w := range r.plan.Waves {
		r.st.Wave = w.Name
		if i > 0 && r.plan.Waves[i-1].BakeTime > 0 {
			r.bake(r.plan.Waves[i-1], w)
		}
		if r.abort == nil && w.Gate == v1alpha1.GateApproval {
			r.waitApproval(w)
		}
		r.awaitUnpaused()
		if r.abort == nil && r.ctx.Err() == nil {
			r.runWave(w)
		}
		if r.abort != nil {
			r.stop = r.abortReason()
		}
		if r.stop != "" || r.ctx.Err() != nil {
			return r.fail(w)
		}
	}
	r.st.Phase = ReleaseSucceeded
	r.st.Wave = ""
	msg := fmt.Sprintf("Release %s succeeded: %s", r.plan.Name, r.clusterSummary())
	r.decide(msg)
	return ReleaseResult{Phase: ReleaseSucceeded, Reason: msg, Status: r.st}
}

// bake waits the bake time of the wave done before starting next, on a timer. A pause stops the clock (the rest
// runs after resume); an abort ends it.
func (r *release) bake(done, next v1alpha1.PlanWave) {
	r.st.Phase = ReleaseBaking
	left := done.BakeTime
	r.decide(fmt.Sprintf("Baking wave %s for %s before wave %s", done.Name, left, next.Name))
	for left > 0 && r.abort == nil && r.ctx.Err() == nil {
		r.awaitUnpaused()
		if r.abort != nil || r.ctx.Err() != nil {
			break
		}
		start := workflow.Now(r.ctx)
		r.st.BakeUntil = start.Add(left)
		tctx, cancel := workflow.WithCancel(r.ctx)
		timer := workflow.NewTimerWithOptions(tctx, left, workflow.TimerOptions{Summary: r.summary()})
		_ = workflow.Await(r.ctx, func() bool { return timer.IsReady() || r.abort != nil || r.pauseSig != nil })
		if timer.IsReady() {
			left = 0
		} else {
			cancel()
			left -= workflow.Now(r.ctx).Sub(start)
		}
	}
	r.st.BakeUntil = time.Time{}
	r.st.Phase = ReleaseProgressing
}

// waitApproval holds the wave until an approve signal names it (or an abort).
func (r *release) waitApproval(w v1alpha1.PlanWave) {
	r.st.Phase = ReleaseWaitingApproval
	r.st.PendingGate = w.Name
	r.decide(fmt.Sprintf("Wave %s waits for approval: starter release approve %s --wave %s", w.Name, r.plan.Name, w.Name))
	_ = workflow.Await(r.ctx, func() bool { return r.approved(w.Name) || r.abort != nil })
	r.st.PendingGate = ""
	r.st.Phase = ReleaseProgressing
	if r.approved(w.Name) {
		a := r.lastApproval(w.Name)
		r.decide(fmt.Sprintf("Wave %s approved by %s%s", w.Name, a.By, because(a.Reason)))
	}
}

func (r *release) abortReason() string {
	return fmt.Sprintf("aborted by %s%s", r.abort.By, because(r.abort.Reason))
}

// because is ": reason", or nothing when no reason was given.
func because(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

func (r *release) approved(wave string) bool { return r.lastApproval(wave).By != "" }

func (r *release) lastApproval(wave string) Approval {
	for i := len(r.st.Approvals) - 1; i >= 0; i-- {
		if string(r.st.Approvals[i].Gate) == wave {
			return r.st.Approvals[i]
		}
	}
	return Approval{}
}

func (r *release) awaitUnpaused() {
	_ = workflow.Await(r.ctx, func() bool { return r.pauseSig == nil || r.abort != nil })
}

// runWave releases the clusters of a wave in parallel and waits for all of them.
func (r *release) runWave(w v1alpha1.PlanWave) {
	var names []string
	for _, c := range w.Clusters {
		names = append(names, c.Name)
	}
	r.decide(fmt.Sprintf("Wave %s: releasing %s", w.Name, strings.Join(names, ", ")))
	wg := workflow.NewWaitGroup(r.ctx)
	for _, c := range w.Clusters {
		wg.Add(1)
		workflow.Go(r.ctx, func(ctx workflow.Context) {
			defer wg.Done()
			r.releaseCluster(ctx, c)
		})
	}
	wg.Wait(r.ctx)
}

// releaseCluster records the target's images, sets the release's, and runs the cluster's rollout.
func (r *release) releaseCluster(ctx workflow.Context, pc v1alpha1.PlanCluster) {
	i := r.index(pc.Name)
	cs := &r.st.Clusters[i]
	cs.Phase = ClusterRunning
	var prev activities.ImagesResult
	in := activities.ImagesInput{Canary: pc.Canary, Images: r.plan.Images}
	if err := r.clusterActivity(ctx, pc, tgt.ReadTargetImages, in, &prev); err != nil {
		r.clusterFailed(cs, "reading the target's images failed: "+err.Error())
		return
	}
	cs.PreviousImages = prev.Images
	if r.stop != "" || r.abort != nil {
		cs.Phase = ClusterSkipped
		r.decide(fmt.Sprintf("Cluster %s (wave %s): not started, the release stopped", cs.Cluster, cs.Wave))
		return
	}
	r.decide(fmt.Sprintf("Cluster %s (wave %s): setting %s on %s %s.%s (it had %s)", cs.Cluster, cs.Wave,
		activities.FormatImages(r.plan.Images), pc.Canary.Spec.TargetRef.Kind, pc.Canary.Spec.TargetRef.Name,
		pc.Canary.Namespace, activities.FormatImages(prev.Images)))
	var set activities.ActionResult
	if err := r.clusterActivity(ctx, pc, tgt.SetTargetImages, in, &set); err != nil {
		r.clusterFailed(cs, "setting the images failed: "+err.Error())
		return
	}
	cs.ImagesSet = true
	res, err := r.rollout(ctx, i, pc, pc.Canary)
	switch {
	case err != nil:
		r.clusterFailed(cs, "its rollout failed: "+err.Error())
	case res.Phase == PhaseSucceeded:
		cs.Phase, cs.Revision, cs.Images = ClusterPromoted, res.Revision, r.plan.Images
		r.decide(fmt.Sprintf("Cluster %s (wave %s): promoted revision %s (%s)", cs.Cluster, cs.Wave, res.Revision, activities.FormatImages(r.plan.Images)))
	case res.Phase == PhaseInitialized && res.NoNewRun:
		cs.Phase, cs.Revision, cs.Images = ClusterUnchanged, res.Revision, r.plan.Images
		r.decide(fmt.Sprintf("Cluster %s (wave %s): already runs revision %s (%s)", cs.Cluster, cs.Wave, res.Revision, activities.FormatImages(r.plan.Images)))
	case res.Phase == PhaseInitialized:
		cs.Phase, cs.Revision, cs.Images = ClusterInitialized, res.Revision, r.plan.Images
		r.decide(fmt.Sprintf("Cluster %s (wave %s): first rollout of %s there, initialised on revision %s (%s)", cs.Cluster, cs.Wave,
			pc.Canary.Name, res.Revision, activities.FormatImages(r.plan.Images)))
	default:
		cs.Revision, cs.Images = res.Status.PrimaryRevision, prev.Images
		r.clusterFailed(cs, fmt.Sprintf("its rollout ended %s, the primary kept revision %s (%s): %s", res.Phase,
			res.Status.PrimaryRevision, activities.FormatImages(prev.Images), res.Reason))
	}
}

// clusterFailed marks a cluster failed and stops the release: the other rollouts of the wave are aborted.
func (r *release) clusterFailed(cs *ClusterStatus, why string) {
	cs.Phase, cs.Message = ClusterFailed, why
	r.decide(fmt.Sprintf("Cluster %s (wave %s) failed: %s", cs.Cluster, cs.Wave, why))
	if r.stop != "" || r.abort != nil {
		return // the release is stopping already; an abort was forwarded when it came
	}
	r.stop = fmt.Sprintf("cluster %s failed", cs.Cluster)
	r.forward(SignalAbort, ActionSignal{By: "release " + r.plan.Name, Reason: "cluster " + cs.Cluster + " failed"})
}

// rollout runs the cluster's CanaryRollout as a child on the cluster's task queue and returns its result (a
// cancelled child's result is its cancellation details).
func (r *release) rollout(ctx workflow.Context, i int, pc v1alpha1.PlanCluster, c v1beta1.Canary) (RolloutResult, error) {
	cs := &r.st.Clusters[i]
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            v1alpha1.ClusterWorkflowID(c.Namespace, c.Name, pc.Name),
		TaskQueue:             pc.TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Closing the release asks the rollouts to roll back (a cancel), never terminates them mid-write.
		ParentClosePolicy:   enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WaitForCancellation: true,
		StaticSummary:       strings.ReplaceAll(r.summary(), "\n", "; "),
	})
	in := RolloutInput{Canary: c, Templates: r.plan.Templates, AlertProviders: r.plan.AlertProviders, Defaulted: true}
	f := workflow.ExecuteChildWorkflow(cctx, WorkflowName, in)
	var exec workflow.Execution
	if err := f.GetChildWorkflowExecution().Get(ctx, &exec); err != nil {
		return RolloutResult{}, fmt.Errorf("start rollout on task queue %s: %w", pc.TaskQueue, err)
	}
	cs.WorkflowID, cs.RunID = exec.ID, exec.RunID
	r.running[i] = f
	switch {
	case r.st.Phase == ReleaseRollingBack:
		// A rollback is not paused or aborted: it is what an abort asks for.
	case r.abort != nil:
		f.SignalChildWorkflow(ctx, SignalAbort, *r.abort)
	case r.stop != "":
		f.SignalChildWorkflow(ctx, SignalAbort, ActionSignal{By: "release " + r.plan.Name, Reason: r.stop})
	case r.pauseSig != nil:
		f.SignalChildWorkflow(ctx, SignalPause, *r.pauseSig)
	}
	var res RolloutResult
	err := f.Get(ctx, &res)
	r.running[i] = nil
	var ce *temporal.CanceledError
	if errors.As(err, &ce) && ce.HasDetails() && ce.Details(&res) == nil {
		return res, nil
	}
	return res, err
}

// clusterActivity runs a target activity on the cluster's task queue.
func (r *release) clusterActivity(ctx workflow.Context, pc v1alpha1.PlanCluster, fn, in, out any) error {
	opts := kubeOptions()
	opts.TaskQueue = pc.TaskQueue
	opts.Summary = r.summary()
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), fn, in).Get(ctx, out)
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return fmt.Errorf("%w (does a worker serve task queue %s?)", err, pc.TaskQueue)
	}
	return err
}

// fail ends a stopped release; with rollback-all, every cluster it changed goes back to its previous images.
func (r *release) fail(at v1alpha1.PlanWave) ReleaseResult {
	if r.stop == "" {
		r.stop = "the workflow was cancelled"
	}
	for i := range r.st.Clusters {
		if r.st.Clusters[i].Phase == ClusterPending {
			r.st.Clusters[i].Phase = ClusterSkipped
		}
	}
	r.decide(fmt.Sprintf("Release %s stopped at wave %s: %s; onFailure %s", r.plan.Name, at.Name, r.stop, r.plan.OnFailure))
	if r.plan.OnFailure == v1alpha1.OnFailureRollbackAll {
		r.rollbackAll()
	}
	r.st.Phase = ReleaseFailed
	msg := fmt.Sprintf("Release %s failed (%s): %s", r.plan.Name, r.stop, r.clusterSummary())
	r.decide(msg)
	return ReleaseResult{Phase: ReleaseFailed, Reason: msg, Status: r.st}
}

// rollbackAll puts the previous images back in every cluster the release changed, all clusters in parallel: a
// promoted (or initialised) cluster through a rollout with the analysis skipped, which promotes them onto the
// primary; a failed one, whose primary kept the previous revision, on its target only. Cleanup survives a
// cancel of the release (a disconnected context).
func (r *release) rollbackAll() {
	r.st.Phase = ReleaseRollingBack
	ctx := r.ctx
	if ctx.Err() != nil {
		ctx, _ = workflow.NewDisconnectedContext(ctx)
	}
	wg := workflow.NewWaitGroup(ctx)
	for _, w := range r.plan.Waves {
		for _, pc := range w.Clusters {
			cs := &r.st.Clusters[r.index(pc.Name)]
			if !cs.ImagesSet || cs.Phase == ClusterUnchanged || sameImages(cs.PreviousImages, r.plan.Images) {
				continue
			}
			wg.Add(1)
			workflow.Go(ctx, func(ctx workflow.Context) {
				defer wg.Done()
				r.rollbackCluster(ctx, pc, cs)
			})
		}
	}
	wg.Wait(ctx)
}

func (r *release) rollbackCluster(ctx workflow.Context, pc v1alpha1.PlanCluster, cs *ClusterStatus) {
	promoted := cs.Phase == ClusterPromoted || cs.Phase == ClusterInitialized
	prev := activities.FormatImages(cs.PreviousImages)
	cs.Phase = ClusterRollingBack
	if promoted {
		r.decide(fmt.Sprintf("Cluster %s (wave %s): rolling back to %s (rollback-all)", cs.Cluster, cs.Wave, prev))
	} else {
		r.decide(fmt.Sprintf("Cluster %s (wave %s): restoring the target to %s; its primary kept them (rollback-all)", cs.Cluster, cs.Wave, prev))
	}
	in := activities.ImagesInput{Canary: pc.Canary, Images: cs.PreviousImages}
	var set activities.ActionResult
	if err := r.clusterActivity(ctx, pc, tgt.SetTargetImages, in, &set); err != nil {
		cs.Phase, cs.Message = ClusterFailed, fmt.Sprintf("rollback failed, set %s on its target by hand: %v", prev, err)
		r.decide(fmt.Sprintf("Cluster %s (wave %s): %s", cs.Cluster, cs.Wave, cs.Message))
		return
	}
	cs.ImagesSet = false
	if !promoted {
		cs.Phase = ClusterFailed
		cs.Message += "; target restored to " + prev
		return
	}
	res, err := r.rollout(ctx, r.index(pc.Name), pc, rollbackCanary(pc.Canary))
	if err != nil || res.Phase != PhaseSucceeded {
		why := res.Reason
		if err != nil {
			why = err.Error()
		}
		cs.Phase, cs.Message = ClusterFailed, fmt.Sprintf("rollback to %s failed: %s", prev, why)
		r.decide(fmt.Sprintf("Cluster %s (wave %s): %s", cs.Cluster, cs.Wave, cs.Message))
		return
	}
	cs.Phase, cs.Revision, cs.Images = ClusterRolledBack, res.Revision, cs.PreviousImages
	r.decide(fmt.Sprintf("Cluster %s (wave %s): rolled back to revision %s (%s)", cs.Cluster, cs.Wave, res.Revision, prev))
}

// rollbackCanary is the Canary of a rollback: analysis skipped, and none of the gates and checks that would hold
// or judge the previous revision (a rollback must not wait for a person or fail a metric); post-rollout and event
// webhooks still run.
func rollbackCanary(c v1beta1.Canary) v1beta1.Canary {
	c.Spec.SkipAnalysis = true
	if c.Spec.Analysis != nil {
		a := *c.Spec.Analysis
		a.Webhooks = nil
		for _, h := range c.Spec.Analysis.Webhooks {
			if h.Type == v1beta1.PostRolloutHook || h.Type == v1beta1.EventHook {
				a.Webhooks = append(a.Webhooks, h)
			}
		}
		c.Spec.Analysis = &a
	}
	return c
}

func sameImages(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func (r *release) index(cluster string) int {
	for i := range r.st.Clusters {
		if r.st.Clusters[i].Cluster == cluster {
			return i
		}
	}
	panic("cluster " + cluster + " is not in the release") // the plan made the list
}

// clusterSummary says which cluster runs what, in the order of the waves.
func (r *release) clusterSummary() string {
	parts := make([]string, len(r.st.Clusters))
	for i, c := range r.st.Clusters {
		s := c.Cluster + " " + string(c.Phase)
		if len(c.Images) > 0 {
			s += " runs " + activities.FormatImages(c.Images)
		}
		parts[i] = s
	}
	return strings.Join(parts, "; ")
}

// decide logs a decision, keeps it in the status and states it in history: the next command the release issues
// carries it as its summary (report.go's say, for the release).
func (r *release) decide(msg string) {
	r.log.Info(msg, "release", r.plan.Name)
	r.st.Message = msg
	r.st.Decisions = append(r.st.Decisions, msg)
	if len(r.unsaid) < maxSaidLines {
		r.unsaid = append(r.unsaid, msg)
	}
}

// summary takes the decisions not yet stated, for the command about to be issued.
func (r *release) summary() string {
	s := strings.Join(r.unsaid, "\n")
	r.unsaid = nil
	return s
}
