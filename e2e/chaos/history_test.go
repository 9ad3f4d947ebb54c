package chaos

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/canaryflow/canaryflow/activities"
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
}

// lastRun reads the decisions of the latest run of workflow id, which must have completed.
func lastRun(ctx context.Context, c client.Client, id string) (decisions, error) {
	var d decisions
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
	it := c.GetWorkflowHistory(ctx, id, d.RunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return d, fmt.Errorf("history of workflow %s run %s: %w", id, d.RunID, err)
		}
		a := ev.GetActivityTaskScheduledEventAttributes()
		if a == nil {
			continue
		}
		switch a.GetActivityType().GetName() {
		case "SetRoutes":
			var in activities.RoutesInput
			if err := converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &in); err != nil {
				return d, err
			}
			d.Splits = append(d.Splits, fmt.Sprintf("%d/%d", in.PrimaryWeight, in.CanaryWeight))
		case "Promote":
			d.Promotions++
		case "RevertPromotion":
			d.Reverts++
		}
	}
	return d, nil
}
