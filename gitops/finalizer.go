package gitops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
)

// Finalizer is the finalizer the trigger keeps on a Canary with spec.revertOnDeletion, as Flagger keeps its own
// (finalizer.flagger.app) there: deleting such a Canary runs its finalisation (CanaryFinalize) first, which puts
// the target, the apex Service and the router objects back as they were before the Canary; then the finalizer
// goes and the API server deletes the object. Without revertOnDeletion there is nothing to undo and no finalizer,
// as in Flagger.
const Finalizer = "canaryflow.io/finalize"

// deletionReason is what the abort and the finalisation say asked for them.
const deletionReason = "Canary deleted"

// finalization keeps the finalizer in step with spec.revertOnDeletion and, for a Canary being deleted, starts its
// finalisation (once: it runs in the background and removes the finalizer when done). done says the canary needs
// nothing else: it is being deleted.
func (t *trigger) finalization(ctx context.Context, key string, u *unstructured.Unstructured) (done bool, _ error) {
	revert, _, _ := unstructured.NestedBool(u.Object, "spec", "revertOnDeletion")
	has := slices.Contains(u.GetFinalizers(), Finalizer)
	switch {
	case u.GetDeletionTimestamp() != nil:
		if has {
			t.finalize(ctx, key, u)
		}
		return true, nil
	case revert && !has:
		return false, t.setFinalizers(ctx, u, append(slices.Clone(u.GetFinalizers()), Finalizer))
	case !revert && has:
		return false, t.setFinalizers(ctx, u, slices.DeleteFunc(slices.Clone(u.GetFinalizers()), func(f string) bool { return f == Finalizer }))
	}
	return false, nil
}

// setFinalizers writes the Canary's finalizers, on the version it was read at (a conflict retries the canary).
func (t *trigger) setFinalizers(ctx context.Context, u *unstructured.Unstructured, finalizers []string) error {
	if finalizers == nil {
		finalizers = []string{}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"finalizers": finalizers, "resourceVersion": u.GetResourceVersion(),
	}})
	if err != nil {
		return err
	}
	_, err = t.cfg.Dynamic.Resource(canaryGVR).Namespace(u.GetNamespace()).
		Patch(ctx, u.GetName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "canaryflow-gitops"})
	if err != nil {
		return fmt.Errorf("set the finalizers of Canary %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

// finalize runs the finalisation of a deleted Canary in the background, once per canary at a time: an open rollout
// is aborted and its rollback awaited, CanaryFinalize runs (joined if one runs already), then the finalizer goes.
// A failure logs and tries again through the queue's back-off; a trigger that restarts meanwhile finds the Canary
// still deleting and starts over (every step is idempotent).
func (t *trigger) finalize(ctx context.Context, key string, u *unstructured.Unstructured) {
	t.mu.Lock()
	if t.finalizing[key] {
		t.mu.Unlock()
		return
	}
	t.finalizing[key] = true
	t.mu.Unlock()
	go func() {
		defer func() {
			t.mu.Lock()
			delete(t.finalizing, key)
			t.mu.Unlock()
		}()
		if err := t.runFinalize(ctx, u); err != nil {
			if ctx.Err() == nil {
				t.cfg.Log.Error("GitOps trigger: finalising a deleted Canary failed; trying again", zap.String("canary", key), zap.Error(err))
				t.queue.AddRateLimited(key)
			}
			return
		}
		t.queue.Forget(key)
	}()
}

func (t *trigger) runFinalize(ctx context.Context, u *unstructured.Unstructured) error {
	ns, name := u.GetNamespace(), u.GetName()
	c, err := t.canaryOf(u)
	if err != nil {
		return err
	}
	id := v1beta1.WorkflowID(ns, name)
	open, _, err := t.cfg.Rollouts.Latest(ctx, id)
	if err != nil {
		return err
	}
	sig := workflows.ActionSignal{By: SignalBy, Reason: deletionReason}
	if open != "" {
		t.cfg.Log.Info("GitOps trigger: Canary deleted during a rollout: aborting it first", zap.String("canary", ns+"/"+name))
		if err := t.cfg.Rollouts.Abort(ctx, id, open, sig); err != nil {
			return err
		}
	}
	run, err := t.cfg.Rollouts.Finalize(ctx, workflows.FinalizeInput{Canary: c, By: SignalBy, Reason: deletionReason})
	if err != nil {
		return err
	}
	var st workflows.FinalizeStatus
	if err := run.Get(ctx, &st); err != nil {
		return fmt.Errorf("finalisation of Canary %s/%s: %w", ns, name, err)
	}
	t.cfg.Log.Info("GitOps trigger: Canary finalised; removing its finalizer", zap.String("canary", ns+"/"+name),
		zap.String("phase", string(st.Phase)), zap.Bool("reverted", st.Reverted))
	return t.setFinalizers(ctx, u, slices.DeleteFunc(slices.Clone(u.GetFinalizers()), func(f string) bool { return f == Finalizer }))
}

// canaryOf loads the deleted Canary alone, with Flagger's defaults: its finalisation needs its target, Service and
// router, not the MetricTemplates and AlertProviders it references (which may be deleted with it).
func (t *trigger) canaryOf(u *unstructured.Unstructured) (v1beta1.Canary, error) {
	list, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": []map[string]any{document(u)}})
	if err != nil {
		return v1beta1.Canary{}, err
	}
	source := fmt.Sprintf("canaries.flagger.app/%s/%s", u.GetNamespace(), u.GetName())
	set, err := v1beta1.Load(bytes.NewReader(list), source, v1beta1.ValidateOptions{Capabilities: t.cfg.Capabilities})
	if err != nil {
		return v1beta1.Canary{}, fmt.Errorf("%w: %v", errBadCanary, err)
	}
	cs := set.Canaries()
	if len(cs) != 1 {
		return v1beta1.Canary{}, fmt.Errorf("%w: %s loaded as %d Canaries", errBadCanary, source, len(cs))
	}
	return *cs[0], nil
}
