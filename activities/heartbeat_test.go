package activities

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
)

// An activity's heartbeats end before it returns: stop waits for a heartbeat being recorded, so that none reaches
// the server for an attempt that has already completed.
func TestHeartbeatsStopBeforeTheActivityReturns(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release // a heartbeat the server is slow to take
	})
	stopped := make(chan struct{})
	wait := func(ctx context.Context) error {
		stop := heartbeat(ctx, time.Millisecond)
		<-entered
		go func() { time.Sleep(50 * time.Millisecond); close(release) }()
		stop()
		close(stopped)
		return nil
	}
	env.RegisterActivity(wait)
	done := make(chan error, 1)
	go func() { _, err := env.ExecuteActivity(wait); done <- err }()
	select {
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("stop did not return after the heartbeat in flight was recorded")
	}
	select {
	case <-release:
	default:
		t.Fatal("stop returned while a heartbeat was still being recorded")
	}
	require.NoError(t, <-done)
}
