package workflows

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// The updates do what the signals of the same name do, but validate first (a rejected update leaves no trace in
// history) and answer with the status once applied:
//
//	temporal workflow update execute -w canary/test/podinfo --name approve --input '{"gate":"confirm-promotion","by":"alice"}'
const (
	UpdateApprove = SignalApprove
	UpdateAbort   = SignalAbort
	UpdatePause   = SignalPause
	UpdateResume  = SignalResume
	UpdatePromote = SignalPromote
)

// registerUpdates installs the update handlers. Each applies its request like the signal would, and a wait in
// progress acts on it at once (wakeWait).
func (r *rollout) registerUpdates() error {
	type handler struct {
		name     string
		apply    func(ActionSignal)
		validate func(ActionSignal) error
	}
	for _, h := range []handler{
		{UpdateAbort, r.applyAbort, r.validateAbort},
		{UpdatePause, r.applyPause, r.validatePause},
		{UpdateResume, r.applyResume, r.validateResume},
		{UpdatePromote, r.applyPromote, r.validatePromote},
	} {
		err := workflow.SetUpdateHandlerWithOptions(r.ctx, h.name,
			func(_ workflow.Context, s ActionSignal) (Status, error) {
				h.apply(s)
				r.wakeWait()
				return r.st, nil
			},
			workflow.UpdateHandlerOptions{Validator: func(s ActionSignal) error { return h.validate(s) }})
		if err != nil {
			return fmt.Errorf("register %s update of %s: %w", h.name, r.name(), err)
		}
	}
	err := workflow.SetUpdateHandlerWithOptions(r.ctx, UpdateApprove,
		func(_ workflow.Context, s ApproveSignal) (Status, error) {
			r.applyApprove(s)
			r.wakeWait()
			return r.st, nil
		},
		workflow.UpdateHandlerOptions{Validator: r.validateApprove})
	if err != nil {
		return fmt.Errorf("register %s update of %s: %w", UpdateApprove, r.name(), err)
	}
	return nil
}

// wakeWait lets a wait selecting on the signal channels see an update at once (runs recorded before
// versionSignalListeners; with listeners a wait's conditions see the update's change by themselves).
func (r *rollout) wakeWait() {
	if !r.listening {
		r.wake.SendAsync(nil)
	}
}

var errNoBy = errors.New(`"by" is required: say who asks`)

// finished is true once the run can no longer change course (promotion under way or done, rollback done).
func (r *rollout) finished() bool {
	switch r.st.Phase {
	case PhasePromoting, PhaseFinalising, PhaseSucceeded, PhaseFailed, PhaseInitialized, PhaseInitializing:
		return true
	}
	return false
}

func (r *rollout) validateApprove(s ApproveSignal) error {
	switch {
	case s.By == "":
		return errNoBy
	case !s.Gate.Valid():
		return fmt.Errorf("%q is not a gate: confirm-rollout, confirm-traffic-increase or confirm-promotion", s.Gate)
	case len(r.hooks(v1beta1.HookType(s.Gate))) == 0:
		return fmt.Errorf("%s has no %s webhook: that gate is always open", r.name(), s.Gate)
	case r.finished():
		return fmt.Errorf("%s is %s: there is no gate left to open", r.name(), r.st.Phase)
	}
	return nil
}

func (r *rollout) validateAbort(s ActionSignal) error {
	switch {
	case s.By == "":
		return errNoBy
	case r.abort != nil:
		return fmt.Errorf("%s is already aborted by %s", r.name(), r.abort.By)
	case r.st.Phase == PhaseSucceeded || r.st.Phase == PhaseFailed || r.st.Phase == PhaseInitialized:
		return fmt.Errorf("%s is %s: nothing to abort", r.name(), r.st.Phase)
	}
	return nil
}

func (r *rollout) validatePause(s ActionSignal) error {
	switch {
	case s.By == "":
		return errNoBy
	case r.st.Paused:
		return fmt.Errorf("%s is already paused by %s", r.name(), r.st.PausedBy)
	case r.finished():
		return fmt.Errorf("%s is %s: nothing to pause", r.name(), r.st.Phase)
	}
	return nil
}

func (r *rollout) validateResume(s ActionSignal) error {
	switch {
	case s.By == "":
		return errNoBy
	case !r.st.Paused:
		return fmt.Errorf("%s is not paused", r.name())
	}
	return nil
}

func (r *rollout) validatePromote(s ActionSignal) error {
	switch {
	case s.By == "":
		return errNoBy
	case r.finished():
		return fmt.Errorf("%s is %s: too late to promote", r.name(), r.st.Phase)
	}
	return nil
}
