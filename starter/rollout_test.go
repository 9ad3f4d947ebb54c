package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
)

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// linesWith returns the output lines containing sub, without their timestamps.
func linesWith(out, sub string) []string {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, sub) {
			_, text, _ := strings.Cut(l, " ")
			got = append(got, text)
		}
	}
	return got
}

func TestRolloutWaitStreamsEachWeightInOrderAndExits0WhenPromoted(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := canaryFile(t, "test", "promotes", "stepWeights: [20, 50]", "")

	code, out, errOut := e.starter("rollout", "-f", f, "--wait", "--by", "ci")

	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "started the rollout of test/promotes")
	assert.Contains(t, out, "workflow ID: canary/test/promotes")
	assert.Regexp(t, `web UI: http://127.0.0.1:8233/namespaces/default/workflows/canary%2Ftest%2Fpromotes/[0-9a-f-]+/history`, out)
	assert.Equal(t, []string{"weight primary 80 canary 20", "weight primary 50 canary 50", "weight primary 100 canary 0"},
		linesWith(out, "weight primary"))
	assert.Equal(t, []string{"Advance promotes.test canary weight 20", "Advance promotes.test canary weight 50"},
		linesWith(out, "Advance "), "each advance is said in Flagger's words")
	assert.Equal(t, []string{"check request-success-rate 99.5 in [99, —] pass", "check request-success-rate 99.5 in [99, —] pass"},
		linesWith(out, "check "), "one check per step after the first")
	assert.Contains(t, out, "revision by ci")
	assert.Contains(t, out, "phase Progressing")
	assert.Regexp(t, `(?m) promoted revision rev2$`, out)
	assert.Equal(t, []string{"80/20", "50/50", "100/0"}, e.cluster.Get("test", "promotes").Routes)
}

func TestRolloutWaitExits1AndShowsTheFailingCheckWhenRolledBack(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	e.cluster.Set("test", "fails", func(c *activitiestest.Canary) { c.SuccessRate = 42 })
	f := canaryFile(t, "test", "fails", "stepWeight: 50\n    maxWeight: 50", "")

	code, out, errOut := e.starter("rollout", "-f", f, "--wait")

	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Equal(t, []string{"check request-success-rate 42 not in [99, —] fail"}, linesWith(out, "check "))
	assert.Equal(t, []string{"Halt fails.test advancement success rate 42.00% < 99%"}, linesWith(out, "Halt "),
		"a failed check is also said in Flagger's words")
	assert.Contains(t, out, "phase Failed")
	assert.Contains(t, out, "rolled back: Rolling back fails.test failed checks threshold reached 1")
	assert.Equal(t, []string{"50/50", "100/0"}, e.cluster.Get("test", "fails").Routes)

	// The same revision again (nothing changed in the target): refused at once, as Flagger keeps it failed.
	code, out, errOut = e.starter("rollout", "-f", f, "--wait")
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "was rolled back and the target has not changed since")
	assert.Empty(t, linesWith(out, "check "), "no analysis ran")
	assert.Equal(t, []string{"50/50", "100/0"}, e.cluster.Get("test", "fails").Routes, "no traffic moved")
}

// A CI job waiting on a revision that a newer one replaces mid-analysis does not report the newer revision's
// promotion as its own: it exits 4 naming the revision that replaced it, and the newer job's wait ends promoted.
func TestRolloutWaitExits4NamingTheNewerRevisionThatSupersededIt(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := canaryFile(t, "test", "replaced", "stepWeights: [20, 50]", "")
	first, _ := e.background("rollout", "-f", f, "--wait", "--by", "ci-2")
	e.eventuallyStatus(t, "test", "replaced", func(s workflows.Status) bool { return s.CanaryWeight == 20 }, "weight 20")

	e.cluster.Set("test", "replaced", func(c *activitiestest.Canary) { c.Target = "rev3" })
	second, _ := e.background("rollout", "-f", f, "--wait", "--by", "ci-3", "--reason", "release 3")

	code, out, errOut := first()
	require.Equal(t, 4, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	assert.Regexp(t, `^\S+ superseded: revision rev2 was replaced by revision rev3 before its analysis ended `+
		`\(revision by ci-3 reason "release 3"\); the rollout goes on with rev3 \(starter status shows where it is\)$`, lines[len(lines)-1])
	assert.NotContains(t, out, "promoted revision", "the newer revision's promotion is not this job's")

	code, out, errOut = second()
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "signalled revision to the open rollout of test/replaced")
	assert.Regexp(t, `(?m) promoted revision rev3$`, out)
	assert.NotContains(t, out, "superseded:")
}

func TestRolloutOfAnInvalidFileExits2WithEveryErrorAndStartsNothing(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := canaryFile(t, "test", "invalid", "stepWeight: 70\n    maxWeight: 50\n    iterations: -1", "")

	code, out, errOut := e.starter("rollout", "-f", f, "--wait")

	require.Equal(t, 2, code, out)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "spec.analysis.stepWeight: 70 is greater than maxWeight 50")
	assert.Contains(t, errOut, "spec.analysis.iterations: must not be negative")
	_, err := e.client.DescribeWorkflowExecution(t.Context(), v1beta1.WorkflowID("test", "invalid"), "")
	require.True(t, isNotFound(err), "a workflow was started: %v", err)
}

func TestRolloutWaitTimeoutExits3AndTheRolloutKeepsGoing(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := canaryFile(t, "test", "slow", "stepWeight: 10\n    maxWeight: 50", "")

	code, out, errOut := e.starter("rollout", "-f", f, "--wait", "--timeout", "3s")

	require.Equal(t, 3, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, errOut, "timed out after 3s waiting for canary/test/slow; the rollout keeps going")
	assert.Contains(t, out, "weight primary 90 canary 10", "lines stream before the timeout")
	d, err := e.client.DescribeWorkflowExecution(t.Context(), "canary/test/slow", "")
	require.NoError(t, err)
	assert.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.GetWorkflowExecutionInfo().GetStatus())

	code, _, errOut = e.starter("abort", "slow", "-n", "test", "--reason", "test cleanup")
	require.Equal(t, 0, code, errOut)
	e.eventuallyStatus(t, "test", "slow", func(s workflows.Status) bool { return s.Phase == workflows.PhaseFailed }, "rolled back")
}

func TestApproveWithNoGateWaitingExits2(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := canaryFile(t, "test", "nogate", "stepWeight: 10\n    maxWeight: 50", "")
	code, _, errOut := e.starter("rollout", "-f", f)
	require.Equal(t, 0, code, errOut)
	e.eventuallyStatus(t, "test", "nogate", func(s workflows.Status) bool { return s.Phase == workflows.PhaseProgressing }, "Progressing")

	code, _, errOut = e.starter("approve", "nogate", "-n", "test")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "no gate is waiting in the rollout of test/nogate; name one with --gate")

	code, _, errOut = e.starter("approve", "nogate", "-n", "test", "--gate", "confirm-everything")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `"confirm-everything" is not a gate: name one of confirm-rollout, confirm-traffic-increase, confirm-promotion`)

	code, _, errOut = e.starter("abort", "nogate", "-n", "test")
	require.Equal(t, 0, code, errOut)
	e.eventuallyStatus(t, "test", "nogate", func(s workflows.Status) bool { return s.Phase == workflows.PhaseFailed }, "rolled back")
}

func TestSignalsToACanaryWithNoOpenRolloutExit2(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	for _, cmd := range []string{"approve", "abort", "pause", "resume", "promote"} {
		code, _, errOut := e.starter(cmd, "ghost", "-n", "test")
		assert.Equal(t, 2, code, cmd)
		assert.Contains(t, errOut, "no rollout is running for test/ghost", cmd)
	}
}

func TestApprovingThePendingPromotionGatePromotesAndRecordsTheApprover(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	e.cluster.Set("test", "gated", func(c *activitiestest.Canary) { c.ClosedGates[v1beta1.ConfirmPromotionHook] = true })
	f := canaryFile(t, "test", "gated", "stepWeight: 50\n    maxWeight: 50",
		"    webhooks:\n    - name: ask-a-human\n      type: confirm-promotion\n      url: http://gate.test/approve\n")
	wait, _ := e.background("rollout", "-f", f, "--wait")
	e.eventuallyStatus(t, "test", "gated", func(s workflows.Status) bool { return s.PendingGate == workflows.GateConfirmPromotion }, "the pending gate")

	code, out, errOut := e.starter("approve", "gated", "-n", "test", "--by", "alice", "--reason", "looks good")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "approved confirm-promotion of test/gated by alice\n", out)

	code, out, errOut = wait()
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "confirm-promotion hook ask-a-human failed: gate closed")
	assert.Contains(t, out, `approve by alice gate confirm-promotion reason "looks good"`)
	assert.Regexp(t, `(?m) promoted revision rev2$`, out)

	code, hist, errOut := e.starter("history", "gated", "-n", "test")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ approve by alice gate confirm-promotion reason "looks good"$`, hist)
	assert.Regexp(t, `(?m) promoted revision rev2$`, hist)

	st := e.status(t, "test", "gated")
	assert.Equal(t, workflows.PhaseSucceeded, st.Status.Phase)
	require.Len(t, st.Status.Approvals, 1)
	assert.Equal(t, "alice", st.Status.Approvals[0].By)
	assert.Equal(t, "looks good", st.Status.Approvals[0].Reason)
	assert.Equal(t, workflows.GateConfirmPromotion, st.Status.Approvals[0].Gate)
}

func TestAbortMidAnalysisMakesTheWaitingRolloutExit1AndRecordsWhoAborted(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := canaryFile(t, "test", "aborted", "stepWeight: 10\n    maxWeight: 50", "")
	wait, _ := e.background("rollout", "-f", f, "--wait")
	e.eventuallyStatus(t, "test", "aborted", func(s workflows.Status) bool { return s.CanaryWeight == 10 }, "weight 10")

	code, out, errOut := e.starter("abort", "aborted", "-n", "test", "--by", "bob", "--reason", "error budget")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "aborted test/aborted by bob\n", out)

	code, out, errOut = wait()
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, `abort by bob reason "error budget"`)
	assert.Contains(t, out, "rolled back: Rolling back aborted.test aborted by bob: error budget")
	st := e.status(t, "test", "aborted")
	assert.Equal(t, workflows.PhaseFailed, st.Status.Phase)
	assert.Equal(t, "bob", st.Status.AbortedBy)
	assert.Equal(t, []string{"90/10", "100/0"}, e.cluster.Get("test", "aborted").Routes)
}

func TestPauseHoldsTheRolloutAndResumeContinuesAfterAFreshInterval(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := canaryFile(t, "test", "paused", "stepWeight: 50\n    maxWeight: 50", "")
	wait, _ := e.background("rollout", "-f", f, "--wait")
	e.eventuallyStatus(t, "test", "paused", func(s workflows.Status) bool { return s.CanaryWeight == 50 }, "weight 50")

	code, _, errOut := e.starter("pause", "paused", "-n", "test", "--by", "carol", "--reason", "lunch")
	require.Equal(t, 0, code, errOut)
	st := e.eventuallyStatus(t, "test", "paused", func(s workflows.Status) bool { return s.Paused }, "paused")
	assert.Equal(t, "carol", st.PausedBy)
	code, table, _ := e.starter("status", "paused", "-n", "test")
	require.Equal(t, 0, code)
	assert.Contains(t, table, `paused by carol reason "lunch"`)

	code, _, errOut = e.starter("resume", "paused", "-n", "test", "--by", "carol")
	require.Equal(t, 0, code, errOut)
	code, out, errOut := wait()
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)

	// The decisions after the pause: nothing until the resume, then a full interval before the next step.
	at := map[string]time.Time{}
	afterPause := []string{}
	for _, l := range strings.Split(out, "\n") {
		ts, text, ok := strings.Cut(l, " ")
		tm, err := time.Parse(time.RFC3339, ts)
		if !ok || err != nil {
			continue
		}
		if strings.HasPrefix(text, "pause by") || len(afterPause) > 0 {
			afterPause = append(afterPause, text)
		}
		for _, k := range []string{"resume by", "check "} {
			if strings.HasPrefix(text, k) {
				at[k] = tm
			}
		}
	}
	require.GreaterOrEqual(t, len(afterPause), 2, out)
	assert.Equal(t, `pause by carol reason "lunch"`, afterPause[0])
	assert.Equal(t, "resume by carol", afterPause[1])
	assert.GreaterOrEqual(t, at["check "].Sub(at["resume by"]), 9*time.Second, "a fresh interval after resume")
}

func TestRetryAfterAFailureStartsANewRunWithTheSameInput(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	e.cluster.Set("test", "retried", func(c *activitiestest.Canary) { c.SuccessRate = 10 })
	f := canaryFile(t, "test", "retried", "stepWeight: 50\n    maxWeight: 50", "")
	code, out, _ := e.starter("rollout", "-f", f, "--wait")
	require.Equal(t, 1, code, out)
	first := runIDOf(t, out)

	e.cluster.Set("test", "retried", func(c *activitiestest.Canary) { c.SuccessRate = 100 })
	code, out, errOut := e.starter("retry", "retried", "-n", "test", "--wait", "--by", "dave")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, "retrying the rollout of test/retried with the input of run "+first)
	assert.Contains(t, out, `revision by dave reason "retry of run `+first+`"`)
	second := runIDOf(t, out)
	require.NotEqual(t, first, second)

	in1, err := startInput(t.Context(), e.client, "canary/test/retried", first)
	require.NoError(t, err)
	in2, err := startInput(t.Context(), e.client, "canary/test/retried", second)
	require.NoError(t, err)
	assert.Equal(t, in1, in2)

	code, _, errOut = e.starter("retry", "retried", "-n", "test")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "the last rollout of test/retried did not fail (promoted revision rev2): nothing to retry")
}

func runIDOf(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^run ID: (\S+)$`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	return m[1]
}

func TestListShowsEveryCanaryOfTheNamespaceWithItsPhase(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	e.cluster.Set("listed", "bad", func(c *activitiestest.Canary) { c.SuccessRate = 1 })
	good := canaryFile(t, "listed", "good", "stepWeight: 50\n    maxWeight: 50", "")
	bad := canaryFile(t, "listed", "bad", "stepWeight: 50\n    maxWeight: 50", "")
	waitGood, _ := e.background("rollout", "-f", good, "--wait")
	waitBad, _ := e.background("rollout", "-f", bad, "--wait")
	code, out, errOut := waitGood()
	require.Equal(t, 0, code, out+errOut)
	code, out, errOut = waitBad()
	require.Equal(t, 1, code, out+errOut)

	var list string
	require.Eventually(t, func() bool {
		_, list, _ = e.starter("list", "-n", "listed")
		return strings.Count(list, "\n") == 3 && strings.Contains(list, "Succeeded") && strings.Contains(list, "Failed")
	}, 30*time.Second, 200*time.Millisecond, "list output:\n%s", list)
	rows := strings.Split(strings.TrimSpace(list), "\n")
	assert.Equal(t, []string{"NAMESPACE", "NAME", "STATUS", "WEIGHT", "FAILEDCHECKS", "LASTTRANSITIONTIME"}, strings.Fields(rows[0]))
	bf, gf := strings.Fields(rows[1]), strings.Fields(rows[2])
	assert.Equal(t, []string{"listed", "bad", "Failed", "0", "1"}, bf[:5])
	assert.Equal(t, []string{"listed", "good", "Succeeded", "0", "0"}, gf[:5])
	_, err := time.Parse(time.RFC3339, gf[5])
	assert.NoError(t, err)

	// The same rows for scripts: -o json and -o yaml.
	code, js, errOut := e.starter("list", "-n", "listed", "-o", "json")
	require.Equal(t, 0, code, js+errOut)
	var parsed []struct {
		Namespace      string     `json:"namespace"`
		Name           string     `json:"name"`
		Phase          string     `json:"phase"`
		Weight         int        `json:"weight"`
		FailedChecks   *int       `json:"failedChecks"`
		LastTransition *time.Time `json:"lastTransitionTime"`
	}
	require.NoError(t, json.Unmarshal([]byte(js), &parsed), js)
	require.Len(t, parsed, 2, js)
	assert.Equal(t, []string{"bad", "Failed", "good", "Succeeded"}, []string{parsed[0].Name, parsed[0].Phase, parsed[1].Name, parsed[1].Phase})
	require.NotNil(t, parsed[0].FailedChecks, js)
	assert.Equal(t, 1, *parsed[0].FailedChecks)
	require.NotNil(t, parsed[1].LastTransition, js)
	assert.Equal(t, gf[5], parsed[1].LastTransition.UTC().Format(time.RFC3339))
	code, ym, errOut := e.starter("list", "-n", "listed", "-o", "yaml")
	require.Equal(t, 0, code, ym+errOut)
	assert.Contains(t, ym, "- failedChecks: 1\n")
	assert.Contains(t, ym, "phase: Succeeded\n")

	// No canaries: an empty list, not a message, so a script can parse it.
	code, js, _ = e.starter("list", "-n", "nothing-here", "-o", "json")
	require.Equal(t, 0, code)
	assert.Equal(t, "[]\n", js)
	code, _, errOut = e.starter("list", "-o", "xml")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `-o "xml": write table, json or yaml`)
}

func TestStatusWithoutAWorkerShowsTheResultTheClosedRunRecordedAndSaysSo(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	// A worker of its own, stopped once the rollout is over: then no worker can answer the status query.
	const queue = "canaryflow-starter-test-noworker"
	w := worker.New(e.client, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(e.cluster.Activities())
	require.NoError(t, w.Start())
	f := canaryFile(t, "test", "orphan", "stepWeight: 50\n    maxWeight: 50", "")
	code, out, errOut := e.starter("rollout", "-f", f, "--wait", "--task-queue", queue)
	require.Equal(t, 0, code, out+errOut)
	w.Stop()

	code, table, errOut := e.starter("status", "orphan", "-n", "test")

	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "no worker answered the status query; this is the result the closed run recorded")
	lines := strings.Split(table, "\n")
	assert.Equal(t, []string{"NAME", "PHASE", "WEIGHT", "FAILED", "CHECKS", "ITERATIONS", "REVISION", "PENDING", "GATE", "LAST", "TRANSITION", "MESSAGE"},
		strings.Fields(lines[0]))
	assert.Equal(t, []string{"orphan", "Succeeded", "0/100", "0", "0", "rev2", "—"}, strings.Fields(lines[1])[:7])
	assert.Regexp(t, `(?m)^request-success-rate\s+99.5\s+\[99, —\]\s+pass$`, table)
}

func TestPromoteOfACanaryNamedByItsFilePromotesAtOnce(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	f := canaryFile(t, "test", "hotfix", "stepWeight: 10\n    maxWeight: 50", "")
	wait, _ := e.background("rollout", "-f", f, "--wait")
	e.eventuallyStatus(t, "test", "hotfix", func(s workflows.Status) bool { return s.CanaryWeight == 10 }, "weight 10")

	code, out, errOut := e.starter("promote", "-f", f, "--by", "frank", "--reason", "hotfix")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "promotion requested for test/hotfix by frank\n", out)

	code, out, errOut = wait()
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Contains(t, out, `promote by frank reason "hotfix"`)
	assert.Equal(t, []string{"weight primary 90 canary 10", "weight primary 100 canary 0"}, linesWith(out, "weight primary"),
		"promoted from 10%: the steps to 50% were skipped")
	assert.Equal(t, "frank", e.status(t, "test", "hotfix").Status.PromotedBy)
}
