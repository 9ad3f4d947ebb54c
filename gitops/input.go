package gitops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
)

// The flagger.app resources the trigger reads.
var (
	canaryGVR         = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "canaries"}
	metricTemplateGVR = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "metrictemplates"}
	alertProviderGVR  = schema.GroupVersionResource{Group: "flagger.app", Version: "v1beta1", Resource: "alertproviders"}
)

// lastApplied is kubectl's copy of the applied object: large, and nothing a rollout reads.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// errBadCanary marks an input that cannot start a rollout until someone changes the Canary or what it references:
// it is not retried (the next change of the Canary is).
var errBadCanary = errors.New("bad canary")

// inputFor builds the rollout's input as `starter rollout` builds it from a file: the Canary and the
// MetricTemplates and AlertProviders it references (read from the API server, only when a rollout is started or
// signalled), loaded by v1beta1.Load with Flagger's defaults, every reference required to resolve and every field
// validated against what this build can run. It returns Load's warnings (deprecated fields, ignored fields).
func inputFor(ctx context.Context, dyn dynamic.Interface, caps *v1beta1.Capabilities, canary *unstructured.Unstructured) (workflows.RolloutInput, []string, error) {
	items := []map[string]any{document(canary)}
	var typed v1beta1.Canary
	if err := runtimeToTyped(canary.Object, &typed); err != nil {
		return workflows.RolloutInput{}, nil, fmt.Errorf("%w: Canary %s/%s: %v", errBadCanary, canary.GetNamespace(), canary.GetName(), err)
	}
	a := typed.Spec.Analysis
	if a == nil {
		a = typed.Spec.CanaryAnalysis
	}
	type ref struct {
		gvr             schema.GroupVersionResource
		namespace, name string
	}
	var refs []ref
	seen := map[ref]bool{}
	add := func(r ref) {
		if r.namespace == "" {
			r.namespace = canary.GetNamespace()
		}
		if !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	if a != nil {
		for _, m := range a.Metrics {
			if m.TemplateRef != nil {
				add(ref{metricTemplateGVR, m.TemplateRef.Namespace, m.TemplateRef.Name})
			}
		}
		for _, al := range a.Alerts {
			add(ref{alertProviderGVR, al.ProviderRef.Namespace, al.ProviderRef.Name})
		}
	}
	for _, r := range refs {
		u, err := dyn.Resource(r.gvr).Namespace(r.namespace).Get(ctx, r.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // Load names the unresolved reference and the fix
		}
		if err != nil {
			return workflows.RolloutInput{}, nil, fmt.Errorf("get %s %s/%s (referenced by Canary %s/%s): %w",
				r.gvr.Resource, r.namespace, r.name, canary.GetNamespace(), canary.GetName(), err)
		}
		items = append(items, document(u))
	}
	list, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		return workflows.RolloutInput{}, nil, fmt.Errorf("encode Canary %s/%s: %w", canary.GetNamespace(), canary.GetName(), err)
	}
	source := fmt.Sprintf("canaries.flagger.app/%s/%s", canary.GetNamespace(), canary.GetName())
	set, err := v1beta1.Load(bytes.NewReader(list), source, v1beta1.ValidateOptions{
		Capabilities: caps, RequireTemplates: true, RequireAlertProviders: true,
	})
	if err != nil {
		return workflows.RolloutInput{}, nil, fmt.Errorf("%w: %v", errBadCanary, err)
	}
	cs := set.Canaries()
	if len(cs) != 1 {
		return workflows.RolloutInput{}, nil, fmt.Errorf("%w: %s loaded as %d Canaries", errBadCanary, source, len(cs))
	}
	return workflows.RolloutInput{
		Canary: *cs[0], Templates: set.MetricTemplates(), AlertProviders: set.AlertProviders(), Defaulted: true,
		// The Canary object exists: the rollout keeps its status as Flagger does.
		WriteStatus: true,
	}, set.Warnings, nil
}

// document is an object as written in git: kind, name, namespace, labels, annotations and spec. What the API server
// and controllers add (uid, resourceVersion, managedFields, status) is left out, so the workflow input holds what
// the user wrote and nothing that changes on its own.
func document(u *unstructured.Unstructured) map[string]any {
	meta := map[string]any{"name": u.GetName(), "namespace": u.GetNamespace()}
	if l := u.GetLabels(); len(l) > 0 {
		meta["labels"] = l
	}
	if a := u.GetAnnotations(); len(a) > 0 {
		kept := map[string]string{}
		for k, v := range a {
			if k != lastApplied {
				kept[k] = v
			}
		}
		if len(kept) > 0 {
			meta["annotations"] = kept
		}
	}
	doc := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": meta}
	if spec, ok := u.Object["spec"]; ok {
		doc["spec"] = spec
	}
	return doc
}

// runtimeToTyped decodes an unstructured object into v, leniently (Load is the strict reading).
func runtimeToTyped(obj map[string]any, v any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
