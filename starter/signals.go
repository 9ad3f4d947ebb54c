package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
)

// queryTimeout bounds a status query: a worker answers in milliseconds, and none answering should not hang a CLI.
const queryTimeout = 10 * time.Second

// openRollout returns the run ID of the open run of rollout id (canary ns/name), or bad input when none is open.
func openRollout(ctx context.Context, tc client.Client, id, ns, name string) (string, error) {
	d, err := tc.DescribeWorkflowExecution(ctx, id, "")
	if err != nil && !isNotFound(err) {
		return "", &exitError{code: exitFailed, err: fmt.Errorf("describe %s: %w", id, err)}
	}
	if err != nil || d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		where := ""
		if id != v1beta1.WorkflowID(ns, name) {
			where = " (workflow ID " + id + ")"
		}
		return "", &exitError{code: exitBadInput, err: fmt.Errorf("no rollout is running for %s/%s%s", ns, name, where)}
	}
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), nil
}

// queryStatus asks a run (latest when runID is "") for its status.
func queryStatus(ctx context.Context, tc client.Client, id, runID string) (workflows.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var st workflows.Status
	v, err := tc.QueryWorkflow(ctx, id, runID, workflows.QueryStatus)
	if err != nil {
		return st, fmt.Errorf("query status of %s: %w", id, err)
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("decode status of %s: %w", id, err)
	}
	return st, nil
}

func newApproveCmd(g *globals) *cobra.Command {
	var ref canaryRef
	var w who
	var gate, release string
	cmd := &cobra.Command{
		Use:   "approve NAME [-n NAMESPACE] [--gate GATE] [--by WHO] [--reason WHY] | approve --release NAME [--gate WAVE]",
		Short: "Open a gate of a canary's rollout (default: the gate it waits at)",
		Long: "Sends the approve signal. Without --gate it opens the gate the rollout waits at (the status query's " +
			"pendingGate); --gate names one of confirm-rollout, confirm-traffic-increase, confirm-promotion ahead of time.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if release != "" {
				// A release's gates are its waves (starter release approve does the same).
				return approveRelease(cmd, g, release, gate, w)
			}
			ns, name, err := ref.resolve(args)
			if err != nil {
				return err
			}
			if gate != "" && !workflows.Gate(gate).Valid() {
				return &exitError{code: exitBadInput, err: fmt.Errorf("%q is not a gate: name one of %s, %s, %s", gate,
					workflows.GateConfirmRollout, workflows.GateConfirmTrafficIncrease, workflows.GateConfirmPromotion)}
			}
			ctx := cmd.Context()
			tc, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			id := ref.id(ns, name)
			runID, err := openRollout(ctx, tc, id, ns, name)
			if err != nil {
				return err
			}
			if gate == "" {
				st, err := queryStatus(ctx, tc, id, runID)
				if err != nil {
					return &exitError{code: exitFailed, err: fmt.Errorf("find the pending gate (or name one with --gate): %w", err)}
				}
				if st.PendingGate == "" {
					return &exitError{code: exitBadInput, err: fmt.Errorf("no gate is waiting in the rollout of %s/%s; name one with --gate", ns, name)}
				}
				gate = string(st.PendingGate)
			}
			s := workflows.ApproveSignal{Gate: workflows.Gate(gate), By: w.by, Reason: w.reason}
			if err := tc.SignalWorkflow(ctx, id, "", workflows.SignalApprove, s); err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("signal approve to %s: %w", id, err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approved %s of %s/%s by %s\n", gate, ns, name, w.by)
			return nil
		},
	}
	ref.bind(cmd)
	ref.bindCluster(cmd)
	w.bind(cmd)
	cmd.Flags().StringVar(&gate, "gate", "", "gate to open: confirm-rollout, confirm-traffic-increase or confirm-promotion (with --release: the wave)")
	cmd.Flags().StringVar(&release, "release", "", "open the gate of a wave of this release instead (a Release's wave with gate: approval)")
	return cmd
}

// newActionCmd builds abort, pause, resume and promote: one signal with who and why to the open rollout.
func newActionCmd(g *globals, signal, short, done string) *cobra.Command {
	var ref canaryRef
	var w who
	cmd := &cobra.Command{
		Use:   signal + " NAME [-n NAMESPACE] [--by WHO] [--reason WHY]",
		Short: short,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ns, name, tc, err := g.connectTo(ctx, &ref, args)
			if err != nil {
				return err
			}
			defer tc.Close()
			id := ref.id(ns, name)
			if _, err := openRollout(ctx, tc, id, ns, name); err != nil {
				return err
			}
			if err := tc.SignalWorkflow(ctx, id, "", signal, workflows.ActionSignal{By: w.by, Reason: w.reason}); err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("signal %s to %s: %w", signal, id, err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s/%s by %s\n", done, ns, name, w.by)
			return nil
		},
	}
	ref.bind(cmd)
	ref.bindCluster(cmd)
	w.bind(cmd)
	return cmd
}
