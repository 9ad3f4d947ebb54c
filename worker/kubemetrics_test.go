package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

	assert.Equal(t, 3.0, testutil.ToFloat64(k.total.WithLabelValues("GET", "200")))
	assert.Equal(t, 1.0, testutil.ToFloat64(k.total.WithLabelValues("GET", "404")))
	assert.Equal(t, 2, testutil.CollectAndCount(k.total), "one series per method and code")
	assert.Nil(t, base.WrapTransport, "instrumenting must not change the config it was given")
}
