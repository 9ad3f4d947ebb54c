package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/kubeobj"
)

// imagesFieldManager owns the image fields a release sets on a target (the user's own manager keeps the rest).
const imagesFieldManager = "canaryflow-release"

// TargetImages returns the images of the named containers (or init containers) of the Canary's target. A name
// the target has no container for is a permanent error listing the containers it has.
func (k *Client) TargetImages(ctx context.Context, c *v1beta1.Canary, containers []string) (map[string]string, error) {
	spec, err := k.targetPodSpec(ctx, c)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var missing, known []string
	for _, name := range containers {
		i := slices.IndexFunc(spec.Containers, func(ct corev1.Container) bool { return ct.Name == name })
		j := slices.IndexFunc(spec.InitContainers, func(ct corev1.Container) bool { return ct.Name == name })
		switch {
		case i >= 0:
			out[name] = spec.Containers[i].Image
		case j >= 0:
			out[name] = spec.InitContainers[j].Image
		default:
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		for _, ct := range spec.Containers {
			known = append(known, ct.Name)
		}
		sort.Strings(missing)
		return nil, kubeobj.Permanent(fmt.Errorf("%s %s/%s has no container %s; its containers: %s (fix the release's images)",
			c.Spec.TargetRef.Kind, c.Namespace, c.Spec.TargetRef.Name, strings.Join(missing, ", "), strings.Join(known, ", ")))
	}
	return out, nil
}

// SetTargetImages sets the images of the named containers of the Canary's target with one strategic-merge patch
// (containers merge by name, other fields stay). Setting the images it already has changes nothing.
func (k *Client) SetTargetImages(ctx context.Context, c *v1beta1.Canary, images map[string]string) error {
	names := make([]string, 0, len(images))
	for n := range images {
		names = append(names, n)
	}
	sort.Strings(names)
	spec, err := k.targetPodSpec(ctx, c)
	if err != nil {
		return err
	}
	var containers, inits []map[string]string
	for _, n := range names {
		entry := map[string]string{"name": n, "image": images[n]}
		if slices.ContainsFunc(spec.InitContainers, func(ct corev1.Container) bool { return ct.Name == n }) {
			inits = append(inits, entry)
		} else {
			containers = append(containers, entry)
		}
	}
	podSpec := map[string]any{}
	if len(containers) > 0 {
		podSpec["containers"] = containers
	}
	if len(inits) > 0 {
		podSpec["initContainers"] = inits
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": podSpec}}})
	if err != nil {
		return err
	}
	kind, ns, name := c.Spec.TargetRef.Kind, c.Namespace, c.Spec.TargetRef.Name
	opts := metav1.PatchOptions{FieldManager: imagesFieldManager}
	switch kind {
	case KindDeployment:
		_, err = k.kube.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
	case KindDaemonSet:
		_, err = k.kube.AppsV1().DaemonSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
	}
	return kubeobj.APIError("patch", kind, ns, name, err)
}

// targetPodSpec reads the pod spec of the target (a Deployment or a DaemonSet).
func (k *Client) targetPodSpec(ctx context.Context, c *v1beta1.Canary) (*corev1.PodSpec, error) {
	kind, ns, name := c.Spec.TargetRef.Kind, c.Namespace, c.Spec.TargetRef.Name
	switch kind {
	case KindDeployment:
		d, err := k.kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, kubeobj.APIError("get", kind, ns, name, err)
		}
		return &d.Spec.Template.Spec, nil
	case KindDaemonSet:
		d, err := k.kube.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, kubeobj.APIError("get", kind, ns, name, err)
		}
		return &d.Spec.Template.Spec, nil
	}
	return nil, kubeobj.Permanent(fmt.Errorf("a release sets images on a Deployment or DaemonSet target, not %s %s/%s", kind, ns, name))
}
