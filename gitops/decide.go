package gitops

import "fmt"

// observation is what the trigger reads of one Canary and its workloads from its informers' caches.
type observation struct {
	// Generation is the Canary's metadata.generation: the API server bumps it on every spec change, never on a
	// status write, so the rollout writing status does not look like a change.
	Generation int64
	// Suspended is spec.suspend.
	Suspended bool
	// Revision is the target's revision: its pod template and tracked ConfigMaps and Secrets (workload.Revision).
	Revision string
	// PrimaryExists is false before the first rollout of the canary (nothing initialised yet).
	PrimaryExists bool
	// PrimaryRevision is the revision the primary runs, as canaryflow recorded it on the primary.
	PrimaryRevision string
	// PrimaryForeign is true when a "<target>-primary" exists that canaryflow did not make (Flagger's, typically).
	PrimaryForeign bool
}

// runState is what Temporal says of the canary's rollout (rolloutclient.Client.Latest).
type runState struct {
	// Open is true while a rollout run is open.
	Open bool
	// FailedRevision is the revision the last run rolled back, which stays failed until the target changes.
	FailedRevision string
}

// action is what the trigger does for one observation.
type action int

const (
	// actNone: nothing is due.
	actNone action = iota
	// actStart: signal-with-start that finds no open run, so a new run starts (initialisation or release).
	actStart
	// actSignal: signal-with-start that finds the open run: it gets the revision signal.
	actSignal
)

func (a action) String() string {
	switch a {
	case actStart:
		return "start"
	case actSignal:
		return "signal"
	}
	return "none"
}

// changed says whether obs differs from what the trigger last acted on (nil: nothing since this replica became
// leader) in what a rollout follows: the target's revision or the Canary's spec. Only then is Temporal asked
// anything, so informer events that change neither (status writes, the Deployment's own status, resyncs after a
// watch reconnects) cost no request at all.
func changed(last *observation, obs observation) bool {
	return last == nil || last.Revision != obs.Revision || last.Generation != obs.Generation
}

// decide is the rule of the trigger, for an observation that changed: an open run is told (the revision signal,
// as `starter rollout` tells it; the workflow re-reads the target and ignores a revision it already analyses); with
// no open run, a run starts when there is no primary yet (initialisation) or the target runs another revision
// than the primary, unless that revision was rolled back (it stays failed until the target changes, as in
// Flagger, and `starter retry` runs it again on purpose). It returns the reason recorded with the signal.
func decide(last *observation, obs observation, rs runState) (action, string) {
	if obs.PrimaryForeign {
		return actNone, "its primary exists and was not made by canaryflow (Flagger's?): canaryflow leaves this Canary alone"
	}
	if rs.Open {
		switch {
		case last == nil:
			return actSignal, "GitOps trigger took over (leader): target revision " + obs.Revision
		case last.Revision != obs.Revision:
			return actSignal, "target revision " + obs.Revision
		default:
			return actSignal, fmt.Sprintf("Canary spec changed (generation %d); the open run keeps the spec it started with, the next run takes the new one", obs.Generation)
		}
	}
	switch {
	case obs.Suspended:
		return actNone, "spec.suspend is true"
	case !obs.PrimaryExists:
		return actStart, "initialise: target revision " + obs.Revision
	case obs.Revision == obs.PrimaryRevision:
		return actNone, "the primary runs revision " + obs.Revision + " already"
	case obs.Revision == rs.FailedRevision:
		return actNone, "revision " + obs.Revision + " was rolled back and stays failed until the target changes (starter retry runs it again)"
	}
	return actStart, "target revision " + obs.Revision
}
