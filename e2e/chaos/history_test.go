//go:build lab

package chaos

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"

	"github.com/canaryflow/canaryflow/workflows"
)

// decisions are what one run of a rollout decided, read from its history: every split it scheduled on the router
// (whatever the attempts of each activity), how many promotions and promotion reverts it scheduled, and its result.
type decisions struct {
	RunID      string
	Splits     []string
	Promotions int
	Reverts    int
	Result     workflows.RolloutResult

	// What the faults cost: activities that needed more than one attempt (an attempt lost with a killed worker
	// ends at its start-to-close timeout), workflow tasks that timed out (a task held by a killed worker's sticky
	// queue), and the activity that took longest from scheduled to closed.
	Retried      []string
	TaskTimeouts int
	Slowest      string
	SlowestTook  time.Duration
	// Took is the longest time from scheduled to closed of each activity type.
	Took map[string]time.Duration
}

// costs is one line of what the faults cost a run.
func (d decisions) costs() string {
	return fmt.Sprintf("%d activities retried %v, %d workflow tasks timed out, slowest activity %s %s",
		len(d.Retried), d.Retried, d.TaskTimeouts, d.Slowest, d.SlowestTook.Round(100*time.Millisecond))
}

// lastRun reads the decisions of the latest run of workflow id, which must have completed.
func lastRun(ctx context.Context, c client.Client, id string) (decisions, error) {
	d := decisions{Took: map[string]time.Duration{}}
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return d, fmt.Errorf("describe workflow %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	d.RunID = info.GetExecution().GetRunId()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		return d, fmt.Errorf("workflow %s run %s is %s, want completed", id, d.RunID, info.GetStatus())
	}
	if err := c.GetWorkflow(ctx, id, d.RunID).Get(ctx, &d.Result); err != nil {
		return d, fmt.Errorf("result of workflow %s run %s: %w", id, d.RunID, err)
	}
	names, scheduled := map[int64]string{}, map[int64]time.Time{}
	it := c.GetWorkflowHistory(ctx, id, d.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return d, fmt.Errorf("history of workflow %s run %s: %w", id, d.RunID, err)
		}
		if ev.GetWorkflowTaskTimedOutEventAttributes() != nil {
			d.TaskTimeouts++
		}
		if st := ev.GetActivityTaskStartedEventAttributes(); st != nil && st.GetAttempt() > 1 {
			d.Retried = append(d.Retried, fmt.Sprintf("%s×%d", names[st.GetScheduledEventId()], st.GetAttempt()))
		}
		if id := closedActivity(ev); id != 0 {
			took := ev.GetEventTime().AsTime().Sub(scheduled[id])
			if took > d.SlowestTook {
				d.Slowest, d.SlowestTook = names[id], took
			}
			d.Took[names[id]] = max(d.Took[names[id]], took)
		}
		// Splits, promotions and reverts are activities or, since the lean-history version, local activities
		// (a marker each): read both, as starter history does.
		if sp, ok := workflows.SplitSet(ev); ok {
			d.Splits = append(d.Splits, fmt.Sprintf("%d/%d", sp.PrimaryWeight, sp.CanaryWeight))
		}
		name := ""
		if typ, _, _, ok := workflows.LocalActivity(ev); ok {
			name = typ
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			name = a.GetActivityType().GetName()
			names[ev.GetEventId()] = name
			scheduled[ev.GetEventId()] = ev.GetEventTime().AsTime()
		}
		switch name {
		case "Promote":
			d.Promotions++
		case "RevertPromotion":
			d.Reverts++
		}
	}
	return d, nil
}

// closedActivity returns the scheduled event ID of the activity an event closes, or 0.
func closedActivity(ev *historypb.HistoryEvent) int64 {
	switch {
	case ev.GetActivityTaskCompletedEventAttributes() != nil:
		return ev.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
	case ev.GetActivityTaskFailedEventAttributes() != nil:
		return ev.GetActivityTaskFailedEventAttributes().GetScheduledEventId()
	case ev.GetActivityTaskTimedOutEventAttributes() != nil:
		return ev.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
	case ev.GetActivityTaskCanceledEventAttributes() != nil:
		return ev.GetActivityTaskCanceledEventAttributes().GetScheduledEventId()
	}
	return 0
}
