package e2e

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/canaryflow/canaryflow/workflows"
)

// FaultFigures are what RolloutAcross measures.
type FaultFigures struct {
	// AtWeight is the canary weight when the fault was injected.
	AtWeight int
	// Took is the whole `starter rollout --wait`.
	Took time.Duration
}

// RolloutAcross rolls out 6.0.1 and, once the canary has 20% or more, calls fault (if not nil), which injects a
// fault, measures what it needs (WaitWeightPast) and returns. The rollout must then move on and promote with
// every step of the schedule taken exactly once, and end released: the primary on 6.0.1 with its replicas, all
// traffic on it, the canary scaled to zero.
func (sc *Scenarios) RolloutAcross(ctx context.Context, fault func(context.Context, int) error) (FaultFigures, error) {
	var f FaultFigures
	s := sc.S
	file, err := s.WriteCanary("canary", CanaryOptions{Namespace: sc.NS})
	if err != nil {
		return f, err
	}
	done := make(chan Result, 1)
	go func() {
		done <- s.StarterTo(ctx, sc.Say, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.1"), "--wait", "--timeout", "15m", "--by", "ci")
	}()
	if fault != nil {
		var at workflows.Status
		if err := sc.WaitStatus(ctx, 5*time.Minute, func(st workflows.Status) bool { at = st; return st.CanaryWeight >= 20 }); err != nil {
			return f, fmt.Errorf("the canary never reached 20%%: %w", err)
		}
		f.AtWeight = int(at.CanaryWeight)
		if err := fault(ctx, f.AtWeight); err != nil {
			return f, err
		}
	}
	r := <-done
	f.Took = r.Took
	if err := expectCode("starter rollout 6.0.1", r, 0); err != nil {
		return f, err
	}
	h := s.StarterTo(ctx, sc.Say, "history", "podinfo", "-n", sc.NS)
	if err := expectCode("starter history", h, 0); err != nil {
		return f, err
	}
	if err := everyStepOnce(h.Output, "podinfo."+sc.NS, 10, 50, 10); err != nil {
		return f, err
	}
	return f, sc.expectReleased(ctx, "6.0.1", 2)
}

// expectReleased checks the end state of a promotion: the primary runs version with its replicas all ready,
// takes all traffic (object and answers), and the canary (the target Deployment) is scaled to zero.
func (sc *Scenarios) expectReleased(ctx context.Context, version string, replicas int32) error {
	if err := sc.ExpectPrimary(ctx, version); err != nil {
		return err
	}
	// The promotion has returned, but the last pods of the primary may still be reported ready a moment later.
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := sc.S.Kube.AppsV1().Deployments(sc.NS).Get(ctx, "podinfo-primary", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Spec.Replicas != nil && *p.Spec.Replicas == replicas && p.Status.ReadyReplicas == replicas && p.Status.UpdatedReplicas == replicas {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the Deployment %s/podinfo-primary: spec %v replicas, %d ready, %d updated; want %d of each",
				sc.NS, p.Spec.Replicas, p.Status.ReadyReplicas, p.Status.UpdatedReplicas, replicas)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if _, n, err := sc.S.Image(ctx, sc.NS, "podinfo"); err != nil || n != 0 {
		return fmt.Errorf("canary podinfo has %d replicas after the promotion (err %v), want 0", n, err)
	}
	return nil
}

// WaitWeightPast waits until the canary weight is past weight, or the rollout is promoting or done, and returns
// the weight then.
func (sc *Scenarios) WaitWeightPast(ctx context.Context, weight int, within time.Duration) (int, error) {
	var at workflows.Status
	err := sc.WaitStatus(ctx, within, func(st workflows.Status) bool {
		at = st
		return int(st.CanaryWeight) > weight || st.Phase == workflows.PhasePromoting ||
			st.Phase == workflows.PhaseFinalising || st.Phase == workflows.PhaseSucceeded || st.Phase == workflows.PhaseFailed
	})
	return int(at.CanaryWeight), err
}
