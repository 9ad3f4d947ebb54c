package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/providers/workload"
)

// fakeSets records the StatefulSet client calls.
type fakeSets struct{ calls []string }

func (f *fakeSets) StatefulSetState(context.Context, *v1beta1.Canary, int) (workload.StatefulSetState, error) {
	f.calls = append(f.calls, "read")
	return workload.StatefulSetState{Replicas: 5, Partition: 5, Revision: "b", StableRevision: "a"}, nil
}
func (f *fakeSets) RecordStable(context.Context, *v1beta1.Canary) error {
	f.calls = append(f.calls, "record")
	return nil
}
func (f *fakeSets) SetPartition(context.Context, *v1beta1.Canary, int) error {
	f.calls = append(f.calls, "partition")
	return nil
}
func (f *fakeSets) Release(context.Context, *v1beta1.Canary) error {
	f.calls = append(f.calls, "release")
	return nil
}
func (f *fakeSets) RestoreStable(context.Context, *v1beta1.Canary) error {
	f.calls = append(f.calls, "restore")
	return nil
}

// The first activity of a StatefulSet rollout refuses, naming the field, what makes no sense for a StatefulSet
// before anything is read or written; a valid one is read.
func TestReadStatefulSetRefusesWhatNeedsAPrimaryBeforeAnyRead(t *testing.T) {
	caps := &v1beta1.Capabilities{Routers: map[string]v1beta1.Traffic{"kubernetes": {}, "traefik": {Weights: true}}}
	sts := func(mutate func(*v1beta1.Canary)) v1beta1.Canary {
		c := v1beta1.Canary{}
		c.Name, c.Namespace = "db", "test"
		c.Spec.TargetRef = v1beta1.LocalObjectReference{APIVersion: "apps/v1", Kind: v1beta1.KindStatefulSet, Name: "db"}
		c.Spec.Analysis = &v1beta1.CanaryAnalysis{Interval: "1m", Threshold: 1, StepWeight: 20, MaxWeight: 100}
		mutate(&c)
		c.SetDefaults()
		return c
	}
	for _, tc := range []struct {
		name   string
		mutate func(*v1beta1.Canary)
		refuse string
	}{
		{"valid", func(*v1beta1.Canary) {}, ""},
		{"blue/green", func(c *v1beta1.Canary) { c.Spec.Analysis.StepWeight, c.Spec.Analysis.Iterations = 0, 3 }, "spec.analysis.iterations: blue/green needs a second copy"},
		{"router", func(c *v1beta1.Canary) { c.Spec.Provider = "traefik" }, `spec.provider: "traefik" cannot route a StatefulSet's rollout`},
		{"autoscaler", func(c *v1beta1.Canary) {
			c.Spec.AutoscalerRef = &v1beta1.AutoscalerReference{Name: "db"}
		}, "spec.autoscalerRef: not supported for a StatefulSet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			kube := &fakeSets{}
			a := &StatefulSets{Kube: kube, Capabilities: caps}
			env.RegisterActivity(a)
			v, err := env.ExecuteActivity(a.ReadStatefulSet, PartitionInput{Canary: sts(tc.mutate), Partition: 5})
			if tc.refuse == "" {
				require.NoError(t, err)
				var st StatefulSetState
				require.NoError(t, v.Get(&st))
				require.Equal(t, "a", st.StableRevision)
				require.Equal(t, []string{"read"}, kube.calls)
				return
			}
			require.Equal(t, ErrTypeInvalidSpec, appErrType(t, err))
			require.ErrorContains(t, err, "this worker cannot run db.test, nothing was changed")
			require.ErrorContains(t, err, tc.refuse)
			require.Empty(t, kube.calls)
		})
	}
}
