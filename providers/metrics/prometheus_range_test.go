package metrics

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/providers/metrics/promtest"
)

// TestPrometheusRangeQueryAnswersAsInstantQueriesWouldAtEachTime backfills a real Prometheus with a gauge
// recorded every 15 s for four hours, with no samples during one 10-minute gap, and reads 3.5 hours of it at a 1 s
// step: more points than Prometheus serves in one query, so the range is asked in parts. Every time has the
// value an instant query at that time answers (the last sample at or before it), and the times inside the gap
// past Prometheus' 5-minute lookback have none (no data), as RunQuery's ErrNoValues.
func TestPrometheusRangeQueryAnswersAsInstantQueriesWouldAtEachTime(t *testing.T) {
	t.Parallel()
	t0 := time.Now().Add(-5 * time.Hour).Truncate(time.Hour).UTC()
	gapFrom, gapTo := t0.Add(time.Hour), t0.Add(time.Hour+10*time.Minute)
	var b strings.Builder
	b.WriteString("# TYPE recorded gauge\n")
	for ts := t0; ts.Before(t0.Add(4 * time.Hour)); ts = ts.Add(15 * time.Second) {
		if !ts.Before(gapFrom) && ts.Before(gapTo) {
			continue
		}
		fmt.Fprintf(&b, "recorded %d %d\n", ts.Unix()-t0.Unix(), ts.Unix())
	}
	b.WriteString("# EOF\n")
	prom := promtest.StartWithHistory(t, b.String())

	p, err := NewPrometheus(Config{Address: prom})
	require.NoError(t, err)
	start, end := t0.Add(10*time.Minute), t0.Add(3*time.Hour+40*time.Minute)
	samples, err := p.RunRangeQuery(context.Background(), "max(\n  recorded\n)", start, end, time.Second)
	require.NoError(t, err)

	noData := 0
	got := map[int64]float64{}
	for _, s := range samples {
		got[s.At.Unix()] = s.Value
	}
	for ts := start; !ts.After(end); ts = ts.Add(time.Second) {
		last := ts.Truncate(15 * time.Second)
		inGap := !last.Before(gapFrom) && last.Before(gapTo)
		if inGap && ts.Sub(gapFrom.Add(-15*time.Second)) > 5*time.Minute {
			noData++
			_, has := got[ts.Unix()]
			require.False(t, has, "no sample within the lookback at %s", ts)
			continue
		}
		if inGap {
			last = gapFrom.Add(-15 * time.Second)
		}
		v, has := got[ts.Unix()]
		require.True(t, has, "a value at %s", ts)
		require.Equal(t, float64(last.Unix()-t0.Unix()), v, ts.String())
	}
	require.Greater(t, int(end.Sub(start)/time.Second)+1, maxRangePoints, "the window needs more than one query")
	require.Positive(t, noData)
	require.Len(t, samples, int(end.Sub(start)/time.Second)+1-noData)
}
