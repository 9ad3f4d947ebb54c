package chaos

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A failure names its seed; the seed must give back the same schedule, and the schedule must keep its promises:
// both outcomes, kills within the rollout's first 20 s, workers back within 20 s.
func TestChaosScheduleIsReplayableFromItsSeed(t *testing.T) {
	for _, seed := range []uint64{1, 1795985614051161717, 42} {
		a, b := chaosSchedule(seed, 10), chaosSchedule(seed, 10)
		require.Equal(t, a, b, "seed %d", seed)
		require.NotEqual(t, a, chaosSchedule(seed+1, 10), "seed %d and the next", seed)
		rollbacks := 0
		for i, rel := range a {
			if rel.RollBack {
				rollbacks++
			}
			require.NotEmpty(t, rel.Kills, "seed %d release %d", seed, i)
			for _, k := range rel.Kills {
				require.GreaterOrEqual(t, k.At, time.Second)
				require.Less(t, k.At, 25*time.Second)
				require.GreaterOrEqual(t, k.Down, time.Second)
				require.Less(t, k.Down, 20*time.Second)
			}
			if len(rel.Kills) == 2 {
				require.NotEqual(t, rel.Kills[0].Slot, rel.Kills[1].Slot, "both workers, not one twice")
			}
		}
		require.Equal(t, 3, rollbacks, "seed %d: releases 3, 6 and 9 must roll back", seed)
	}
}
