//go:build lab

package kubefault

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The faults the proxy injects, each in place of the API server's answer.
const (
	fault500     = "500"     // Internal Server Error, as the API server answers when etcd fails a request
	fault503     = "503"     // Service Unavailable, no Retry-After: an API server shutting down or overloaded
	fault409     = "409"     // Conflict (writes only): the object changed since it was read
	fault429     = "429"     // Too Many Requests with Retry-After: 1, as priority and fairness answers
	faultTimeout = "timeout" // the request is held, never forwarded, until the client gives up
	faultReset   = "reset"   // the request is forwarded and applied, then the connection is reset: the answer is lost
)

// The faults are injected in turn, reads and writes each in their own order, so that a dozen faults cover every
// kind; a write's first fault is the conflict, which the API server answers to writes only.
var (
	readFaults  = []string{fault500, fault503, fault429, faultTimeout, faultReset}
	writeFaults = []string{fault409, fault503, fault500, faultTimeout, fault429, faultReset}
)

// faultProxy is a TLS reverse proxy in front of the API server that answers a share of the requests with a
// fault instead of forwarding them. It passes the client's own credentials on, so the worker keeps its
// ServiceAccount's rights.
type faultProxy struct {
	URL    string // https://127.0.0.1:port
	CAFile string // its self-signed certificate, for the kubeconfig
	Seed   uint64
	Rate   float64

	srv      *httptest.Server
	upstream *httputil.ReverseProxy
	closing  chan struct{} // closed by Close: held requests end

	mu     sync.Mutex
	rng    *rand.Rand
	reads  int // faults injected into reads so far, for the next one's turn
	writes int // and into writes
	// writes are faulted one in writeEvery (1/rate), the first at write number writeEvery-writePhase
	writeReqs, writeEvery, writePhase int
	requests                          int
	injected                          map[string]int
}

// startFaultProxy starts the proxy forwarding to server (whose CA is caFile), injecting a fault into rate of the
// requests, chosen by a generator seeded with seed.
func startFaultProxy(server, caFile, dir string, rate float64, seed uint64) (*faultProxy, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	p := &faultProxy{Seed: seed, Rate: rate, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), injected: map[string]int{}, closing: make(chan struct{})}
	p.writeEvery = max(1, int(math.Round(1/rate)))
	p.writePhase = p.rng.IntN(p.writeEvery)
	p.upstream = httputil.NewSingleHostReverseProxy(u)
	p.upstream.Transport = &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	// HTTP/1.1 towards the worker, so that a reset is a TCP reset of its connection (HTTP/2 would reset a stream).
	p.srv = httptest.NewUnstartedServer(p)
	p.srv.StartTLS()
	p.URL = p.srv.URL
	p.CAFile = filepath.Join(dir, "faultproxy-ca.crt")
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	if err := os.WriteFile(p.CAFile, cert, 0o644); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Close stops the proxy and the requests it holds.
func (p *faultProxy) Close() {
	close(p.closing)
	p.srv.CloseClientConnections()
	p.srv.Close()
}

// pick decides the fault for one request ("" for none): whether is random at the proxy's rate for a read, in
// turn at that rate for a write; which is the next kind in turn for a read or a write.
func (p *faultProxy) pick(r *http.Request) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	var f string
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if p.rng.Float64() >= p.Rate {
			return ""
		}
		f = readFaults[p.reads%len(readFaults)]
		p.reads++
	} else {
		// A rollout writes little (a dozen server-side applies): drawn at random, a run without a single write
		// fault came one in ten. So writes are faulted at the same rate in turn, from a seeded place in the turn.
		p.writeReqs++
		if (p.writeReqs+p.writePhase)%p.writeEvery != 0 {
			return ""
		}
		f = writeFaults[p.writes%len(writeFaults)]
		p.writes++
	}
	p.injected[f]++
	return f
}

// Injected returns how many requests went through the proxy and the faults injected, by kind.
func (p *faultProxy) Injected() (int, map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.injected {
		out[k] = v
	}
	return p.requests, out
}

// Summary names the seed, the rate and the faults injected.
func (p *faultProxy) Summary() string {
	n, inj := p.Injected()
	var kinds []string
	for k, v := range inj {
		kinds = append(kinds, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("seed %d, rate %.0f%%: %d requests, faults %s", p.Seed, p.Rate*100, n, strings.Join(kinds, " "))
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch f := p.pick(r); f {
	case "":
		p.upstream.ServeHTTP(w, r)
	case fault500:
		status(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, "fault proxy: injected internal error")
	case fault503:
		status(w, http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, "fault proxy: injected unavailability")
	case fault409:
		status(w, http.StatusConflict, metav1.StatusReasonConflict,
			"fault proxy: injected conflict: the object has been modified; please apply your changes to the latest version and try again")
	case fault429:
		w.Header().Set("Retry-After", "1")
		status(w, http.StatusTooManyRequests, metav1.StatusReasonTooManyRequests, "fault proxy: injected throttling")
	case faultTimeout:
		// Held until the client gives up (or 3 minutes, past any activity's deadline).
		select {
		case <-r.Context().Done():
		case <-p.closing:
		case <-time.After(3 * time.Minute):
		}
	case faultReset:
		rec := httptest.NewRecorder()
		p.upstream.ServeHTTP(rec, r)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		// The TCP connection under TLS, closed with RST: no close_notify, no FIN.
		if tc, ok := conn.(*tls.Conn); ok {
			if c, ok := tc.NetConn().(*net.TCPConn); ok {
				_ = c.SetLinger(0)
				_ = c.Close()
				return
			}
		}
		_ = conn.Close()
	}
}

// status answers like the API server does: a metav1.Status.
func status(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	})
}
