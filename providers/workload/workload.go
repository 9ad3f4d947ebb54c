// Package workload makes and keeps the Kubernetes objects of a rollout: the primary clone of the target workload,
// its copies of the tracked ConfigMaps and Secrets, its autoscaler and the apex, primary and canary Services.
// Client implements activities.WorkloadClient (structurally: this package imports no Temporal package).
//
// Every write is a server-side apply with the field manager FieldManager, and every object written carries the
// ManagedByLabel marker: there is no Canary object in the cluster to own them (the spec lives in the workflow), so
// the marker label and the CanaryAnnotation take the place of Flagger's owner references. An object that exists
// without the marker belongs to someone else and is never overwritten.
package workload

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

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
	// CanaryAnnotation names the Canary ("namespace/name") an object was made for.
	CanaryAnnotation = "canaryflow.io/canary"
	// RevisionAnnotation on the primary workload holds the revision (checksum) it runs.
	RevisionAnnotation = "canaryflow.io/revision"
	// ConfigTrackingAnnotation set to "disabled" on a ConfigMap or Secret keeps it out of tracking (Flagger's
	// flagger.app/config-tracking is honoured too).
	ConfigTrackingAnnotation = "canaryflow.io/config-tracking"
	// ScaleToZeroNodeSelector is the node selector key that keeps a DaemonSet target off every node (Flagger's way
	// of scaling a DaemonSet to zero).
	ScaleToZeroNodeSelector = "canaryflow.io/scale-to-zero"
)

// SelectorLabels are the selector label keys, in order of preference, whose value names the target's pods
// (Flagger's default selector labels). The primary gets the same key with the value suffixed "-primary".
var SelectorLabels = []string{"app", "name", "app.kubernetes.io/name"}

// Client acts on the workloads and Services of canaries through the Kubernetes API.
type Client struct {
	kube kubernetes.Interface
	// dyn reads and writes KEDA ScaledObjects (a CRD canaryflow does not link the types of); nil without one.
	dyn dynamic.Interface
}

// New returns a Client talking to the API server of cfg.
func New(cfg *rest.Config) (*Client, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return NewForClients(cs, dyn), nil
}

// NewForClientset returns a Client using kube (a real or a fake clientset) and no dynamic client, so a Canary
// whose autoscalerRef is a ScaledObject is refused.
func NewForClientset(kube kubernetes.Interface) *Client {
	return &Client{kube: kube}
}

// NewForClients returns a Client using kube and, for KEDA ScaledObjects, dyn.
func NewForClients(kube kubernetes.Interface, dyn dynamic.Interface) *Client {
	return &Client{kube: kube, dyn: dyn}
}

// IsManaged reports whether an object carries canaryflow's marker.
func IsManaged(m metav1.Object) bool {
	return m.GetLabels()[ManagedByLabel] == ManagedByValue
}

// Marker returns the labels and annotations that mark an object as made by canaryflow for the Canary c, merged
// over extra labels and annotations (the marker wins). The keys of spec.service.unmanagedMetadata are left out
// of the extras, so canaryflow never writes them and whoever else sets them keeps them (server-side apply leaves
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

// PermanentError is an error that retrying cannot fix (a missing or foreign object, an invalid target); the
// activities turn it into a non-retryable error.
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

// NotOurs is the error for an object that exists and lacks canaryflow's marker.
func NotOurs(kind, namespace, name, hint string) error {
	return Permanentf("%s %s/%s exists and is not managed by canaryflow (no label %s=%s): %s",
		kind, namespace, name, ManagedByLabel, ManagedByValue, hint)
}

// apiErr wraps an API error with the object it concerns; a NotFound or an invalid request stays recognisable and
// becomes permanent.
func apiErr(verb, kind, namespace, name string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("%s %s %s/%s: %w", verb, kind, namespace, name, err)
	if apierrors.IsNotFound(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return Permanent(wrapped)
	}
	return wrapped
}

// conflicts gathers the "exists and is not ours" findings of a plan before anything is written.
type conflicts []string

func (cs *conflicts) check(m metav1.Object, err error, kind, namespace, name, hint string) error {
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return apiErr("get", kind, namespace, name, err)
	case !IsManaged(m):
		*cs = append(*cs, NotOurs(kind, namespace, name, hint).Error())
	}
	return nil
}

func (cs conflicts) err() error {
	if len(cs) == 0 {
		return nil
	}
	sort.Strings(cs)
	return Permanentf("nothing written: %s", strings.Join(cs, "; "))
}
