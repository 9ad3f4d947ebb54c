//go:build lab

package livefault

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/workflows"
)

// TestMain runs at least 6 tests at once unless -parallel says otherwise: they wait on analysis timers most of
// the time, and the default (GOMAXPROCS, 2 here) would queue them.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if p := flag.Lookup("test.parallel"); !set && p != nil && runtime.GOMAXPROCS(0) < 6 {
		_ = p.Value.Set("6")
	}
	os.Exit(m.Run())
}

// long says whether the longer variants run (CANARYFLOW_LONG=1).
var long = os.Getenv("CANARYFLOW_LONG") == "1"

// interval is the analysis interval of the canaries here: the shortest there is (Flagger's and canaryflow's
// minimum), so the package stays within minutes.
const interval = 10 * time.Second

// startStack starts a worker and a load tester of their own (task queue named after the test and this process,
// so that no other worker, not even this package's in another `go test`, takes its tasks) for at most within,
// with opts; on failure their logs go into the test log.
func startStack(t *testing.T, within time.Duration, opts e2e.Options) (context.Context, *e2e.Stack) {
	t.Helper()
	env := labtest.Lab(t)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	t.Cleanup(cancel)
	if opts.TaskQueue == "" {
		opts.TaskQueue = fmt.Sprintf("livefault-%d-%s", os.Getpid(),
			strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")))
	}
	s, err := e2e.StartWith(ctx, env, e2e.Narrator(t), opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"worker", "loadtester"} {
				t.Logf("%s log:\n%s", name, s.LogTail(name, 80))
			}
		}
		s.Close()
	})
	return ctx, s
}

// canary is one podinfo canary of a test, in a namespace of its own.
type canary struct {
	t   *testing.T
	ctx context.Context
	s   *e2e.Stack
	NS  string
	sc  *e2e.Scenarios
	tc  client.Client
}

// newCanary creates a namespace and initialises podinfo 6.0.0 in it with the Canary spec made by edit from
// podinfoCanary: the primary runs 6.0.0 and takes all traffic.
func newCanary(t *testing.T, ctx context.Context, s *e2e.Stack, prefix string, edit func(*v1beta1.Canary)) *canary {
	t.Helper()
	c := canaryIn(t, ctx, s, prefix)
	require.NoError(t, c.initialise(edit), "initialisation of %s", c.NS)
	return c
}

// canaryIn makes the namespace of a canary, not yet initialised.
func canaryIn(t *testing.T, ctx context.Context, s *e2e.Stack, prefix string) *canary {
	t.Helper()
	ns := labtest.Namespace(t, prefix)
	sc, err := e2e.NewScenarios(s, ns)
	require.NoError(t, err)
	t.Cleanup(func() { sc.Temporal.Close() })
	sc.Say = func(format string, args ...any) { t.Logf("[%s] "+format, append([]any{ns}, args...)...) }
	return &canary{t: t, ctx: ctx, s: s, NS: ns, sc: sc, tc: sc.Temporal}
}

// initialise applies podinfo 6.0.0 and runs the first rollout with the spec made by edit; safe to run for
// several canaries at once (it reports instead of failing the test).
func (c *canary) initialise(edit func(*v1beta1.Canary)) error {
	spec := podinfoCanary(c.s, c.NS)
	if edit != nil {
		edit(spec)
	}
	file, err := c.s.WriteCanaryObject(c.NS+"-canary", spec)
	if err != nil {
		return err
	}
	return c.sc.InitialiseWith(c.ctx, file)
}

// podinfoCanary is the canary of these tests: Traefik, the worker's default metrics server (no
// spec.metricsServer), interval 10 s, threshold 2, 10 → 30 % in steps of 10, request-success-rate ≥ 99 % over a
// minute, a load test through Traefik for 3 minutes from the first step.
func podinfoCanary(s *e2e.Stack, ns string) *v1beta1.Canary {
	// The load starts before the canary gets traffic (a pre-rollout hook), so that the first check already has
	// data: with a rollout hook the load starts just before the first check, which finds nothing yet.
	load := map[string]string{"type": "cmd",
		"cmd": fmt.Sprintf("hey -z 3m -q 10 -c 2 -host podinfo.%s %s/", ns, s.Lab.TraefikURL)}
	return &v1beta1.Canary{
		TypeMeta:   metav1.TypeMeta{APIVersion: "flagger.app/v1beta1", Kind: "Canary"},
		ObjectMeta: metav1.ObjectMeta{Name: "podinfo", Namespace: ns},
		Spec: v1beta1.CanarySpec{
			Provider:                "traefik",
			TargetRef:               v1beta1.LocalObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "podinfo"},
			AutoscalerRef:           &v1beta1.AutoscalerReference{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Name: "podinfo"},
			ProgressDeadlineSeconds: ptr.To[int32](60),
			Service:                 v1beta1.CanaryService{Port: 9898},
			Analysis: &v1beta1.CanaryAnalysis{
				Interval: interval.String(), Threshold: 2, MaxWeight: 30, StepWeight: 10,
				Metrics: []v1beta1.CanaryMetric{{Name: "request-success-rate", Interval: "1m",
					ThresholdRange: &v1beta1.CanaryThresholdRange{Min: ptr.To(99.0)}}},
				Webhooks: []v1beta1.CanaryWebhook{{Name: "load-test", Type: v1beta1.PreRolloutHook, URL: s.LoadTesterURL,
					Timeout: "5s", Metadata: &load}},
			},
		},
	}
}

// write writes the canary's spec (podinfoCanary changed by edit), followed by the MetricTemplates it
// references, and returns the file.
func (c *canary) write(name string, edit func(*v1beta1.Canary), templates ...v1beta1.MetricTemplate) string {
	spec := podinfoCanary(c.s, c.NS)
	if edit != nil {
		edit(spec)
	}
	file, err := c.s.WriteCanaryObject(c.NS+"-"+name, spec)
	require.NoError(c.t, err)
	for _, tpl := range templates {
		data, err := yaml.Marshal(tpl)
		require.NoError(c.t, err)
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(c.t, err)
		_, err = f.Write(append([]byte("---\n"), data...))
		require.NoError(c.t, err)
		require.NoError(c.t, f.Close())
	}
	return file
}

func (c *canary) say(format string, args ...any) { c.sc.Say(format, args...) }

// starter runs a starter command about this canary.
func (c *canary) starter(args ...string) e2e.Result {
	return c.s.StarterTo(c.ctx, c.say, args...)
}

// rollout starts `starter rollout --set-image podinfod=<version> --wait` of file in the background.
func (c *canary) rollout(file, version string) <-chan e2e.Result {
	done := make(chan e2e.Result, 1)
	go func() {
		done <- c.starter("rollout", "-f", file, "--set-image", "podinfod="+e2e.PodinfoImage(version),
			"--wait", "--timeout", "10m", "--by", "ci")
	}()
	return done
}

// status is the rollout's status by query (a worker answers it).
func (c *canary) status() (workflows.Status, error) {
	var st workflows.Status
	v, err := c.tc.QueryWorkflow(c.ctx, v1beta1.WorkflowID(c.NS, "podinfo"), "", workflows.QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

// waitStatus polls the status until ok holds.
func (c *canary) waitStatus(within time.Duration, what string, ok func(workflows.Status) bool) workflows.Status {
	c.t.Helper()
	deadline := time.Now().Add(within)
	var last workflows.Status
	for time.Now().Before(deadline) {
		if st, err := c.status(); err == nil {
			last = st
			if ok(st) {
				return st
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("%s: %s not reached within %s; last status: phase %s weight %d failed checks %d gate %q message %q",
		c.NS, what, within, last.Phase, last.CanaryWeight, last.FailedChecks, last.PendingGate, last.Message)
	return last
}

// starterStatus is what `starter status -o json` prints.
type starterStatus struct {
	Execution string           `json:"execution"`
	Source    string           `json:"source"`
	Status    workflows.Status `json:"status"`
}

// end is the end state of a rollout as the cluster, `starter status` and `starter history` tell it.
type end struct {
	Phase          workflows.Phase
	Primary        string // the primary's image
	CanaryReplicas int32
	Weights        [2]int64 // TraefikService primary/canary
	Status         starterStatus
	History        string
}

// end reads the end state once the rollout has ended, waiting for the TraefikService's weights to settle.
func (c *canary) end() end {
	c.t.Helper()
	var e end
	r := c.starter("status", "podinfo", "-n", c.NS, "-o", "json")
	require.Equal(c.t, 0, r.Code, r.Output)
	// The note about a closed run goes to stderr, in the same output: decode from the first brace.
	out := r.Output[strings.Index(r.Output, "{"):]
	require.NoError(c.t, json.NewDecoder(strings.NewReader(out)).Decode(&e.Status), r.Output)
	e.Phase = e.Status.Status.Phase
	var err error
	e.Primary, _, err = c.s.Image(c.ctx, c.NS, "podinfo-primary")
	require.NoError(c.t, err)
	_, e.CanaryReplicas, err = c.s.Image(c.ctx, c.NS, "podinfo")
	require.NoError(c.t, err)
	p, cw, err := c.s.TraefikWeights(c.ctx, c.NS, "podinfo")
	require.NoError(c.t, err)
	e.Weights = [2]int64{p, cw}
	h := c.starter("history", "podinfo", "-n", c.NS)
	require.Equal(c.t, 0, h.Code, h.Output)
	e.History = h.Output
	return e
}

// requireRolledBack asserts a rollout that ended rolled back: Failed in status, the primary on version, all
// traffic on it, the canary scaled to zero, one rollback and no promotion in the history.
func (c *canary) requireRolledBack(e end, version, reason string) {
	c.requireRolledBackAfter(e, version, reason, false)
}

// requireRolledBackAfter is requireRolledBack where a promotion may have begun (and been reverted: the primary
// is on version) when promotionBegan.
func (c *canary) requireRolledBackAfter(e end, version, reason string, promotionBegan bool) {
	c.t.Helper()
	require.Equal(c.t, workflows.PhaseFailed, e.Phase, e.History)
	require.Equal(c.t, e2e.PodinfoImage(version), e.Primary, "the primary must be untouched")
	require.Equal(c.t, [2]int64{100, 0}, e.Weights, "all traffic back on the primary")
	require.Equal(c.t, 100, e.Status.Status.PrimaryWeight, "starter status agrees with the TraefikService")
	require.Zero(c.t, e.Status.Status.CanaryWeight)
	require.Zero(c.t, e.CanaryReplicas, "the canary scaled to zero")
	require.Equal(c.t, 1, strings.Count(e.History, "rolled back: Rolling back podinfo."+c.NS), "one rollback decision:\n%s", e.History)
	require.Contains(c.t, e.History, reason)
	require.Zero(c.t, strings.Count(e.History, "promoted revision"), "never promoted:\n%s", e.History)
	if !promotionBegan {
		require.Zero(c.t, strings.Count(e.History, "phase Promoting"), "no promotion began:\n%s", e.History)
	}
}

// requirePromoted asserts a rollout that promoted version: Succeeded, the primary on it with all traffic, the
// canary scaled to zero, each canary weight from 10 to maxWeight decided once, one promotion.
func (c *canary) requirePromoted(e end, version string, maxWeight int) {
	c.t.Helper()
	require.Equal(c.t, workflows.PhaseSucceeded, e.Phase, e.History)
	require.Equal(c.t, e2e.PodinfoImage(version), e.Primary)
	require.Equal(c.t, [2]int64{100, 0}, e.Weights)
	require.Equal(c.t, 100, e.Status.Status.PrimaryWeight)
	require.Zero(c.t, e.CanaryReplicas)
	var want []int
	for w := 10; w <= maxWeight; w += 10 {
		want = append(want, w)
	}
	require.Equal(c.t, want, c.advances(e.History), "each canary weight decided once:\n%s", e.History)
	require.Equal(c.t, 1, strings.Count(e.History, "phase Promoting"), "one promotion:\n%s", e.History)
	require.Equal(c.t, 1, strings.Count(e.History, "promoted revision"), "one promotion:\n%s", e.History)
	require.Zero(c.t, strings.Count(e.History, "Rolling back"), e.History)
}

// advances lists the canary weights the history advanced through, in order.
func (c *canary) advances(history string) []int {
	var got []int
	for _, m := range c.advanceRE().FindAllStringSubmatch(history, -1) {
		n, _ := strconv.Atoi(m[2])
		got = append(got, n)
	}
	return got
}

func (c *canary) advanceRE() *regexp.Regexp {
	return regexp.MustCompile(`(?m)^(\S+) Advance ` + regexp.QuoteMeta("podinfo."+c.NS) + ` canary weight (\d+)`)
}

// stepGaps are the times between the history's successive canary weight advances.
func (c *canary) stepGaps(history string) []time.Duration {
	var at []time.Time
	for _, m := range c.advanceRE().FindAllStringSubmatch(history, -1) {
		ts, err := time.Parse(time.RFC3339, m[1])
		require.NoError(c.t, err)
		at = append(at, ts)
	}
	var gaps []time.Duration
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]))
	}
	return gaps
}

// maxGap is the longest of gaps (0 for none).
func maxGap(gaps []time.Duration) time.Duration {
	s := append([]time.Duration(nil), gaps...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

// waitResult waits for a background starter.
func waitResult(t *testing.T, done <-chan e2e.Result, within time.Duration) e2e.Result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(within):
		t.Fatalf("the starter did not end within %s", within)
		return e2e.Result{}
	}
}

// labPrometheus is the lab's Prometheus, which the fault proxies stand in front of.
func labPrometheus(t *testing.T) string { t.Helper(); return labtest.PrometheusURL(t) }

// listRuns lists the runs of the podinfo canary of ns (the dev server's visibility store refuses ORDER BY).
func listRuns(temporalNS, ns string) *workflowservice.ListWorkflowExecutionsRequest {
	return &workflowservice.ListWorkflowExecutionsRequest{Namespace: temporalNS,
		Query: fmt.Sprintf("WorkflowId = %q", v1beta1.WorkflowID(ns, "podinfo"))}
}

// contextFor is a context that ends within d or at the end of the test.
func contextFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
