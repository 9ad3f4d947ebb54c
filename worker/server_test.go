package main

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Go's profiles are served on the ops port only when --pprof (CANARYFLOW_PPROF=true) asks for them: a heap
// profile shows where a busy worker's memory goes, and shows internals no one should reach by default.
func TestProfilesAreServedOnlyWhenAskedFor(t *testing.T) {
	get := func(profiles bool, path string) (int, string) {
		s, err := newOpsServer("127.0.0.1:0", newRegistry(), profiles)
		require.NoError(t, err)
		go func() { _ = s.serve() }()
		defer func() { _ = s.shutdown(context.Background()) }()
		resp, err := http.Get("http://" + s.addr() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	code, _ := get(false, "/debug/pprof/heap")
	assert.Equal(t, http.StatusNotFound, code, "no profiles by default")
	code, _ = get(false, "/metrics")
	assert.Equal(t, http.StatusOK, code)

	code, body := get(true, "/debug/pprof/heap?debug=1")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "heap profile:")
	code, body = get(true, "/debug/pprof/goroutine?debug=1")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "goroutine profile:")

	cfg, err := parseConfig([]string{"--pprof"})
	require.NoError(t, err)
	assert.True(t, cfg.pprof)
	t.Setenv("CANARYFLOW_PPROF", "true")
	cfg, err = parseConfig(nil)
	require.NoError(t, err)
	assert.True(t, cfg.pprof, "CANARYFLOW_PPROF=true")
}
