package activities_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/canaryflow/canaryflow/activities"
)

// An Admit with a bound waits while the rollouts at work fill it and lets the release in once one of them is done;
// a release it admitted counts until visibility can have seen it; when the bound stays full it gives its slot up with a benign, retryable error that names the counts; a count
// that fails is an error that names visibility. Without a bound it completes at once without counting.
func TestAdmitWaitsWhileTheRolloutsAtWorkFillTheBound(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	atWork := atomic.Int64{}
	var queries []string
	a := &activities.Admission{MaxAtWork: 2, TaskQueue: "team-a", AtWork: "the query of team-a's rollouts at work", Poll: 10 * time.Millisecond, Hold: time.Minute, Settle: 50 * time.Millisecond,
		Count: func(_ context.Context, q string) (int64, error) {
			queries = append(queries, q)
			return atWork.Load(), nil
		}}
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	in := activities.AdmitInput{Canary: "podinfo.test", Revision: "abc"}

	atWork.Store(1)
	_, err := env.ExecuteActivity(a.Admit, in)
	require.NoError(t, err, "one at work, two allowed")
	assert.Equal(t, []string{"the query of team-a's rollouts at work"}, queries)

	atWork.Store(2)
	done := make(chan error, 1)
	go func() { _, err := env.ExecuteActivity(a.Admit, in); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("admitted with the bound full: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	atWork.Store(1)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("not admitted after a rollout at work was done")
	}

	a.Hold = 50 * time.Millisecond
	atWork.Store(3)
	_, err = env.ExecuteActivity(a.Admit, in)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	assert.Equal(t, activities.ErrTypeAtWorkBound, appErr.Type())
	assert.False(t, appErr.NonRetryable(), "tried again after the retry backoff")
	assert.Equal(t, temporal.ApplicationErrorCategoryBenign, appErr.Category())
	assert.Contains(t, appErr.Error(), "podinfo.test revision abc waits: ")
	assert.Contains(t, appErr.Error(), "rollouts at work on task queue team-a, at most 2 (--max-releases-at-work)")

	a.Count = func(context.Context, string) (int64, error) { return 0, errors.New("visibility unavailable") }
	_, err = env.ExecuteActivity(a.Admit, in)
	require.ErrorContains(t, err, "count the rollouts at work of task queue team-a in Temporal visibility: visibility unavailable")

	// A release admitted here counts as at work until visibility can have seen it (Settle): the next Admit, with
	// visibility still at 0, waits.
	a.Count = func(context.Context, string) (int64, error) { return 0, nil }
	a.MaxAtWork, a.Settle, a.Hold = 1, time.Minute, 50*time.Millisecond
	_, err = env.ExecuteActivity(a.Admit, in)
	require.NoError(t, err)
	_, err = env.ExecuteActivity(a.Admit, in)
	require.ErrorContains(t, err, "waits: 1 rollouts at work on task queue team-a, at most 1", "the release just admitted counts")

	a.MaxAtWork = 0
	_, err = env.ExecuteActivity(a.Admit, in)
	require.NoError(t, err, "no bound: no count")
}
