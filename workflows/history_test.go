package workflows

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
)

// SplitSet reads every split of a rollout from its history, whether the splits were activities (before
// versionLeanHistory) or local activities' markers (after): the same splits, in the same order.
func TestSplitSetReadsTheSplitsOfHistoriesBeforeAndAfterTheLeanHistory(t *testing.T) {
	want := []string{"90/10", "80/20", "70/30", "60/40", "50/50", "40/60", "30/70", "20/80", "10/90", "0/100", "100/0"}
	for _, file := range []string{"ten-steps.json", "ten-steps-v2.json", "ten-steps-v3.json"} {
		f, err := os.Open(filepath.Join(historiesDir, file))
		require.NoError(t, err)
		hist, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
		f.Close()
		require.NoError(t, err)
		var got []string
		for _, ev := range hist.GetEvents() {
			if s, ok := SplitSet(ev); ok {
				got = append(got, fmt.Sprintf("%d/%d", s.PrimaryWeight, s.CanaryWeight))
			}
		}
		require.Equal(t, want, got, file)
	}
}
