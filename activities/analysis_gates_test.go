package activities_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/canaryflow/canaryflow/activities"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/loadtester"
)

// A confirm-rollout hook at the load tester's /gate/check: closed, it fails with the load tester's hint; once a
// person opens the gate naming themselves, the hook passes and its result's reason (what the rollout's history
// shows) names who opened it, when and why. Rollback hooks read the rollback gate likewise.
func TestGateHookResultNamesWhoOpenedTheGate(t *testing.T) {
	srv := httptest.NewServer(loadtester.New(loadtester.Config{}).Handler())
	defer srv.Close()
	a := &activities.Analysis{}
	hook := func(typ v1beta1.HookType, path string) activities.WebhookResult {
		in := activities.WebhookInput{
			Hook:    v1beta1.CanaryWebhook{Type: typ, Name: "ask", URL: srv.URL + path, Timeout: "2s"},
			Payload: activities.WebhookPayload{Name: "podinfo", Namespace: "test", Phase: "Waiting", Checksum: "7f9c5d"},
		}
		r, err := a.CallWebhook(context.Background(), in)
		require.NoError(t, err)
		return r
	}
	open := func(path, body string) {
		resp, err := http.Post(srv.URL+path, "application/x-www-form-urlencoded", strings.NewReader(body))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
	}

	r := hook(v1beta1.ConfirmRolloutHook, "/gate/check")
	require.False(t, r.Passed)
	require.Equal(t, http.StatusForbidden, r.StatusCode)
	require.Contains(t, r.Reason, "gate of test/podinfo is closed; POST")

	open("/gate/open", `{"name":"podinfo","namespace":"test","by":"alice","reason":"change 42 approved"}`)
	r = hook(v1beta1.ConfirmRolloutHook, "/gate/check")
	require.True(t, r.Passed)
	require.Regexp(t, `^Approved: gate opened by alice at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: change 42 approved$`, r.Reason)

	require.False(t, hook(v1beta1.RollbackHook, "/rollback/check").Passed)
	open("/rollback/open", `{"name":"podinfo","namespace":"test","by":"bob"}`)
	r = hook(v1beta1.RollbackHook, "/rollback/check")
	require.True(t, r.Passed)
	require.Regexp(t, `^Approved: rollback opened by bob at \S+Z$`, r.Reason)
}
