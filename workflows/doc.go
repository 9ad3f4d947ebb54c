// Package workflows holds CanaryRollout, the durable state machine of one release of a Canary: it initialises a
// canary on its first rollout, or analyses a new revision step by step and promotes or rolls it back, reacting at
// once to approve, abort, pause, resume, promote and revision signals. The code is deterministic: every side effect
// is an activity of package activities, every wait a workflow timer.
//
// Changing this code changes what replays of open rollouts see: guard a change of behaviour with workflow.GetVersion
// (a change ID per change, in the const block of versions.go) and keep the replay tests (testdata/histories)
// passing.
package workflows
