package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// listen starts the listener: one coroutine that applies each signal to the state as it arrives; the waits
// (await) are conditions on that state, so there is nothing to drain and no selector to keep. Signals that arrive
// in the same workflow task are applied channel by channel in a fixed order (approve, abort, pause, resume,
// promote, revision), each channel's in the order they came: the order the six coroutines it replaces applied
// them in, one per signal, so histories recorded with those replay the same. One coroutine, not six, because a
// worker keeps every running rollout's coroutines, each with its stack, and resumes each at every workflow task:
// at a thousand rollouts five more per rollout were most of the worker's goroutines.
func (r *rollout) listen() {
	r.listening = true
	listeners := []listener{
		listenTo(r.approveCh, r.applyApprove),
		listenTo(r.abortCh, r.applyAbort),
		listenTo(r.pauseCh, r.applyPause),
		listenTo(r.resumeCh, r.applyResume),
		listenTo(r.promoteCh, r.applyPromote),
		listenTo(r.revisionCh, func(s ActionSignal) { r.revision = &s }),
	}
	waiting := func() bool {
		for _, l := range listeners {
			if l.ch.Len() > 0 {
				return true
			}
		}
		return false
	}
	// Disconnected: cancelling the run must not stop the listener (it applied signals after a cancel before, as a
	// blocked Receive does), and a cancelled Await would return at once, forever.
	ctx, _ := workflow.NewDisconnectedContext(r.ctx)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			_ = workflow.Await(ctx, waiting)
			for _, l := range listeners {
				for l.applyNext() {
				}
			}
		}
	})
}

// listener is one signal channel and what applies its next signal, if one waits (saying whether it did).
type listener struct {
	ch        workflow.ReceiveChannel
	applyNext func() bool
}

func listenTo[T any](ch workflow.ReceiveChannel, apply func(T)) listener {
	return listener{ch: ch, applyNext: func() bool {
		var s T
		if !ch.ReceiveAsync(&s) {
			return false
		}
		apply(s)
		return true
	}}
}

// wait blocks for d, returning early when stop says a signal needs handling or the workflow is cancelled. While
// paused (and pausable) no timer runs: after resume a fresh whole interval starts (what is left of a step's
// cadence is dropped), so a pause leaves no hidden timer state.
func (r *rollout) wait(d time.Duration, pausable bool, stop func() bool) error {
	r.flushCanaryStatus() // the state it waits in is what the cluster shows meanwhile
	if r.listening {
		return r.await(d, pausable, stop)
	}
	for {
		r.drain()
		if stop() {
			return nil
		}
		if pausable && r.st.Paused {
			sel := r.signalSelector()
			for r.st.Paused && !stop() {
				sel.Select(r.ctx)
				if r.ctx.Err() != nil {
					return errCanceled
				}
			}
			d = r.a.IntervalDuration() // a pausable wait is an interval's; after a pause a whole one starts
			continue
		}
		tctx, cancel := workflow.WithCancel(r.ctx)
		fired := false
		sel := r.signalSelector()
		sel.AddFuture(workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{Summary: r.summary()}), func(workflow.Future) { fired = true })
		for !fired && !stop() && !(pausable && r.st.Paused) {
			sel.Select(r.ctx)
			if r.ctx.Err() != nil {
				cancel()
				return errCanceled
			}
		}
		if fired {
			return nil
		}
		cancel()
	}
}

// await is wait on the state the listeners keep, as workflow.Await conditions: the interval's timer runs until it
// fires or stop (or a pause) holds, and is then cancelled. (workflow.AwaitWithTimeout leaves its timer running
// unless an SDK flag says otherwise: a timer that fires later for nothing costs a workflow task, and the flag
// would decide the commands.)
func (r *rollout) await(d time.Duration, pausable bool, stop func() bool) error {
	for !stop() {
		if pausable && r.st.Paused {
			if err := workflow.Await(r.ctx, func() bool { return !r.st.Paused || stop() }); err != nil {
				return errCanceled
			}
			d = r.a.IntervalDuration() // a pausable wait is an interval's; after a pause a whole one starts
			continue
		}
		tctx, cancel := workflow.WithCancel(r.ctx)
		timer := workflow.NewTimerWithOptions(tctx, d, workflow.TimerOptions{Summary: r.summary()})
		err := workflow.Await(r.ctx, func() bool { return timer.IsReady() || stop() || (pausable && r.st.Paused) })
		if timer.IsReady() && err == nil {
			return nil // the interval passed
		}
		cancel()
		if err != nil {
			return errCanceled
		}
	}
	return nil
}

// signalSelector selects on every signal channel and on cancellation (runs recorded before
// versionSignalListeners).
func (r *rollout) signalSelector() workflow.Selector {
	sel := workflow.NewSelector(r.ctx)
	sel.AddReceive(r.ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.AddReceive(r.approveCh, func(c workflow.ReceiveChannel, _ bool) { r.receiveApprove(c) })
	sel.AddReceive(r.abortCh, func(c workflow.ReceiveChannel, _ bool) { r.receiveAbort(c) })
	sel.AddReceive(r.pauseCh, func(c workflow.ReceiveChannel, _ bool) { r.receivePause(c) })
	sel.AddReceive(r.resumeCh, func(c workflow.ReceiveChannel, _ bool) { r.receiveResume(c) })
	sel.AddReceive(r.promoteCh, func(c workflow.ReceiveChannel, _ bool) { r.receivePromote(c) })
	sel.AddReceive(r.revisionCh, func(c workflow.ReceiveChannel, _ bool) { r.receiveRevision(c) })
	sel.AddReceive(r.wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(r.ctx, nil) })
	return sel
}

// drain takes every signal already received, in a fixed order of channels. With listeners there is nothing to
// take: they applied every signal as it came.
func (r *rollout) drain() {
	if r.listening {
		return
	}
	for more := true; more; {
		more = false
		for _, c := range []struct {
			ch workflow.ReceiveChannel
			fn func(workflow.ReceiveChannel)
		}{
			{r.approveCh, r.receiveApprove}, {r.abortCh, r.receiveAbort}, {r.pauseCh, r.receivePause},
			{r.resumeCh, r.receiveResume}, {r.promoteCh, r.receivePromote}, {r.revisionCh, r.receiveRevision},
			{r.wake, func(c workflow.ReceiveChannel) { c.Receive(r.ctx, nil) }},
		} {
			if c.ch.Len() > 0 {
				c.fn(c.ch)
				more = true
			}
		}
	}
}

func (r *rollout) receiveApprove(c workflow.ReceiveChannel) {
	var s ApproveSignal
	c.Receive(r.ctx, &s)
	r.applyApprove(s)
}

func (r *rollout) applyApprove(s ApproveSignal) {
	if !s.Gate.Valid() {
		r.ack(fmt.Sprintf("Ignoring approval of %s by %s: %q is not a gate (confirm-rollout, confirm-traffic-increase, confirm-promotion)", r.name(), s.By, s.Gate), "invalid gate")
		return
	}
	r.st.Approvals = append(r.st.Approvals, Approval{Gate: s.Gate, By: s.By, Reason: s.Reason, At: workflow.Now(r.ctx)})
	if !r.hasOpenGate(s.Gate) {
		r.st.OpenGates = append(r.st.OpenGates, s.Gate)
	}
	r.ack(fmt.Sprintf("Approved %s of %s by %s: %s", s.Gate, r.name(), s.By, s.Reason), "approve signal")
}

func (r *rollout) receiveAbort(c workflow.ReceiveChannel) {
	var s ActionSignal
	c.Receive(r.ctx, &s)
	r.applyAbort(s)
}

func (r *rollout) applyAbort(s ActionSignal) {
	if r.st.Phase == PhaseSucceeded || r.st.Phase == PhaseFailed {
		// The release already ended (a signal drained while the run finishes): there is nothing left to abort,
		// and the status keeps saying what happened.
		r.log.Info(fmt.Sprintf("Ignoring abort of %s by %s: the rollout already ended %s", r.name(), s.By, r.st.Phase), r.keyvals("abort signal")...)
		return
	}
	if r.abort == nil {
		r.abort = &s
		r.st.AbortedBy, r.st.AbortReason = s.By, s.Reason
	}
	r.log.Warn(fmt.Sprintf("Abort of %s requested by %s: %s", r.name(), s.By, s.Reason), r.keyvals("abort signal")...)
	r.st.Message = fmt.Sprintf("Abort of %s requested by %s: %s", r.name(), s.By, s.Reason)
}

func (r *rollout) receivePause(c workflow.ReceiveChannel) {
	var s ActionSignal
	c.Receive(r.ctx, &s)
	r.applyPause(s)
}

func (r *rollout) applyPause(s ActionSignal) {
	r.st.Paused, r.st.PausedBy, r.st.PauseReason = true, s.By, s.Reason
	r.ack(fmt.Sprintf("Pause %s at canary weight %d by %s: %s", r.name(), r.st.CanaryWeight, s.By, s.Reason), "pause signal")
}

func (r *rollout) receiveResume(c workflow.ReceiveChannel) {
	var s ActionSignal
	c.Receive(r.ctx, &s)
	r.applyResume(s)
}

func (r *rollout) applyResume(s ActionSignal) {
	if !r.st.Paused {
		return
	}
	r.st.Paused = false
	r.ack(fmt.Sprintf("Resume %s by %s: %s", r.name(), s.By, s.Reason), "resume signal")
}

func (r *rollout) receivePromote(c workflow.ReceiveChannel) {
	var s ActionSignal
	c.Receive(r.ctx, &s)
	r.applyPromote(s)
}

func (r *rollout) applyPromote(s ActionSignal) {
	r.promote = &s
	r.ack(fmt.Sprintf("Promotion of %s requested by %s: %s", r.name(), s.By, s.Reason), "promote signal")
}

func (r *rollout) receiveRevision(c workflow.ReceiveChannel) {
	var s ActionSignal
	c.Receive(r.ctx, &s)
	r.revision = &s
}
