package workflows

import (
	"fmt"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// gate says whether a gate is open: an unused approval opens it once; otherwise all its webhooks must pass (no
// webhook: open). Closed, it becomes the pending gate.
func (r *rollout) gate(g Gate) (bool, error) {
	if r.takeOpenGate(g) {
		if r.st.PendingGate == g {
			r.st.PendingGate = ""
		}
		last := r.lastApproval(g)
		r.decide(activities.EventApproved, v1beta1.SeverityInfo, true,
			fmt.Sprintf("Gate %s of %s opened by %s: %s", g, r.name(), last.By, last.Reason), "approved")
		return true, nil
	}
	failed, err := r.runHooks(v1beta1.HookType(g))
	if err != nil {
		return false, err
	}
	if failed == "" {
		if r.st.PendingGate == g {
			r.st.PendingGate = ""
		}
		return true, nil
	}
	if r.st.PendingGate != g {
		r.st.PendingGate = g
		r.decide(activities.EventWaitingApproval, v1beta1.SeverityInfo, true,
			fmt.Sprintf("Canary %s is waiting for approval: %s", r.name(), failed), string(g)+" closed")
	}
	return false, nil
}

func (r *rollout) hasOpenGate(g Gate) bool {
	for _, o := range r.st.OpenGates {
		if o == g {
			return true
		}
	}
	return false
}

func (r *rollout) takeOpenGate(g Gate) bool {
	for i, o := range r.st.OpenGates {
		if o == g {
			r.st.OpenGates = append(r.st.OpenGates[:i:i], r.st.OpenGates[i+1:]...)
			return true
		}
	}
	return false
}

func (r *rollout) lastApproval(g Gate) Approval {
	for i := len(r.st.Approvals) - 1; i >= 0; i-- {
		if r.st.Approvals[i].Gate == g {
			return r.st.Approvals[i]
		}
	}
	return Approval{Gate: g}
}
