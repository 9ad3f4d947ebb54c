package labbin

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"

	"github.com/canaryflow/canaryflow/workflows/searchattr"
)

// DevServer starts a private Temporal dev server from the lab's temporal binary (in memory, namespace
// "default" and any more namespaces named, canaryflow's search attributes registered in each) for tests and
// benchmarks that must not share the lab's server. logger may be nil for the SDK's default. Stop it with Stop.
func DevServer(ctx context.Context, logger log.Logger, namespaces ...string) (*testsuite.DevServer, error) {
	return devServer(ctx, logger, "", namespaces)
}

// DevServerWithUI is DevServer with its Web UI served (the UI of the temporal CLI's release, writes enabled) on
// a free port of 127.0.0.1; it returns the UI's base URL, for tests that drive the UI without touching the lab's.
func DevServerWithUI(ctx context.Context, logger log.Logger) (*testsuite.DevServer, string, error) {
	// The SDK picks the frontend's port but not the UI's, whose default (frontend + 1000) may be taken.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("find a free port for the Web UI: %w", err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	srv, err := devServer(ctx, logger, port, nil)
	if err != nil {
		return nil, "", err
	}
	return srv, "http://127.0.0.1:" + port, nil
}

func devServer(ctx context.Context, logger log.Logger, uiPort string, namespaces []string) (*testsuite.DevServer, error) {
	bin := Temporal()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("the lab's temporal binary is needed (make lab-build): %w", err)
	}
	var args []string
	for _, d := range searchattr.Definitions() {
		args = append(args, "--search-attribute", d.Name+"="+d.Type.String())
	}
	for _, ns := range namespaces {
		args = append(args, "--namespace", ns)
	}
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{
		ExistingPath:  bin,
		ClientOptions: &client.Options{Namespace: "default", Logger: logger}, // on a free port the SDK picks
		LogLevel:      "error",
		ExtraArgs:     args,
		EnableUI:      uiPort != "",
		UIPort:        uiPort,
		Stdout:        io.Discard,
	})
	if err != nil {
		return nil, fmt.Errorf("start the dev server: %w", err)
	}
	devMu.Lock()
	devAddrs = append(devAddrs, srv.FrontendHostPort())
	devMu.Unlock()
	return srv, nil
}

var (
	devMu    sync.Mutex
	devAddrs []string
)

// DevServers lists the frontend addresses of the private dev servers DevServer started in this process, some
// perhaps stopped since, so that the lab's secret scan (labtest.Namespace) reads their histories too.
func DevServers() []string {
	devMu.Lock()
	defer devMu.Unlock()
	return append([]string(nil), devAddrs...)
}
