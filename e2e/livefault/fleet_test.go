//go:build lab

package livefault

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/utils/ptr"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/e2e"
)

// member is one canary of a fleet: its namespace prefix and spec change.
type member struct {
	prefix string
	edit   func(*v1beta1.Canary)
}

// fleet initialises the canaries of members at once, then rolls each out to 6.0.1 at once, and returns them with
// their `starter rollout --wait` results and how long the rollouts took together.
func fleet(t *testing.T, s *e2e.Stack, within time.Duration, members ...member) ([]*canary, []e2e.Result, time.Duration) {
	t.Helper()
	ctx := contextFor(t, within) // the canaries' context: it outlives this function, until the test ends
	cs := make([]*canary, len(members))
	for i, m := range members {
		cs[i] = canaryIn(t, ctx, s, m.prefix)
	}
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = cs[i].initialise(m.edit) }()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "initialisation of %s", cs[i].NS)
	}
	start := time.Now()
	done := make([]<-chan e2e.Result, len(members))
	for i, m := range members {
		done[i] = cs[i].rollout(cs[i].write("canary", m.edit), "6.0.1")
	}
	results := make([]e2e.Result, len(members))
	for i := range done {
		results[i] = waitResult(t, done[i], within)
	}
	return cs, results, time.Since(start)
}

// requireGapsNearTheInterval asserts that a promoted canary's steps came about an interval apart: a fault of
// another canary did not hold this one's steps.
func requireGapsNearTheInterval(t *testing.T, c *canary, e end, extra time.Duration) []time.Duration {
	t.Helper()
	gaps := c.stepGaps(e.History)
	require.NotEmpty(t, gaps)
	for _, g := range gaps {
		require.Less(t, g, interval+extra, "%s: step gaps %v (interval %s):\n%s", c.NS, gaps, interval, e.History)
	}
	return gaps
}

// failingMetric makes request-success-rate fail every check: no success rate is above 100 %.
func failingMetric(c *v1beta1.Canary) { c.Spec.Analysis.Metrics[0].ThresholdRange.Min = ptr.To(101.0) }

// TestManyRolloutsAtOnceWhileOneFails rolls out 5 canaries at once on one worker, one of them with a metric that
// fails every check: the failing one is rolled back at its threshold, the other four are promoted with their
// steps an interval apart, each weight decided once.
func TestManyRolloutsAtOnceWhileOneFails(t *testing.T) {
	t.Parallel()
	_, s := startStack(t, 12*time.Minute, e2e.Options{})
	members := []member{{"many-failing", failingMetric}}
	n := 5
	if long {
		n = 10
	}
	for i := 1; i < n; i++ {
		members = append(members, member{fmt.Sprintf("many-%d", i), nil})
	}
	cs, results, took := fleet(t, s, 8*time.Minute, members...)
	// Steps are 10–12 s apart on a quiet machine, up to 18 s with ten canaries on a loaded one; a worker that
	// ran rollouts one after another, or let the failing one hold the others, would put them far apart.
	slack := interval
	if long {
		slack = 3 * interval / 2
	}

	require.Equal(t, 1, results[0].Code, results[0].Output)
	e := cs[0].end()
	cs[0].requireRolledBack(e, "6.0.0", "failed checks threshold reached 2")
	var all []time.Duration
	for i := 1; i < len(cs); i++ {
		require.Equal(t, 0, results[i].Code, results[i].Output)
		e := cs[i].end()
		cs[i].requirePromoted(e, "6.0.1", 30)
		all = append(all, requireGapsNearTheInterval(t, cs[i], e, slack)...)
	}
	t.Logf("%d rollouts at once, one failing: all ended in %s; step gaps of the promoted ones %v (max %s, interval %s)",
		len(cs), took.Round(time.Second), all, maxGap(all), interval)
}

// TestWebhookFaultsDuringLiveRollouts: during live rollouts on one worker, the load tester is down (connection
// refused), a check webhook hangs past its 20 s timeout, another answers slowly within it, and a fourth canary runs
// with healthy hooks. The first two fail their hook on every step and are rolled back at the threshold, naming
// the cause; the slow one is promoted; the healthy one is promoted with its steps an interval apart, not delayed
// by the others' faults.
func TestWebhookFaultsDuringLiveRollouts(t *testing.T) {
	t.Parallel()
	_, s := startStack(t, 12*time.Minute, e2e.Options{})
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer ok.Close()
	loadTesterDown := newFaultProxy(t, s.LoadTesterURL)
	loadTesterDown.set(t, refuse)
	hanging := newFaultProxy(t, ok.URL)
	hanging.set(t, hang)
	slowHook := newFaultProxy(t, ok.URL)
	slowHook.delay = 3 * time.Second
	slowHook.set(t, slow)
	// The hanging hook's timeout (20 s) is longer than the healthy canary's step gaps may be: were its call to
	// hold the other rollouts, their steps would be 30 s apart.
	check := func(url, timeout string) func(*v1beta1.Canary) {
		return func(c *v1beta1.Canary) {
			c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, v1beta1.CanaryWebhook{
				Name: "smoke", Type: v1beta1.RolloutHook, URL: url + "/", Timeout: timeout})
		}
	}
	cs, results, took := fleet(t, s, 8*time.Minute,
		member{"hook-lt-down", func(c *v1beta1.Canary) {
			// As in Flagger's tutorials: the load test is a rollout hook, called before each step's checks.
			c.Spec.Analysis.Webhooks[0].URL, c.Spec.Analysis.Webhooks[0].Type = loadTesterDown.URL+"/", v1beta1.RolloutHook
		}},
		member{"hook-hang", check(hanging.URL, "20s")},
		member{"hook-slow", check(slowHook.URL, "5s")},
		member{"hook-healthy", nil},
	)

	for i, cause := range map[int]string{
		0: "rollout hook load-test failed: ", // and the dial error, below
		1: "rollout hook smoke failed: no answer from " + hanging.URL + " within 20s",
	} {
		require.Equal(t, 1, results[i].Code, results[i].Output)
		e := cs[i].end()
		cs[i].requireRolledBack(e, "6.0.0", "failed checks threshold reached 2")
		require.Equal(t, 2, strings.Count(e.History, cause), e.History)
		if i == 0 {
			require.Contains(t, e.History, "connection refused")
		}
	}
	require.Equal(t, 0, results[2].Code, results[2].Output)
	e := cs[2].end()
	cs[2].requirePromoted(e, "6.0.1", 30)
	slowGaps := cs[2].stepGaps(e.History)
	require.Positive(t, slowHook.count(slow))

	require.Equal(t, 0, results[3].Code, results[3].Output)
	e = cs[3].end()
	cs[3].requirePromoted(e, "6.0.1", 30)
	gaps := requireGapsNearTheInterval(t, cs[3], e, interval)
	require.Positive(t, hanging.count(hang))
	t.Logf("webhook faults: all ended in %s; healthy canary's step gaps %v, the slow hook's (3 s of 5 s) %v (interval %s)",
		took.Round(time.Second), gaps, slowGaps, interval)
}
