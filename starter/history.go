package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newHistoryCmd(g *globals) *cobra.Command {
	var ref canaryRef
	var runID string
	cmd := &cobra.Command{
		Use:   "history NAME [-n NAMESPACE] [--run-id RUN]",
		Short: "Show the decisions of a rollout, read from its workflow history, one line each with its time",
		Long: "Weight changes, every metric check against its range, webhooks and gates, signals with who sent them " +
			"(approvals, aborts, pauses…), phase changes and the outcome, of the latest run or of --run-id.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ns, name, tc, err := g.connectTo(ctx, &ref, args)
			if err != nil {
				return err
			}
			defer tc.Close()
			id := ref.id(ns, name)
			d, err := tc.DescribeWorkflowExecution(ctx, id, runID)
			if isNotFound(err) {
				return &exitError{code: exitBadInput, err: fmt.Errorf("no rollout has run for %s/%s", ns, name)}
			}
			if err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("describe %s: %w", id, err)}
			}
			info := d.GetWorkflowExecutionInfo()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s run %s (%s)\n", id, info.GetExecution().GetRunId(), info.GetStatus())
			_, err = readRun(ctx, tc, id, info.GetExecution().GetRunId(), false, newDecisionReader(),
				func(d decision) { fmt.Fprintln(out, d) })
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			return nil
		},
	}
	ref.bind(cmd)
	ref.bindCluster(cmd)
	cmd.Flags().StringVar(&runID, "run-id", "", "a run of the canary's workflow (default: the latest)")
	return cmd
}
