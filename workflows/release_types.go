package workflows

import (
	"time"

	"github.com/canaryflow/canaryflow/api/v1alpha1"
)

// ReleaseWorkflowName is the registered type of the release workflow (ID release/<name>, v1alpha1.WorkflowID).
const ReleaseWorkflowName = "CanaryRelease"

// A release takes the approve, abort, pause and resume signals of a rollout (same names and payloads). Approve
// names the wave whose gate it opens in ApproveSignal.Gate; abort, pause and resume act on the whole release and
// are forwarded to the cluster rollouts running at the time.

// ReleaseInput is the input of CanaryRelease: a Release resolved by v1alpha1.Load (each cluster's Canary
// defaulted and validated).
type ReleaseInput struct {
	Plan v1alpha1.Plan `json:"plan"`
}

// ReleasePhase is where a release is.
type ReleasePhase string

// The phases of a release.
const (
	ReleaseProgressing     ReleasePhase = "Progressing"
	ReleaseBaking          ReleasePhase = "Baking"
	ReleaseWaitingApproval ReleasePhase = "WaitingApproval"
	ReleaseRollingBack     ReleasePhase = "RollingBack"
	ReleaseSucceeded       ReleasePhase = "Succeeded"
	ReleaseFailed          ReleasePhase = "Failed"
)

// ClusterPhase is where one cluster of a release is.
type ClusterPhase string

// The phases of a cluster in a release.
const (
	// ClusterPending: its wave has not started.
	ClusterPending ClusterPhase = "Pending"
	// ClusterRunning: its images are being set or its rollout runs.
	ClusterRunning ClusterPhase = "Running"
	// ClusterPromoted: its rollout promoted the release's revision.
	ClusterPromoted ClusterPhase = "Promoted"
	// ClusterInitialized: the canary's first rollout there: its primary was created on the release's revision.
	ClusterInitialized ClusterPhase = "Initialized"
	// ClusterUnchanged: the cluster already ran the release's revision.
	ClusterUnchanged ClusterPhase = "Unchanged"
	// ClusterFailed: its rollout rolled back (the primary kept the previous revision), or a step failed.
	ClusterFailed ClusterPhase = "Failed"
	// ClusterSkipped: the release stopped before this cluster's rollout started.
	ClusterSkipped ClusterPhase = "Skipped"
	// ClusterRollingBack: onFailure rollback-all is putting the previous images back.
	ClusterRollingBack ClusterPhase = "RollingBack"
	// ClusterRolledBack: rollback-all put the previous images back on target and primary.
	ClusterRolledBack ClusterPhase = "RolledBack"
)

// ClusterStatus is one cluster's row of a release.
type ClusterStatus struct {
	Cluster   string       `json:"cluster"`
	Wave      string       `json:"wave"`
	TaskQueue string       `json:"taskQueue"`
	Phase     ClusterPhase `json:"phase"`
	// Revision is the revision (checksum) the cluster's primary runs, as its last rollout reported it.
	Revision string `json:"revision,omitempty"`
	// Images are the images the cluster's primary runs (the release's, or the previous ones); empty until known.
	Images map[string]string `json:"images,omitempty"`
	// PreviousImages are the target's images before the release set its own.
	PreviousImages map[string]string `json:"previousImages,omitempty"`
	// ImagesSet is true once the release set its images on the target.
	ImagesSet bool `json:"imagesSet,omitempty"`
	// WorkflowID and RunID are the cluster's last CanaryRollout (v1alpha1.ClusterWorkflowID).
	WorkflowID string `json:"workflowId,omitempty"`
	RunID      string `json:"runId,omitempty"`
	Message    string `json:"message,omitempty"`
}

// ReleaseStatus is the state of a release as the status query returns it.
type ReleaseStatus struct {
	Name      string             `json:"name"`
	Phase     ReleasePhase       `json:"phase"`
	OnFailure v1alpha1.OnFailure `json:"onFailure"`
	// Wave is the wave running, waiting or baking.
	Wave        string     `json:"wave,omitempty"`
	PendingGate string     `json:"pendingGate,omitempty"`
	Approvals   []Approval `json:"approvals,omitempty"`
	Paused      bool       `json:"paused,omitempty"`
	PausedBy    string     `json:"pausedBy,omitempty"`
	AbortedBy   string     `json:"abortedBy,omitempty"`
	AbortReason string     `json:"abortReason,omitempty"`
	// BakeUntil is when the bake time of the wave before Wave ends (while Baking and not paused).
	BakeUntil time.Time       `json:"bakeUntil,omitzero"`
	Clusters  []ClusterStatus `json:"clusters"`
	// Decisions are every decision of the release, in order, as history states them.
	Decisions []string `json:"decisions,omitempty"`
	Message   string   `json:"message,omitempty"`
}

// ReleaseResult is how a release ended.
type ReleaseResult struct {
	Phase  ReleasePhase  `json:"phase"`
	Reason string        `json:"reason"`
	Status ReleaseStatus `json:"status"`
}
