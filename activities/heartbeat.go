package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
)

// heartbeat records a heartbeat of the activity of ctx every interval until the returned stop is called (the SDK
// sends at most one per 80% of the heartbeat timeout): a long activity stays alive, and learns of its cancellation,
// while it waits on something else. stop returns once the heartbeats have stopped, so that none is recorded after the
// activity has returned (the server would answer it for an activity that no longer runs).
func heartbeat(ctx context.Context, interval time.Duration) (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}
