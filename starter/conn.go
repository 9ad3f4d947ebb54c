package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/user"

	"github.com/canaryflow/canaryflow/workflows/rolloutclient"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/canaryflow/canaryflow/api/v1alpha1"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/internal/temporalconn"
	"github.com/canaryflow/canaryflow/providers/catalog"
	"github.com/canaryflow/canaryflow/workflows"
)

// Environment variables of the starter's own settings (the connection ones are temporalconn's).
const (
	envTaskQueue = "CANARYFLOW_TASK_QUEUE"
	envUIURL     = "CANARYFLOW_UI_URL"
)

// globals are the persistent flags every subcommand shares.
type globals struct {
	conn       temporalconn.Options // from the flags and CANARYFLOW_* variables
	temporal   temporalconn.Conn    // what dial resolved from conn and Temporal's own settings
	taskQueue  string
	kubeconfig string
	uiURL      string
	// dc is the data converter of the client dial made: payloads are measured encoded exactly as it sends them.
	dc converter.DataConverter
}

func (g *globals) bind(cmd *cobra.Command) {
	g.conn = temporalconn.FromEnv()
	f := cmd.PersistentFlags()
	g.conn.BindFlags(f)
	f.StringVar(&g.taskQueue, "task-queue", envOr(envTaskQueue, workflows.TaskQueue), "task queue of the rollout workflows (env "+envTaskQueue+")")
	f.StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig for --set-image (default $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	f.StringVar(&g.uiURL, "ui-url", envOr(envUIURL, "http://127.0.0.1:8233"), "base URL of the Temporal Web UI, for links (env "+envUIURL+")")
}

// connectTo resolves the canary the arguments name and connects to Temporal; the caller closes the client.
func (g *globals) connectTo(ctx context.Context, ref *canaryRef, args []string) (ns, name string, tc client.Client, err error) {
	if ns, name, err = ref.resolve(args); err != nil {
		return "", "", nil, err
	}
	if tc, err = g.dial(ctx); err != nil {
		return "", "", nil, err
	}
	return ns, name, tc, nil
}

// rollouts is the rollout client of this starter's task queue over tc.
func (g *globals) rollouts(tc client.Client) rolloutclient.Client {
	return rolloutclient.Client{Temporal: tc, TaskQueue: g.taskQueue}
}

// dial connects to Temporal. Settings that cannot work are bad input; a server that cannot be reached is a failure.
func (g *globals) dial(ctx context.Context) (client.Client, error) {
	conn, err := g.conn.Resolve()
	if err != nil {
		return nil, &exitError{code: exitBadInput, err: err}
	}
	g.temporal = conn
	opts, err := conn.ClientOptions()
	if err != nil {
		return nil, &exitError{code: exitBadInput, err: err}
	}
	opts.Logger = quietLogger{}
	if opts.DataConverter == nil {
		opts.DataConverter = converter.GetDefaultDataConverter()
	}
	g.dc = opts.DataConverter
	opts.Interceptors = append(opts.Interceptors, &signalMarker{})
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, &exitError{code: exitFailed, err: fmt.Errorf("connect to Temporal at %s (namespace %s): %w", conn.Address, conn.Namespace, err)}
	}
	return c, nil
}

// runURL is the Web UI page of one run's history.
func (g *globals) runURL(workflowID, runID string) string {
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history",
		trimSlash(g.uiURL), url.PathEscape(g.temporal.Namespace), url.PathEscape(workflowID), url.PathEscape(runID))
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// currentUser is the default of --by: every mutating command records who asked.
func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}

// canaryRef names the canary a command addresses: a positional name with -n, or the Canary of -f FILE.
type canaryRef struct {
	namespace string
	file      string
	// cluster addresses the canary's rollout in that cluster of a release (canary/<ns>/<name>@<cluster>).
	cluster string
}

func (r *canaryRef) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&r.namespace, "namespace", "n", "default", "namespace of the canary")
	cmd.Flags().StringVarP(&r.file, "file", "f", "", "take the canary's namespace and name from this Canary file")
}

// bindCluster adds --cluster, for the commands that may address a rollout a release runs in one cluster.
func (r *canaryRef) bindCluster(cmd *cobra.Command) {
	cmd.Flags().StringVar(&r.cluster, "cluster", "", "the canary's rollout in this cluster of a release (workflow ID canary/<namespace>/<name>@<cluster>)")
}

// id is the workflow ID of the rollout addressed: the canary's own, or its rollout in r.cluster.
func (r *canaryRef) id(ns, name string) string {
	if r.cluster != "" {
		return v1alpha1.ClusterWorkflowID(ns, name, r.cluster)
	}
	return v1beta1.WorkflowID(ns, name)
}

// resolve returns the canary's namespace and name.
func (r *canaryRef) resolve(args []string) (ns, name string, err error) {
	switch {
	case r.file != "" && len(args) > 0:
		return "", "", &exitError{code: exitBadInput, err: errors.New("name the canary either as an argument or with -f FILE, not both")}
	case r.file != "":
		c, _, err := loadOneCanary(r.file)
		if err != nil {
			return "", "", err
		}
		return c.Namespace, c.Name, nil
	case len(args) == 1:
		return r.namespace, args[0], nil
	}
	return "", "", &exitError{code: exitBadInput, err: errors.New("name the canary: NAME [-n NAMESPACE] or -f FILE")}
}

// loadOneCanary loads and validates a file that must hold exactly one Canary (and the MetricTemplates and
// AlertProviders it references, which the workflow cannot look up itself).
func loadOneCanary(file string) (*v1beta1.Canary, *v1beta1.Set, error) {
	set, err := v1beta1.LoadFile(file, v1beta1.ValidateOptions{RequireTemplates: true, RequireAlertProviders: true, Capabilities: catalog.Capabilities()})
	if err != nil {
		return nil, nil, &exitError{code: exitBadInput, err: err}
	}
	cs := set.Canaries()
	if len(cs) != 1 {
		return nil, nil, &exitError{code: exitBadInput, err: fmt.Errorf("%s holds %d Canaries: a rollout takes exactly one", file, len(cs))}
	}
	return cs[0], set, nil
}

// quietLogger drops the SDK's logs: the CLI's output is its own lines.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
