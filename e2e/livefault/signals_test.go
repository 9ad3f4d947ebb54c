//go:build lab

package livefault

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/workflows"
)

// TestRacingSignalsOnTheLab sends the signals that race, through `starter` as an operator would, to live
// rollouts (one worker, one canary per case, in parallel): the end state is one a careful operator accepts, and
// `starter status`, `starter history` and the cluster agree on it. (The workflow's handling of each race is
// proven in workflows/abort_race_test.go and rollout_test.go; this proves it with the real processes.)
func TestRacingSignalsOnTheLab(t *testing.T) {
	t.Parallel()
	ctx, s := startStack(t, 12*time.Minute, e2e.Options{})

	races := 1
	if long {
		races = 4 // the order the workflow sees them in varies from run to run
	}
	for i := 0; i < races; i++ {
		t.Run(fmt.Sprintf("approve and abort at the same instant at confirm-promotion %d", i+1), func(t *testing.T) {
			t.Parallel()
			gate := func(c *v1beta1.Canary) {
				c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, v1beta1.CanaryWebhook{
					Name: "release-manager", Type: v1beta1.ConfirmPromotionHook, URL: s.LoadTesterURL + "gate/check"})
			}
			c := newCanary(t, ctx, s, "race-gate", gate)
			done := c.rollout(c.write("canary", gate), "6.0.1")
			c.waitStatus(5*time.Minute, "the confirm-promotion gate", func(st workflows.Status) bool {
				return st.PendingGate == workflows.GateConfirmPromotion
			})
			var wg sync.WaitGroup
			var approve, abort e2e.Result
			start := make(chan struct{})
			wg.Add(2)
			go func() {
				defer wg.Done()
				<-start
				approve = c.starter("approve", "podinfo", "-n", c.NS, "--gate", "confirm-promotion", "--by", "carol", "--reason", "looks good")
			}()
			go func() {
				defer wg.Done()
				<-start
				abort = c.starter("abort", "podinfo", "-n", c.NS, "--by", "bob", "--reason", "no, wait")
			}()
			close(start)
			wg.Wait()
			require.Equal(t, 0, abort.Code, abort.Output)
			// The approval may find the rollout already ended by the abort: then starter says so and exits non-zero.
			t.Logf("approve exited %d, abort %d", approve.Code, abort.Code)

			r := waitResult(t, done, 3*time.Minute)
			require.Equal(t, 1, r.Code, r.Output)
			e := c.end()
			// Either the abort came first (no promotion began) or the promotion begun was reverted: the primary is on
			// 6.0.0 either way, and never was promoted.
			c.requireRolledBackAfter(e, "6.0.0", "aborted by bob: no, wait", true)
			require.Equal(t, "bob", e.Status.Status.AbortedBy)
			require.Equal(t, 1, strings.Count(e.History, "abort by bob"), e.History)
			t.Logf("approve and abort at once: a promotion began first: %v", strings.Contains(e.History, "phase Promoting"))
		})
	}

	t.Run("pause then promote", func(t *testing.T) {
		t.Parallel()
		c := newCanary(t, ctx, s, "race-pause", nil)
		done := c.rollout(c.write("canary", nil), "6.0.1")
		c.waitStatus(5*time.Minute, "canary weight 10", func(st workflows.Status) bool { return st.CanaryWeight >= 10 })
		p := c.starter("pause", "podinfo", "-n", c.NS, "--by", "dave", "--reason", "incident elsewhere")
		require.Equal(t, 0, p.Code, p.Output)
		paused := c.waitStatus(time.Minute, "paused", func(st workflows.Status) bool { return st.Paused })
		// Paused for two intervals: no weight changes meanwhile.
		time.Sleep(2 * interval)
		still, err := c.status()
		require.NoError(t, err)
		require.Equal(t, paused.CanaryWeight, still.CanaryWeight, "a paused rollout holds its weight")
		pr := c.starter("promote", "podinfo", "-n", c.NS, "--by", "erin", "--reason", "incident over, ship it")
		require.Equal(t, 0, pr.Code, pr.Output)

		r := waitResult(t, done, 3*time.Minute)
		require.Equal(t, 0, r.Code, r.Output)
		e := c.end()
		require.Equal(t, workflows.PhaseSucceeded, e.Phase, e.History)
		require.Equal(t, e2e.PodinfoImage("6.0.1"), e.Primary)
		require.Equal(t, [2]int64{100, 0}, e.Weights)
		require.Zero(t, e.CanaryReplicas)
		require.Equal(t, "erin", e.Status.Status.PromotedBy)
		require.Equal(t, 1, strings.Count(e.History, "pause by dave"), e.History)
		require.Equal(t, 1, strings.Count(e.History, "promote by erin"), e.History)
		require.Equal(t, 1, strings.Count(e.History, "promoted revision"), e.History)
		require.Equal(t, []int{paused.CanaryWeight}, c.advances(e.History)[len(c.advances(e.History))-1:],
			"no advance after the pause:\n%s", e.History)
	})

	t.Run("a new revision during the promotion", func(t *testing.T) {
		t.Parallel()
		// The promotion moves the primary 70 → 80 → 90 → 100, an interval between steps, so that it lasts 20 s and
		// a revision can arrive while it runs. (A promotion step as large as the canary's weight promotes in one
		// step, in well under a second, and the poll below can miss the phase altogether.)
		slowPromotion := func(c *v1beta1.Canary) { c.Spec.Analysis.StepWeightPromotion = 10 }
		c := newCanary(t, ctx, s, "race-revision", slowPromotion)
		file := c.write("canary", slowPromotion)
		first := c.rollout(file, "6.0.1")
		c.waitStatus(5*time.Minute, "the promotion", func(st workflows.Status) bool { return st.Phase == workflows.PhasePromoting })
		second := c.rollout(file, "6.0.2")

		r1 := waitResult(t, first, 5*time.Minute)
		r2 := waitResult(t, second, 5*time.Minute)
		t.Logf("the first starter exited %d, the second %d", r1.Code, r2.Code)
		require.Contains(t, []int{0, 4}, r1.Code, "6.0.1 promoted, or superseded by 6.0.2: %s", r1.Output)
		require.Equal(t, 0, r2.Code, r2.Output)
		e := c.end()
		c.requirePromoted(e, "6.0.2", 30)
		// The run before it finished promoting 6.0.1 once, never rolled back, and then continued as the new run
		// that analysed 6.0.2.
		prev := c.starter("history", "podinfo", "-n", c.NS, "--run-id", c.previousRun())
		require.Equal(t, 0, prev.Code, prev.Output)
		require.Equal(t, 1, strings.Count(prev.Output, "phase Promoting"), prev.Output)
		require.Equal(t, 1, strings.Count(prev.Output, "phase Succeeded"), prev.Output)
		require.Equal(t, 1, strings.Count(prev.Output, "weight primary 100 canary 0"), prev.Output)
		require.Contains(t, prev.Output, "continued as new run")
		require.Zero(t, strings.Count(prev.Output, "Rolling back"), prev.Output)
	})

	t.Run("abort during the rollback", func(t *testing.T) {
		t.Parallel()
		// A post-rollout hook that holds the rollback, after users are back on the primary and the canary is
		// scaled down, until the abort is in. (Post-rollout hooks run only at the end: the first call is the
		// rollback's.)
		var once sync.Once
		inRollback, release := make(chan struct{}), make(chan struct{})
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			once.Do(func() { close(inRollback) })
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer hook.Close()
		failing := func(c *v1beta1.Canary) {
			failingMetric(c)
			c.Spec.Analysis.Webhooks = append(c.Spec.Analysis.Webhooks, v1beta1.CanaryWebhook{
				Name: "notify", Type: v1beta1.PostRolloutHook, URL: hook.URL, Timeout: "30s"})
		}
		c := newCanary(t, ctx, s, "race-rollback", failing)
		done := c.rollout(c.write("canary", failing), "6.0.1")
		select {
		case <-inRollback:
		case <-time.After(5 * time.Minute):
			t.Fatal("the rollback never began")
		}
		st, err := c.status()
		require.NoError(t, err)
		require.Equal(t, workflows.PhaseFailed, st.Phase, "the rollback is at its post-rollout hook")
		a := c.starter("abort", "podinfo", "-n", c.NS, "--by", "bob", "--reason", "make sure")
		close(release)
		t.Logf("abort during the rollback exited %d", a.Code)

		r := waitResult(t, done, 3*time.Minute)
		require.Equal(t, 1, r.Code, r.Output)
		e := c.end()
		c.requireRolledBack(e, "6.0.0", "failed checks threshold reached 2")
		require.Equal(t, 1, strings.Count(e.History, "weight primary 100 canary 0"), "one routing back:\n%s", e.History)
		require.Equal(t, "Rolling back podinfo."+c.NS+" failed checks threshold reached 2", e.Status.Status.Message,
			"the status keeps the rollback's reason")
		t.Logf("abort during the rollback: status abortedBy %q, history:\n%s", e.Status.Status.AbortedBy, e.History)
	})
}

// previousRun is the run ID of the canary's workflow run before the latest.
func (c *canary) previousRun() string {
	c.t.Helper()
	resp, err := c.tc.ListWorkflow(c.ctx, listRuns(c.s.Lab.TemporalNamespace, c.NS))
	require.NoError(c.t, err)
	runs := resp.GetExecutions()
	require.GreaterOrEqual(c.t, len(runs), 2, "runs of %s", c.NS)
	sort.Slice(runs, func(i, j int) bool { return runs[i].GetStartTime().AsTime().After(runs[j].GetStartTime().AsTime()) })
	return runs[1].GetExecution().GetRunId()
}
