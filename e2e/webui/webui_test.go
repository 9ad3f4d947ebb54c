package webui

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labbin"
	"github.com/canaryflow/canaryflow/workflows"
)

// The documented names (docs/operating.md, "What to address"): the test's dev server is its own, so it uses them
// as written.
const (
	taskQueue  = "canaryflow"
	workflowID = "canary/test/podinfo"
)

// podinfo is the Canary of the documented flow: a confirm-promotion gate (kept closed by the fake cluster) so that
// the rollout holds until someone approves, and steps slow enough that it is still progressing when the abort comes.
const podinfo = `apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: traefik
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis:
    interval: 1m
    threshold: 1
    stepWeight: 10
    maxWeight: 50
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1m
    webhooks:
    - name: ask-a-human
      type: confirm-promotion
      url: http://gate.test/approve
`

// The documented signal inputs.
const (
	approveInput = `{"gate":"confirm-promotion","by":"alice","reason":"looks good"}`
	abortInput   = `{"by":"alice","reason":"error budget burnt"}`
)

// findQuery is the documented list query of the rollouts of a canary namespace under way.
const findQuery = `CanaryNamespace="test" AND CanaryPhase="Progressing" AND ExecutionStatus="Running"`

// env is a private dev server with its Web UI, a worker running the real CanaryRollout against the in-memory
// cluster, and a headless Chromium tab.
type env struct {
	t       *testing.T
	ui      string
	client  client.Client
	cluster *activitiestest.Cluster
	tab     context.Context
	shots   string
	step    int
}

func newEnv(t *testing.T) *env {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed: Debian's package drives the Web UI here; `./lab/build.sh chromium` " +
			"(run by make test-unit) installs it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The SDK's log of every activity would bury the test's own failure message.
	srv, ui, err := labbin.DevServerWithUI(ctx, log.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })

	c := srv.Client()
	cluster := activitiestest.NewCluster()
	cluster.Set("test", "podinfo", func(c *activitiestest.Canary) { c.ClosedGates[v1beta1.ConfirmPromotionHook] = true })
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(workflows.CanaryRollout, workflow.RegisterOptions{Name: workflows.WorkflowName})
	w.RegisterActivity(cluster.Activities())
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.WindowSize(1600, 1000),
		// Chromium refuses to run as root with its sandbox; the test's pages are the local UI only.
		chromedp.NoSandbox)
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelAlloc)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	// The first action starts the browser and binds it to the context it runs in: the tab's, not a step's deadline.
	require.NoError(t, chromedp.Do(tab), "start chromium")

	return &env{t: t, ui: ui, client: c, cluster: cluster, tab: tab, shots: shotDir(t)}
}

// shotDir is where the screenshots of each step go: the test's artifact directory when go test runs with
// -artifacts, otherwise a directory kept when the test fails (and named then) and removed when it passes.
func shotDir(t *testing.T) string {
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		return t.ArtifactDir()
	}
	dir, err := os.MkdirTemp("", "canaryflow-webui-")
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("screenshots and page HTML of each step: %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

// do runs one step of the flow in the browser with a deadline, then saves a screenshot (and on failure the
// page's HTML) named after it.
func (e *env) do(name string, actions ...chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	e.step++
	ctx, cancel := context.WithTimeout(e.tab, 30*time.Second)
	defer cancel()
	var err error
	for i, a := range actions {
		if err = chromedp.Do(ctx, a); err != nil {
			err = fmt.Errorf("action %d of %d: %w", i+1, len(actions), err)
			break
		}
	}
	base := filepath.Join(e.shots, fmt.Sprintf("%02d-%s", e.step, name))
	sctx, scancel := context.WithTimeout(e.tab, 10*time.Second)
	defer scancel()
	if png, serr := chromedp.Run(sctx, chromedp.FullScreenshot(100)); serr == nil {
		_ = os.WriteFile(base+".png", png, 0o600)
	}
	if err != nil {
		if html, herr := chromedp.Run(sctx, chromedp.OuterHTML(chromedp.CSS("html"))); herr == nil {
			_ = os.WriteFile(base+".html", []byte(html), 0o600)
		}
		e.t.Fatalf("step %q in the Web UI: %v (screenshot and HTML: %s.png/.html)", name, err, base)
	}
}

// paste pastes text into the editor sel finds, as a user's paste does: one paste event with the text on the
// clipboard (typing it key by key would let the editor close brackets and quotes itself).
func paste(sel, text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if err := pick(ctx, sel); err != nil {
			return err
		}
		js := fmt.Sprintf(`(() => {
			const el = document.querySelector("[data-pick]");
			el.focus();
			const data = new DataTransfer();
			data.setData("text/plain", %s);
			el.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true}));
			return el.textContent.length;
		})()`, jsString(text))
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](js))
		if err == nil && n == 0 {
			err = fmt.Errorf("the paste left %s empty", sel)
		}
		return err
	})
}

// shown waits until the page shows text (as rendered: innerText, hidden elements left out, any run of white space
// read as one space).
func shown(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`document.body.innerText.replace(/\s+/g, " ").includes(%s)`, jsString(text)),
			chromedp.WithPollingInterval(50*time.Millisecond)))
		return err
	})
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// printInput runs the documented `starter rollout -f podinfo.yaml --print-input`.
func printInput(t *testing.T) string {
	dir := t.TempDir()
	f := filepath.Join(dir, "podinfo.yaml")
	require.NoError(t, os.WriteFile(f, []byte(podinfo), 0o600))
	cmd := exec.CommandContext(t.Context(), "go", "run", "github.com/canaryflow/canaryflow/starter",
		"rollout", "-f", f, "--print-input")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	return string(out)
}

// saveHistory writes the rollout's history (protojson, as `temporal workflow show --output json` reads it) beside the
// screenshots, for a failure to be read event by event; it returns the file, or why there is none.
func (e *env) saveHistory(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var h historypb.History
	it := e.client.GetWorkflowHistory(ctx, workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return "not read: " + err.Error()
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.Marshal(&h)
	if err != nil {
		return "not written: " + err.Error()
	}
	f := filepath.Join(e.shots, name)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		return "not written: " + err.Error()
	}
	return f
}

// status asks the rollout's status query through the Go client.
func (e *env) status() (workflows.Status, error) {
	ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
	defer cancel()
	var st workflows.Status
	v, err := e.client.QueryWorkflow(ctx, workflowID, "", workflows.QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}

// eventually waits for the status to satisfy ok, polling generously.
func (e *env) eventually(what string, ok func(workflows.Status) bool) workflows.Status {
	e.t.Helper()
	var last workflows.Status
	var lastErr error
	require.Eventually(e.t, func() bool {
		last, lastErr = e.status()
		return lastErr == nil && ok(last)
	}, 90*time.Second, 250*time.Millisecond, "waiting for %s; last status %+v, error %v", what, last, lastErr)
	return last
}

// docSection returns the "Temporal Web UI" section of docs/operating.md.
func docSection(t *testing.T) string {
	b, err := os.ReadFile("../../docs/operating.md")
	require.NoError(t, err)
	_, sec, ok := strings.Cut(string(b), "\n## Temporal Web UI\n")
	require.True(t, ok, "docs/operating.md lost its Temporal Web UI section")
	sec, _, _ = strings.Cut(sec, "\n## ")
	return strings.Join(strings.Fields(sec), " ")
}

// TestOperatingDocWebUIFlowStartsFindsQueriesApprovesAndAbortsARollout follows the Web UI section of
// docs/operating.md click by click in headless Chromium against the dev server's UI (the UI of the temporal CLI the
// lab pins), and checks through the Go client that the rollout reacted to each step.
func TestOperatingDocWebUIFlowStartsFindsQueriesApprovesAndAbortsARollout(t *testing.T) {
	doc := docSection(t)
	for _, want := range []string{
		"*Workflows* (left bar) → **Start Workflow**", "Workflow ID `canary/test/podinfo`", "Task Queue `canaryflow`",
		"Workflow Type `CanaryRollout`", "`starter rollout -f podinfo.yaml --print-input`", "Encoding `json/plain`",
		"Workflow started successfully", "Workflow execution is already running",
		"**View raw query**", "press Enter", "`" + findQuery + "`", "`WorkflowId=\"canary/test/podinfo\"`",
		"click its Workflow ID", "**Queries** tab", "**Run Query**", "**More Actions**", "**Send a Signal**", "Signal name: choose `approve`",
		"`" + approveInput + "`", "Signal name `abort`", "`" + abortInput + "`", "**Submit**", "Workflow signaled",
	} {
		require.True(t, strings.Contains(doc, want),
			"the test follows the Web UI steps of docs/operating.md, which no longer says %q", want)
	}

	e := newEnv(t)
	in := printInput(t)
	require.True(t, json.Valid([]byte(in)), in)

	// Start: Workflows (left bar) → Start Workflow → the form filled as documented → Start Workflow.
	e.do("workflows", chromedp.Navigate(e.ui), clickShown(`nav a[data-track-text="Workflows"]`), shown("Start Workflow"))
	e.do("start-form", press("main", "Start Workflow"), chromedp.WaitVisible(chromedp.CSS(`#workflowId`)))
	e.do("start-form-filled",
		chromedp.SendKeys(chromedp.CSS(`#workflowId`), workflowID),
		chromedp.SendKeys(chromedp.CSS(`#taskQueue`), taskQueue),
		chromedp.SendKeys(chromedp.CSS(`#workflowType`), workflows.WorkflowName),
		paste(`[role="textbox"][data-language="json"]`, in),
		clickShown(`input[value="json/plain"]`))
	e.do("started", press("main", "Start Workflow"), shown("Workflow started successfully"))
	d, err := e.client.DescribeWorkflowExecution(t.Context(), workflowID, "")
	require.NoError(t, err, "the Start Workflow form started no rollout")
	require.Equal(t, taskQueue, d.GetExecutionConfig().GetTaskQueue().GetName())
	require.Equal(t, workflows.WorkflowName, d.GetWorkflowExecutionInfo().GetType().GetName())
	runID := d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	e.eventually("the rollout started from the UI to progress", func(s workflows.Status) bool {
		return s.Phase == workflows.PhaseProgressing && s.CanaryWeight > 0
	})

	// The same form again while the rollout is open: refused, and the open run is left alone.
	e.do("start-refused", press("main", "Start Workflow"), shown("Workflow execution is already running"))
	d, err = e.client.DescribeWorkflowExecution(t.Context(), workflowID, "")
	require.NoError(t, err)
	require.Equal(t, runID, d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), "a refused start replaced the open run")

	// A rollout of another canary, which the documented query must leave out.
	var other workflows.RolloutInput
	require.NoError(t, json.Unmarshal([]byte(in), &other))
	other.Canary.Namespace = "other"
	_, err = e.client.ExecuteWorkflow(t.Context(), client.StartWorkflowOptions{ID: other.Canary.WorkflowID(), TaskQueue: taskQueue},
		workflows.WorkflowName, other)
	require.NoError(t, err)
	e.visible(findQuery, 1)
	e.visible(strings.Replace(findQuery, `"test"`, `"other"`, 1), 1)

	// Find: Workflows → View raw query (</> at the right of the filter bar) → the documented query.
	e.find("find", findQuery)

	// Open the run from the list; Queries tab → status → Run Query.
	e.do("open", press("main", workflowID), shown("More Actions"))
	e.do("queries", press("main", "Queries"), press("main", "Run Query"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="query-result"]`)), shown(`"phase"`))
	got, err := chromedp.Run(e.tab, chromedp.Text(chromedp.CSS(`[data-testid="query-result"]`)))
	require.NoError(t, err)
	// The viewer's fold markers (⌄) come first in its text.
	var st workflows.Status
	require.NoError(t, json.Unmarshal([]byte(got[max(strings.Index(got, "{"), 0):]), &st), "the Queries tab shows no JSON status: %q", got)
	require.Equal(t, workflows.PhaseProgressing, st.Phase, got)
	require.Positive(t, st.CanaryWeight, got)

	// Approve: the rollout records the approval and holds the gate open for the promotion.
	e.signal("approve", approveInput)
	st = e.eventually("the approval sent from the UI", func(s workflows.Status) bool { return len(s.Approvals) > 0 })
	require.Equal(t, "alice", st.Approvals[0].By)
	require.Equal(t, "looks good", st.Approvals[0].Reason)
	require.Equal(t, workflows.GateConfirmPromotion, st.Approvals[0].Gate)
	require.Contains(t, st.OpenGates, workflows.GateConfirmPromotion)

	// Abort: the rollout rolls back and ends failed, naming who aborted.
	e.signal("abort", abortInput)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var res workflows.RolloutResult
	if err := e.client.GetWorkflow(ctx, workflowID, "").Get(ctx, &res); err != nil {
		t.Fatalf("the rollout did not end after the abort: %v; its history: %s", err, e.saveHistory("history.json"))
	}
	require.Equal(t, workflows.PhaseFailed, res.Phase, "%+v", res)
	require.False(t, res.Promoted)
	require.Equal(t, "alice", res.Status.AbortedBy)
	require.Equal(t, "error budget burnt", res.Status.AbortReason)
	routes := e.cluster.Get("test", "podinfo").Routes
	require.Equal(t, "100/0", routes[len(routes)-1], "all traffic back on the primary after the abort: %v", routes)

	// Every rollout of the canary, the closed one too, under its workflow ID.
	e.visible(`WorkflowId="canary/test/podinfo" AND ExecutionStatus="Completed"`, 1)
	e.find("find-by-id", `WorkflowId="canary/test/podinfo"`)
}

// find lists the workflows of query as documented: Workflows → View raw query → the query → Enter; the run of the
// test's canary is listed, alone.
func (e *env) find(step, query string) {
	e.t.Helper()
	e.do(step, clickShown(`nav a[data-track-text="Workflows"]`), shown("Start Workflow"),
		clickShown(`[data-testid="toggle-manual-query"]`),
		chromedp.Clear(chromedp.CSS(`[data-testid="manual-search-input"]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid="manual-search-input"]`), query+"\r"),
		shown("1 Workflow"), shownLink(workflowID))
	page, err := chromedp.Run(e.tab, chromedp.Text(chromedp.CSS("main")))
	require.NoError(e.t, err)
	require.NotContains(e.t, page, "canary/other/podinfo", "%s lists a rollout of another canary", query)
}

// signal sends a signal from the open run's page as documented: More Actions → Send a Signal → name, input.
// The name is checked where the user reads it, on the form's selector, before the input and again before Submit
// (chosen again if it changed): in CI runs a click meant for one name in the sliding list chose its neighbour
// ("revision" for "abort"), and a click on the input editor while the list faded out chose the name under it.
func (e *env) signal(name, in string) {
	e.t.Helper()
	const modal = `#signal-confirmation-modal`
	e.do(name+"-form", press("", "More Actions"), press("", "Send a Signal"),
		choose(modal, name),
		paste(modal+` [role="textbox"][data-language="json"]`, in),
		clickShown(modal+` input[value="json/plain"]`))
	e.do(name+"-sent", choose(modal, name), press(modal, "Submit"), shown("Workflow signaled"), gone(modal))
}

// choose picks the signal name in the form's selector, trying again while the selector shows another, and
// returns once the list of names has closed: it fades out over 100 ms and takes clicks until it is hidden, and
// it lies over the input editor, so a click on the editor right after the choice chose the name under it (a CI
// run's screenshot showed "revision" chosen after "abort" was). It returns at once when name is chosen already.
func choose(modal, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		var err error
		for range 5 {
			if chromedp.Do(ctx, chosen(modal, name, 300*time.Millisecond)) == nil {
				if err = chromedp.Do(ctx, signalListClosed(modal)); err == nil {
					return nil
				}
				continue
			}
			err = chromedp.Do(ctx, clickShown(modal+` [data-testid="signal-select-button"]`))
			if err == nil {
				err = chromedp.Do(ctx, press(modal, name))
			}
			if err == nil {
				if err = chromedp.Do(ctx, chosen(modal, name, 2*time.Second)); err == nil {
					if err = chromedp.Do(ctx, signalListClosed(modal)); err == nil {
						return nil
					}
				}
			}
		}
		return err
	})
}

// signalListClosed waits up to 2 s until the list of signal names is hidden (its fade-out over).
func signalListClosed(modal string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		js := fmt.Sprintf(`[...document.querySelectorAll(%s)].every(l => getComputedStyle(l).visibility === "hidden")`,
			jsString(modal+` [role="listbox"]`))
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			return fmt.Errorf("the list of signal names stays open: %w", err)
		}
		return nil
	})
}

// chosen waits up to d until the form's shown signal selector reads name.
func chosen(modal, name string, d time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		// The selector shows the name in a disabled input inside its button.
		js := fmt.Sprintf(`[...document.querySelectorAll(%s)].some(b => b.getClientRects().length > 0 &&
			b.querySelector("#signal-select")?.value === %s)`, jsString(modal+` [data-testid="signal-select-button"]`), jsString(name))
		ctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			return fmt.Errorf("the signal form does not show %q chosen: %w", name, err)
		}
		return nil
	})
}

// press clicks the shown button, link, tab, menu item or option labelled exactly label (inside the element
// scope finds, when given): what a user looks for on the page.
func press(scope, label string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		mark := fmt.Sprintf(`(() => {
			const shown = e => e.getClientRects().length > 0;
			const roots = %s ? [...document.querySelectorAll(%s)].filter(shown) : [document];
			const hits = roots.flatMap(r => [...r.querySelectorAll("button, a, [role=tab], [role=menuitem], [role=option]")]).filter(e =>
				shown(e) && e.innerText.trim().replace(/\s+/g, " ") === %s);
			document.querySelectorAll("[data-pick]").forEach(e => e.removeAttribute("data-pick"));
			if (hits.length === 0) return false;
			const hit = hits[hits.length - 1];
			hit.setAttribute("data-pick", "");
			// Menus and lists slide in: a click while they move lands on a neighbour.
			const at = JSON.stringify(hit.getBoundingClientRect());
			const still = window.__pressAt === at;
			window.__pressAt = at;
			return still;
		})()`, jsString(scope), jsString(scope), jsString(label))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](mark, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
			return fmt.Errorf("no %q to press: %w", label, err)
		}
		return chromedp.Do(ctx, chromedp.Click(chromedp.CSS("[data-pick]")))
	})
}

// pick waits until an element css finds is shown and marks the first such for a chromedp selector: the UI keeps
// hidden copies of some controls (a narrow-screen layout, closed dialogs) that a plain query would find first.
func pick(ctx context.Context, css string) error {
	mark := fmt.Sprintf(`(() => {
		document.querySelectorAll("[data-pick]").forEach(e => e.removeAttribute("data-pick"));
		const hit = [...document.querySelectorAll(%s)].find(e => e.getClientRects().length > 0);
		if (!hit) return false;
		hit.setAttribute("data-pick", "");
		return true;
	})()`, jsString(css))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](mark, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		return fmt.Errorf("nothing shown matches %s: %w", css, err)
	}
	return nil
}

// clickShown clicks the first shown element css finds.
func clickShown(css string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if err := pick(ctx, css); err != nil {
			return err
		}
		return chromedp.Do(ctx, chromedp.Click(chromedp.CSS("[data-pick]")))
	})
}

// gone waits until no element css finds is shown.
func gone(css string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(
			`![...document.querySelectorAll(%s)].some(e => e.getClientRects().length > 0)`, jsString(css)),
			chromedp.WithPollingInterval(100*time.Millisecond)))
		return err
	})
}

// shownLink waits until the page shows a link whose text is text.
func shownLink(text string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(
			`[...document.querySelectorAll("a")].some(a => a.getClientRects().length > 0 && a.innerText.trim() === %s)`,
			jsString(text)), chromedp.WithPollingInterval(50*time.Millisecond)))
		return err
	})
}

// visible waits until the server's visibility store answers query with n workflows, so that the UI's list,
// which reads the same store, is not asked before it can know.
func (e *env) visible(query string, n int64) {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		res, err := e.client.CountWorkflow(e.t.Context(), &workflowservice.CountWorkflowExecutionsRequest{Query: query})
		return err == nil && res.GetCount() == n
	}, 30*time.Second, 100*time.Millisecond, "visibility never answered %d for %s", n, query)
}
