package chaos

import (
	"fmt"
	"math/rand/v2"
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

// A kill stops one of the two workers (SIGKILL) at a moment of a rollout and starts a new one in its place after
// a while.
type kill struct {
	Slot int           // which of the two workers
	At   time.Duration // after `starter rollout` started
	Down time.Duration // from the kill to the start of the new worker
	// InActivity waits from At for an activity in flight and kills the worker running it, whichever slot: a
	// moment drawn at random almost always falls on a timer, as activities take a few hundred milliseconds of a
	// 10 s step.
	InActivity bool
}

// A release is one rollout of the chaos schedule: its version, whether it must roll back, and its kills.
type release struct {
	Version  string
	RollBack bool
	Kills    []kill
}

// chaosSchedule draws n releases from seed: every third must roll back (a rollout webhook that always fails),
// the others must promote; each has one worker killed at a moment of its first 20 s (a rollout here takes about
// 22–25 s without faults), in one release of three the worker running the first activity in flight after that
// moment, and one in three has the other worker killed as well, up to 5 s later. A worker comes back after 1 to
// 20 s (more than the 10 s interval, at times, so timers fire with nobody polling).
func chaosSchedule(seed uint64, n int) []release {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dur := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(r.Int64N(int64(hi-lo)))
	}
	var out []release
	for i := range n {
		rel := release{Version: fmt.Sprintf("6.1.%d", i+1), RollBack: i%3 == 2}
		first := kill{Slot: r.IntN(2), At: dur(time.Second, 20*time.Second), Down: dur(time.Second, 20*time.Second),
			InActivity: r.IntN(3) == 0}
		rel.Kills = append(rel.Kills, first)
		// Drawn even when not used, so that every release takes the same count of numbers from the generator.
		second := kill{Slot: 1 - first.Slot, At: first.At + dur(0, 5*time.Second), Down: dur(time.Second, 20*time.Second)}
		if r.IntN(3) == 0 && !first.InActivity {
			rel.Kills = append(rel.Kills, second)
		}
		out = append(out, rel)
	}
	return out
}
