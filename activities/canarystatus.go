package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// CanaryGVR is Flagger's Canary resource, whose status the GitOps mode keeps.
var CanaryGVR = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}

// ActivityWriteCanaryStatus is the activity type of CanaryStatus.WriteCanaryStatus.
const ActivityWriteCanaryStatus = "WriteCanaryStatus"

// CanaryStatus writes a rollout's state to its Canary object in the cluster.
type CanaryStatus struct {
	Client dynamic.Interface
}

// CanaryCondition is one of Flagger's status conditions (type Promoted).
type CanaryCondition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	LastUpdateTime     time.Time `json:"lastUpdateTime"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
}

// CanaryStatusInput is the whole status to write, in the fields and JSON names of Flagger's CanaryStatus, so that
// `kubectl get canaries` prints Flagger's columns and `kubectl wait --for=condition=promoted` works.
type CanaryStatusInput struct {
	Canary CanaryRef `json:"canary"`
	Phase  string    `json:"phase"`
	// FailedChecks, CanaryWeight and Iterations are the analysis counters.
	FailedChecks int `json:"failedChecks"`
	CanaryWeight int `json:"canaryWeight"`
	Iterations   int `json:"iterations"`
	// LastAppliedSpec is the revision under analysis, LastPromotedSpec the one the primary runs.
	LastAppliedSpec    string            `json:"lastAppliedSpec,omitempty"`
	LastPromotedSpec   string            `json:"lastPromotedSpec,omitempty"`
	LastTransitionTime time.Time         `json:"lastTransitionTime"`
	Conditions         []CanaryCondition `json:"conditions,omitempty"`
}

// CanaryStatusResult says whether the Canary object was there to write to.
type CanaryStatusResult struct {
	// Absent is true when no Canary object of that name exists (deleted, or never applied): nothing was written.
	Absent bool `json:"absent,omitempty"`
}

// WriteCanaryStatus sets the Canary object's status subresource to the given state: a merge patch of absolute
// values, so it may run again after a crash. A Canary object that does not exist is no error (the workflow
// outlives a deleted object until its finalisation); a cluster without the Canary CRD is one, named.
func (s *CanaryStatus) WriteCanaryStatus(ctx context.Context, in CanaryStatusInput) (CanaryStatusResult, error) {
	if s.Client == nil {
		return CanaryStatusResult{}, invalid(ErrTypeRefused, "this worker has no Kubernetes client to write Canary status with", nil)
	}
	status := map[string]any{
		"phase":              in.Phase,
		"failedChecks":       in.FailedChecks,
		"canaryWeight":       in.CanaryWeight,
		"iterations":         in.Iterations,
		"lastTransitionTime": in.LastTransitionTime.UTC().Format(time.RFC3339),
		"conditions":         in.Conditions,
	}
	if in.LastAppliedSpec != "" {
		status["lastAppliedSpec"] = in.LastAppliedSpec
	}
	if in.LastPromotedSpec != "" {
		status["lastPromotedSpec"] = in.LastPromotedSpec
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return CanaryStatusResult{}, err
	}
	_, err = s.Client.Resource(CanaryGVR).Namespace(in.Canary.Namespace).
		Patch(ctx, in.Canary.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "canaryflow"}, "status")
	switch {
	case apierrors.IsNotFound(err):
		// The object, or the CRD: the CRD missing is a setup error the user must see.
		if _, lerr := s.Client.Resource(CanaryGVR).Namespace(in.Canary.Namespace).List(ctx, metav1.ListOptions{Limit: 1}); lerr != nil && apierrors.IsNotFound(lerr) {
			return CanaryStatusResult{}, invalid(ErrTypeRefused, "the Canary CRD (canaries.flagger.app) is not installed in this cluster: install it from deploy/ (README, GitOps mode)", lerr)
		}
		return CanaryStatusResult{Absent: true}, nil
	case err != nil:
		return CanaryStatusResult{}, fmt.Errorf("write status of Canary %s/%s: %w", in.Canary.Namespace, in.Canary.Name, err)
	}
	return CanaryStatusResult{}, nil
}
