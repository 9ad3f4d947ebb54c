package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// listConcurrency bounds the status queries `list` makes at once, one per canary.
const listConcurrency = 8

// listRow is one canary in `list`. Failed checks and last transition are nil when the run could not be asked
// (the table shows a dash, JSON and YAML leave the field out).
type listRow struct {
	Namespace      string     `json:"namespace"`
	Name           string     `json:"name"`
	Phase          string     `json:"phase,omitempty"`
	Weight         int64      `json:"weight"`
	FailedChecks   *int       `json:"failedChecks,omitempty"`
	LastTransition *time.Time `json:"lastTransitionTime,omitempty"`
}

func newListCmd(g *globals) *cobra.Command {
	var ns, output string
	var all bool
	cmd := &cobra.Command{
		Use:   "list [-n NAMESPACE | -A] [-o table|json|yaml]",
		Short: "List canaries with the phase, weight, failed checks and last transition of their latest rollout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.ContainsAny(ns, `'"\`) {
				return &exitError{code: exitBadInput, err: fmt.Errorf("-n %q is not a namespace", ns)}
			}
			if output != "table" && output != "json" && output != "yaml" {
				return &exitError{code: exitBadInput, err: fmt.Errorf("-o %q: write table, json or yaml", output)}
			}
			ctx := cmd.Context()
			tc, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			query := fmt.Sprintf("WorkflowType = '%s'", workflows.WorkflowName)
			if !all {
				query += fmt.Sprintf(" AND %s = '%s'", searchattr.CanaryNamespace.GetName(), ns)
			}
			rows, err := listCanaries(ctx, tc, g.temporal.Namespace, query)
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			if len(rows) == 0 && output == "table" {
				where := "namespace " + ns
				if all {
					where = "any namespace"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "no canaries in %s\n", where)
				return nil
			}
			return printList(cmd.OutOrStdout(), output, rows)
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the canaries")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml (a list of canaries; empty when there are none)")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "canaries of every namespace")
	return cmd
}

// listCanaries finds the latest run of every rollout workflow the query matches and fills one row each: phase and
// weight from search attributes, failed checks and last transition from the status query (open runs) or the
// result (closed runs).
func listCanaries(ctx context.Context, tc client.Client, namespace, query string) ([]listRow, error) {
	latest := map[string]*workflowpb.WorkflowExecutionInfo{}
	var token []byte
	for {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Namespace: namespace, Query: query, NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list workflows (%s): %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			if prev, ok := latest[id]; !ok || e.GetStartTime().AsTime().After(prev.GetStartTime().AsTime()) {
				latest[id] = e
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			break
		}
	}
	rows := make([]listRow, 0, len(latest))
	for _, e := range latest {
		rows = append(rows, rowOf(e))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, listConcurrency)
	for i := range rows {
		e := latest[rows[i].id()]
		wg.Add(1)
		sem <- struct{}{}
		go func(row *listRow) {
			defer func() { <-sem; wg.Done() }()
			id, runID := e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()
			var st workflows.Status
			var err error
			if e.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
				st, err = queryStatus(ctx, tc, id, runID)
			} else {
				var res workflows.RolloutResult
				res, err = closeResult(ctx, tc, id, runID)
				st = res.Status
				if err != nil {
					st, err = queryStatus(ctx, tc, id, runID)
				}
			}
			if err != nil {
				return // the row keeps its dashes: the table still lists the canary
			}
			fc := st.FailedChecks
			row.FailedChecks = &fc
			if !st.LastTransitionTime.IsZero() {
				lt := st.LastTransitionTime.UTC()
				row.LastTransition = &lt
			}
			if row.Phase == "" && st.Phase != "" {
				row.Phase = string(st.Phase)
			}
		}(&rows[i])
	}
	wg.Wait()
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Namespace != rows[j].Namespace {
			return rows[i].Namespace < rows[j].Namespace
		}
		return rows[i].Name < rows[j].Name
	})
	return rows, nil
}

func (r listRow) id() string { return "canary/" + r.Namespace + "/" + r.Name }

// rowOf reads a row's names, phase and weight from the run's search attributes (names from the workflow ID when
// the run has not set them yet).
func rowOf(e *workflowpb.WorkflowExecutionInfo) listRow {
	var row listRow
	parts := strings.SplitN(e.GetExecution().GetWorkflowId(), "/", 3)
	if len(parts) == 3 {
		row.Namespace, row.Name = parts[1], parts[2]
	}
	dc := converter.GetDefaultDataConverter()
	sa := e.GetSearchAttributes().GetIndexedFields()
	if p, ok := sa[searchattr.CanaryPhase.GetName()]; ok {
		var phase string
		if dc.FromPayload(p, &phase) == nil && phase != "" {
			row.Phase = phase
		}
	}
	if p, ok := sa[searchattr.CanaryWeight.GetName()]; ok {
		_ = dc.FromPayload(p, &row.Weight)
	}
	return row
}

func printList(w io.Writer, output string, rows []listRow) error {
	if output != "table" {
		return printAs(w, output, rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tSTATUS\tWEIGHT\tFAILEDCHECKS\tLASTTRANSITIONTIME")
	for _, r := range rows {
		fc, lt := "—", "—"
		if r.FailedChecks != nil {
			fc = fmt.Sprint(*r.FailedChecks)
		}
		if r.LastTransition != nil {
			lt = timeOrDash(*r.LastTransition)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Namespace, r.Name, orDash(r.Phase), r.Weight, fc, lt)
	}
	return tw.Flush()
}
