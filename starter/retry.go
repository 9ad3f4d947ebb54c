package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
)

func newRetryCmd(g *globals) *cobra.Command {
	var ref canaryRef
	var wf waitFlags
	var w who
	cmd := &cobra.Command{
		Use:   "retry NAME [-n NAMESPACE] [--wait [--timeout D]]",
		Short: "Run a failed or rolled-back release again, with the same input, without touching the pod template",
		Long: "Starts a new run of the canary's workflow with the input of its last run (the Canary spec, templates and " +
			"alert providers it was started with). Refused when a rollout is open or the last one did not fail.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ns, name, tc, err := g.connectTo(ctx, &ref, args)
			if err != nil {
				return err
			}
			defer tc.Close()
			id := v1beta1.WorkflowID(ns, name)
			d, err := tc.DescribeWorkflowExecution(ctx, id, "")
			if isNotFound(err) {
				return &exitError{code: exitBadInput, err: fmt.Errorf("no rollout has run for %s/%s: nothing to retry", ns, name)}
			}
			if err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("describe %s: %w", id, err)}
			}
			info := d.GetWorkflowExecutionInfo()
			last := info.GetExecution().GetRunId()
			switch info.GetStatus() {
			case enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
				return &exitError{code: exitBadInput, err: fmt.Errorf("a rollout of %s/%s is open (run %s): nothing to retry", ns, name, last)}
			case enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
				res, err := closeResult(ctx, tc, id, last)
				if err != nil {
					return &exitError{code: exitFailed, err: err}
				}
				if text, code := outcome(res); code == exitOK {
					return &exitError{code: exitBadInput, err: fmt.Errorf("the last rollout of %s/%s did not fail (%s): nothing to retry", ns, name, text)}
				}
			}
			in, err := startInput(cmd.Context(), tc, id, last)
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			// A continued run carries the state it resumed from; a retry is a fresh release of the same spec.
			in.Status = nil
			in.FailedRevision = "" // a retry analyses the rolled-back revision again, on purpose
			if w.reason == "" {
				w.reason = "retry of run " + last
			}
			// Signal-with-start records who retried (a revision signal, which a fresh run treats as a no-op).
			signalCtx, marker := withMarker(ctx)
			run, err := g.rollouts(tc).Release(signalCtx, in, workflows.ActionSignal{By: w.by, Reason: w.reason})
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "retrying the rollout of %s/%s with the input of run %s\n", ns, name, last)
			printRun(out, g, id, run.GetRunID())
			if !wf.wait {
				return nil
			}
			return follow(ctx, tc, id, run.GetRunID(), marker, wf.timeout, out)
		},
	}
	ref.bind(cmd)
	wf.bind(cmd)
	w.bind(cmd)
	return cmd
}

// startInput reads the input a run was started with, from the first event of its history.
func startInput(ctx context.Context, tc client.Client, id, runID string) (workflows.RolloutInput, error) {
	var in workflows.RolloutInput
	it := tc.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	if !it.HasNext() {
		return in, fmt.Errorf("run %s of %s has no history", runID, id)
	}
	ev, err := it.Next()
	if err != nil {
		return in, fmt.Errorf("read the history of %s run %s: %w", id, runID, err)
	}
	a := ev.GetWorkflowExecutionStartedEventAttributes()
	if a == nil {
		return in, fmt.Errorf("the first event of %s run %s is %s, not the start", id, runID, ev.GetEventType())
	}
	if err := newDecisionReader().first(a.GetInput(), &in); err != nil {
		return in, fmt.Errorf("decode the input of %s run %s: %w", id, runID, err)
	}
	return in, nil
}
