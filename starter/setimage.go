package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// imageSet is one --set-image CONTAINER=IMAGE.
type imageSet struct{ container, image string }

func parseImageSets(values []string) ([]imageSet, error) {
	var out []imageSet
	var problems []string
	for _, v := range values {
		c, img, ok := strings.Cut(v, "=")
		if !ok || c == "" || img == "" {
			problems = append(problems, fmt.Sprintf("--set-image %q: write CONTAINER=IMAGE", v))
			continue
		}
		out = append(out, imageSet{container: c, image: img})
	}
	if len(problems) > 0 {
		return nil, &exitError{code: exitBadInput, err: errors.New(strings.Join(problems, "\n"))}
	}
	return out, nil
}

// kubeConfig loads --kubeconfig, else $KUBECONFIG or ~/.kube/config, else the in-cluster config (a CI job in the
// cluster).
func kubeConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}

// setImages patches the images of named containers of the Canary's target with one strategic-merge patch (the
// container list merges by name, so other containers and fields stay as they are). Every name is checked first:
// an unknown container patches nothing and is bad input naming the containers that exist.
func setImages(ctx context.Context, cfg *rest.Config, c *v1beta1.Canary, sets []imageSet) (string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", fmt.Errorf("kubernetes client: %w", err)
	}
	kind, ns, name := c.Spec.TargetRef.Kind, c.Namespace, c.Spec.TargetRef.Name
	var spec corev1.PodSpec
	switch kind {
	case "Deployment":
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", targetErr(kind, ns, name, err)
		}
		spec = d.Spec.Template.Spec
	case "DaemonSet":
		d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", targetErr(kind, ns, name, err)
		}
		spec = d.Spec.Template.Spec
	case v1beta1.KindStatefulSet:
		d, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", targetErr(kind, ns, name, err)
		}
		spec = d.Spec.Template.Spec
	default:
		return "", &exitError{code: exitBadInput, err: fmt.Errorf("--set-image: target kind %q is not a Deployment, DaemonSet or StatefulSet", kind)}
	}

	var containers, initContainers []map[string]string
	var known []string
	for _, ct := range spec.Containers {
		known = append(known, ct.Name)
	}
	for _, ct := range spec.InitContainers {
		known = append(known, ct.Name+" (init)")
	}
	var unknown, changed []string
	for _, s := range sets {
		entry := map[string]string{"name": s.container, "image": s.image}
		switch {
		case slices.ContainsFunc(spec.Containers, func(ct corev1.Container) bool { return ct.Name == s.container }):
			containers = append(containers, entry)
		case slices.ContainsFunc(spec.InitContainers, func(ct corev1.Container) bool { return ct.Name == s.container }):
			initContainers = append(initContainers, entry)
		default:
			unknown = append(unknown, s.container)
			continue
		}
		changed = append(changed, s.container+"="+s.image)
	}
	if len(unknown) > 0 {
		return "", &exitError{code: exitBadInput, err: fmt.Errorf("--set-image: %s %s/%s has no container %s; its containers: %s (nothing was changed)",
			kind, ns, name, strings.Join(unknown, ", "), strings.Join(known, ", "))}
	}
	podSpec := map[string]any{}
	if len(containers) > 0 {
		podSpec["containers"] = containers
	}
	if len(initContainers) > 0 {
		podSpec["initContainers"] = initContainers
	}
	patch, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"spec": podSpec}}})
	if err != nil {
		return "", err
	}
	opts := metav1.PatchOptions{FieldManager: "canaryflow-starter"}
	switch kind {
	case "Deployment":
		_, err = cs.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
	case v1beta1.KindStatefulSet:
		// Its partition (at the replica count since the initialisation) keeps every pod on the old template until
		// the rollout lowers it.
		_, err = cs.AppsV1().StatefulSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
	default:
		_, err = cs.AppsV1().DaemonSets(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, opts)
	}
	if err != nil {
		return "", fmt.Errorf("patch %s %s/%s: %w", kind, ns, name, err)
	}
	return fmt.Sprintf("%s %s/%s: set image %s", kind, ns, name, strings.Join(changed, ", ")), nil
}

// targetErr makes a missing target bad input (nothing was changed) and wraps anything else with the object.
func targetErr(kind, ns, name string, err error) error {
	err = fmt.Errorf("--set-image: read %s %s/%s: %w", kind, ns, name, err)
	if apierrors.IsNotFound(err) {
		return &exitError{code: exitBadInput, err: err}
	}
	return err
}
