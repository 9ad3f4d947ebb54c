package activities

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// TargetImageClient reads and sets the container images of a Canary's target: what a release changes in each
// cluster before that cluster's rollout. Implemented by providers/workload.
type TargetImageClient interface {
	// TargetImages returns the images of the named containers; a name the target has no container for is a
	// permanent error.
	TargetImages(ctx context.Context, c *v1beta1.Canary, containers []string) (map[string]string, error)
	// SetTargetImages sets the images of the named containers, leaving everything else as it is.
	SetTargetImages(ctx context.Context, c *v1beta1.Canary, images map[string]string) error
}

// Targets holds the activities a release runs on a cluster's target before (and, rolling back, after) its
// rollout.
type Targets struct {
	Kube TargetImageClient
}

// ImagesInput names a target and images: the containers to read (ReadTargetImages reads the keys) or the images
// to set.
type ImagesInput struct {
	Canary v1beta1.Canary    `json:"canary"`
	Images map[string]string `json:"images"`
}

// ImagesResult is the images a target's containers had.
type ImagesResult struct {
	Images map[string]string `json:"images"`
}

// ReadTargetImages reads the images of the containers named by the keys of in.Images (what a release records as
// the previous revision before it sets its own).
func (t *Targets) ReadTargetImages(ctx context.Context, in ImagesInput) (ImagesResult, error) {
	names := make([]string, 0, len(in.Images))
	for n := range in.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	imgs, err := t.Kube.TargetImages(ctx, &in.Canary, names)
	if err != nil {
		return ImagesResult{}, classify(err, "read the images of the target of "+describe(&in.Canary))
	}
	return ImagesResult{Images: imgs}, nil
}

// SetTargetImages sets the images on the target; the rollout that follows sees a new revision.
func (t *Targets) SetTargetImages(ctx context.Context, in ImagesInput) (ActionResult, error) {
	if err := t.Kube.SetTargetImages(ctx, &in.Canary, in.Images); err != nil {
		return ActionResult{}, classify(err, "set the images of the target of "+describe(&in.Canary))
	}
	return ActionResult{Summary: fmt.Sprintf("set %s on %s %s.%s", FormatImages(in.Images),
		in.Canary.Spec.TargetRef.Kind, in.Canary.Spec.TargetRef.Name, in.Canary.Namespace)}, nil
}

// FormatImages writes images as container=image, sorted by container.
func FormatImages(images map[string]string) string {
	names := make([]string, 0, len(images))
	for n := range images {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + images[n]
	}
	return strings.Join(parts, ",")
}
