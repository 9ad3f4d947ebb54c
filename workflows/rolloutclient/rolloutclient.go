// Package rolloutclient is the one way to start or signal a rollout from outside the worker: `starter rollout`,
// `starter retry`, the benchmarks and the end-to-end tests use it, so the workflow ID, the start options, the
// signal-with-start contract, the failed-revision rule and the refusal during a finalisation are written once.
package rolloutclient

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/canaryflow/canaryflow/workflows"
)

// Client starts and signals the rollouts of one task queue.
type Client struct {
	// Temporal is the connection; the caller closes it.
	Temporal client.Client
	// TaskQueue is the queue the workers of these rollouts poll.
	TaskQueue string
}

// StartOptions are the options of every rollout run of the workflow ID id: every past rollout stays under the
// ID, a new run may start after any closed one, and an open run is signalled instead of a second one started.
func (c Client) StartOptions(id string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                c.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}
}

// Latest describes the latest run of the rollout id: the run ID of the open run ("" when none is open), and
// the revision a new run must not promote again unchanged (the failed-revision rule: the last run completed
// Failed after its primary existed, so the same target revision is a known-bad release; "" otherwise). A
// rollout that never ran is neither.
func (c Client) Latest(ctx context.Context, id string) (openRun, failedRevision string, err error) {
	d, err := c.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return "", "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("describe %s: %w", id, err)
	}
	info := d.GetWorkflowExecutionInfo()
	switch info.GetStatus() {
	case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return info.GetExecution().GetRunId(), "", nil
	case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
		res, err := c.Result(ctx, id, info.GetExecution().GetRunId())
		if err == nil && res.Phase == workflows.PhaseFailed && res.Status.PrimaryRevision != "" {
			return "", res.Revision, nil
		}
	}
	return "", "", nil
}

// ErrFinalizing refuses a release of a canary whose finalisation (CanaryFinalize) runs: the finalisation is taking
// its objects down, and a rollout would fight it.
var ErrFinalizing = errors.New("a finalisation of this canary is running (starter delete, or the Canary's deletion in GitOps mode): wait for it to end, then roll out again")

// Finalizing says whether a finalisation of canary namespace/name runs.
func (c Client) Finalizing(ctx context.Context, namespace, name string) (bool, error) {
	id := workflows.FinalizeWorkflowID(namespace, name)
	d, err := c.Temporal.DescribeWorkflowExecution(ctx, id, "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("describe %s: %w", id, err)
	}
	return d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// Release signals-with-start the rollout of in.Canary: a new run starts with in when none is open, otherwise
// the open run gets the revision signal sig and restarts its analysis on the target's new revision. Pass ctx
// through an interceptor's marker to recognise the signal in history.
func (c Client) Release(ctx context.Context, in workflows.RolloutInput, sig workflows.ActionSignal) (client.WorkflowRun, error) {
	id := in.Canary.WorkflowID()
	finalizing, err := c.Finalizing(ctx, in.Canary.Namespace, in.Canary.Name)
	if err != nil {
		return nil, err
	}
	if finalizing {
		return nil, fmt.Errorf("%s/%s: %w", in.Canary.Namespace, in.Canary.Name, ErrFinalizing)
	}
	run, err := c.Temporal.SignalWithStartWorkflow(ctx, id, workflows.SignalRevision, sig, c.StartOptions(id), workflows.WorkflowName, in)
	if err != nil {
		return nil, fmt.Errorf("signal-with-start %s: %w", id, err)
	}
	return run, nil
}

// Finalize starts the finalisation of a deleted Canary (CanaryFinalize, workflow ID finalize/<namespace>/<name>),
// or joins the one running: a finalisation that failed, or one already done, may run again (every step is
// idempotent); one running (a Kubernetes finalizer's, a starter's) is joined rather than doubled.
func (c Client) Finalize(ctx context.Context, in workflows.FinalizeInput) (client.WorkflowRun, error) {
	id := workflows.FinalizeWorkflowID(in.Canary.Namespace, in.Canary.Name)
	run, err := c.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                c.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, workflows.FinalizeWorkflowName, in)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", id, err)
	}
	return run, nil
}

// Abort sends the abort signal to run runID of rollout id and waits until that run has ended (its rollback done).
func (c Client) Abort(ctx context.Context, id, runID string, sig workflows.ActionSignal) error {
	if err := c.Temporal.SignalWorkflow(ctx, id, runID, workflows.SignalAbort, sig); err != nil {
		return fmt.Errorf("abort %s: %w", id, err)
	}
	// The run ends rolled back (or as it was ending anyway): its outcome is not this caller's to judge.
	_ = c.Temporal.GetWorkflow(ctx, id, runID).Get(ctx, nil)
	return ctx.Err()
}

// Result reads the result a closed run of id recorded (completed, or cancelled with its details).
func (c Client) Result(ctx context.Context, id, runID string) (workflows.RolloutResult, error) {
	var res workflows.RolloutResult
	dc := converter.GetDefaultDataConverter()
	it := c.Temporal.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return res, err
		}
		p := ev.GetWorkflowExecutionCompletedEventAttributes().GetResult()
		if a := ev.GetWorkflowExecutionCanceledEventAttributes(); a != nil {
			p = a.GetDetails()
		}
		if len(p.GetPayloads()) > 0 {
			return res, dc.FromPayload(p.GetPayloads()[0], &res)
		}
	}
	return res, fmt.Errorf("run %s of %s recorded no result", runID, id)
}
