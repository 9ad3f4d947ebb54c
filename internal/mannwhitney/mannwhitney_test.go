package mannwhitney_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/internal/mannwhitney"
)

// Reference values computed offline with SciPy 1.10.1 (Debian python3-scipy):
//
//	scipy.stats.mannwhitneyu(x, y, alternative=alt, method="asymptotic", use_continuity=True)  # n ≥ 8 a side
//	scipy.stats.mannwhitneyu(x, y, alternative=alt, method="exact")                           # small, no ties
//
// SciPy's exact method assumes no ties, so the small sample with ties is checked against a brute-force
// enumeration of every split of the pooled values (itertools.combinations over scipy.stats.rankdata mid-ranks),
// the conditional permutation distribution our exact path counts.
func TestPValuesMatchSciPy(t *testing.T) {
	type want struct{ twoSided, greater, less float64 }
	cases := []struct {
		name  string
		x, y  []float64
		u     float64
		exact bool
		want  want
	}{
		{
			name: "normal approximation, no ties",
			x:    []float64{19.1, 21.4, 18.7, 22.9, 20.3, 24.8, 23.5, 19.9, 25.2, 21.8},
			y:    []float64{17.2, 18.9, 16.4, 20.1, 17.8, 19.5, 16.9, 18.2, 21.0, 17.5, 18.8},
			u:    99,
			want: want{0.0021899994345199467, 0.0010949997172599733, 0.9991366067577331},
		},
		{
			name: "normal approximation, ties correct the variance",
			x:    []float64{3, 4, 4, 5, 6, 6, 6, 7, 8, 9, 9, 10},
			y:    []float64{2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 1},
			u:    115,
			want: want{0.22831667877774653, 0.11415833938887326, 0.8950568330282433},
		},
		{
			name: "exact distribution, small samples without ties",
			x:    []float64{1.8, 2.9, 3.4, 4.1, 5.7},
			y:    []float64{0.9, 1.2, 2.2, 2.6, 3.1, 3.3},
			u:    24, exact: true,
			want: want{0.12554112554112554, 0.06277056277056277, 0.958874458874459},
		},
		{
			name: "exact distribution, small samples with ties (enumeration)",
			x:    []float64{3, 5, 5, 7, 9},
			y:    []float64{1, 3, 4, 5, 6, 6, 8},
			u:    21.5, exact: true,
			want: want{0.5681818181818182, 0.2840909090909091, 0.7563131313131313},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for alt, p := range map[mannwhitney.Alternative]float64{
				mannwhitney.TwoSided: c.want.twoSided, mannwhitney.Greater: c.want.greater, mannwhitney.Less: c.want.less,
			} {
				r, err := mannwhitney.Test(c.x, c.y, alt)
				require.NoError(t, err)
				require.Equal(t, c.u, r.U)
				require.Equal(t, c.exact, r.Exact)
				require.Equal(t, len(c.x), r.N1)
				require.Equal(t, len(c.y), r.N2)
				require.InDelta(t, p, r.P, 1e-12, "alternative %d", alt)
			}
		})
	}
}

func noisy(r *rand.Rand, n int, center, spread float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = center + r.NormFloat64()*spread
	}
	return out
}

func TestIdenticalSamplesGiveNoEvidence(t *testing.T) {
	for _, n := range []int{5, 20, 60} {
		x := noisy(rand.New(rand.NewPCG(1, uint64(n))), n, 100, 10)
		r, err := mannwhitney.Test(x, append([]float64(nil), x...), mannwhitney.TwoSided)
		require.NoError(t, err)
		require.InDelta(t, 1, r.P, 1e-9, "n=%d", n)
	}
	// Every value the same: the variance is zero, and there is no evidence either way.
	flat := []float64{7, 7, 7, 7, 7, 7, 7, 7, 7}
	for _, alt := range []mannwhitney.Alternative{mannwhitney.TwoSided, mannwhitney.Greater, mannwhitney.Less} {
		r, err := mannwhitney.Test(flat, flat, alt)
		require.NoError(t, err)
		require.Greater(t, r.P, 0.5)
	}
}

// The alternative decides which shift is evidence: a canary 20% slower is significant for "greater" (and
// two-sided), and no evidence at all for "less".
func TestShiftedSamplesAreSignificantOnlyInTheirDirection(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	primary := noisy(r, 30, 100, 8)
	canary := noisy(r, 30, 120, 8)
	greater, err := mannwhitney.Test(canary, primary, mannwhitney.Greater)
	require.NoError(t, err)
	require.Less(t, greater.P, 1e-6)
	two, err := mannwhitney.Test(canary, primary, mannwhitney.TwoSided)
	require.NoError(t, err)
	require.Less(t, two.P, 1e-6)
	require.InDelta(t, 2*greater.P, two.P, 1e-15)
	less, err := mannwhitney.Test(canary, primary, mannwhitney.Less)
	require.NoError(t, err)
	require.Greater(t, less.P, 0.999)

	// Small samples take the exact path and still see a clean separation: 1/C(10,5) one-sided.
	small, err := mannwhitney.Test([]float64{6, 7, 8, 9, 10}, []float64{1, 2, 3, 4, 5}, mannwhitney.Greater)
	require.NoError(t, err)
	require.True(t, small.Exact)
	require.InDelta(t, 1.0/252, small.P, 1e-15)
}

func TestBadSamplesAreRefused(t *testing.T) {
	_, err := mannwhitney.Test(nil, []float64{1}, mannwhitney.TwoSided)
	require.ErrorIs(t, err, mannwhitney.ErrEmpty)
	_, err = mannwhitney.Test([]float64{math.NaN()}, []float64{1}, mannwhitney.TwoSided)
	require.ErrorContains(t, err, "not a finite number")
}

func TestMedianAndRelativeChange(t *testing.T) {
	require.Equal(t, 3.0, mannwhitney.Median([]float64{5, 1, 3}))
	require.Equal(t, 2.5, mannwhitney.Median([]float64{4, 1, 3, 2}))
	require.True(t, math.IsNaN(mannwhitney.Median(nil)))
	require.InDelta(t, 0.214, mannwhitney.RelativeChange(121.4, 100), 1e-12)
	require.InDelta(t, -0.5, mannwhitney.RelativeChange(-3, -2), 1e-12, "relative to the primary's magnitude")
	require.Equal(t, 1.0, mannwhitney.RelativeChange(5, 0))
	require.Equal(t, 0.0, mannwhitney.RelativeChange(0, 0))
}
