// Package mannwhitney implements the Mann–Whitney U test (the Wilcoxon rank-sum test) and the effect size the
// statistical judge reports: it says whether a canary's samples tend to lie above or below the primary's without
// assuming any distribution, which latency and error-rate series never follow.
package mannwhitney

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Alternative is the hypothesis the test looks for evidence of.
type Alternative int

// The alternatives, as SciPy's mannwhitneyu names them: x tends to be greater than y, less than y, or either.
const (
	TwoSided Alternative = iota
	Greater
	Less
)

// ExactBelow is the sample size under which the p-value comes from the exact permutation distribution: with
// fewer than 8 values on a side the normal approximation is too coarse (SciPy draws the line at the same place).
const ExactBelow = 8

// Result is the outcome of one test.
type Result struct {
	// U is the statistic of x: the number of pairs (x_i, y_j) with x_i > y_j, ties counting one half.
	U float64
	// P is the p-value for the alternative asked.
	P float64
	// Exact says P comes from the exact distribution (a side smaller than ExactBelow), not the normal approximation.
	Exact bool
	// N1 and N2 are the sizes of x and y.
	N1, N2 int
}

// ErrEmpty is returned when a sample has no values.
var ErrEmpty = errors.New("mann-whitney: a sample is empty")

// Test runs the Mann–Whitney U test of x against y. Ties get mid-ranks. With at least ExactBelow values on each
// side the p-value is the normal approximation with the tie correction of the variance and a continuity correction
// of 0.5 (SciPy's method="asymptotic", use_continuity=True); otherwise it is the exact permutation distribution of
// the rank sum, computed over the mid-ranks actually present, so it stays exact with ties (where SciPy's "exact"
// assumes none).
func Test(x, y []float64, alt Alternative) (Result, error) {
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return Result{}, ErrEmpty
	}
	for _, v := range append(append([]float64(nil), x...), y...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Result{}, fmt.Errorf("mann-whitney: sample value %v is not a finite number", v)
		}
	}
	ranks2, tieTerm := doubledRanks(x, y)
	var r1x2 int // twice the rank sum of x
	for _, r := range ranks2[:n1] {
		r1x2 += r
	}
	u1 := float64(r1x2)/2 - float64(n1*(n1+1))/2
	res := Result{U: u1, N1: n1, N2: n2}
	if n1 < ExactBelow || n2 < ExactBelow {
		res.P, res.Exact = exactP(ranks2, n1, r1x2, alt), true
		return res, nil
	}
	res.P = asymptoticP(u1, n1, n2, tieTerm, alt)
	return res, nil
}

// doubledRanks returns twice the mid-rank of every value of x then y (integers, so the exact distribution can be
// counted over them) and Σ(t³−t) over the groups of t tied values.
func doubledRanks(x, y []float64) ([]int, float64) {
	n := len(x) + len(y)
	idx := make([]int, n)
	val := func(i int) float64 {
		if i < len(x) {
			return x[i]
		}
		return y[i-len(x)]
	}
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return val(idx[a]) < val(idx[b]) })
	ranks := make([]int, n)
	var tie float64
	for i := 0; i < n; {
		j := i
		for j+1 < n && val(idx[j+1]) == val(idx[i]) {
			j++
		}
		// positions i..j (0-based) share the mid-rank ((i+1)+(j+1))/2; doubled: i+j+2.
		for k := i; k <= j; k++ {
			ranks[idx[k]] = i + j + 2
		}
		t := float64(j - i + 1)
		tie += t*t*t - t
		i = j + 1
	}
	return ranks, tie
}

func asymptoticP(u1 float64, n1, n2 int, tieTerm float64, alt Alternative) float64 {
	n := float64(n1 + n2)
	mu := float64(n1) * float64(n2) / 2
	sigma := math.Sqrt(float64(n1) * float64(n2) / 12 * ((n + 1) - tieTerm/(n*(n-1))))
	if sigma == 0 {
		return 1 // every value is the same: no evidence of any difference
	}
	u := u1
	switch alt {
	case Less:
		u = float64(n1)*float64(n2) - u1
	case TwoSided:
		u = max(u1, float64(n1)*float64(n2)-u1)
	}
	z := (u - mu - 0.5) / sigma
	p := 0.5 * math.Erfc(z/math.Sqrt2)
	if alt == TwoSided {
		p *= 2
	}
	return min(max(p, 0), 1)
}

// exactP counts, over every way of choosing n1 of the pooled values as "x", how often the doubled rank sum is at
// least (Greater) or at most (Less) the observed one. Counts are float64: C(n, 7) stays well within its range.
func exactP(ranks2 []int, n1, observed int, alt Alternative) float64 {
	maxSum := 0
	for _, r := range ranks2 {
		maxSum += r
	}
	// ways[k][s]: subsets of size k of the values seen so far whose doubled ranks sum to s.
	ways := make([][]float64, n1+1)
	for k := range ways {
		ways[k] = make([]float64, maxSum+1)
	}
	ways[0][0] = 1
	for _, r := range ranks2 {
		for k := n1; k >= 1; k-- {
			prev, cur := ways[k-1], ways[k]
			for s := maxSum; s >= r; s-- {
				cur[s] += prev[s-r]
			}
		}
	}
	var total, ge, le float64
	for s, c := range ways[n1] {
		total += c
		if s >= observed {
			ge += c
		}
		if s <= observed {
			le += c
		}
	}
	switch alt {
	case Greater:
		return ge / total
	case Less:
		return le / total
	}
	return min(2*min(ge, le)/total, 1)
}

// Median is the middle value of xs (the mean of the two middle ones for an even count); NaN for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// RelativeChange is the effect size the judge reports: (canary − primary) / |primary| of the two medians, so
// +0.214 reads "21.4% higher". A primary median of 0 divides by the canary's instead (0 → 5 is +100%), and two
// zero medians are no change: the figure is always finite, as JSON needs.
func RelativeChange(canary, primary float64) float64 {
	d := math.Abs(primary)
	if d == 0 {
		d = math.Abs(canary)
	}
	if d == 0 {
		return 0
	}
	return (canary - primary) / d
}
