package workflows

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// database is a Canary of a 5-replica StatefulSet: a fifth of the pods per step, every minute, one metric from a
// MetricTemplate, threshold 1.
func database(mutate ...func(*v1beta1.Canary)) v1beta1.Canary {
	maxErrors := 1.0
	c := v1beta1.Canary{}
	c.Name, c.Namespace = "db", "test"
	c.Spec.Provider = "kubernetes"
	c.Spec.TargetRef = v1beta1.LocalObjectReference{APIVersion: "apps/v1", Kind: v1beta1.KindStatefulSet, Name: "db"}
	c.Spec.Analysis = &v1beta1.CanaryAnalysis{
		Interval: "1m", Threshold: 1, MaxWeight: 100, StepWeight: 20,
		Metrics: []v1beta1.CanaryMetric{{Name: "error-rate", Interval: "1m",
			TemplateRef: &v1beta1.CrossNamespaceObjectReference{Name: "error-rate"}, ThresholdRange: &v1beta1.CanaryThresholdRange{Max: &maxErrors}}},
	}
	for _, m := range mutate {
		m(&c)
	}
	return c
}

func newStatefulSetHarness(t *testing.T, stable string) *harness {
	h := newHarness(t)
	h.f.sts = fakeStatefulSet{replicas: 5, partition: 5, revision: "rev2", stable: stable}
	good := 0.5
	h.f.value = func(int, string) *float64 { return &good }
	return h
}

func TestStatefulSetFirstRolloutRecordsTheStableTemplateAndRaisesThePartition(t *testing.T) {
	h := newStatefulSetHarness(t, "")
	h.f.sts.partition = 0
	res := h.run(database())
	require.Equal(t, PhaseInitialized, res.Phase)
	h.requirePhases(PhaseInitializing, PhaseInitialized)
	require.Equal(t, []int{5}, h.f.sts.partitions, "the initialisation sets the partition to the replica count")
	require.Equal(t, "rev2", h.f.sts.stable)
	require.Zero(t, h.count("InitializeWorkloads"), "a StatefulSet gets no primary")
}

func TestStatefulSetIsPromotedThroughEveryPartitionWithoutTouchingTheRouter(t *testing.T) {
	h := newStatefulSetHarness(t, "rev1")
	res := h.run(database())
	require.Equal(t, succeeded("rev2"), summarize(res.Status))
	h.requirePhases(promotedPhases...)
	// One step a minute: pre-rollout checks then 4, metrics on 1 pod then 3, … then the promotion to 0, then
	// the partition back at 5 for the next revision.
	require.Equal(t, []int{4, 3, 2, 1, 0, 5}, h.f.sts.partitions)
	require.Equal(t, "rev2", h.f.sts.stable, "the promoted template is the new stable one")
	require.Equal(t, 4, h.count("RunChecks"), "the metrics ran between partition steps, on the pods already updated")
	require.Empty(t, h.f.snapshotRoutes(), "the router is left alone: the StatefulSet's Service selects every pod")
	require.Zero(t, h.count("ReconcileRouter")+h.count("ScaleCanary up")+h.count("Promote"))
	require.Equal(t, []int{4, 3, 2, 1, 0}, res.Status.Partitions)
	require.Equal(t, 5, *res.Status.Partition)
	h.requireLogged("Advance db.test partition 4 (1 of 5 pods updated)", "Advance db.test partition 0 (5 of 5 pods updated)")
}

func TestStatefulSetFailingMetricsAtTheSecondStepRestoreTheStableTemplate(t *testing.T) {
	h := newStatefulSetHarness(t, "rev1")
	bad := 7.0
	h.f.value = func(int, string) *float64 { return &bad }
	res := h.run(database())
	require.Equal(t, failed("rev2", 1), summarize(res.Status))
	h.requirePhases(PhaseProgressing, PhaseFailed)
	require.Equal(t, []int{4, 0, 5}, h.f.sts.partitions,
		"one pod updated at the first step; the rollback restores with partition 0, then raises it once every pod is back")
	require.Equal(t, 1, h.count("RestoreStatefulSet"))
	require.Equal(t, "rev1", h.f.sts.revision, "the template is the stable one again")
	require.Empty(t, h.f.snapshotRoutes())
}

func TestStatefulSetRollbackWaitsUntilEveryPodIsBack(t *testing.T) {
	h := newStatefulSetHarness(t, "rev1")
	h.f.value = func(int, string) *float64 { v := 7.0; return &v }
	reads := 0
	h.f.sts.stsReady = func(int) (bool, string) {
		if h.count("RestoreStatefulSet") == 0 {
			return true, ""
		}
		reads++
		return reads >= 3, "waiting for pods: db-4 on rev2"
	}
	res := h.run(database())
	require.Equal(t, PhaseFailed, res.Phase)
	require.Equal(t, 3, reads, "polled until every pod ran the stable revision")
	require.Equal(t, []int{4, 0, 5}, h.f.sts.partitions, "the partition goes back up only after the pods are back")
}

func TestStatefulSetAbortRollsBack(t *testing.T) {
	h := newStatefulSetHarness(t, "rev1")
	h.signal(90e9, SignalAbort, ActionSignal{By: "ops", Reason: "bad"})
	res := h.run(database())
	require.Equal(t, PhaseFailed, res.Phase)
	require.Equal(t, []int{4, 3, 0, 5}, h.f.sts.partitions)
	require.Equal(t, "rev1", h.f.sts.revision)
}

// Deleting the Canary of a StatefulSet with revertOnDeletion hands the StatefulSet back to its own rolling
// updates: nothing to scale, route or delete.
func TestStatefulSetFinalizeReleasesThePartition(t *testing.T) {
	f, _, st, err := finalizeRun(t, database(revertOnDeletion), func(f *fakes) {
		f.sts = fakeStatefulSet{replicas: 5, partition: 5, revision: "rev1", stable: "rev1"}
	})
	require.NoError(t, err)
	require.Equal(t, []string{"ReleaseStatefulSet"}, f.calls)
	require.Equal(t, PhaseTerminated, st.Phase)
	require.Zero(t, f.sts.partition)
	require.Empty(t, f.sts.stable)
}
