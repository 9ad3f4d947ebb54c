package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/rolloutclient"
)

// deletePoll is how often `delete --wait` asks the finalisation where it is.
const deletePoll = 500 * time.Millisecond

func newDeleteCmd(g *globals) *cobra.Command {
	var ref canaryRef
	var wf waitFlags
	var w who
	var force bool
	cmd := &cobra.Command{
		Use:   "delete NAME [-n NAMESPACE] | -f FILE [--force] [--wait [--timeout D]]",
		Short: "Finalise a canary canaryflow should no longer manage, as deleting a Flagger Canary does",
		Long: "Starts the CanaryFinalize workflow finalize/<namespace>/<name>, which reports phase Terminating, then " +
			"Terminated. With spec.revertOnDeletion it restores what was there before the Canary, as Flagger does: the " +
			"target is scaled back up to the primary's replicas and awaited, the router's objects are pointed back at " +
			"the apex Service or removed, the apex Service selects the target's pods again, and the primary, its " +
			"autoscaler, config copies and the -primary and -canary Services are deleted. Without it nothing is " +
			"changed (the primary keeps serving). The spec is the file's with -f, else the one the canary's last " +
			"rollout ran with. Refused (exit 2) while a rollout of the canary is open, unless --force, which aborts " +
			"it and waits for its rollback first. With --wait: exit 0 Terminated, 1 failed, 3 timeout.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var file *v1beta1.Canary
			if ref.file != "" && len(args) == 0 {
				c, _, err := loadOneCanary(ref.file)
				if err != nil {
					return err
				}
				file = c
			}
			ns, name, tc, err := g.connectTo(ctx, &ref, args)
			if err != nil {
				return err
			}
			defer tc.Close()
			out := cmd.OutOrStdout()
			if w.reason == "" {
				w.reason = "starter delete"
			}
			deadline := time.Now().Add(wf.timeout)
			if err := closeOpenRollout(ctx, tc, g, ns, name, force, w, deadline, out); err != nil {
				return err
			}
			c := file
			if c == nil {
				if c, err = lastSpec(ctx, tc, ns, name); err != nil {
					return err
				}
			}
			id := workflows.FinalizeWorkflowID(ns, name)
			run, err := rolloutclient.Client{Temporal: tc, TaskQueue: g.taskQueue}.Finalize(ctx,
				workflows.FinalizeInput{Canary: *c, By: w.by, Reason: w.reason})
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			what := "leaving its objects as they are (spec.revertOnDeletion is false)"
			if c.Spec.RevertOnDeletion {
				what = "restoring the objects as they were before it (spec.revertOnDeletion)"
			}
			fmt.Fprintf(out, "finalising %s/%s, %s\n", ns, name, what)
			printRun(out, g, id, run.GetRunID())
			if !wf.wait {
				return nil
			}
			return awaitFinalize(ctx, tc, run, deadline, wf.timeout, out)
		},
	}
	ref.bind(cmd)
	wf.bind(cmd)
	w.bind(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "abort an open rollout of the canary first and wait for its rollback")
	cmd.Flags().Lookup("wait").Usage = "wait until the finalisation ends, printing its phases and steps; exit 0 Terminated, 1 failed, 3 timeout"
	return cmd
}

// closeOpenRollout makes sure no rollout of ns/name is open: refused without force; with force it aborts the open
// run and waits until it closes (a revision that arrived meanwhile may start another run: that one is aborted too).
func closeOpenRollout(ctx context.Context, tc client.Client, g *globals, ns, name string, force bool, w who, deadline time.Time, out io.Writer) error {
	id := v1beta1.WorkflowID(ns, name)
	for {
		openRun, _, err := g.rollouts(tc).Latest(ctx, id)
		if err != nil {
			return &exitError{code: exitFailed, err: err}
		}
		if openRun == "" {
			return nil
		}
		if !force {
			return &exitError{code: exitBadInput, err: fmt.Errorf("a rollout of %s/%s is open (run %s): nothing was changed; let it end, "+
				"or pass --force to abort it, wait for its rollback and then finalise", ns, name, openRun)}
		}
		if err := tc.SignalWorkflow(ctx, id, openRun, workflows.SignalAbort, workflows.ActionSignal{By: w.by, Reason: w.reason}); err != nil {
			return &exitError{code: exitFailed, err: fmt.Errorf("signal abort to %s: %w", id, err)}
		}
		fmt.Fprintf(out, "aborted the open rollout of %s/%s (run %s), waiting for its rollback\n", ns, name, openRun)
		wctx, cancel := context.WithDeadline(ctx, deadline)
		// A rollback ends the run completed (phase Failed) or canceled: either way it is closed, and the loop looks
		// again for a run that a revision signal may have started meanwhile.
		_ = tc.GetWorkflow(wctx, id, openRun).Get(wctx, nil)
		cancel()
		if !time.Now().Before(deadline) {
			return &exitError{code: exitTimeout, err: fmt.Errorf("the aborted rollout of %s/%s did not end in time; nothing was finalised "+
				"(starter status %s -n %s shows where it is)", ns, name, name, ns)}
		}
		fmt.Fprintf(out, "the rollout of %s/%s (run %s) has ended\n", ns, name, openRun)
	}
}

// lastSpec is the Canary the last rollout of ns/name ran with.
func lastSpec(ctx context.Context, tc client.Client, ns, name string) (*v1beta1.Canary, error) {
	id := v1beta1.WorkflowID(ns, name)
	d, err := tc.DescribeWorkflowExecution(ctx, id, "")
	if isNotFound(err) {
		return nil, &exitError{code: exitBadInput, err: fmt.Errorf("no rollout has run for %s/%s, so its spec is unknown: name the Canary file with -f FILE", ns, name)}
	}
	if err != nil {
		return nil, &exitError{code: exitFailed, err: fmt.Errorf("describe %s: %w", id, err)}
	}
	in, err := startInput(ctx, tc, id, d.GetWorkflowExecutionInfo().GetExecution().GetRunId())
	if err != nil {
		return nil, &exitError{code: exitFailed, err: err}
	}
	return &in.Canary, nil
}

// awaitFinalize prints the finalisation's phase and steps as they change, until it ends.
func awaitFinalize(ctx context.Context, tc client.Client, run client.WorkflowRun, deadline time.Time, timeout time.Duration, out io.Writer) error {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	done := make(chan error, 1)
	var res workflows.FinalizeStatus
	go func() { done <- run.Get(ctx, &res) }()
	var last workflows.FinalizeStatus
	printed := 0
	show := func(st workflows.FinalizeStatus) {
		for ; printed < len(st.Steps); printed++ {
			fmt.Fprintf(out, "  %s\n", st.Steps[printed])
		}
		if last.Phase == "" && st.Phase != workflows.PhaseTerminating {
			// Finished between two polls: Terminating is the workflow's first phase, always.
			fmt.Fprintf(out, "phase %s\n", workflows.PhaseTerminating)
		}
		if st.Phase != last.Phase {
			fmt.Fprintf(out, "phase %s: %s\n", st.Phase, st.Message)
		}
		last = st
	}
	tick := time.NewTicker(deletePoll)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				if ctx.Err() != nil {
					return &exitError{code: exitTimeout, err: fmt.Errorf("timed out after %s waiting for %s; the finalisation keeps going", timeout, run.GetID())}
				}
				var ae *temporal.ApplicationError
				if errors.As(err, &ae) {
					err = ae
				}
				return &exitError{code: exitFailed, err: fmt.Errorf("finalisation %s failed: %w", run.GetID(), err)}
			}
			show(res)
			return nil
		case <-tick.C:
			qctx, qcancel := context.WithTimeout(ctx, queryTimeout)
			v, err := tc.QueryWorkflow(qctx, run.GetID(), run.GetRunID(), workflows.QueryStatus)
			qcancel()
			var st workflows.FinalizeStatus
			if err == nil && v.Get(&st) == nil {
				show(st)
			}
		}
	}
}
