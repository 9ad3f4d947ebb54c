package loadtester

import (
	"sort"
	"strings"
)

// Running lists the commands running now, as "canary: command". Only the tests need it.
func (r *Runner) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.running))
	for k := range r.running {
		canary, command, _ := strings.Cut(k, "\x00")
		out = append(out, canary+": "+command)
	}
	sort.Strings(out)
	return out
}

// Started is how many commands the runner has started in all. Only the tests need it.
func (r *Runner) Started() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started
}

// GatesRemembered is how many gates the server holds. Only the tests need it.
func (s *Server) GatesRemembered() int {
	s.gates.mu.Lock()
	defer s.gates.mu.Unlock()
	return len(s.gates.m)
}
