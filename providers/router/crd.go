package router

import (
	"context"
	"fmt"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// crd finds, once, which of a few group/versions serves a custom resource we do not own, and reads and applies
// its objects with the dynamic client. A resource found is remembered; one not found is looked up again next time
// (the CRD may be installed meanwhile).
type crd struct {
	kind       string
	resource   string                // plural
	candidates []schema.GroupVersion // in order of preference
	dyn        dynamic.Interface
	disc       discovery.DiscoveryInterface

	mu  sync.Mutex
	gvr *schema.GroupVersionResource
}

func (r *crd) find() (schema.GroupVersionResource, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gvr != nil {
		return *r.gvr, nil
	}
	var tried []string
	for _, gv := range r.candidates {
		tried = append(tried, gv.String())
		list, err := r.disc.ServerResourcesForGroupVersion(gv.String())
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return schema.GroupVersionResource{}, fmt.Errorf("discover %s in %s: %w", r.kind, gv, err)
		}
		for _, res := range list.APIResources {
			if res.Name == r.resource {
				gvr := gv.WithResource(r.resource)
				r.gvr = &gvr
				return gvr, nil
			}
		}
	}
	return schema.GroupVersionResource{}, kubeobj.Permanentf("the %s CRD is not installed (looked for %s in %s): install it before using this provider",
		r.kind, r.resource, strings.Join(tried, ", "))
}

func (r *crd) client(namespace string) (dynamic.ResourceInterface, schema.GroupVersionResource, error) {
	gvr, err := r.find()
	if err != nil {
		return nil, gvr, err
	}
	return r.dyn.Resource(gvr).Namespace(namespace), gvr, nil
}

// get reads an object; nil when it does not exist, a permanent error when it exists and is not ours.
func (r *crd) get(ctx context.Context, namespace, name string) (*unstructured.Unstructured, error) {
	ri, _, err := r.client(namespace)
	if err != nil {
		return nil, err
	}
	return kubeobj.Get(ctx, ri, r.kind, namespace, name)
}

// remove deletes an object if it exists and is ours.
func (r *crd) remove(ctx context.Context, namespace, name string) error {
	ri, _, err := r.client(namespace)
	if err != nil {
		return err
	}
	return kubeobj.Delete(ctx, ri, r.kind, namespace, name)
}

// apply writes obj (apiVersion and kind are filled in) with kubeobj.Apply.
func (r *crd) apply(ctx context.Context, obj *unstructured.Unstructured, force bool) error {
	ri, gvr, err := r.client(obj.GetNamespace())
	if err != nil {
		return err
	}
	obj.SetAPIVersion(gvr.GroupVersion().String())
	obj.SetKind(r.kind)
	return kubeobj.Apply(ctx, ri, obj, force)
}

// newObject starts an object named after the apex Service with canaryflow's marker and spec.service.apex metadata.
func newObject(c *v1beta1.Canary, spec map[string]any) *unstructured.Unstructured {
	apex, _, _ := c.ServiceNames()
	var l, a map[string]string
	if m := c.Spec.Service.Apex; m != nil {
		l, a = m.Labels, m.Annotations
	}
	labels, annotations := kubeobj.Marker(c, l, a)
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetName(apex)
	u.SetNamespace(c.Namespace)
	u.SetLabels(labels)
	u.SetAnnotations(annotations)
	return u
}

// num reads a JSON number of an unstructured object.
func num(v any) int {
	switch n := v.(type) {
	case int64:
		return int(n)
	case int:
		return n
	case float64:
		return int(n)
	}
	return 0
}
