package v1beta1

import (
	"fmt"
	"strconv"
	"strings"
)

// Strategy is how a new revision is exposed to traffic during analysis.
type Strategy string

// The strategies, derived from the analysis fields as Flagger derives them.
const (
	// StrategyCanary shifts a growing share of traffic to the canary by weight.
	StrategyCanary Strategy = "canary"
	// StrategyCanarySessionAffinity is a canary whose clients stick to the side they were first routed to.
	StrategyCanarySessionAffinity Strategy = "canary-session-affinity"
	// StrategyABTesting routes only matching requests (headers, cookies) to the canary for a number of iterations.
	StrategyABTesting Strategy = "ab-testing"
	// StrategyBlueGreen tests the canary for a number of iterations without user traffic, then switches.
	StrategyBlueGreen Strategy = "blue-green"
	// StrategyBlueGreenMirroring is blue/green with the primary's traffic mirrored to the canary.
	StrategyBlueGreenMirroring Strategy = "blue-green-mirroring"
)

// Strategy derives the rollout strategy from the analysis: match + iterations is A/B testing, iterations alone is
// blue/green (mirrored when mirror is set), otherwise a weighted canary (sticky when sessionAffinity is set).
func (c *Canary) Strategy() Strategy {
	return c.Spec.Analysis.Strategy()
}

// Strategy derives the rollout strategy; see Canary.Strategy.
func (a *CanaryAnalysis) Strategy() Strategy {
	switch {
	case a == nil:
		return StrategyCanary
	case len(a.Match) > 0 && a.Iterations > 0:
		return StrategyABTesting
	case a.Iterations > 0 && a.Mirror:
		return StrategyBlueGreenMirroring
	case a.Iterations > 0:
		return StrategyBlueGreen
	case a.SessionAffinity != nil:
		return StrategyCanarySessionAffinity
	default:
		return StrategyCanary
	}
}

// Weights returns the canary weights a weighted strategy steps through, in order, ending at the max weight; nil
// for iteration-based strategies. stepWeights wins over stepWeight (as Flagger).
func (a *CanaryAnalysis) Weights() []int {
	if a == nil {
		return nil
	}
	switch a.Strategy() {
	case StrategyCanary, StrategyCanarySessionAffinity:
	default:
		return nil
	}
	if len(a.StepWeights) > 0 {
		return append([]int(nil), a.StepWeights...)
	}
	maxWeight := a.MaxWeight
	if maxWeight <= 0 {
		maxWeight = DefaultMaxWeight
	}
	if a.StepWeight <= 0 {
		return nil
	}
	var out []int
	for w := a.StepWeight; ; w += a.StepWeight {
		if w >= maxWeight {
			out = append(out, maxWeight)
			return out
		}
		out = append(out, w)
	}
}

// NextWeight returns the canary weight after current, and whether there is one (false at the max weight).
func (a *CanaryAnalysis) NextWeight(current int) (int, bool) {
	for _, w := range a.Weights() {
		if w > current {
			return w, true
		}
	}
	return current, false
}

// PromotionWeights returns the canary weights while traffic moves back to the primary after promotion when
// stepWeightPromotion is set (e.g. 50 → 30, 10, 0 for 20); otherwise just 0.
func (a *CanaryAnalysis) PromotionWeights(from int) []int {
	if a == nil || a.StepWeightPromotion <= 0 {
		return []int{0}
	}
	var out []int
	for w := from - a.StepWeightPromotion; w > 0; w -= a.StepWeightPromotion {
		out = append(out, w)
	}
	return append(out, 0)
}

// Schedule describes in one line how the analysis proceeds, e.g. "5,10,…,50 → promote".
func (c *Canary) Schedule() string {
	a := c.Spec.Analysis
	if c.Spec.SkipAnalysis {
		return "skip analysis → promote"
	}
	if a == nil {
		return "no analysis"
	}
	var b strings.Builder
	switch a.Strategy() {
	case StrategyABTesting:
		fmt.Fprintf(&b, "%d iterations on matching requests → promote", a.Iterations)
	case StrategyBlueGreen:
		fmt.Fprintf(&b, "%d iterations → switch → promote", a.Iterations)
	case StrategyBlueGreenMirroring:
		fmt.Fprintf(&b, "%d iterations mirrored (%d%%) → switch → promote", a.Iterations, a.MirrorWeight)
	default:
		b.WriteString(compactList(a.Weights()))
		b.WriteString(" → promote")
		if a.StepWeightPromotion > 0 {
			b.WriteString(" (" + compactList(a.PromotionWeights(lastOr(a.Weights(), 0))) + ")")
		}
	}
	return b.String()
}

func lastOr(ws []int, def int) int {
	if len(ws) == 0 {
		return def
	}
	return ws[len(ws)-1]
}

// compactList writes an arithmetic progression of more than five numbers as "a,b,…,z".
func compactList(ws []int) string {
	if len(ws) == 0 {
		return "(no weights)"
	}
	strs := make([]string, len(ws))
	for i, w := range ws {
		strs[i] = strconv.Itoa(w)
	}
	if len(ws) > 5 {
		step := ws[1] - ws[0]
		regular := true
		for i := 2; i < len(ws)-1; i++ {
			if ws[i]-ws[i-1] != step {
				regular = false
			}
		}
		if regular {
			return strs[0] + "," + strs[1] + ",…," + strs[len(strs)-1]
		}
	}
	return strings.Join(strs, ",")
}
