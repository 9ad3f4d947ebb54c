package main

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
)

// Many rollouts of different canaries at once while one of them fails: the failing one rolls back, the others
// promote on their own schedule, and no rollout's decision leaks into another's.
func TestManyRolloutsAtOnceWhileOneFails(t *testing.T) {
	t.Parallel()
	e := startTemporal(t)
	const n = 6
	e.cluster.Set("many", "app-3", func(c *activitiestest.Canary) { c.SuccessRate = 42 })
	codes := make([]int, n)
	outs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("app-%d", i)
			f := canaryFile(t, "many", name, "stepWeights: [25, 50]", "")
			var errOut string
			codes[i], outs[i], errOut = e.starter("rollout", "-f", f, "--wait", "--timeout", "5m")
			outs[i] += errOut
		}()
	}
	wg.Wait()
	for i := range n {
		name := fmt.Sprintf("app-%d", i)
		routes := e.cluster.Get("many", name).Routes
		if i == 3 {
			require.Equal(t, 1, codes[i], outs[i])
			assert.Equal(t, []string{"75/25", "100/0"}, routes, name)
			assert.Contains(t, outs[i], "rolled back: Rolling back app-3.many failed checks threshold reached 1")
			continue
		}
		require.Equal(t, 0, codes[i], "%s:\n%s", name, outs[i])
		assert.Equal(t, []string{"75/25", "50/50", "100/0"}, routes, name)
		assert.NotContains(t, outs[i], "app-3", "%s's output speaks only of its own rollout", name)
	}
}
