package searchattr_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

func TestDefinitionsAreStableAndTyped(t *testing.T) {
	want := []searchattr.Definition{
		{Name: "CanaryName", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		{Name: "CanaryNamespace", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		{Name: "CanaryPhase", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		{Name: "CanaryWeight", Type: enumspb.INDEXED_VALUE_TYPE_INT},
		{Name: "CanaryRevision", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
		{Name: "CanaryProvider", Type: enumspb.INDEXED_VALUE_TYPE_KEYWORD},
	}
	require.Equal(t, want, searchattr.Definitions())
	require.Equal(t, searchattr.Definitions(), searchattr.Definitions())
}
