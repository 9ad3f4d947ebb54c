package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1alpha1"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/workflows"
)

// releaseStatus is what `release status -o json|yaml` prints.
type releaseStatus struct {
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	Execution  string `json:"execution"`
	// Source is "query" or "result" (closed run, no worker answered the query).
	Source string                  `json:"source"`
	Status workflows.ReleaseStatus `json:"status"`
}

func newReleaseCmd(g *globals) *cobra.Command {
	var file string
	var wait bool
	var timeout time.Duration
	var check bool
	cmd := &cobra.Command{
		Use:   "release -f FILE [--wait [--timeout D]] | release status|approve|abort|pause|resume NAME",
		Short: "Roll a Canary out across clusters in waves (a Release, canaryflow.io/v1alpha1), and steer it",
		Long: "Loads and validates the Release file (the Release, and the MetricTemplates and AlertProviders its Canary " +
			"references; every cluster's Canary is validated with its canaryPatch; any problem exits 2 before anything " +
			"starts), then starts the CanaryRelease workflow release/<name> on --task-queue. Each cluster's rollout runs " +
			"as the child workflow canary/<namespace>/<name>@<cluster> on the cluster's task queue (default " +
			"canaryflow-<cluster>), served by the worker in that cluster. --check validates only.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return &exitError{code: exitBadInput, err: errors.New("release: -f FILE is required")}
			}
			plan, warnings, err := v1alpha1.LoadFile(file, v1beta1.ValidateOptions{RequireTemplates: true, RequireAlertProviders: true, Capabilities: catalog.Capabilities()})
			if err != nil {
				return &exitError{code: exitBadInput, err: err}
			}
			out := cmd.OutOrStdout()
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if check {
				for _, w := range plan.Waves {
					var names []string
					for _, c := range w.Clusters {
						names = append(names, c.Name+" ("+c.TaskQueue+")")
					}
					fmt.Fprintf(out, "wave %s gate=%s bake=%s: %s\n", w.Name, w.Gate, w.BakeTime, strings.Join(names, ", "))
				}
				return nil
			}
			ctx := cmd.Context()
			tc, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			id := v1alpha1.WorkflowID(plan.Name)
			run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID: id, TaskQueue: g.taskQueue,
				WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
				WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
			}, workflows.ReleaseWorkflowName, workflows.ReleaseInput{Plan: *plan})
			if err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("start release %s (a release of that name may be running: starter release status %s): %w", id, plan.Name, err)}
			}
			fmt.Fprintf(out, "started release %s of %s\n", plan.Name, activities.FormatImages(plan.Images))
			printRun(out, g, id, run.GetRunID())
			if !wait {
				return nil
			}
			wctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			var res workflows.ReleaseResult
			if err := run.Get(wctx, &res); err != nil {
				if wctx.Err() != nil {
					return &exitError{code: exitTimeout, err: fmt.Errorf("release %s still running after %s: starter release status %s", plan.Name, timeout, plan.Name)}
				}
				return &exitError{code: exitFailed, err: err}
			}
			if err := printReleaseStatus(out, "table", releaseStatus{WorkflowID: id, RunID: run.GetRunID(), Execution: "Completed", Source: "result", Status: res.Status}); err != nil {
				return err
			}
			if res.Phase != workflows.ReleaseSucceeded {
				return &exitError{code: exitFailed, err: errors.New(res.Reason)}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "file with one Release (and the MetricTemplates and AlertProviders its Canary references)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the release ends and print its clusters; exit 0 succeeded, 1 failed, 3 timeout")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Hour, "with --wait: how long to wait (the release keeps going after it)")
	cmd.Flags().BoolVar(&check, "check", false, "validate the file and print the waves; start nothing")
	cmd.AddCommand(newReleaseStatusCmd(g), newReleaseApproveCmd(g),
		newReleaseActionCmd(g, workflows.SignalAbort, "Stop a release: abort its running rollouts, then apply its onFailure policy", "aborted"),
		newReleaseActionCmd(g, workflows.SignalPause, "Hold a release (gates and bake time) and pause its running rollouts", "paused"),
		newReleaseActionCmd(g, workflows.SignalResume, "Continue a paused release and its rollouts", "resumed"))
	return cmd
}

func newReleaseStatusCmd(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status NAME [-o table|json|yaml]",
		Short: "Show a release as a table of clusters: wave, phase, revision, images, rollout",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" && output != "yaml" {
				return &exitError{code: exitBadInput, err: fmt.Errorf("-o %q: write table, json or yaml", output)}
			}
			ctx := cmd.Context()
			tc, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			rs, err := latestRelease(ctx, tc, args[0])
			if err != nil {
				return err
			}
			return printReleaseStatus(cmd.OutOrStdout(), output, rs)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

// latestRelease reads the status of a release's latest run: its status query, or the result a closed run recorded.
func latestRelease(ctx context.Context, tc client.Client, name string) (releaseStatus, error) {
	id := v1alpha1.WorkflowID(name)
	rs := releaseStatus{WorkflowID: id}
	d, err := tc.DescribeWorkflowExecution(ctx, id, "")
	if isNotFound(err) {
		return rs, &exitError{code: exitBadInput, err: fmt.Errorf("no release %s has run", name)}
	}
	if err != nil {
		return rs, &exitError{code: exitFailed, err: fmt.Errorf("describe %s: %w", id, err)}
	}
	info := d.GetWorkflowExecutionInfo()
	rs.RunID, rs.Execution = info.GetExecution().GetRunId(), info.GetStatus().String()
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	v, qerr := tc.QueryWorkflow(qctx, id, rs.RunID, workflows.QueryStatus)
	if qerr == nil && v.Get(&rs.Status) == nil {
		rs.Source = "query"
		return rs, nil
	}
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		it := tc.GetWorkflowHistory(ctx, id, rs.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				break
			}
			p := ev.GetWorkflowExecutionCompletedEventAttributes().GetResult()
			if a := ev.GetWorkflowExecutionCanceledEventAttributes(); a != nil {
				p = a.GetDetails()
			}
			var res workflows.ReleaseResult
			if len(p.GetPayloads()) > 0 && converter.GetDefaultDataConverter().FromPayload(p.GetPayloads()[0], &res) == nil {
				rs.Source, rs.Status = "result", res.Status
				return rs, nil
			}
		}
	}
	return rs, &exitError{code: exitFailed, err: fmt.Errorf("query status of %s: %w", id, qerr)}
}

func printReleaseStatus(w io.Writer, output string, rs releaseStatus) error {
	if output != "table" {
		return printAs(w, output, rs)
	}
	st := rs.Status
	fmt.Fprintf(w, "release %s: %s (onFailure %s", st.Name, st.Phase, st.OnFailure)
	if st.Wave != "" {
		fmt.Fprintf(w, ", wave %s", st.Wave)
	}
	if st.PendingGate != "" {
		fmt.Fprintf(w, ", waiting for approval of wave %s", st.PendingGate)
	}
	if st.Paused {
		fmt.Fprintf(w, ", paused by %s", st.PausedBy)
	}
	if st.AbortedBy != "" {
		fmt.Fprintf(w, ", aborted by %s%s", st.AbortedBy, reasonSuffix(st.AbortReason))
	}
	fmt.Fprintf(w, ")\nrun %s (%s)\n\n", rs.RunID, rs.Execution)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tWAVE\tPHASE\tREVISION\tIMAGES\tROLLOUT\tMESSAGE")
	for _, c := range st.Clusters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Cluster, c.Wave, c.Phase, orDash(c.Revision),
			orDash(activities.FormatImages(c.Images)), orDash(c.WorkflowID), orDash(c.Message))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Decisions) > 0 {
		fmt.Fprintln(w, "\ndecisions:")
		for _, d := range st.Decisions {
			fmt.Fprintln(w, "  "+d)
		}
	}
	return nil
}

func newReleaseApproveCmd(g *globals) *cobra.Command {
	var w who
	var wave string
	cmd := &cobra.Command{
		Use:   "approve NAME [--wave WAVE] [--by WHO] [--reason WHY]",
		Short: "Open the gate of the wave a release waits at (a wave with gate: approval)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return approveRelease(cmd, g, args[0], wave, w)
		},
	}
	w.bind(cmd)
	cmd.Flags().StringVar(&wave, "wave", "", "the wave to approve (default: the one waiting)")
	return cmd
}

// approveRelease opens the gate of wave (default: the one waiting) of release name.
func approveRelease(cmd *cobra.Command, g *globals, name, wave string, w who) error {
	ctx := cmd.Context()
	tc, err := g.dial(ctx)
	if err != nil {
		return err
	}
	defer tc.Close()
	rs, err := latestRelease(ctx, tc, name)
	if err != nil {
		return err
	}
	if rs.Execution != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING.String() {
		return &exitError{code: exitBadInput, err: fmt.Errorf("release %s is not running (%s)", name, rs.Execution)}
	}
	if wave == "" {
		wave = rs.Status.PendingGate
	}
	if wave == "" || wave != rs.Status.PendingGate {
		return &exitError{code: exitBadInput, err: fmt.Errorf("release %s waits for no approval of wave %q (waiting: %q)", name, wave, rs.Status.PendingGate)}
	}
	s := workflows.ApproveSignal{Gate: workflows.Gate(wave), By: w.by, Reason: w.reason}
	if err := tc.SignalWorkflow(ctx, rs.WorkflowID, rs.RunID, workflows.SignalApprove, s); err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("signal approve to %s: %w", rs.WorkflowID, err)}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "approved wave %s of release %s by %s\n", wave, name, w.by)
	return nil
}

// newReleaseActionCmd builds release abort, pause and resume: one signal to the release, which forwards it to the
// rollouts running.
func newReleaseActionCmd(g *globals, signal, short, done string) *cobra.Command {
	var w who
	cmd := &cobra.Command{
		Use:   signal + " NAME [--by WHO] [--reason WHY]",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			tc, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			id := v1alpha1.WorkflowID(args[0])
			if err := tc.SignalWorkflow(ctx, id, "", signal, workflows.ActionSignal{By: w.by, Reason: w.reason}); err != nil {
				if isNotFound(err) {
					return &exitError{code: exitBadInput, err: fmt.Errorf("no release %s is running", args[0])}
				}
				return &exitError{code: exitFailed, err: fmt.Errorf("signal %s to %s: %w", signal, id, err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s release %s by %s\n", done, args[0], w.by)
			return nil
		},
	}
	w.bind(cmd)
	return cmd
}
