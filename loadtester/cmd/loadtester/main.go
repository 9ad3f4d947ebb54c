// Command loadtester serves Flagger's load tester protocol (see package loadtester).
package main

import (
	"context"
	"flag"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/canaryflow/canaryflow/loadtester"
)

func main() {
	port := flag.String("port", "8080", "port to listen on")
	allow := flag.String("allow", strings.Join(loadtester.DefaultAllow, ","),
		"comma-separated commands that may run (first word of cmd tasks; bash enables bash tasks and with them any command)")
	maxDuration := flag.Duration("max-duration", time.Hour, "kill a task still running after this long")
	maxGates := flag.Int("max-gates", loadtester.DefaultMaxGates, "gates remembered at most (opening one more is refused while that many are open)")
	flag.Parse()

	log, err := zap.NewProduction()
	if err != nil {
		panic(err)
	}
	defer func() { _ = log.Sync() }()

	var allowed []string
	for _, a := range strings.Split(*allow, ",") {
		if a = strings.TrimSpace(a); a != "" {
			allowed = append(allowed, a)
		}
	}
	s := loadtester.New(loadtester.Config{Allow: allowed, MaxDuration: *maxDuration, MaxGates: *maxGates, Logger: log})
	srv := &http.Server{Addr: ":" + *port, Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("load tester listening", zap.String("port", *port), zap.Strings("allow", allowed), zap.Duration("maxDuration", *maxDuration))
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	select {
	case err := <-served:
		log.Error("serving", zap.Error(err))
		s.Runner().Stop()
		os.Exit(1)
	case <-ctx.Done():
	}
	// The tasks first: a bash task's request ends once its command is killed, so Shutdown need not wait for it.
	// The process exits only after every task's process group is gone.
	log.Info("shutting down: killing every task")
	s.Runner().Stop()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
}
