package workflows

import (
	commonpb "go.temporal.io/api/common/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/converter"

	"github.com/canaryflow/canaryflow/activities"
)

// How a CanaryRollout history records its calls, for the tools that read it (starter history, tests): from
// versionLeanHistory on, a short Kubernetes call is a local activity, one marker holding its type and its result
// or failure; before it, and for the other calls, scheduled, started and completed (or failed) activity events.

// localActivityMarker is the name of a local activity's marker; its details hold the call's type ("data") and
// its result ("result"), its Failure the failure.
const localActivityMarker = "LocalActivity"

// activitySetRoutes is the activity that sets a split (activities.Routing.SetRoutes).
const activitySetRoutes = "SetRoutes"

// LocalActivity returns the type, result and failure of the local activity whose marker ev is; ok is false for any
// other event (a version marker, an activity's events).
func LocalActivity(ev *historypb.HistoryEvent) (activityType string, result *commonpb.Payloads, failure *failurepb.Failure, ok bool) {
	a := ev.GetMarkerRecordedEventAttributes()
	if a == nil || a.GetMarkerName() != localActivityMarker {
		return "", nil, nil, false
	}
	var meta struct{ ActivityType string }
	ps := a.GetDetails()["data"].GetPayloads()
	if len(ps) == 0 || converter.GetDefaultDataConverter().FromPayload(ps[0], &meta) != nil {
		return "", nil, nil, false
	}
	return meta.ActivityType, a.GetDetails()["result"], a.GetFailure(), true
}

// SplitSet returns the split that ev sets on the router: a scheduled SetRoutes activity (its input) or a
// SetRoutes local activity that succeeded (its result). A split is decided once, whatever the attempts of its
// call.
func SplitSet(ev *historypb.HistoryEvent) (activities.RoutesResult, bool) {
	var p *commonpb.Payloads
	if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == activitySetRoutes {
		p = a.GetInput()
	}
	if typ, result, failure, ok := LocalActivity(ev); ok && typ == activitySetRoutes && failure == nil {
		p = result
	}
	// RoutesInput and RoutesResult name the weights alike.
	var res activities.RoutesResult
	if len(p.GetPayloads()) == 0 || converter.GetDefaultDataConverter().FromPayload(p.GetPayloads()[0], &res) != nil {
		return res, false
	}
	return res, true
}
