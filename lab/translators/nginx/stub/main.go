// Command nginx stands in for the nginx binary under the ingress-nginx controller, which runs no data plane here
// (its canary split is Lua needing libraries Debian lacks). The controller calls it as nginx would be called:
//
//	nginx -c FILE -t          test a configuration: accepted (exit 0)
//	nginx -c FILE -s reload   accepted (exit 0)
//	nginx -c FILE -s quit     stops the running stand-in (as nginx's master would stop)
//	nginx -v / -V             prints a version
//	nginx -c FILE             runs: serves a stand-in for nginx's Lua status server on
//	                          127.0.0.1:$CANARYFLOW_NGINX_STATUS_PORT (the controller's --status-port) and
//	                          for its TCP/UDP configuration listener on $CANARYFLOW_NGINX_STREAM_PORT (--stream-port)
//
// The status server answers the controller's POSTs of /configuration/{backends,general,servers,certs} with 201
// and keeps the last body of each, which GET of the same path returns, as nginx's configuration.lua does for
// backends; so a test reads exactly what the controller derived from the Kubernetes objects. It writes its PID to
// /tmp/nginx/nginx.pid, where the controller's health check looks for nginx.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// pidFile is nginx.PID of the controller (internal/nginx/main.go).
const pidFile = "/tmp/nginx/nginx.pid"

func main() {
	args := os.Args[1:]
	has := func(flag string) (string, bool) {
		for i, a := range args {
			if a == flag {
				if i+1 < len(args) {
					return args[i+1], true
				}
				return "", true
			}
		}
		return "", false
	}
	if _, ok := has("-v"); ok {
		fmt.Fprintln(os.Stderr, "nginx version: nginx/1.25.5 (canaryflow stand-in)")
		return
	}
	if _, ok := has("-V"); ok {
		fmt.Fprintln(os.Stderr, "nginx version: nginx/1.25.5 (canaryflow stand-in)")
		return
	}
	if _, ok := has("-t"); ok {
		fmt.Println("nginx: the configuration file syntax is ok (canaryflow stand-in)")
		return
	}
	if sig, ok := has("-s"); ok {
		if sig == "quit" || sig == "stop" {
			stop()
		}
		return
	}
	if err := serve(); err != nil {
		fmt.Fprintln(os.Stderr, "nginx stand-in:", err)
		os.Exit(1)
	}
}

// stop ends the running stand-in named in the PID file.
func stop() {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
}

func serve() error {
	port, streamPort := os.Getenv("CANARYFLOW_NGINX_STATUS_PORT"), os.Getenv("CANARYFLOW_NGINX_STREAM_PORT")
	if port == "" || streamPort == "" {
		return errors.New("set CANARYFLOW_NGINX_STATUS_PORT and CANARYFLOW_NGINX_STREAM_PORT to the controller's --status-port and --stream-port")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		return err
	}
	// The controller sends the TCP/UDP services here, one JSON line per connection, after every backends POST;
	// unanswered, it retries the whole configuration and holds every later change back.
	streams, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", streamPort))
	if err != nil {
		return err
	}
	go func() {
		for {
			conn, err := streams.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()
	if err := os.MkdirAll(filepath.Dir(pidFile), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}

	var mu sync.Mutex
	last := map[string][]byte{}
	mux := http.NewServeMux()
	mux.HandleFunc("/configuration/", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			mu.Lock()
			last[r.URL.Path] = body
			mu.Unlock()
			w.WriteHeader(http.StatusCreated)
		case http.MethodGet:
			mu.Lock()
			body, ok := last[r.URL.Path]
			mu.Unlock()
			if !ok {
				http.Error(w, "nothing posted to "+r.URL.Path+" yet", http.StatusNotFound)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
	// The controller's health check asks this once the backends are configured (configuration.lua's answer).
	mux.HandleFunc("/is-dynamic-lb-initialized", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		_, ok := last["/configuration/backends"]
		mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
		}
	})
	mux.HandleFunc("/healthz", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/nginx_status", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "Active connections: 1\nserver accepts handled requests\n 1 1 1\nReading: 0 Writing: 1 Waiting: 0\n")
	})

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer cancel()
	go func() {
		<-ctx.Done()
		_ = streams.Close()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	_ = os.Remove(pidFile)
	return nil
}
