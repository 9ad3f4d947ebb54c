package labtest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// With CANARYFLOW_LAB=off nothing is started and the reason is clear.
func TestOffRefusesToStart(t *testing.T) {
	t.Setenv("CANARYFLOW_LAB", "off")
	_, err := ensure()
	require.ErrorContains(t, err, "CANARYFLOW_LAB=off")
}
