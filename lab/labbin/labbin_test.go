package labbin

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBinaryPaths(t *testing.T) {
	t.Setenv("CANARYFLOW_CACHE", "/x")
	require.Equal(t, "/x/lab/bin/temporal", Temporal())
	require.Equal(t, "/x/lab/bin/kubectl", Kubectl())
}
