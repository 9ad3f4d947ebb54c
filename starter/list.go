package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

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

// listRow is one canary in `list`.
type listRow struct {
	namespace, name, phase string
	weight                 int64
	failedChecks           string
	lastTransition         string
}

func newListCmd(g *globals) *cobra.Command {
	var ns string
	var all bool
	cmd := &cobra.Command{
		Use:   "list [-n NAMESPACE | -A]",
		Short: "List canaries with the phase, weight, failed checks and last transition of their latest rollout",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.ContainsAny(ns, `'"\`) {
				return &exitError{code: exitBadInput, err: fmt.Errorf("-n %q is not a namespace", ns)}
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
			rows, err := listCanaries(ctx, tc, g.conn.Namespace, query)
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			if len(rows) == 0 {
				where := "namespace " + ns
				if all {
					where = "any namespace"
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "no canaries in %s\n", where)
				return nil
			}
			return printList(cmd.OutOrStdout(), rows)
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the canaries")
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
			row.failedChecks = fmt.Sprint(st.FailedChecks)
			row.lastTransition = timeOrDash(st.LastTransitionTime)
			if row.phase == "—" && st.Phase != "" {
				row.phase = string(st.Phase)
			}
		}(&rows[i])
	}
	wg.Wait()
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].namespace != rows[j].namespace {
			return rows[i].namespace < rows[j].namespace
		}
		return rows[i].name < rows[j].name
	})
	return rows, nil
}

func (r listRow) id() string { return "canary/" + r.namespace + "/" + r.name }

// rowOf reads a row's names, phase and weight from the run's search attributes (names from the workflow ID when
// the run has not set them yet).
func rowOf(e *workflowpb.WorkflowExecutionInfo) listRow {
	row := listRow{phase: "—", failedChecks: "—", lastTransition: "—"}
	parts := strings.SplitN(e.GetExecution().GetWorkflowId(), "/", 3)
	if len(parts) == 3 {
		row.namespace, row.name = parts[1], parts[2]
	}
	dc := converter.GetDefaultDataConverter()
	sa := e.GetSearchAttributes().GetIndexedFields()
	if p, ok := sa[searchattr.CanaryPhase.GetName()]; ok {
		var phase string
		if dc.FromPayload(p, &phase) == nil && phase != "" {
			row.phase = phase
		}
	}
	if p, ok := sa[searchattr.CanaryWeight.GetName()]; ok {
		_ = dc.FromPayload(p, &row.weight)
	}
	return row
}

func printList(w io.Writer, rows []listRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tSTATUS\tWEIGHT\tFAILEDCHECKS\tLASTTRANSITIONTIME")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", r.namespace, r.name, r.phase, r.weight, r.failedChecks, r.lastTransition)
	}
	return tw.Flush()
}
