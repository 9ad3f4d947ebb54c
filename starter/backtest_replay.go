package main

import (
	"strconv"
	"time"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
)

// The ends a replayed analysis can reach.
const (
	endPromote  = "promote"
	endRollback = "roll back"
	// endRunning: the analysis would still be running at the time of the backtest (its next step lies in the
	// future, where there is no data to judge).
	endRunning = "still running"
)

// maxReplaySteps bounds one replay: a metric held on no data forever would otherwise step until now.
const maxReplaySteps = 10000

// replayStep is one analysis step of a replayed rollout.
type replayStep struct {
	At time.Time
	// Weight is the canary's weight during the step (100 for A/B testing's matching requests); Iteration the
	// iterations passed before it (A/B testing, blue/green).
	Weight, Iteration int
	// Mirrored says the step ran on mirrored traffic (canary mirroring's extra first step).
	Mirrored bool
	// First is the first step: pre-rollout webhooks only, no metric checks (as in Flagger).
	First bool
	// Checks are the metric results of the step, in spec order; Decisive indexes the one that decided it (-1: all
	// passed).
	Checks   []activities.CheckResult
	Decisive int
	// FailedChecks is the count after the step.
	FailedChecks int
	// Then is what the step led to: the next weight or iteration, a halt, a hold, promote or roll back.
	Then string
}

// replayResult is the replay of a rollout started at Start.
type replayResult struct {
	Start time.Time
	Steps []replayStep
	// End is endPromote, endRollback or endRunning; At is when it was reached (the last step's time).
	End string
	At  time.Time
	// Decider is the metric whose failed check rolled the rollout back, Reason that check's message.
	Decider, Reason string
}

// checksAt returns the results of every metric check of the analysis at time t, in spec order.
type checksAt func(t time.Time) ([]activities.CheckResult, error)

// replay runs the analysis schedule of a defaulted Canary from start, as the workflow would (design.md §3) with
// every webhook passing and the canary always ready: steps every interval, the first one without metric checks;
// a failed check halts the step and counts against the threshold (rollback when reached); a hold halts the step;
// otherwise the strategy advances (next weight, or next iteration) or promotes after the last. Steps after now
// are not replayed: the result is then endRunning.
func replay(c *v1beta1.Canary, start, now time.Time, checks checksAt) (replayResult, error) {
	res := replayResult{Start: start, At: start}
	a := c.Spec.Analysis
	if c.Spec.SkipAnalysis || a == nil {
		res.End = endPromote
		return res, nil
	}
	strategy := a.Strategy()
	weight, iterations, failed, mirrored := 0, 0, 0, false
	interval := a.IntervalDuration()
	for k := 0; k < maxReplaySteps; k++ {
		t := start.Add(time.Duration(k) * interval)
		if t.After(now) {
			break
		}
		res.At = t
		if failed >= a.Threshold {
			// Only reachable with a threshold of 0: the workflow rolls back before any check.
			res.End = endRollback
			return res, nil
		}
		st := replayStep{At: t, Weight: weight, Iteration: iterations, Mirrored: mirrored, Decisive: -1,
			First: weight == 0 && iterations == 0 && !mirrored}
		if !st.First && len(a.Metrics) > 0 {
			results, err := checks(t)
			if err != nil {
				return res, err
			}
			st.Checks, st.Decisive = results, activities.Decisive(results)
		}
		if st.Decisive >= 0 {
			d := st.Checks[st.Decisive]
			if d.Verdict == activities.VerdictFail {
				failed++
				st.FailedChecks = failed
				if failed >= a.Threshold {
					st.Then = endRollback
					res.Steps = append(res.Steps, st)
					res.End, res.Decider, res.Reason = endRollback, d.Metric, d.Message
					return res, nil
				}
				st.Then = "halt"
			} else {
				st.FailedChecks = failed
				st.Then = "hold"
			}
			res.Steps = append(res.Steps, st)
			continue
		}
		st.FailedChecks = failed
		switch strategy {
		case v1beta1.StrategyABTesting, v1beta1.StrategyBlueGreen, v1beta1.StrategyBlueGreenMirroring:
			if iterations >= a.Iterations {
				st.Then = endPromote
			} else {
				iterations++
				if strategy == v1beta1.StrategyABTesting {
					weight = 100
				}
				st.Then = "iteration " + strconv.Itoa(iterations) + "/" + strconv.Itoa(a.Iterations)
			}
		default:
			next, more := a.NextWeight(weight)
			switch {
			case !more:
				st.Then = endPromote
			case a.Mirror && weight == 0 && !mirrored:
				// Flagger's canary mirroring: one step of mirrored traffic before shifting any.
				mirrored = true
				st.Then = "mirror"
			default:
				weight, mirrored = next, false
				st.Then = "weight " + strconv.Itoa(next)
			}
		}
		res.Steps = append(res.Steps, st)
		if st.Then == endPromote {
			res.End = endPromote
			return res, nil
		}
	}
	res.End = endRunning
	return res, nil
}
