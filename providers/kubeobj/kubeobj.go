// Package kubeobj marks the Kubernetes objects canaryflow writes, applies them server-side under one field manager
// without taking over anyone else's, and says which API errors retrying cannot fix. Routers and the workload
// client share it, so a router depends on the workload package only where it really needs a workload.
//
// There is no Canary object in the cluster to own what a rollout writes (the spec lives in the workflow), so the
// ManagedByLabel marker and the CanaryAnnotation take the place of Flagger's owner references. An object that
// exists without the marker belongs to someone else and is never overwritten.
package kubeobj

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// Markers of the objects canaryflow writes.
const (
	// FieldManager is the one server-side apply field manager of everything canaryflow writes.
	FieldManager = "canaryflow"
	// ManagedByLabel marks an object as made by canaryflow (value ManagedByValue).
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of ManagedByLabel on canaryflow's objects.
	ManagedByValue = "canaryflow"
	// ManagedSelector is the label selector of every object canaryflow made.
	ManagedSelector = ManagedByLabel + "=" + ManagedByValue
	// CanaryAnnotation names the Canary ("namespace/name") an object was made for.
	CanaryAnnotation = "canaryflow.io/canary"
)

// IsManaged reports whether an object carries canaryflow's marker.
func IsManaged(m metav1.Object) bool {
	return m.GetLabels()[ManagedByLabel] == ManagedByValue
}

// MadeFor reports whether an object carries canaryflow's marker for the Canary c.
func MadeFor(m metav1.Object, c *v1beta1.Canary) bool {
	return IsManaged(m) && m.GetAnnotations()[CanaryAnnotation] == c.Namespace+"/"+c.Name
}

// Marker returns the labels and annotations that mark an object as made by canaryflow for the Canary c, merged
// over extra labels and annotations (the marker wins). The keys of spec.service.unmanagedMetadata are left out of
// the extras, so canaryflow never writes them and whoever else sets them keeps them (server-side apply leaves
// other managers' keys alone); canaryflow's own keys (the marker, canaryflow.io/*) are always written, since they
// are how it knows its objects.
func Marker(c *v1beta1.Canary, labels, annotations map[string]string) (map[string]string, map[string]string) {
	var skipL, skipA []string
	if u := c.Spec.Service.UnmanagedMetadata; u != nil {
		skipL, skipA = u.Labels, u.Annotations
	}
	l := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		if !unmanaged(k, skipL) {
			l[k] = v
		}
	}
	l[ManagedByLabel] = ManagedByValue
	a := make(map[string]string, len(annotations)+1)
	for k, v := range annotations {
		if !unmanaged(k, skipA) {
			a[k] = v
		}
	}
	a[CanaryAnnotation] = c.Namespace + "/" + c.Name
	return l, a
}

func unmanaged(key string, skip []string) bool {
	return slices.Contains(skip, key) && !strings.HasPrefix(key, "canaryflow.io/")
}

// PermanentError is an error that retrying cannot fix (a missing or foreign object, an invalid object, missing
// rights); the activities turn it into a non-retryable error.
type PermanentError struct {
	Err error
}

func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent says that retrying cannot help.
func (e *PermanentError) Permanent() bool { return true }

// Permanent wraps err so that the activities do not retry it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Permanentf formats a permanent error.
func Permanentf(format string, args ...any) error {
	return &PermanentError{Err: fmt.Errorf(format, args...)}
}

// UnwrittenError is a permanent refusal that came before the step wrote anything: the Canary or the cluster's
// objects must change first, and there is nothing to undo.
type UnwrittenError struct {
	Err error
}

func (e *UnwrittenError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *UnwrittenError) Unwrap() error { return e.Err }

// Permanent says that retrying cannot help.
func (e *UnwrittenError) Permanent() bool { return true }

// NothingWritten says that the step changed nothing.
func (e *UnwrittenError) NothingWritten() bool { return true }

// BeforeWrite marks err, met before a step's first write, as a refusal that changed nothing when it is permanent;
// a transient error stays as it is, to be retried.
func BeforeWrite(err error) error {
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		return &UnwrittenError{Err: err}
	}
	return err
}

// NotOurs is the error for an object that exists and lacks canaryflow's marker.
func NotOurs(kind, namespace, name, hint string) error {
	return Permanentf("%s %s/%s exists and is not managed by canaryflow (no label %s=%s): %s",
		kind, namespace, name, ManagedByLabel, ManagedByValue, hint)
}

// APIError wraps an API error with the request and the object it concerns. Errors retrying cannot fix become
// permanent: a missing object, an invalid or bad request, and missing rights (a forbidden request names the verb,
// kind and namespace, so the role can be fixed; retrying it would only delay the answer).
func APIError(verb, kind, namespace, name string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("%s %s %s/%s: %w", verb, kind, namespace, name, err)
	switch {
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return Permanent(fmt.Errorf("%w (%s)", wrapped, RBACHint(verb, kind, namespace)))
	case apierrors.IsNotFound(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return Permanent(wrapped)
	}
	return wrapped
}

// RBACHint says which right the worker lacks for a refused request and where to grant it; one wording for every
// caller. An empty namespace is a cluster-scoped request.
func RBACHint(verb, resource, namespace string) string {
	where := "in namespace " + namespace
	if namespace == "" {
		where = "at the cluster scope"
	}
	return fmt.Sprintf("canaryflow's worker may not %s %s %s: grant it in its Role or ClusterRole, see deploy/rbac", verb, resource, where)
}

// Get reads an object with the dynamic client: nil when it does not exist, a permanent error when it exists and
// is not canaryflow's.
func Get(ctx context.Context, ri dynamic.ResourceInterface, kind, namespace, name string) (*unstructured.Unstructured, error) {
	u, err := ri.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, APIError("get", kind, namespace, name, err)
	}
	if !IsManaged(u) {
		return nil, NotOurs(kind, namespace, name, "delete it or rename spec.service.name")
	}
	return u, nil
}

// Apply server-side applies obj (apiVersion and kind set) as canaryflow. Without force, a field another manager
// owns is a conflict: then the object is read, refused if it is not canaryflow's, and applied again with force. A
// plain write thus costs one request.
func Apply(ctx context.Context, ri dynamic.ResourceInterface, obj *unstructured.Unstructured, force bool) error {
	kind, ns, name := obj.GetKind(), obj.GetNamespace(), obj.GetName()
	_, err := ri.Apply(ctx, name, obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: force})
	if apierrors.IsConflict(err) && !force {
		if _, err := Get(ctx, ri, kind, ns, name); err != nil {
			return err
		}
		_, err = ri.Apply(ctx, name, obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	}
	return APIError("apply", kind, ns, name, err)
}

// Delete removes an object if it exists and is canaryflow's; nothing to delete is success.
func Delete(ctx context.Context, ri dynamic.ResourceInterface, kind, namespace, name string) error {
	u, err := Get(ctx, ri, kind, namespace, name)
	if err != nil || u == nil {
		return err
	}
	err = ri.Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return APIError("delete", kind, namespace, name, err)
}
