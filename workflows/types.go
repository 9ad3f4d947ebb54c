package workflows

import (
	"time"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// WorkflowName is the registered type of the rollout workflow.
const WorkflowName = "CanaryRollout"

// TaskQueue is the default task queue of rollout workflows and their activities.
const TaskQueue = "canaryflow"

// Signal names (send them with `temporal workflow signal --name <name> --input '{"by":"…","reason":"…"}'`).
const (
	// SignalApprove opens a gate (ApproveSignal): confirm-rollout, confirm-traffic-increase or confirm-promotion.
	SignalApprove = "approve"
	// SignalAbort rolls back at once (ActionSignal).
	SignalAbort = "abort"
	// SignalPause holds the rollout at its current weight until resumed (ActionSignal).
	SignalPause = "pause"
	// SignalResume continues a paused rollout after a fresh interval (ActionSignal).
	SignalResume = "resume"
	// SignalPromote skips the rest of the analysis and promotes now (ActionSignal).
	SignalPromote = "promote"
	// SignalRevision says the target changed: the workflow re-reads its revision and, when it is new, routes
	// traffic back to the primary, resets the counters and restarts the analysis on it (ActionSignal).
	SignalRevision = "revision"
)

// QueryStatus is the query returning Status.
const QueryStatus = "status"

// Gate is a point where the rollout waits for a webhook or a person: the webhook types that gate.
type Gate string

// The gates; an approve signal naming one opens it once.
const (
	GateConfirmRollout         = Gate(v1beta1.ConfirmRolloutHook)
	GateConfirmTrafficIncrease = Gate(v1beta1.ConfirmTrafficIncreaseHook)
	GateConfirmPromotion       = Gate(v1beta1.ConfirmPromotionHook)
)

// Valid reports whether g names a gate.
func (g Gate) Valid() bool {
	return g == GateConfirmRollout || g == GateConfirmTrafficIncrease || g == GateConfirmPromotion
}

// ApproveSignal is the payload of the approve signal.
type ApproveSignal struct {
	Gate   Gate   `json:"gate"`
	By     string `json:"by"`
	Reason string `json:"reason,omitempty"`
}

// ActionSignal is the payload of the abort, pause, resume, promote and revision signals: who asked and why.
type ActionSignal struct {
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// RolloutInput is the input of CanaryRollout.
type RolloutInput struct {
	// Canary is the validated spec. Defaults are applied once, where the rollout is started: the starter (and
	// its --print-input, the input for the Web UI and the temporal CLI) loads every document with Flagger's
	// defaults and says so with Defaulted. Only an input that does not say so is defaulted by the workflow.
	Canary v1beta1.Canary `json:"canary"`
	// Defaulted says the Canary, Templates and AlertProviders carry their defaults already (v1beta1's
	// SetDefaults, applied when they were loaded); the workflow and its activities then use them as given.
	Defaulted bool `json:"defaulted,omitempty"`
	// Templates are the MetricTemplates the metrics reference, resolved by the caller.
	Templates []v1beta1.MetricTemplate `json:"templates,omitempty"`
	// AlertProviders are the AlertProviders the alerts reference, resolved by the caller.
	AlertProviders []v1beta1.AlertProvider `json:"alertProviders,omitempty"`
	// Status is carried over by continue-as-new; nil on a fresh start.
	Status *Status `json:"status,omitempty"`
	// FailedRevision is the revision the canary's last run rolled back (the starter fills it in). A run that finds
	// the target still at that revision ends at once as Failed, as Flagger keeps a failed canary failed until its
	// target changes; `starter retry` runs it again on purpose.
	FailedRevision string `json:"failedRevision,omitempty"`
	// WriteStatus asks the workflow to write its state to the Canary object's status subresource in the cluster
	// (canaries.flagger.app) on every transition, as Flagger keeps it, so that `kubectl get canaries` and
	// `kubectl wait --for=condition=promoted` work. The GitOps trigger sets it: its Canary objects exist.
	WriteStatus bool `json:"writeStatus,omitempty"`
}

// RolloutResult is what a run ended with.
type RolloutResult struct {
	Phase    Phase  `json:"phase"`
	Revision string `json:"revision,omitempty"`
	Promoted bool   `json:"promoted"`
	// NoNewRun is true when the target already equals what the primary runs (or a revision reverted to it):
	// nothing was rolled out.
	NoNewRun bool `json:"noNewRun,omitempty"`
	// Suspended is true when spec.suspend refused the run.
	Suspended bool   `json:"suspended,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Status    Status `json:"status"`
}

// Phase is Flagger's canary phase.
type Phase string

// The phases (design.md §3).
const (
	PhaseInitializing     Phase = "Initializing"
	PhaseInitialized      Phase = "Initialized"
	PhaseWaiting          Phase = "Waiting"
	PhaseProgressing      Phase = "Progressing"
	PhaseWaitingPromotion Phase = "WaitingPromotion"
	PhasePromoting        Phase = "Promoting"
	PhaseFinalising       Phase = "Finalising"
	PhaseSucceeded        Phase = "Succeeded"
	PhaseFailed           Phase = "Failed"
	// PhaseTerminating belongs to the Canary's deletion (revertOnDeletion), not to a rollout run.
	PhaseTerminating Phase = "Terminating"
)

// ConditionStatus is a Kubernetes condition status.
type ConditionStatus string

// Condition statuses.
const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// ConditionPromoted is the one condition type, as in Flagger.
const ConditionPromoted = "Promoted"

// Condition is a Flagger status condition.
type Condition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	Reason             string          `json:"reason"`
	Message            string          `json:"message"`
	LastTransitionTime time.Time       `json:"lastTransitionTime"`
}

// Approval is one opened gate: who opened it, why, when.
type Approval struct {
	Gate   Gate      `json:"gate"`
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Status is the rollout's state as the status query returns it; continue-as-new carries it to the next run.
type Status struct {
	Phase    Phase            `json:"phase"`
	Strategy v1beta1.Strategy `json:"strategy"`
	// Revision is the target revision under analysis (or initialised); PrimaryRevision what the primary ran
	// when the run started.
	Revision        string `json:"revision,omitempty"`
	PrimaryRevision string `json:"primaryRevision,omitempty"`
	// PrimaryWeight/CanaryWeight are the split last set on the router; with A/B testing they apply to matching
	// requests only.
	PrimaryWeight int  `json:"primaryWeight"`
	CanaryWeight  int  `json:"canaryWeight"`
	Mirrored      bool `json:"mirrored"`
	// Replicas, Partition and Partitions belong to a StatefulSet target (nil or empty for other kinds): its
	// replica count, the partition last set, and the partitions its rollout steps through. Its CanaryWeight is
	// the share of pods updated, the share of traffic its Service sends to the new revision.
	Replicas     int   `json:"replicas,omitempty"`
	Partition    *int  `json:"partition,omitempty"`
	Partitions   []int `json:"partitions,omitempty"`
	FailedChecks int   `json:"failedChecks"`
	Iterations   int   `json:"iterations"`
	// LastChecks are the metric results of the last analysis step; LastWebhooks the webhook results of the last
	// gate, check or rollback hook call.
	LastChecks   []activities.CheckResult   `json:"lastChecks,omitempty"`
	LastWebhooks []activities.WebhookResult `json:"lastWebhooks,omitempty"`
	// PendingGate is the gate the rollout waits at, if any.
	PendingGate Gate       `json:"pendingGate,omitempty"`
	Approvals   []Approval `json:"approvals,omitempty"`
	// OpenGates are approvals received but not yet used (an approval opens its gate once).
	OpenGates   []Gate `json:"openGates,omitempty"`
	Paused      bool   `json:"paused,omitempty"`
	PausedBy    string `json:"pausedBy,omitempty"`
	PauseReason string `json:"pauseReason,omitempty"`
	AbortedBy   string `json:"abortedBy,omitempty"`
	AbortReason string `json:"abortReason,omitempty"`
	// PromotedBy/PromoteReason record a promote signal (promotion without the rest of the analysis).
	PromotedBy    string `json:"promotedBy,omitempty"`
	PromoteReason string `json:"promoteReason,omitempty"`
	// NotReadySince is when the canary was first seen not ready in a row (progress deadline clock).
	NotReadySince      time.Time   `json:"notReadySince,omitzero"`
	LastTransitionTime time.Time   `json:"lastTransitionTime"`
	Conditions         []Condition `json:"conditions"`
	// Message is the last decision, in Flagger's words.
	Message string `json:"message,omitempty"`
	// Runs counts the runs of this rollout (1 + continue-as-new count).
	Runs int `json:"runs"`
}
