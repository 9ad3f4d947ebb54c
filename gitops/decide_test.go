package gitops

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Only a change of the target's revision or of the Canary's spec is worth a question to Temporal: status writes
// (the rollout's own), the Deployment's status and watch re-lists change neither.
func TestChangedFollowsRevisionAndSpecOnly(t *testing.T) {
	base := observation{Generation: 3, Revision: "r1", PrimaryExists: true, PrimaryRevision: "r0"}
	for _, tc := range []struct {
		name string
		last *observation
		obs  observation
		want bool
	}{
		{"nothing acted on yet (new leader)", nil, base, true},
		{"same", &base, base, false},
		{"target revision changed", &base, with(base, func(o *observation) { o.Revision = "r2" }), true},
		{"spec changed", &base, with(base, func(o *observation) { o.Generation = 4 }), true},
		{"primary promoted (the rollout's own write)", &base, with(base, func(o *observation) { o.PrimaryRevision = "r1" }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, changed(tc.last, tc.obs))
		})
	}
}

func with(o observation, f func(*observation)) observation {
	f(&o)
	return o
}

// The decision to start a run, signal the open one, or leave the canary alone.
func TestDecideStartsSignalsOrLeavesAlone(t *testing.T) {
	initialised := observation{Generation: 1, Revision: "r2", PrimaryExists: true, PrimaryRevision: "r1"}
	last := &observation{Generation: 1, Revision: "r1", PrimaryExists: true, PrimaryRevision: "r1"}
	for _, tc := range []struct {
		name       string
		last       *observation
		obs        observation
		rs         runState
		want       action
		wantReason string
	}{
		{"no primary yet: initialise", nil, observation{Generation: 1, Revision: "r1"}, runState{}, actStart, "initialise: target revision r1"},
		{"new target revision: release", last, initialised, runState{}, actStart, "target revision r2"},
		{"target equals the primary: nothing to release", nil, with(initialised, func(o *observation) { o.Revision = "r1" }), runState{}, actNone, "the primary runs revision r1 already"},
		{"rolled-back revision stays failed", last, initialised, runState{FailedRevision: "r2"}, actNone, "revision r2 was rolled back"},
		{"another revision after a rollback: release", last, initialised, runState{FailedRevision: "r9"}, actStart, "target revision r2"},
		{"suspended: no new run", last, with(initialised, func(o *observation) { o.Suspended = true }), runState{}, actNone, "spec.suspend is true"},
		{"open run, new revision: signal", last, initialised, runState{Open: true}, actSignal, "target revision r2"},
		{"open run, spec changed: signal", &observation{Generation: 1, Revision: "r2"}, with(initialised, func(o *observation) { o.Generation = 2 }),
			runState{Open: true}, actSignal, "Canary spec changed (generation 2)"},
		{"open run seen by a new leader: signal (the workflow ignores a revision it has)", nil, initialised, runState{Open: true}, actSignal, "took over"},
		{"a primary canaryflow did not make (Flagger's)", nil, with(initialised, func(o *observation) { o.PrimaryForeign = true }), runState{Open: true}, actNone, "not made by canaryflow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, reason := decide(tc.last, tc.obs, tc.rs)
			require.Equal(t, tc.want, got, reason)
			require.Contains(t, reason, tc.wantReason)
		})
	}
}

// Flagger acting on a Canary is read from the object: its finalizer, or a recent status write by Flagger's
// field manager that no later write replaced.
func TestFlaggerActing(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	status := func(manager string, ago time.Duration) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status",
			Time: &metav1.Time{Time: now.Add(-ago)}}
	}
	spec := metav1.ManagedFieldsEntry{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, Time: &metav1.Time{Time: now}}
	for _, tc := range []struct {
		name       string
		finalizers []string
		fields     []metav1.ManagedFieldsEntry
		acting     bool
		until      time.Time
	}{
		{"never touched by Flagger", nil, []metav1.ManagedFieldsEntry{spec, status("canaryflow", time.Minute)}, false, time.Time{}},
		{"Flagger's finalizer", []string{"finalizer.flagger.app"}, nil, true, time.Time{}},
		{"Flagger wrote status a minute ago", nil, []metav1.ManagedFieldsEntry{spec, status("flagger", time.Minute)}, true, now.Add(9 * time.Minute)},
		{"Flagger's last status write is old: it is gone", nil, []metav1.ManagedFieldsEntry{status("flagger", time.Hour)}, false, time.Time{}},
		{"canaryflow wrote status after Flagger", nil, []metav1.ManagedFieldsEntry{status("flagger", 2*time.Minute), status("canaryflow", time.Minute)}, false, time.Time{}},
		{"Flagger wrote status after canaryflow", nil, []metav1.ManagedFieldsEntry{status("canaryflow", 2*time.Minute), status("flagger", time.Minute)}, true, now.Add(9 * time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			u.SetFinalizers(tc.finalizers)
			u.SetManagedFields(tc.fields)
			reason, until := flaggerActing(u, now, DefaultFlaggerQuiet)
			require.Equal(t, tc.acting, reason != "", reason)
			require.True(t, tc.until.Equal(until), "until %v, want %v", until, tc.until)
		})
	}
}
