// Package loadtester is a small HTTP service that speaks the protocol of Flagger's load tester, so Canary specs
// written for Flagger work unchanged: "cmd" tasks run in the background once per canary and command, "bash" tasks
// run to completion and answer with their exit status. Only commands on an allow-list run. Its manual gates
// (/gate/open, /gate/check, /rollback/open, …) hold state per canary as Flagger's do, in memory.
package loadtester

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// DefaultAllow is the default allow-list. bash is in it because Flagger's load tester runs bash tasks; allowing
// bash allows any command, so drop it (-allow hey,curl,grpcurl) where that matters.
var DefaultAllow = []string{"hey", "curl", "grpcurl", "bash"}

// Task types of Flagger's protocol that this load tester runs.
const (
	TaskTypeCmd  = "cmd"
	TaskTypeBash = "bash"
)

// Config is the load tester's configuration.
type Config struct {
	// Allow lists the command names that may run: the first word of a cmd task, and "bash" for bash tasks.
	Allow []string
	// MaxDuration kills a task still running after it (a cmd task normally ends by itself, e.g. hey -z).
	MaxDuration time.Duration
	// MaxGates bounds the gates remembered (default DefaultMaxGates); an open past it is refused with 503.
	MaxGates int
	Logger   *zap.Logger
}

// Payload is Flagger's webhook payload.
type Payload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase"`
	Checksum  string            `json:"checksum"`
	Metadata  map[string]string `json:"metadata"`
}

// Server answers the load tester's HTTP API.
type Server struct {
	cfg    Config
	runner *Runner
	gates  *gateStore
	log    *zap.Logger
}

// New returns a server with its own task runner.
func New(cfg Config) *Server {
	if len(cfg.Allow) == 0 {
		cfg.Allow = DefaultAllow
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = time.Hour
	}
	if cfg.MaxGates <= 0 {
		cfg.MaxGates = DefaultMaxGates
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Server{cfg: cfg, runner: NewRunner(cfg.MaxDuration, log), gates: newGateStore(cfg.MaxGates), log: log}
}

// Runner is the server's background task runner.
func (s *Server) Runner() *Runner { return s.runner }

// Handler serves /, /healthz and Flagger's gate endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, "OK") })
	mux.HandleFunc("/gate/approve", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, "Approved") })
	mux.HandleFunc("/gate/halt", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusForbidden, "Forbidden") })
	for _, kind := range []string{kindGate, kindRollback} {
		mux.HandleFunc("/"+kind+"/check", s.gateCheck(kind))
		mux.HandleFunc("/"+kind+"/open", s.gateSet(kind, true))
		mux.HandleFunc("/"+kind+"/close", s.gateSet(kind, false))
	}
	mux.HandleFunc("/", s.task)
	return mux
}

func reply(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}

func (s *Server) allowed(name string) bool {
	return slices.Contains(s.cfg.Allow, filepath.Base(name))
}

// resolve finds an allowed command on PATH. A command named with a path is accepted only when it is the very file
// PATH gives for its name: otherwise /tmp/x/hey or ../../x/hey would pass the allow-list by its last element.
func (s *Server) resolve(name string) (int, string, error) {
	if !s.allowed(name) {
		return http.StatusForbidden, "", fmt.Errorf("command %q is not allowed (allowed: %s)", name, strings.Join(s.cfg.Allow, ", "))
	}
	base := filepath.Base(name)
	path, err := exec.LookPath(base)
	if err != nil {
		return http.StatusBadRequest, "", fmt.Errorf("command %q not found", base)
	}
	if name != base && filepath.Clean(name) != path {
		return http.StatusForbidden, "", fmt.Errorf("command %q is not the allowed %s (%s): name it without a path", name, base, path)
	}
	return 0, path, nil
}

// maxBody caps a webhook payload: Flagger's are a few hundred bytes.
const maxBody = 1 << 20

func (s *Server) task(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, "POST a webhook payload")
		return
	}
	// Only JSON: a browser can send a text/plain or form POST to any address without asking (CSRF), never JSON.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		reply(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send the webhook payload as application/json", r.Header.Get("Content-Type")))
		return
	}
	var p Payload
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&p); err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			reply(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over %d bytes", maxBody))
			return
		}
		reply(w, http.StatusBadRequest, "decoding the payload: "+err.Error())
		return
	}
	if len(p.Metadata) == 0 {
		reply(w, http.StatusBadRequest, "metadata not found in payload")
		return
	}
	typ := p.Metadata["type"]
	if typ == "" {
		typ = TaskTypeCmd
	}
	command := strings.TrimSpace(p.Metadata["cmd"])
	if command == "" {
		reply(w, http.StatusBadRequest, "cmd not found in metadata")
		return
	}
	canary := p.Name + "." + p.Namespace
	logOutput, _ := strconv.ParseBool(p.Metadata["logCmdOutput"])
	log := s.log.With(zap.String("canary", canary), zap.String("cmd", command))
	switch typ {
	case TaskTypeCmd:
		argv, err := SplitCommand(command)
		if err != nil {
			reply(w, http.StatusBadRequest, err.Error())
			return
		}
		code, path, err := s.resolve(argv[0])
		if err != nil {
			reply(w, code, err.Error())
			return
		}
		argv[0] = path
		started, err := s.runner.Start(canary, command, argv, logOutput)
		switch {
		case err != nil:
			reply(w, http.StatusServiceUnavailable, err.Error())
		case started:
			log.Info("command started")
			reply(w, http.StatusAccepted, "started")
		default:
			log.Info("command skipped: already running")
			reply(w, http.StatusAccepted, "already running")
		}
	case TaskTypeBash:
		if !s.allowed("bash") {
			reply(w, http.StatusForbidden, "bash tasks are not allowed (allowed: "+strings.Join(s.cfg.Allow, ", ")+")")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.MaxDuration)
		defer cancel()
		out, err := s.runner.Run(ctx, []string{"bash", "-c", command})
		if errors.Is(err, ErrStopped) {
			reply(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if logOutput {
			log.Info("command output", zap.ByteString("output", out))
		}
		if err != nil {
			log.Warn("command failed", zap.Error(err))
			reply(w, http.StatusInternalServerError, fmt.Sprintf("%v\n%s", err, out))
			return
		}
		log.Info("command finished")
		body := ""
		if ret, _ := strconv.ParseBool(p.Metadata["returnCmdOutput"]); ret {
			body = string(out)
		}
		reply(w, http.StatusOK, body)
	default:
		reply(w, http.StatusBadRequest, fmt.Sprintf("unknown task type %s (this load tester runs cmd and bash)", typ))
	}
}

// ErrShellSyntax is a cmd task using shell syntax: cmd tasks run without a shell so the allow-list means what it
// says; use a bash task for pipelines and variables.
var ErrShellSyntax = errors.New("cmd tasks run without a shell")

// SplitCommand splits a command line into words with shell-like quoting ('…', "…", backslash), and refuses
// unquoted shell syntax (pipes, redirections, ;, &, $, backquotes, parentheses, newlines, which end a command in
// a shell).
func SplitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				} else if s[i] == '$' || s[i] == '`' {
					return nil, fmt.Errorf("%w: %q in %q; use a bash task", ErrShellSyntax, s[i], s)
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.IndexByte("|&;<>()$`\n\r", c) >= 0:
			return nil, fmt.Errorf("%w: %q in %q; use a bash task", ErrShellSyntax, c, s)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}
