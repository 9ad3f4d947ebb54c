package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/canaryflow/canaryflow/internal/temporalconn"
	"github.com/canaryflow/canaryflow/workflows"
)

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "starter",
		Short: "Validate Canary files and start, steer and inspect canaryflow rollouts",
		Long: "Validate Canary files and start, steer and inspect canaryflow rollouts.\n\n" +
			temporalconn.Precedence,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	g := &globals{}
	g.bind(root)
	root.AddCommand(
		newValidateCmd(),
		newBacktestCmd(),
		newRolloutCmd(g),
		newApproveCmd(g),
		newActionCmd(g, workflows.SignalAbort, "Roll a canary back now: traffic to the primary, canary scaled to zero", "aborted"),
		newActionCmd(g, workflows.SignalPause, "Hold a canary's rollout at its current weight until resumed", "paused"),
		newActionCmd(g, workflows.SignalResume, "Continue a paused rollout after a fresh interval", "resumed"),
		newActionCmd(g, workflows.SignalPromote, "Promote a canary now, skipping the rest of its analysis", "promotion requested for"),
		newRetryCmd(g),
		newDeleteCmd(g),
		newStatusCmd(g),
		newListCmd(g),
		newHistoryCmd(g),
		newReleaseCmd(g),
	)
	return root
}
