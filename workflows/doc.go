// Package workflows holds CanaryRollout, the durable state machine of one release of a Canary: it initialises a
// canary on its first rollout, or analyses a new revision step by step and promotes or rolls it back, reacting at
// once to approve, abort, pause, resume, promote and revision signals. The code is deterministic: every side effect
// is an activity of package activities, every wait a workflow timer.
//
// # Phases
//
// A run's phases are Flagger's (type Phase). These are all the transitions; the scenario tests fail on one that
// is not listed here (phasemap_test.go):
//
//	start            → Initializing | Initialized | Waiting | Progressing | Promoting | Failed
//	Initializing     → Initialized | Failed
//	Waiting          → Progressing | Promoting | Initialized | Failed
//	Progressing      → Waiting | WaitingPromotion | Promoting | Initialized | Failed
//	WaitingPromotion → Waiting | Progressing | Promoting | Initialized | Failed
//	Promoting        → Finalising | Failed
//	Finalising       → Succeeded | Failed
//
// start is a fresh run before its first phase; a suspended run never leaves it, and a run continued as new starts
// in the phase it carried. The first rollout goes through Initializing; a target equal to the primary's revision
// (at the start, or after a revision signal) ends Initialized. Waiting is a closed confirm-rollout gate,
// Progressing the analysis, WaitingPromotion a closed confirm-promotion gate; from these a promote signal goes to
// Promoting, and a revision signal restarts the analysis at the confirm-rollout gate (Waiting or Progressing).
// Failed is a rollback (failed checks, the progress deadline, a rollback webhook, an abort, an error, or the
// workflow cancelled, in any phase before Succeeded), a failed initialisation, or a target still at the revision
// last rolled back. Succeeded is final: a cancel during its post-rollout hooks only stops the hooks (runs recorded
// before versionKeepFinishedPromotion went on to Failed there). Initialized, Succeeded and Failed end the run.
// A StatefulSet target (statefulset.go) goes through the same phases, its steps lowering the StatefulSet's partition
// instead of moving router weights. Terminating and Terminated belong to the Canary's deletion, which
// CanaryFinalize (finalize.go) runs, not to a rollout run.
//
// # Releases across clusters
//
// CanaryRelease (release.go) runs one Canary across clusters in waves, each cluster's rollout a child CanaryRollout
// on the cluster's task queue; it does not change what a rollout does.
//
// Changing this code changes what replays of open rollouts see: guard a change of behaviour with workflow.GetVersion
// (a change ID per change, in the const block of versions.go) and keep the replay tests (testdata/histories)
// passing.
package workflows
