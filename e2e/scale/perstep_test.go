//go:build lab

package scale

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// An analysis step costs the requests of the calls made in it, each call at its type's average over the rollouts
// (retries included): the promotion's and finalisation's requests do not count, and a type that asks nothing of
// the API server (the metric checks) costs nothing.
func TestPerStepCountsTheRequestsOfTheStepsCalls(t *testing.T) {
	c := activityCalls{
		all:     map[string]int{"CheckReady": 10, "RunChecks": 8, "SetRoutes": 10, "PromoteWorkloads": 2},
		inSteps: map[string]int{"CheckReady": 8, "RunChecks": 8, "SetRoutes": 8},
		steps:   8,
	}
	requests := map[string]int{"CheckReady": 10, "SetRoutes": 12, "PromoteWorkloads": 30, "none": 5}
	v, ok := c.perStep(requests)
	assert.True(t, ok)
	assert.InDelta(t, 2.2, v, 1e-9, "one readiness read, 1.2 route applies (one in five retried)")

	_, ok = activityCalls{all: map[string]int{}, inSteps: map[string]int{}}.perStep(requests)
	assert.False(t, ok, "no step seen, no figure")
}
