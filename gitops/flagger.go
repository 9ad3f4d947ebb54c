package gitops

import (
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// flaggerFinalizer is the finalizer Flagger puts on a Canary it runs with revertOnDeletion, and removes when it has
// finalised it.
const flaggerFinalizer = "finalizer.flagger.app"

// DefaultFlaggerQuiet is how long after Flagger last wrote a Canary's status the trigger leaves that Canary alone.
const DefaultFlaggerQuiet = 10 * time.Minute

// flaggerActing says why Flagger's controller is taken to be acting on the Canary m ("" when it is not), and until
// when, for a reason that passes with time (zero otherwise). Two signs, both read from the object itself, so the
// check costs no request:
//   - Flagger's finalizer: Flagger runs this Canary with revertOnDeletion (after Flagger is uninstalled the
//     finalizer stays, and the docs say to remove it);
//   - the newest write of the status subresource is by a field manager named flagger… (Flagger's client updates
//     status under its binary's name) and is younger than quiet: a Flagger that runs a canary writes its status on
//     every transition, so once it has been silent that long it is taken to be gone (uninstalled) and canaryflow
//     takes over. A Flagger that is idle for longer is not seen this way; the workflow then refuses the primary
//     Flagger made before any change (see PrimaryForeign).
func flaggerActing(m metav1.Object, now time.Time, quiet time.Duration) (string, time.Time) {
	if slices.Contains(m.GetFinalizers(), flaggerFinalizer) {
		return "it carries Flagger's finalizer " + flaggerFinalizer + " (Flagger runs it with revertOnDeletion; remove the finalizer once Flagger is uninstalled)", time.Time{}
	}
	var newest *metav1.ManagedFieldsEntry
	for i, e := range m.GetManagedFields() {
		if e.Subresource != "status" || e.Time == nil {
			continue
		}
		if newest == nil || e.Time.After(newest.Time.Time) {
			newest = &m.GetManagedFields()[i]
		}
	}
	if newest == nil || !strings.HasPrefix(strings.ToLower(newest.Manager), "flagger") {
		return "", time.Time{}
	}
	until := newest.Time.Add(quiet)
	if !now.Before(until) {
		return "", time.Time{}
	}
	return "Flagger (field manager " + newest.Manager + ") wrote its status at " + newest.Time.UTC().Format(time.RFC3339) +
		"; canaryflow takes over after " + quiet.String() + " without such a write", until
}
