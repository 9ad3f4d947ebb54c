package activities

import (
	"errors"
	"fmt"
	"regexp"

	"go.temporal.io/sdk/temporal"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// Application error types of the workload and routing activities. Workflows match on them with
// temporal.ApplicationError.Type(); all of them are non-retryable: retrying cannot fix them.
const (
	// ErrTypeProgressDeadlineExceeded: the canary or the primary did not become ready within
	// spec.progressDeadlineSeconds. CheckReady no longer fails so (the workflow judges the deadline itself); the
	// type stays for the histories of rollouts whose CheckReady did.
	ErrTypeProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ErrTypeNotFound: an object the step needs does not exist (the target, a referenced Ingress or route).
	ErrTypeNotFound = "NotFound"
	// ErrTypeUnsupportedProvider: no router is compiled in for spec.provider.
	ErrTypeUnsupportedProvider = "UnsupportedProvider"
	// ErrTypeInvalidSpec: the Canary asks for what this worker's build cannot run (checked before any write).
	ErrTypeInvalidSpec = "InvalidSpec"
	// ErrTypePermanent: a dependency said retrying cannot help (its error has Permanent() true).
	ErrTypePermanent = "Permanent"
	// ErrTypeRefused: the step refused before writing anything (a conflicting object that is not canaryflow's, a
	// missing autoscaler): the Canary or the cluster must change first, and nothing needs undoing.
	ErrTypeRefused = "Refused"
	// ErrTypeForbidden: the Kubernetes API server refused the worker's request (403 Forbidden or 401
	// Unauthorized). Retrying cannot grant a right; the message names the verb, resource and namespace to grant.
	ErrTypeForbidden = "Forbidden"
)

// permanent is how a provider, which imports no Temporal package, marks an error that retrying cannot fix: any
// error in the chain with a Permanent() bool method answering true.
type permanent interface{ Permanent() bool }

// classify wraps err with what it concerns and turns the errors retrying cannot fix into non-retryable
// application errors; the rest stay plain errors, which Temporal retries under the activity's retry policy.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf("%s: %v", what, err)
	var p permanent
	var u interface{ NothingWritten() bool }
	switch {
	case errors.As(err, &u) && u.NothingWritten():
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeRefused, err)
	case errors.As(err, &p) && p.Permanent():
		return temporal.NewNonRetryableApplicationError(msg, ErrTypePermanent, err)
	case apierrors.IsNotFound(err):
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeNotFound, err)
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return temporal.NewNonRetryableApplicationError(what+": "+refused(err), ErrTypeForbidden, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// forbiddenRequest is how the API server's authorizer words a refused resource request (k8s.io/apiserver
// responsewriters): the status details name only the resource, the verb and the namespace are in this sentence.
var forbiddenRequest = regexp.MustCompile(`cannot (\S+) resource "([^"]+)" in API group "([^"]*)" (?:in the namespace "([^"]+)"|at the cluster scope)`)

// refused words an error of a request the API server refused, with what to do about it.
func refused(err error) string {
	if apierrors.IsUnauthorized(err) {
		return fmt.Sprintf("%v (the API server refused the worker's credentials: check its ServiceAccount token or kubeconfig)", err)
	}
	if m := forbiddenRequest.FindStringSubmatch(err.Error()); m != nil {
		resource := schema.GroupResource{Group: m[3], Resource: m[2]}.String()
		return fmt.Sprintf("%v (%s)", err, kubeobj.RBACHint(m[1], resource, m[4]))
	}
	// Refused by something else than RBAC (an admission plugin or webhook): its message says why.
	resource := "the object"
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if d := status.Status().Details; d != nil && d.Kind != "" {
			resource = schema.GroupResource{Group: d.Group, Resource: d.Kind}.String()
		}
	}
	return fmt.Sprintf("%v (the API server forbids this request on %s: retrying cannot change that)", err, resource)
}
