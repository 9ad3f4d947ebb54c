// Package workload makes and keeps the Kubernetes objects of a rollout: the primary clone of the target workload,
// its copies of the tracked ConfigMaps and Secrets, its autoscaler and the apex, primary and canary Services.
// Client implements activities.WorkloadClient (structurally: this package imports no Temporal package).
//
// Every write is a server-side apply under kubeobj's field manager, and every object written carries kubeobj's
// marker; an object that exists without it belongs to someone else and is never overwritten.
package workload

import (
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// Markers of the objects canaryflow writes.
const (
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

// conflicts gathers the "exists and is not ours" findings of a plan before anything is written.
type conflicts []string

func (cs *conflicts) check(m metav1.Object, err error, kind, namespace, name, hint string) error {
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return kubeobj.APIError("get", kind, namespace, name, err)
	case !kubeobj.IsManaged(m):
		*cs = append(*cs, kubeobj.NotOurs(kind, namespace, name, hint).Error())
	}
	return nil
}

func (cs conflicts) err() error {
	if len(cs) == 0 {
		return nil
	}
	sort.Strings(cs)
	return kubeobj.Permanentf("nothing written: %s", strings.Join(cs, "; "))
}
