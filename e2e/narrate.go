package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// Narrator returns the say of a lab test's Stack and Scenarios. With go test -v it is t.Logf: the narration (step
// headings, every line the starter prints) streams as it comes. Without -v, as in make test, go test shows a test's
// log only when it fails; the narration is then held back and logged after the failure, so that the failure's
// message comes first in the test's output instead of after hundreds of lines of rollouts, where a truncated CI
// log loses it. A passing test's narration is dropped, as go test would drop it.
func Narrator(t testing.TB) func(format string, args ...any) {
	if testing.Verbose() {
		return t.Logf
	}
	var (
		mu    sync.Mutex
		lines []string
		ended bool
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		ended = true
		if t.Failed() && len(lines) > 0 {
			t.Logf("the test's narration, held back until its end:\n%s", strings.Join(lines, "\n"))
		}
		lines = nil
	})
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !ended { // a starter streaming after the test ended has nobody to tell
			lines = append(lines, fmt.Sprintf(format, args...))
		}
	}
}
