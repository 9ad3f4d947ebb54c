// Command starter is canaryflow's CLI for people and CI: validate Canary files, start and steer rollouts.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
)

// Exit codes shared by every subcommand.
const (
	exitOK       = 0
	exitFailed   = 1 // the release was rolled back or failed
	exitBadInput = 2 // the input is invalid; nothing was changed
	exitTimeout  = 3
	// exitSuperseded: a newer revision replaced the one this starter rolled out before its analysis ended; that
	// revision will not be promoted by this rollout (rollout --wait, retry --wait).
	exitSuperseded = 4
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// exitError carries an exit code out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	// Ctrl-C stops waiting, never the rollout: commands see a cancelled context and say so.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		if ee, ok := err.(*exitError); ok {
			if ee.err != nil {
				fmt.Fprintln(stderr, ee.err)
			}
			return ee.code
		}
		fmt.Fprintln(stderr, "error:", err)
		return exitBadInput
	}
	return exitOK
}
