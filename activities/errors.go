package activities

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Application error types of the workload and routing activities. Workflows match on them with
// temporal.ApplicationError.Type(); all of them are non-retryable: retrying cannot fix them.
const (
	// ErrTypeProgressDeadlineExceeded: the canary or the primary did not become ready within
	// spec.progressDeadlineSeconds. The workflow rolls back.
	ErrTypeProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	// ErrTypeNotFound: an object the step needs does not exist (the target, a referenced Ingress or route).
	ErrTypeNotFound = "NotFound"
	// ErrTypeUnsupportedProvider: no router is compiled in for spec.provider.
	ErrTypeUnsupportedProvider = "UnsupportedProvider"
	// ErrTypeInvalidSpec: the Canary asks for what this worker's build cannot run (checked before any write).
	ErrTypeInvalidSpec = "InvalidSpec"
	// ErrTypePermanent: a dependency said retrying cannot help (its error has Permanent() true).
	ErrTypePermanent = "Permanent"
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
	switch {
	case errors.As(err, &p) && p.Permanent():
		return temporal.NewNonRetryableApplicationError(msg, ErrTypePermanent, err)
	case apierrors.IsNotFound(err):
		return temporal.NewNonRetryableApplicationError(msg, ErrTypeNotFound, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
