package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/workflows"
)

// Figures are what the scenarios measure.
type Figures struct {
	// AbortAtWeight is the canary's weight in the TraefikService when the abort started (always > 0).
	AbortAtWeight int64
	// AbortToPrimaryObject is from `starter abort` starting to the TraefikService holding 100/0.
	AbortToPrimaryObject time.Duration
	// AbortToPrimaryTraffic is from `starter abort` starting to the last answer the canary gave through Traefik
	// (requests sent back to back for 5 s after the abort).
	AbortToPrimaryTraffic time.Duration
	// Events is the history length of each rollout, by scenario.
	Events map[string]int
	// RolloutTime is how long each `starter rollout --wait` took, by scenario.
	RolloutTime map[string]time.Duration
	// KubeRequests is how many Kubernetes API requests the worker made for each rollout: from the end of the
	// previous scenario's `starter rollout` to the end of this one's.
	KubeRequests map[string]int
	// IdleKubeRequests is how many the worker made during IdleWindow with no rollout running.
	IdleKubeRequests int
	IdleWindow       time.Duration
}

// Scenarios run the seed scenario on one namespace, in order.
type Scenarios struct {
	S        *Stack
	NS       string
	Temporal client.Client
	Figures  Figures
	// Say narrates this namespace's scenarios and streams its starter output (the Stack's Say by default).
	Say func(format string, args ...any)

	kubeSoFar int // the worker's request counter at the last record
}

// NewScenarios connects to the lab's Temporal for status queries.
func NewScenarios(s *Stack, ns string) (*Scenarios, error) {
	c, err := client.Dial(client.Options{HostPort: s.Lab.TemporalAddress, Namespace: s.Lab.TemporalNamespace})
	if err != nil {
		return nil, err
	}
	return &Scenarios{S: s, NS: ns, Temporal: c, Say: s.Say,
		Figures: Figures{Events: map[string]int{}, RolloutTime: map[string]time.Duration{}, KubeRequests: map[string]int{}}}, nil
}

func (sc *Scenarios) id() string { return v1beta1.WorkflowID(sc.NS, "podinfo") }

func (sc *Scenarios) record(name string, r Result) {
	sc.Figures.RolloutTime[name] = r.Took
	if d, err := sc.Temporal.DescribeWorkflowExecution(context.Background(), sc.id(), ""); err == nil {
		sc.Figures.Events[name] = int(d.GetWorkflowExecutionInfo().GetHistoryLength())
	}
	if n, err := sc.S.KubeRequests(context.Background(), "worker"); err == nil {
		sc.Figures.KubeRequests[name] = n - sc.kubeSoFar
		sc.kubeSoFar = n
	}
}

// Idle counts the worker's Kubernetes API requests over window while the canary waits for its next revision.
// canaryflow holds no watches and polls nothing between rollouts, so the count should be zero.
func (sc *Scenarios) Idle(ctx context.Context, window time.Duration) error {
	// The window starts once the rollout has nothing left to do: no activity pending or retrying.
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := sc.Temporal.DescribeWorkflowExecution(ctx, sc.id(), "")
		if err != nil {
			return err
		}
		if len(d.GetPendingActivities()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the rollout still has %d pending activities a minute after the last scenario", len(d.GetPendingActivities()))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	before, err := sc.S.KubeRequests(ctx, "worker")
	if err != nil {
		return err
	}
	sc.S.Say("Measuring the worker's Kubernetes API requests over %s with no rollout running ...", window)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(window):
	}
	after, err := sc.S.KubeRequests(ctx, "worker")
	if err != nil {
		return err
	}
	sc.Figures.IdleKubeRequests, sc.Figures.IdleWindow = after-before, window
	sc.S.Say("   %d requests", after-before)
	return nil
}

// expectLines checks that a starter output holds each of the wanted lines (as substrings).
func expectLines(what string, out string, want ...string) error {
	for _, w := range want {
		if !strings.Contains(out, w) {
			return fmt.Errorf("%s: the output lacks %q; output:\n%s", what, w, out)
		}
	}
	return nil
}

func expectCode(what string, r Result, want int) error {
	if r.Code != want {
		return fmt.Errorf("%s exited %d, want %d; output:\n%s", what, r.Code, want, r.Output)
	}
	return nil
}

// Initialise applies podinfo 6.0.0 and the IngressRoutes and runs the first rollout: the primary is created and
// takes all traffic, the target is scaled to zero.
func (sc *Scenarios) Initialise(ctx context.Context) error {
	file, err := sc.S.WriteCanary("canary", CanaryOptions{Namespace: sc.NS})
	if err != nil {
		return err
	}
	return sc.InitialiseWith(ctx, file)
}

// InitialiseWith is Initialise with the Canary file given.
func (sc *Scenarios) InitialiseWith(ctx context.Context, file string) error {
	s := sc.S
	sc.Say("1. Initialisation: podinfo 6.0.0 (Deployment + HPA), IngressRoute podinfo.%s → TraefikService podinfo", sc.NS)
	if err := s.ApplyPodinfo(ctx, sc.NS, "6.0.0"); err != nil {
		return err
	}
	if err := s.ApplyIngressRoutes(ctx, sc.NS); err != nil {
		return err
	}
	r := s.StarterTo(ctx, sc.Say, "rollout", "-f", file, "--wait", "--timeout", "5m", "--by", "demo")
	sc.record("initialise", r)
	if err := expectCode("starter rollout (initialisation)", r, 0); err != nil {
		return err
	}
	img, _, err := s.Image(ctx, sc.NS, "podinfo-primary")
	if err != nil {
		return fmt.Errorf("primary after initialisation: %w", err)
	}
	if img != PodinfoImage("6.0.0") {
		return fmt.Errorf("primary runs %s, want %s", img, PodinfoImage("6.0.0"))
	}
	if err := sc.waitWeights(ctx, 100, 0, 30*time.Second); err != nil {
		return err
	}
	if err := sc.waitServing(ctx, "6.0.0", 60*time.Second); err != nil {
		return err
	}
	sc.Say("   primary podinfo-primary runs 6.0.0 and takes 100%% of the traffic; podinfo is scaled to zero")
	return nil
}

// Promote rolls out 6.0.1: weights advance to 50, the canary is promoted, the primary runs 6.0.1.
func (sc *Scenarios) Promote(ctx context.Context) error {
	s := sc.S
	s.Say("2. Rolling out 6.0.1: starter rollout --set-image podinfod=%s --wait", PodinfoImage("6.0.1"))
	file, err := s.WriteCanary("canary", CanaryOptions{Namespace: sc.NS})
	if err != nil {
		return err
	}
	r := s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.1"), "--wait", "--timeout", "10m", "--by", "demo")
	sc.record("promote", r)
	if err := expectCode("starter rollout 6.0.1", r, 0); err != nil {
		return err
	}
	canary := "podinfo." + sc.NS
	if err := expectLines("starter rollout 6.0.1", r.Output, "phase Progressing",
		"Advance "+canary+" canary weight 10", "Advance "+canary+" canary weight 50",
		"check request-success-rate", "promoted revision"); err != nil {
		return err
	}
	return sc.ExpectPrimary(ctx, "6.0.1")
}

// RollBack rolls out 6.0.2 while the load test hits /status/500: the success rate halts the analysis until the
// failed checks reach the threshold and the canary is rolled back; the primary still runs 6.0.1.
func (sc *Scenarios) RollBack(ctx context.Context) error {
	s := sc.S
	s.Say("3. Rolling out 6.0.2 while the load test requests /status/500")
	file, err := s.WriteCanary("canary-500", CanaryOptions{Namespace: sc.NS, LoadPath: "/status/500", LoadDuration: "75s"})
	if err != nil {
		return err
	}
	r := s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.2"), "--wait", "--timeout", "10m", "--by", "demo")
	sc.record("rollback", r)
	if err := expectCode("starter rollout 6.0.2", r, 1); err != nil {
		return err
	}
	if err := expectLines("starter rollout 6.0.2", r.Output, "Halt podinfo."+sc.NS+" advancement success rate",
		"phase Failed", "failed checks threshold reached 5"); err != nil {
		return err
	}
	if err := sc.ExpectPrimary(ctx, "6.0.1"); err != nil {
		return err
	}
	if _, replicas, err := s.Image(ctx, sc.NS, "podinfo"); err != nil || replicas != 0 {
		return fmt.Errorf("canary podinfo has %d replicas after the rollback (err %v), want 0", replicas, err)
	}
	s.Say("   rolled back: primary still runs 6.0.1, podinfo scaled to zero")
	// The next release is measured on the same podinfo-canary Service: wait until the errors of this one have
	// left the metrics' one-minute window, as anyone would before the next release.
	s.Say("   waiting for the error load to end and leave the one-minute metric window")
	return sc.waitCanaryErrorsGone(ctx, 4*time.Minute)
}

// waitCanaryErrorsGone waits until Prometheus sees no 5xx answers of the canary Service over the last minute.
func (sc *Scenarios) waitCanaryErrorsGone(ctx context.Context, within time.Duration) error {
	q := fmt.Sprintf(`sum(rate(traefik_service_requests_total{service=~"%s-podinfo-canary-[0-9a-zA-Z-]+@kubernetescrd",code=~"5.."}[1m])) or vector(0)`, sc.NS)
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, sc.S.Lab.PrometheusURL+"/api/v1/query?query="+url.QueryEscape(q), nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var body struct {
				Data struct {
					Result []struct {
						Value []any `json:"value"`
					} `json:"result"`
				} `json:"data"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err == nil && len(body.Data.Result) > 0 && len(body.Data.Result[0].Value) == 2 {
				last, _ = body.Data.Result[0].Value[1].(string)
				if last == "0" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return fmt.Errorf("the canary still answers 5xx at %s/s after %s", last, within)
}

// ApproveGate rolls out 6.0.3 behind a confirm-promotion gate that a person opens with starter approve.
func (sc *Scenarios) ApproveGate(ctx context.Context) error {
	s := sc.S
	s.Say("4a. Rolling out 6.0.3 behind a confirm-promotion gate")
	file, err := s.WriteCanary("canary-gate", CanaryOptions{Namespace: sc.NS, ConfirmPromotion: true})
	if err != nil {
		return err
	}
	done := make(chan Result, 1)
	go func() {
		done <- s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.3"), "--wait", "--timeout", "10m", "--by", "demo")
	}()
	if err := sc.WaitStatus(ctx, 5*time.Minute, func(st workflows.Status) bool {
		return st.PendingGate == workflows.GateConfirmPromotion
	}); err != nil {
		return fmt.Errorf("waiting for the confirm-promotion gate: %w", err)
	}
	s.Say("   waiting at confirm-promotion; approving as release-manager")
	a := s.Starter(ctx, "approve", "podinfo", "-n", sc.NS, "--gate", "confirm-promotion", "--by", "release-manager", "--reason", "dashboards look good")
	if err := expectCode("starter approve", a, 0); err != nil {
		return err
	}
	r := <-done
	sc.record("approve", r)
	if err := expectCode("starter rollout 6.0.3", r, 0); err != nil {
		return err
	}
	// The approval is in the rollout's history, read back by starter history.
	h := s.Starter(ctx, "history", "podinfo", "-n", sc.NS)
	if err := expectCode("starter history", h, 0); err != nil {
		return err
	}
	if err := expectLines("starter history", h.Output, "approve by release-manager gate confirm-promotion",
		"dashboards look good", "promoted revision"); err != nil {
		return err
	}
	return sc.ExpectPrimary(ctx, "6.0.3")
}

// Abort rolls out 6.0.4 and aborts it mid-analysis; it measures how long the abort takes to bring all traffic
// back to the primary.
func (sc *Scenarios) Abort(ctx context.Context) error {
	s := sc.S
	s.Say("4b. Rolling out 6.0.4 and aborting it mid-analysis")
	file, err := s.WriteCanary("canary", CanaryOptions{Namespace: sc.NS})
	if err != nil {
		return err
	}
	done := make(chan Result, 1)
	go func() {
		done <- s.Starter(ctx, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.4"), "--wait", "--timeout", "10m", "--by", "demo")
	}()
	// Abort once the canary really answers through Traefik (the router has applied its weight), so the
	// measurement below sees traffic leave it.
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if v, err := sc.version(ctx); err == nil && v == "6.0.4" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the canary never answered through Traefik before the abort")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The figure means something only while the canary holds traffic: the router object must give it weight
	// when the clock starts, or the "abort" would measure a split that never left the primary.
	p, c, err := s.TraefikWeights(ctx, sc.NS, "podinfo")
	if err != nil {
		return fmt.Errorf("read the TraefikService before the abort: %w", err)
	}
	if c == 0 {
		return fmt.Errorf("the canary answered through Traefik but the TraefikService gives it no weight (%d/%d): no abort figure to take", p, c)
	}
	sc.Figures.AbortAtWeight = c
	start := time.Now()
	objDone, trafficDone := make(chan time.Duration, 1), make(chan time.Duration, 1)
	go func() { // the router object
		for time.Since(start) < time.Minute {
			if p, c, err := s.TraefikWeights(ctx, sc.NS, "podinfo"); err == nil && p == 100 && c == 0 {
				objDone <- time.Since(start)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		objDone <- -1
	}()
	go func() { // the traffic through Traefik: requests back to back for 5 s; when did the canary last answer?
		var lastCanary time.Duration
		for time.Since(start) < 5*time.Second {
			if v, err := sc.version(ctx); err == nil && v == "6.0.4" {
				lastCanary = time.Since(start)
			}
		}
		trafficDone <- lastCanary
	}()
	a := s.Starter(ctx, "abort", "podinfo", "-n", sc.NS, "--by", "oncall", "--reason", "saw errors in the logs")
	if err := expectCode("starter abort", a, 0); err != nil {
		return err
	}
	sc.Figures.AbortToPrimaryObject, sc.Figures.AbortToPrimaryTraffic = <-objDone, <-trafficDone
	r := <-done
	sc.record("abort", r)
	if err := expectCode("starter rollout 6.0.4 (aborted)", r, 1); err != nil {
		return err
	}
	if err := expectLines("starter rollout 6.0.4 (aborted)", r.Output, "abort by oncall", "saw errors in the logs"); err != nil {
		return err
	}
	if sc.Figures.AbortToPrimaryObject < 0 {
		return fmt.Errorf("the TraefikService did not return to 100/0 within a minute of the abort")
	}
	if sc.Figures.AbortToPrimaryTraffic > 4*time.Second {
		return fmt.Errorf("the canary still answered %s after the abort", sc.Figures.AbortToPrimaryTraffic)
	}
	s.Say("   aborted at canary weight %d: TraefikService at 100/0 %s after `starter abort` started; the canary's last answer through Traefik came %s after it",
		sc.Figures.AbortAtWeight, sc.Figures.AbortToPrimaryObject.Round(time.Millisecond), sc.Figures.AbortToPrimaryTraffic.Round(time.Millisecond))
	return sc.ExpectPrimary(ctx, "6.0.3")
}

// Summary prints the Web UI address of the canary's rollouts and starter list.
func (sc *Scenarios) Summary(ctx context.Context) error {
	s := sc.S
	s.Say("5. Every rollout of this canary is in the Temporal Web UI:")
	s.Say("   %s/namespaces/%s/workflows?query=%s", s.Lab.TemporalUIURL, s.Lab.TemporalNamespace,
		url.QueryEscape(fmt.Sprintf("WorkflowId=%q", sc.id())))
	resp, err := sc.Temporal.ListWorkflow(ctx, listRequest(s.Lab.TemporalNamespace, sc.id()))
	if err != nil {
		return err
	}
	for _, e := range resp.GetExecutions() {
		s.Say("   %s/namespaces/%s/workflows/%s/%s/history", s.Lab.TemporalUIURL, s.Lab.TemporalNamespace,
			url.PathEscape(e.GetExecution().GetWorkflowId()), e.GetExecution().GetRunId())
	}
	r := s.Starter(ctx, "list", "-A")
	return expectCode("starter list", r, 0)
}

// ExpectPrimary checks that the primary runs version, holds all traffic on the router (100/0) and answers
// through Traefik.
func (sc *Scenarios) ExpectPrimary(ctx context.Context, version string) error {
	img, _, err := sc.S.Image(ctx, sc.NS, "podinfo-primary")
	if err != nil {
		return err
	}
	if img != PodinfoImage(version) {
		return fmt.Errorf("primary runs %s, want %s", img, PodinfoImage(version))
	}
	if err := sc.waitWeights(ctx, 100, 0, 30*time.Second); err != nil {
		return err
	}
	return sc.waitServing(ctx, version, 60*time.Second)
}

func (sc *Scenarios) waitWeights(ctx context.Context, primary, canary int64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		p, c, err := sc.S.TraefikWeights(ctx, sc.NS, "podinfo")
		if err == nil && p == primary && c == canary {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("TraefikService %s/podinfo at %d/%d (err %v), want %d/%d", sc.NS, p, c, err, primary, canary)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitServing waits until 20 answers in a row through Traefik come from version.
func (sc *Scenarios) waitServing(ctx context.Context, version string, within time.Duration) error {
	deadline := time.Now().Add(within)
	streak := 0
	var last string
	for time.Now().Before(deadline) {
		v, err := sc.version(ctx)
		if err == nil && v == version {
			streak++
			if streak == 20 {
				return nil
			}
			continue
		}
		last, streak = v, 0
		if err != nil {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("podinfo.%s does not answer with version %s through Traefik (last answer: %s)", sc.NS, version, last)
}

// version asks podinfo, through Traefik, which version answers.
func (sc *Scenarios) version(ctx context.Context) (string, error) {
	a, err := sc.ask(ctx, "/api/info", nil)
	return a.Version, err
}

// ErrLabReusedIP marks an answer from a pod of another namespace: the lab's kwok gave a new pod the IP of one of
// this namespace's pods while Traefik still routed to it (a kubelet keeps a pod's IP through its grace period;
// kwok frees it at once). It is the lab's mistake, not the router's.
var ErrLabReusedIP = errors.New("the lab gave it the IP")

// Answer is what podinfo answered one request through Traefik: its version, the pod that served it (in the
// scenarios' namespace) and the cookies it set.
type Answer struct {
	Version string
	Pod     string
	Cookies []*http.Cookie
}

// Primary reports whether a pod of the primary Deployment answered (not one of the canary, the target podinfo).
func (a Answer) Primary() bool { return strings.HasPrefix(a.Pod, "podinfo-primary-") }

// ask sends GET path (/api/info, which names the pod, or /version) with header to podinfo.<ns> through Traefik,
// as a user of the canary's host.
func (sc *Scenarios) ask(ctx context.Context, path string, header http.Header) (Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sc.S.Lab.TraefikURL+path, nil)
	if err != nil {
		return Answer{}, err
	}
	req.Host = "podinfo." + sc.NS
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	// The lab's podinfo says "<namespace>/<pod>" in its message.
	var v struct {
		Version string `json:"version"`
		Message string `json:"message"`
	}
	if resp.StatusCode != http.StatusOK {
		return Answer{}, fmt.Errorf("answer %d %q", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return Answer{}, fmt.Errorf("answer %d %q: %w", resp.StatusCode, strings.TrimSpace(string(body)), err)
	}
	ns, pod, _ := strings.Cut(v.Message, "/")
	if pod != "" && ns != sc.NS {
		// Two live pods were given one IP (seen after kwok restarted mid-run): podnet runs only the newer's process.
		return Answer{}, fmt.Errorf("answered by pod %s of another namespace: %w of one of %s's pods", v.Message, ErrLabReusedIP, sc.NS)
	}
	return Answer{Version: v.Version, Pod: pod, Cookies: resp.Cookies()}, nil
}

// WaitStatus polls the rollout's status query until ok accepts it (a status query needs a worker).
func (sc *Scenarios) WaitStatus(ctx context.Context, within time.Duration, ok func(workflows.Status) bool) error {
	deadline := time.Now().Add(within)
	var last workflows.Status
	for time.Now().Before(deadline) {
		v, err := sc.Temporal.QueryWorkflow(ctx, sc.id(), "", workflows.QueryStatus)
		if err == nil && v.Get(&last) == nil && ok(last) {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("last status: phase %s weight %d gate %q message %q", last.Phase, last.CanaryWeight, last.PendingGate, last.Message)
}

func listRequest(ns, id string) *workflowservice.ListWorkflowExecutionsRequest {
	return &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns, Query: fmt.Sprintf("WorkflowId = %q", id)}
}
