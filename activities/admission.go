package activities

import "context"

// Admission admits releases: its one activity, Admit, does nothing but complete, and it runs on a task queue of
// its own whose workers set a rate (the worker's --release-rate, Temporal's TaskQueueActivitiesPerSecond). The
// Temporal server hands out that queue's tasks no faster than the rate, across every worker polling it, so the
// releases of many canaries changed at once start their traffic shifting at that rate and not all in the same
// second. A release waits for its Admit before its canary is scaled up (a first rollout before its
// initialisation), and only when the DetectRevision that started it named the queue
// (RevisionResult.AdmissionQueue): a worker without a rate names none, and its releases start at once.
type Admission struct{}

// AdmitInput names the release waiting to start, for the Web UI and the worker's log.
type AdmitInput struct {
	Canary   string `json:"canary"`
	Revision string `json:"revision"`
}

// Admit completes at once: the wait is in the task queue, before a worker is handed the task.
func (*Admission) Admit(context.Context, AdmitInput) error { return nil }
