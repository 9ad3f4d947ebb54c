package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// readRun reads the history of one run and hands each decision to emit. With longPoll it waits for new events
// until the run closes; without, it reads what is there. It returns how the run ended (nil while still open).
func readRun(ctx context.Context, c client.Client, id, runID string, longPoll bool, r *decisionReader, emit func(decision)) (*runEnd, error) {
	it := c.GetWorkflowHistory(ctx, id, runID, longPoll, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("read the history of %s run %s: %w", id, runID, err)
		}
		ds, e := r.read(ev)
		for _, d := range ds {
			emit(d)
		}
		if e != nil {
			// The event that closes the run, or one that ends the wait before (see supersession).
			return e, nil
		}
	}
	return nil, nil
}

// follow streams one line per decision of the rollout, from run runID on, following continue-as-new, until the
// rollout ends (its exit code), a newer revision replaces the one the starter's signal (marked with marker)
// rolled out (exitSuperseded), or timeout passes (exitTimeout: the rollout keeps going).
func follow(ctx context.Context, c client.Client, id, runID, marker string, timeout time.Duration, out io.Writer) error {
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	ours := newSupersession(marker)
	for {
		r := newDecisionReader()
		r.watch = ours
		end, err := readRun(ctx, c, id, runID, true, r, func(d decision) { fmt.Fprintln(out, d) })
		if err != nil {
			// The RPC's own deadline derives from ctx and may fire a moment before ctx reports it.
			if errors.Is(ctx.Err(), context.DeadlineExceeded) || !time.Now().Before(deadline) {
				return &exitError{code: exitTimeout, err: fmt.Errorf(
					"timed out after %s waiting for %s; the rollout keeps going (starter status and starter history show where it is)", timeout, id)}
			}
			if errors.Is(ctx.Err(), context.Canceled) {
				return &exitError{code: exitTimeout, err: fmt.Errorf("stopped waiting for %s (interrupted); the rollout keeps going", id)}
			}
			return &exitError{code: exitFailed, err: err}
		}
		switch {
		case end == nil:
			return &exitError{code: exitFailed, err: fmt.Errorf("history of %s run %s ended without closing the run", id, runID)}
		case end.nextRunID != "":
			runID = end.nextRunID
		case end.code != exitOK:
			return &exitError{code: end.code}
		default:
			return nil
		}
	}
}
