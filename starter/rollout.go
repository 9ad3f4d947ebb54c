package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"

	"github.com/canaryflow/canaryflow/workflows"
	"github.com/canaryflow/canaryflow/workflows/rolloutclient"
)

// waitFlags are --wait and --timeout, shared by rollout and retry.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

func (w *waitFlags) bind(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.wait, "wait", false, "stream one line per decision until the rollout ends; exit 0 promoted, 1 rolled back or failed, "+
		"2 refused before any change (missing target, objects not canaryflow's, a namespace the worker may not touch), 3 timeout, 4 superseded (a newer revision replaced this one mid-analysis; the line names it)")
	cmd.Flags().DurationVar(&w.timeout, "timeout", 30*time.Minute, "with --wait: how long to wait (the rollout keeps going after it)")
}

// who is --by and --reason, recorded by every mutating command.
type who struct{ by, reason string }

func (w *who) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&w.by, "by", currentUser(), "who asks (recorded in the rollout's history)")
	cmd.Flags().StringVar(&w.reason, "reason", "", "why (recorded in the rollout's history)")
}

func newRolloutCmd(g *globals) *cobra.Command {
	var file string
	var images []string
	var wf waitFlags
	var w who
	var printInput bool
	cmd := &cobra.Command{
		Use:   "rollout -f FILE [--set-image CONTAINER=IMAGE]... [--wait [--timeout D]]",
		Short: "Start the rollout of a Canary, or tell its open rollout that the target changed",
		Long: "Loads and validates the file (one Canary, and the MetricTemplates and AlertProviders it references; any " +
			"problem, and a workflow input over Temporal's 2 MiB payload limit, exits 2 before anything changes), sets " +
			"container images of the target with --set-image, then " +
			"signals-with-start the CanaryRollout workflow canary/<namespace>/<name>: a new run starts when none is " +
			"open, otherwise the open one gets a revision signal and restarts its analysis on the new revision.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return &exitError{code: exitBadInput, err: errors.New("rollout: -f FILE is required")}
			}
			c, set, err := loadOneCanary(file)
			if err != nil {
				return err
			}
			sets, err := parseImageSets(images)
			if err != nil {
				return err
			}
			// Load applied Flagger's defaults to every document: the one place they are applied.
			input := workflows.RolloutInput{Canary: *c, Templates: set.MetricTemplates(), AlertProviders: set.AlertProviders(), Defaulted: true}
			if printInput {
				if len(sets) > 0 || wf.wait {
					return &exitError{code: exitBadInput, err: errors.New("--print-input changes nothing: drop --set-image and --wait")}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(input)
			}
			ctx := cmd.Context()
			tc, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			out := cmd.OutOrStdout()
			if len(sets) > 0 && w.reason == "" {
				w.reason = "set image " + strings.Join(images, ", ")
			}
			sig := workflows.ActionSignal{By: w.by, Reason: w.reason}

			rc := g.rollouts(tc)
			openRun, failed, err := rc.Latest(ctx, c.WorkflowID())
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			input.FailedRevision = failed
			if finalizing, err := rc.Finalizing(ctx, c.Namespace, c.Name); err != nil {
				return &exitError{code: exitFailed, err: err}
			} else if finalizing {
				return &exitError{code: exitBadInput, err: fmt.Errorf("%s/%s: %w", c.Namespace, c.Name, rolloutclient.ErrFinalizing)}
			}
			// Everything Temporal could refuse is checked before the target changes: a patched image with no
			// rollout to analyse it would reach users on the next scale-up unchecked.
			if err := checkPayloads(g.dc, c, input, sig); err != nil {
				return err
			}
			if len(sets) > 0 {
				cfg, err := kubeConfig(g.kubeconfig)
				if err != nil {
					return &exitError{code: exitBadInput, err: err}
				}
				done, err := setImages(ctx, cfg, c, sets)
				if err != nil {
					return err
				}
				fmt.Fprintln(out, done)
			}
			signalCtx, marker := withMarker(ctx)
			run, err := rc.Release(signalCtx, input, sig)
			if err != nil {
				return &exitError{code: exitFailed, err: err}
			}
			if run.GetRunID() == openRun {
				fmt.Fprintf(out, "signalled revision to the open rollout of %s/%s\n", c.Namespace, c.Name)
			} else {
				fmt.Fprintf(out, "started the rollout of %s/%s\n", c.Namespace, c.Name)
			}
			printRun(out, g, c.WorkflowID(), run.GetRunID())
			if !wf.wait {
				return nil
			}
			return follow(ctx, tc, c.WorkflowID(), run.GetRunID(), marker, wf.timeout, out)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "file with one Canary (and its MetricTemplates and AlertProviders)")
	cmd.Flags().StringArrayVar(&images, "set-image", nil, "set the image of a container of the target first: CONTAINER=IMAGE (repeatable)")
	cmd.Flags().BoolVar(&printInput, "print-input", false,
		"print the workflow input (JSON for temporal workflow start --input-file or the Web UI) and change nothing")
	wf.bind(cmd)
	w.bind(cmd)
	return cmd
}

// printRun prints where a run is: its IDs and its Web UI page.
func printRun(out interface{ Write([]byte) (int, error) }, g *globals, id, runID string) {
	fmt.Fprintf(out, "workflow ID: %s\nrun ID: %s\nweb UI: %s\n", id, runID, g.runURL(id, runID))
}

// isNotFound says whether Temporal has no such workflow.
func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}
