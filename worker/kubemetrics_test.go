package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Every request a client built from the instrumented config sends is counted once, with the code the server
// answered, including refusals; the original config stays uncounted.
func TestKubeRequestsCountsWhatTheClientSends(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/v1/namespaces/test/configmaps/missing" {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`))
			return
		}
		_, _ = w.Write([]byte(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"test"}}`))
	}))
	defer srv.Close()

	base := &rest.Config{Host: srv.URL}
	k := newKubeRequests()
	counted, err := kubernetes.NewForConfig(k.instrument(base))
	require.NoError(t, err)
	plain, err := kubernetes.NewForConfig(base)
	require.NoError(t, err)

	ctx := context.Background()
	for range 3 {
		_, err = counted.CoreV1().ConfigMaps("test").Get(ctx, "cm", metav1.GetOptions{})
		require.NoError(t, err)
	}
	_, err = counted.CoreV1().ConfigMaps("test").Get(ctx, "missing", metav1.GetOptions{})
	require.Error(t, err)
	_, err = plain.CoreV1().ConfigMaps("test").Get(ctx, "cm", metav1.GetOptions{})
	require.NoError(t, err)

	assert.Equal(t, 3.0, testutil.ToFloat64(k.total.WithLabelValues("GET", "200", "none")))
	assert.Equal(t, 1.0, testutil.ToFloat64(k.total.WithLabelValues("GET", "404", "none")))
	assert.Equal(t, 2, testutil.CollectAndCount(k.total), "one series per method, code and activity")
	assert.Nil(t, base.WrapTransport, "instrumenting must not change the config it was given")
}

// A request an activity makes is counted under the activity's type, as the workflow history names it, whether it
// ran as an activity task or as a local activity; the worker's own requests count as "none". This is what tells an
// operator which part of a rollout spends the API server's requests.
func TestKubeRequestsNameTheActivityThatMadeThem(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"test"}}`))
	}))
	defer srv.Close()
	k := newKubeRequests()
	counted, err := kubernetes.NewForConfig(k.instrument(&rest.Config{Host: srv.URL}))
	require.NoError(t, err)
	get := func(ctx context.Context, times int) error {
		for range times {
			if _, err := counted.CoreV1().ConfigMaps("test").Get(ctx, "cm", metav1.GetOptions{}); err != nil {
				return err
			}
		}
		return nil
	}

	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(func(ctx context.Context) error { return get(ctx, 2) },
		activity.RegisterOptions{Name: "SetRoutes"})
	_, err = env.ExecuteActivity("SetRoutes")
	require.NoError(t, err)
	_, err = env.ExecuteLocalActivity(checkReady, get)
	require.NoError(t, err)
	require.NoError(t, get(context.Background(), 1))

	assert.Equal(t, 2.0, testutil.ToFloat64(k.total.WithLabelValues("GET", "200", "SetRoutes")))
	assert.Equal(t, 3.0, testutil.ToFloat64(k.total.WithLabelValues("GET", "200", "checkReady")))
	assert.Equal(t, 1.0, testutil.ToFloat64(k.total.WithLabelValues("GET", "200", "none")))
	assert.Equal(t, 3, testutil.CollectAndCount(k.total))
}

// checkReady stands for a local activity; the SDK names it after the function.
func checkReady(ctx context.Context, get func(context.Context, int) error) error { return get(ctx, 3) }
