package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/canaryflow/canaryflow/workflows/rolloutclient"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// canaryStatus is what `status -o json|yaml` prints: which run answered, how, and its status.
type canaryStatus struct {
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	WorkflowID string `json:"workflowId"`
	RunID      string `json:"runId"`
	// Execution is the run's Temporal status: Running, Completed, Failed, Canceled, Terminated, …
	Execution string `json:"execution"`
	// Source says where Status comes from: "query", "result" (closed run, no worker answered the query) or
	// "search attributes" (open run, no worker answered: phase and weight only).
	Source string           `json:"source"`
	Status workflows.Status `json:"status"`
}

func newStatusCmd(g *globals) *cobra.Command {
	var ref canaryRef
	var output string
	cmd := &cobra.Command{
		Use:   "status NAME [-n NAMESPACE] [-o table|json|yaml]",
		Short: "Show the state of a canary's latest rollout: phase, weights, checks, gates, approvals",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "table" && output != "json" && output != "yaml" {
				return &exitError{code: exitBadInput, err: fmt.Errorf("-o %q: write table, json or yaml", output)}
			}
			ctx := cmd.Context()
			ns, name, tc, err := g.connectTo(ctx, &ref, args)
			if err != nil {
				return err
			}
			defer tc.Close()
			cs, err := latestStatus(ctx, tc, ns, name, ref.id(ns, name))
			if err != nil {
				return err
			}
			switch cs.Source {
			case "result":
				fmt.Fprintln(cmd.ErrOrStderr(), "note: no worker answered the status query; this is the result the closed run recorded")
			case "search attributes":
				fmt.Fprintln(cmd.ErrOrStderr(), "note: no worker answered the status query; phase and weight come from search attributes, the rest is unknown")
			}
			return printStatus(cmd.OutOrStdout(), output, cs)
		},
	}
	ref.bind(cmd)
	ref.bindCluster(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")
	return cmd
}

// latestStatus reads the status of a canary's latest run: the status query, or when no worker answers, the
// result of a closed run or the search attributes of an open one.
func latestStatus(ctx context.Context, tc client.Client, ns, name, id string) (canaryStatus, error) {
	cs := canaryStatus{Namespace: ns, Name: name, WorkflowID: id}
	d, err := tc.DescribeWorkflowExecution(ctx, id, "")
	if isNotFound(err) {
		return cs, &exitError{code: exitBadInput, err: fmt.Errorf("no rollout has run for %s/%s", ns, name)}
	}
	if err != nil {
		return cs, &exitError{code: exitFailed, err: fmt.Errorf("describe %s: %w", id, err)}
	}
	info := d.GetWorkflowExecutionInfo()
	cs.RunID = info.GetExecution().GetRunId()
	cs.Execution = info.GetStatus().String()
	st, qerr := queryStatus(ctx, tc, id, cs.RunID)
	if qerr == nil {
		cs.Source, cs.Status = "query", st
		return cs, nil
	}
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		if res, err := closeResult(ctx, tc, id, cs.RunID); err == nil {
			cs.Source, cs.Status = "result", res.Status
			return cs, nil
		}
	}
	sa := info.GetSearchAttributes().GetIndexedFields()
	dc := converter.GetDefaultDataConverter()
	var phase string
	var weight int64
	if p, ok := sa[searchattr.CanaryPhase.GetName()]; ok {
		_ = dc.FromPayload(p, &phase)
	}
	if p, ok := sa[searchattr.CanaryWeight.GetName()]; ok {
		_ = dc.FromPayload(p, &weight)
	}
	if phase == "" {
		return cs, &exitError{code: exitFailed, err: qerr}
	}
	cs.Source = "search attributes"
	cs.Status = workflows.Status{Phase: workflows.Phase(phase), CanaryWeight: int(weight), PrimaryWeight: 100 - int(weight)}
	return cs, nil
}

// closeResult reads the RolloutResult a closed run recorded (completed: its result; canceled: its details).
func closeResult(ctx context.Context, tc client.Client, id, runID string) (workflows.RolloutResult, error) {
	return rolloutclient.Client{Temporal: tc}.Result(ctx, id, runID)
}

// printAs writes v as indented JSON (output "json") or as YAML (any other output).
func printAs(w io.Writer, output string, v any) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func printStatus(w io.Writer, output string, cs canaryStatus) error {
	if output != "table" {
		return printAs(w, output, cs)
	}
	st := cs.Status
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tWEIGHT\tFAILED CHECKS\tITERATIONS\tREVISION\tPENDING GATE\tLAST TRANSITION\tMESSAGE")
	fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%d\t%s\t%s\t%s\t%s\n", cs.Name, orDash(string(st.Phase)), st.CanaryWeight, st.PrimaryWeight,
		st.FailedChecks, st.Iterations, orDash(st.Revision), orDash(string(st.PendingGate)), timeOrDash(st.LastTransitionTime), orDash(st.Message))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "run %s (%s)", cs.RunID, cs.Execution)
	if st.Paused {
		fmt.Fprintf(w, "; paused by %s%s", st.PausedBy, reasonSuffix(st.PauseReason))
	}
	if st.AbortedBy != "" {
		fmt.Fprintf(w, "; aborted by %s%s", st.AbortedBy, reasonSuffix(st.AbortReason))
	}
	if st.PromotedBy != "" {
		fmt.Fprintf(w, "; promoted by %s%s", st.PromotedBy, reasonSuffix(st.PromoteReason))
	}
	fmt.Fprintln(w)
	if len(st.LastChecks) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "METRIC\tVALUE\tRANGE\tVERDICT")
		for _, c := range st.LastChecks {
			v := "no values found"
			if c.Value != nil {
				v = num(*c.Value)
			}
			fmt.Fprintf(tw, "%s\t%s\t[%s, %s]\t%s\n", c.Metric, v, bound(c.Min), bound(c.Max), c.Verdict)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(st.Approvals) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "GATE\tAPPROVED BY\tREASON\tAT")
		for _, a := range st.Approvals {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Gate, a.By, orDash(a.Reason), timeOrDash(a.At))
		}
		return tw.Flush()
	}
	return nil
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(time.RFC3339)
}
