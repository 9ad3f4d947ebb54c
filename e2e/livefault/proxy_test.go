//go:build lab

package livefault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fault is what a faultProxy does with the requests it gets.
type fault string

const (
	pass        fault = "pass"         // forward to the real server
	refuse      fault = "refuse"       // no listener: connection refused
	answer500   fault = "500"          // HTTP 500 with a plain body
	statusError fault = "status-error" // HTTP 200 with Prometheus's {"status":"error"} body
	noData      fault = "no-data"      // a successful query with an empty vector: the series is missing
	hang        fault = "hang"         // accept and never answer (until the client gives up)
	slow        fault = "slow"         // forward after a delay (faultProxy.delay)
)

// faultProxy stands in front of one real server (the lab's Prometheus, the load tester) for the processes of one
// test, and injects a fault on demand. "refuse" closes its listener, so clients get connection refused, and
// reopens it on the same port when the fault ends.
type faultProxy struct {
	URL    string
	addr   string
	target *url.URL
	delay  time.Duration

	mu       sync.Mutex
	mode     fault
	listener net.Listener
	server   *http.Server
	seen     map[fault]int // requests answered by mode (refused connections reach no handler)
	queries  []string      // the PromQL of the Prometheus queries answered, in order
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &faultProxy{addr: l.Addr().String(), target: u, mode: pass, seen: map[fault]int{}}
	p.URL = "http://" + p.addr
	p.serve(l)
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.server != nil {
			_ = p.server.Close()
		}
	})
	return p
}

func (p *faultProxy) serve(l net.Listener) {
	rp := httputil.NewSingleHostReverseProxy(p.target)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The Prometheus client POSTs its query as a form: read it, then hand the body on unchanged.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		q := r.URL.Query().Get("query")
		if form, err := url.ParseQuery(string(body)); err == nil && form.Get("query") != "" {
			q = form.Get("query")
		}
		p.mu.Lock()
		mode := p.mode
		p.seen[mode]++
		if q != "" {
			p.queries = append(p.queries, q)
		}
		p.mu.Unlock()
		switch mode {
		case answer500:
			http.Error(w, "injected fault: internal server error", http.StatusInternalServerError)
		case statusError:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"error","errorType":"internal","error":"injected fault: storage unavailable"}`)
		case noData:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
		case hang:
			<-r.Context().Done()
		case slow:
			select {
			case <-r.Context().Done():
				return
			case <-time.After(p.delay):
			}
			rp.ServeHTTP(w, r)
		default:
			rp.ServeHTTP(w, r)
		}
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	p.listener, p.server = l, srv
	go func() { _ = srv.Serve(l) }()
}

// set switches the proxy to mode; from and to "refuse" it closes and reopens its listener.
func (p *faultProxy) set(t *testing.T, mode fault) {
	t.Helper()
	p.mu.Lock()
	was := p.mode
	p.mode = mode
	srv := p.server
	p.mu.Unlock()
	switch {
	case mode == refuse && was != refuse:
		// Close drops open keep-alive connections too, so the next request dials and is refused.
		require.NoError(t, srv.Close())
	case mode != refuse && was == refuse:
		var l net.Listener
		var err error
		for i := 0; i < 50; i++ { // the port was ours a moment ago; retry briefly if the kernel holds it
			if l, err = net.Listen("tcp", p.addr); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, err, "reopening the fault proxy on %s", p.addr)
		p.mu.Lock()
		p.serve(l)
		p.mu.Unlock()
	}
	t.Logf("fault proxy %s: %s → %s", p.URL, was, mode)
}

// count is how many requests the proxy answered in mode.
func (p *faultProxy) count(mode fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[mode]
}

// refused reports whether a connection to the proxy is refused now (checks the fault is real).
func (p *faultProxy) refused(ctx context.Context) bool {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// queried counts the queries answered that hold substr.
func (p *faultProxy) queried(substr string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, q := range p.queries {
		if strings.Contains(q, substr) {
			n++
		}
	}
	return n
}
