package loadtester

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"go.uber.org/zap"
)

// Gate kinds: Flagger's load tester keeps two gates per canary, one its confirm webhooks ask (/gate/check) and one
// its rollback webhook asks (/rollback/check).
const (
	kindGate     = "gate"
	kindRollback = "rollback"
)

// DefaultMaxGates is how many gates a load tester remembers unless Config.MaxGates says otherwise: every
// canary of a large cluster twice over, and a few megabytes at most.
const DefaultMaxGates = 10000

// Limits of a gate request's fields: a reason must fit, with the rest of the check's answer, in the part of a
// webhook's answer that canaryflow keeps in the rollout's history (1 KiB).
const (
	maxNameLen    = 253 // a Kubernetes object name
	maxByLen      = 128
	maxGateReason = 512
)

// GateRequest is the body of every gate endpoint: Flagger's webhook payload, of which only name and namespace
// count (they name the canary, and so the gate), plus two optional fields that canaryflow adds for the open and
// close endpoints. A webhook's full payload (phase, checksum, metadata) is accepted and its other fields ignored.
type GateRequest struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// By names who opens or closes the gate; the check's answer, and so the rollout's history, repeats it.
	By string `json:"by,omitempty"`
	// Reason says why.
	Reason string `json:"reason,omitempty"`
}

// gateState is what the load tester remembers of one gate: open or closed, by whom, when and why.
type gateState struct {
	Open   bool
	By     string
	Reason string
	At     time.Time
}

// describe words a state for an answer: "gate opened by alice at 2026-11-29T23:50:00Z: change 42 approved".
func (st gateState) describe(kind string) string {
	verb := "closed"
	if st.Open {
		verb = "opened"
	}
	t := kind + " " + verb
	if st.By != "" {
		t += " by " + st.By
	}
	t += " at " + st.At.UTC().Format(time.RFC3339)
	if st.Reason != "" {
		t += ": " + st.Reason
	}
	return t
}

type gateKey struct{ kind, namespace, name string }

// errTooManyGates is an open asked for while the store is full of open gates.
var errTooManyGates = errors.New("too many open gates")

// gateStore holds the gates, safe for concurrent requests. It is bounded: a check stores nothing (an unknown gate
// is closed), and past max entries a new one replaces the oldest closed gate; only open gates are never dropped,
// so an open is refused when max gates are open.
type gateStore struct {
	mu  sync.Mutex
	max int
	m   map[gateKey]gateState
}

func newGateStore(maxGates int) *gateStore {
	return &gateStore{max: maxGates, m: map[gateKey]gateState{}}
}

func (g *gateStore) get(k gateKey) (gateState, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, ok := g.m[k]
	return st, ok
}

func (g *gateStore) set(k gateKey, st gateState) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.m[k]; !ok && len(g.m) >= g.max && !g.dropOldestClosed() {
		if st.Open {
			return errTooManyGates
		}
		return nil // forgetting a closed gate changes nothing: an unknown gate is closed
	}
	g.m[k] = st
	return nil
}

// dropOldestClosed forgets the closed gate closed longest ago; a scan, but only when the store is full.
func (g *gateStore) dropOldestClosed() bool {
	var oldest gateKey
	var at time.Time
	found := false
	for k, st := range g.m {
		if !st.Open && (!found || st.At.Before(at)) {
			oldest, at, found = k, st.At, true
		}
	}
	if found {
		delete(g.m, oldest)
	}
	return found
}

// readGate decodes and checks a gate request, or answers the error itself and returns false.
func readGate(w http.ResponseWriter, r *http.Request) (GateRequest, bool) {
	var req GateRequest
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, fmt.Sprintf(`POST {"name":"podinfo","namespace":"test"} (the Canary's) to %s`, r.URL.Path))
		return req, false
	}
	// Any Content-Type: Flagger's documented `curl -d '{…}'` sends application/x-www-form-urlencoded.
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("gate request over %d bytes", maxBody))
			return req, false
		}
		reply(w, http.StatusBadRequest, fmt.Sprintf(`decoding the gate request: %v; send JSON such as {"name":"podinfo","namespace":"test"}`, err))
		return req, false
	}
	if msg := req.problem(); msg != "" {
		reply(w, http.StatusBadRequest, msg)
		return req, false
	}
	return req, true
}

// problem says what is wrong with a decoded request, or "".
func (req GateRequest) problem() string {
	switch {
	case req.Name == "" || req.Namespace == "":
		return fmt.Sprintf(`name and namespace are required (got name %q, namespace %q): send the Canary's, {"name":"podinfo","namespace":"test"}`, req.Name, req.Namespace)
	case len(req.Name) > maxNameLen || len(req.Namespace) > maxNameLen:
		return fmt.Sprintf("name and namespace are Kubernetes names: at most %d bytes each", maxNameLen)
	case len(req.By) > maxByLen || !oneLine(req.By):
		return fmt.Sprintf("by: one line of at most %d bytes", maxByLen)
	case len(req.Reason) > maxGateReason || !oneLine(req.Reason):
		return fmt.Sprintf("reason: one line of at most %d bytes", maxGateReason)
	}
	return ""
}

// oneLine refuses control characters: by and reason are repeated in logs and in one line of the rollout's history.
func oneLine(s string) bool {
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// gateCheck answers whether a gate is open, as Flagger's load tester does: 200 "Approved" when open, 403
// "Forbidden" otherwise, each followed by who opened or closed it and when. Flagger leaves a gate open after a
// check, and so does this: it stays open for every later call until it is closed.
func (s *Server) gateCheck(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok := readGate(w, r)
		if !ok {
			return
		}
		st, known := s.gates.get(gateKey{kind, req.Namespace, req.Name})
		s.log.Debug(kind+" check", zap.String("canary", req.Namespace+"/"+req.Name), zap.Bool("open", st.Open))
		switch {
		case st.Open:
			reply(w, http.StatusOK, "Approved: "+st.describe(kind))
		case known:
			reply(w, http.StatusForbidden, "Forbidden: "+st.describe(kind))
		case kind == kindRollback:
			reply(w, http.StatusForbidden, fmt.Sprintf("Forbidden: no rollback of %s/%s asked for", req.Namespace, req.Name))
		default:
			reply(w, http.StatusForbidden, fmt.Sprintf(`Forbidden: gate of %s/%s is closed; POST {"name":%q,"namespace":%q} to /gate/open to open it`,
				req.Namespace, req.Name, req.Name, req.Namespace))
		}
	}
}

// gateSet opens or closes a gate: 202 as in Flagger, with the gate's new state as the body.
func (s *Server) gateSet(kind string, open bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// A browser page of any site may POST here (the body need not be JSON-typed, for curl -d): a browser
		// always names the page's origin, curl and scripts do not.
		if o := r.Header.Get("Origin"); o != "" {
			reply(w, http.StatusForbidden, fmt.Sprintf("Forbidden: a browser page (Origin %s) may not open or close gates; use curl or a script", o))
			return
		}
		req, ok := readGate(w, r)
		if !ok {
			return
		}
		st := gateState{Open: open, By: req.By, Reason: req.Reason, At: time.Now()}
		canary := req.Namespace + "/" + req.Name
		if err := s.gates.set(gateKey{kind, req.Namespace, req.Name}, st); err != nil {
			reply(w, http.StatusServiceUnavailable, fmt.Sprintf("%s of %s not opened: %d gates are open; close those no longer needed (/gate/close, /rollback/close)",
				kind, canary, s.cfg.MaxGates))
			return
		}
		s.log.Info(kind+" set", zap.String("canary", canary), zap.Bool("open", open), zap.String("by", req.By), zap.String("reason", req.Reason))
		reply(w, http.StatusAccepted, canary+": "+st.describe(kind))
	}
}
