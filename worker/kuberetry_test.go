package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// A request of the worker's clients that fails in a way that passes (a server error, a reset connection, no
// answer) is tried again within the same call, so one bad answer no longer fails a whole activity; a conflict is
// left to the activity, which reads the object again. Every try is counted in canaryflow_kube_requests_total.
func TestKubeRequestsThatFailInPassingAreTriedAgain(t *testing.T) {
	const configMap = `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"test"}}`
	fail := map[string]func(w http.ResponseWriter, r *http.Request){
		"500": func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) },
		"503": func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
		"reset": func(w http.ResponseWriter, _ *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				_ = conn.(*net.TCPConn).SetLinger(0)
				_ = conn.Close()
			}
		},
		"hung": func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
		"409": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409}`))
		},
	}
	tests := []struct {
		name     string
		fault    string
		failures int64
		write    bool
		wantErr  func(error) bool // nil: the call succeeds
		wantSent int64
	}{
		{name: "a read through two 500s", fault: "500", failures: 2, wantSent: 3},
		{name: "an apply through three 503s", fault: "503", failures: 3, write: true, wantSent: 4},
		{name: "an apply through two resets", fault: "reset", failures: 2, write: true, wantSent: 3},
		{name: "a read through a hung try", fault: "hung", failures: 1, wantSent: 2},
		{name: "a read failing every try fails", fault: "500", failures: 10, wantErr: apierrors.IsInternalError, wantSent: kubeTries},
		{name: "an apply's conflict is the activity's", fault: "409", failures: 1, write: true, wantErr: apierrors.IsConflict, wantSent: 1},
	}
	kubeTryTimeout = time.Second // the hung try gives up sooner than the worker's
	t.Cleanup(func() { kubeTryTimeout = 10 * time.Second })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sent atomic.Int64
			var body atomic.Value
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := sent.Add(1)
				if r.Method == http.MethodPatch {
					b := make([]byte, 4096)
					k, _ := r.Body.Read(b)
					body.Store(string(b[:k]))
				}
				if n <= tt.failures {
					fail[tt.fault](w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(configMap))
			}))
			defer srv.Close()
			k := newKubeRequests()
			cs, err := kubernetes.NewForConfig(retryKube(k.instrument(&rest.Config{Host: srv.URL})))
			require.NoError(t, err)

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			if tt.write {
				patch := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"k":"v"}}`)
				_, err = cs.CoreV1().ConfigMaps("test").Patch(ctx, "cm", types.ApplyPatchType, patch,
					metav1.PatchOptions{FieldManager: "canaryflow"})
				if tt.wantErr == nil {
					require.Equal(t, string(patch), body.Load(), "the last try sends the whole body again")
				}
			} else {
				_, err = cs.CoreV1().ConfigMaps("test").Get(ctx, "cm", metav1.GetOptions{})
			}
			if tt.wantErr == nil {
				require.NoError(t, err)
			} else {
				require.True(t, tt.wantErr(err), "got %v", err)
			}
			require.Equal(t, tt.wantSent, sent.Load(), "requests the server received")
			require.Less(t, time.Since(start), kubeTryTimeout*time.Duration(tt.failures)+10*time.Second)
			counted := 0.0
			for _, code := range []string{"200", "500", "503", "409", "error"} {
				for _, m := range []string{"GET", "PATCH"} {
					counted += testutil.ToFloat64(k.total.WithLabelValues(m, code, "none"))
				}
			}
			require.Equal(t, float64(tt.wantSent), counted, "every try is counted")
		})
	}
}
