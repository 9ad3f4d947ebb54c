//go:build lab

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/canaryflow/canaryflow/api/v1beta1"
	"github.com/canaryflow/canaryflow/lab/labtest"
	"github.com/canaryflow/canaryflow/workflows"
)

// settle is how long after the watch sees a new split the test waits before judging the traffic by it: Traefik
// applies a TraefikService change within about 2 s (lab-notes.md), so answers in between may follow either split.
const settle = 3 * time.Second

// TestStrategies rolls out podinfo 6.0.1 with each strategy of Flagger's NGINX tutorial — its Canary documents
// under api/v1beta1/testdata/flagger, adapted to the lab by SeedCanary, interval 10s and a short schedule — through
// the real worker, the starter and Traefik, each in its own namespace, all at once. Users ask podinfo through
// Traefik the whole time; each test checks what they got against what the strategy promises, and the schedule
// against the starter's output, the status query and the TraefikService objects.
func TestStrategies(t *testing.T) {
	ctx, s := startStack(t, 20*time.Minute)
	for _, tc := range []struct {
		name, seed string
		adapt      func(a *v1beta1.CanaryAnalysis, s *Stack, ns string)
		users      []user
		during     func(ctx context.Context, t *testing.T, r *strategyRun) error
		check      func(t *testing.T, r *strategyRun)
	}{
		{
			// 20, 40, 60 %, then back to the primary in steps of 30 after the promotion.
			name: "canary", seed: "nginx-canary",
			adapt: func(a *v1beta1.CanaryAnalysis, _ *Stack, _ string) {
				a.MaxWeight, a.StepWeight, a.StepWeightPromotion = 60, 20, 30
			},
			users: []user{{name: "user"}},
			check: checkCanary,
		},
		{
			name: "ab-testing", seed: "nginx-ab-testing",
			adapt: func(a *v1beta1.CanaryAnalysis, s *Stack, ns string) {
				a.Iterations = 3
				// As Flagger's A/B tutorial, the load test sends requests that match, so the canary has traffic to
				// judge.
				setLoad(a, loadCmd(s.Lab.TraefikURL, "podinfo."+ns, "/", "2m", "X-Canary: insider"))
			},
			users: []user{
				{name: "anonymous"},
				{name: "insider", header: http.Header{"X-Canary": {"insider"}}},
				{name: "cookie", header: http.Header{"Cookie": {"canary=always"}}},
				{name: "outsider", header: http.Header{"X-Canary": {"outsider"}, "Cookie": {"canary=never; other=1"}}},
			},
			check: checkABTesting,
		},
		{
			name: "blue-green", seed: "nginx-blue-green",
			adapt: func(a *v1beta1.CanaryAnalysis, s *Stack, ns string) {
				a.Iterations = 3
				// Users never reach the canary before the switch, so the load test goes to its own host, as in
				// Flagger's blue/green tutorials; the first check after it starts may find no data yet, which holds
				// the step instead of failing it (canaryflow's onNoData).
				setLoad(a, loadCmd(s.Lab.TraefikURL, "podinfo-canary."+ns, "/", "2m"))
				for i := range a.Metrics {
					a.Metrics[i].OnNoData = v1beta1.NoDataHold
				}
			},
			users: []user{{name: "user"}},
			check: checkBlueGreen,
		},
		{
			name: "blue-green-mirroring", seed: "nginx-blue-green-mirroring",
			adapt:  func(a *v1beta1.CanaryAnalysis, _ *Stack, _ string) { a.Iterations = 3 },
			users:  []user{{name: "user"}},
			during: mirrorBurst,
			check:  checkMirroring,
		},
		{
			// 10 then 50 %, then back to the primary in steps of 25.
			name: "session-affinity", seed: "nginx-session-affinity",
			adapt: func(a *v1beta1.CanaryAnalysis, _ *Stack, _ string) { a.StepWeights = []int{10, 50} },
			users: []user{{name: "sticky", sticky: "flagger-cookie"}, {name: "anonymous"}},
			check: checkSessionAffinity,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := runStrategy(ctx, t, s, tc.name, tc.seed, tc.adapt, tc.during, tc.users...)
			tc.check(t, r)
			t.Logf("%s: rollout of 6.0.1 took %s; users sent %s; failed checks %d",
				tc.name, r.rollout.Took.Round(time.Second), r.countAnswers(), r.final.FailedChecks)
		})
	}
}

// setLoad replaces the command of the tutorial's load-test webhook.
func setLoad(a *v1beta1.CanaryAnalysis, cmd string) {
	for i := range a.Webhooks {
		if a.Webhooks[i].Name == "load-test" {
			(*a.Webhooks[i].Metadata)["cmd"] = cmd
		}
	}
}

// strategyRun is one strategy's rollout of 6.0.1 as the test watched it.
type strategyRun struct {
	sc      *Scenarios
	rollout Result // starter rollout --set-image podinfod=…:6.0.1 --wait
	// apex is the TraefikService podinfo the users' IngressRoute points at; ab the one A/B testing's matching
	// routes point at.
	apex, ab *splitLog
	statuses *statusLog
	answers  []answer
	final    workflows.Status // starter status -o json after the rollout
}

// runStrategy initialises podinfo 6.0.0 with the adapted seed Canary in a fresh namespace, then rolls out 6.0.1
// while users ask through Traefik, the TraefikServices are watched and the status is polled; during (if any) runs
// beside the rollout. The users go on until the primary serves 6.0.1 to them.
func runStrategy(ctx context.Context, t *testing.T, s *Stack, name, seed string,
	adapt func(*v1beta1.CanaryAnalysis, *Stack, string),
	during func(context.Context, *testing.T, *strategyRun) error, users ...user) *strategyRun {
	sc, err := NewScenarios(s, labtest.Namespace(t, "st-"+name))
	require.NoError(t, err)
	t.Cleanup(func() { sc.Temporal.Close() })
	say := Narrator(t)
	sc.Say = say
	c, err := s.SeedCanary(seed, sc.NS)
	require.NoError(t, err)
	c.Spec.Analysis.Interval = "10s"
	adapt(c.Spec.Analysis, s, sc.NS)
	file, err := s.WriteCanaryObject(sc.NS, c)
	require.NoError(t, err)
	require.NoError(t, sc.InitialiseWith(ctx, file), "initialisation")

	wctx, stop := context.WithCancel(ctx) // the watches, the status polls and the users
	t.Cleanup(stop)
	r := &strategyRun{sc: sc, apex: watchSplits(wctx, t, s, sc.NS, "podinfo", "podinfo"), statuses: pollStatus(wctx, sc)}
	if c.Strategy() == v1beta1.StrategyABTesting {
		r.ab = watchSplits(wctx, t, s, sc.NS, "podinfo-ab", "podinfo")
	}
	tr := startTraffic(wctx, sc, 50*time.Millisecond, users...)
	var duringErr error
	duringDone := make(chan struct{})
	go func() {
		defer close(duringDone)
		if during != nil {
			duringErr = during(wctx, t, r)
		}
	}()
	defer func() { stop(); <-duringDone }() // during logs to t: it must end before the test does
	r.rollout = s.StarterTo(ctx, say, "rollout", "-f", file, "--set-image", "podinfod="+PodinfoImage("6.0.1"),
		"--wait", "--timeout", "10m", "--by", "e2e")
	require.NoError(t, expectCode("starter rollout 6.0.1", r.rollout, 0))
	require.NoError(t, sc.ExpectPrimary(ctx, "6.0.1"))
	require.NoError(t, tr.awaitServed(ctx, "6.0.1", time.Minute, users...))
	r.answers = tr.Stop()
	stop()
	<-duringDone
	require.NoError(t, duringErr)

	st := s.StarterTo(ctx, say, "status", "podinfo", "-n", sc.NS, "-o", "json")
	require.NoError(t, expectCode("starter status", st, 0))
	var cs struct {
		Status workflows.Status `json:"status"`
	}
	require.NoError(t, json.Unmarshal([]byte(st.Output), &cs), "starter status -o json: %s", st.Output)
	r.final = cs.Status
	require.Equal(t, workflows.PhaseSucceeded, r.final.Phase)
	require.Zero(t, r.final.FailedChecks, "every metric check passes on the lab's traffic")
	_, replicas, err := s.Image(ctx, sc.NS, "podinfo")
	require.NoError(t, err)
	require.Zero(t, replicas, "the canary is scaled to zero after the promotion")
	// The lab's kwok deletes a terminating pod at once and gives its IP to the next pod, whose process replaces
	// the draining one while Traefik may still route to it for up to 2 s (a kubelet would wait out the grace
	// period): each such moment can cost a request or two. A routing mistake costs dozens.
	// An answer from another namespace's pod is the lab reusing an IP (ErrLabReusedIP): counted and shown, but
	// not held against the router, which sent the request to the right Service.
	var failed, reused []string
	for _, a := range r.answers {
		switch {
		case errors.Is(a.Err, ErrLabReusedIP):
			reused = append(reused, fmt.Sprintf("%s at %s: %v", a.user, a.At.Format("15:04:05.000"), a.Err))
		case a.Err != nil:
			failed = append(failed, fmt.Sprintf("%s at %s: %v", a.user, a.At.Format("15:04:05.000"), a.Err))
		}
	}
	if len(reused) > 0 {
		t.Logf("%d of %d user requests met a pod IP the lab had reused:\n%s", len(reused), len(r.answers), strings.Join(reused, "\n"))
	}
	if len(failed) > 0 {
		t.Logf("%d of %d user requests failed:\n%s", len(failed), len(r.answers), strings.Join(failed, "\n"))
	}
	require.LessOrEqual(t, len(failed), maxFailed, "user requests that failed during the rollout")
	return r
}

// maxFailed is how many user requests may fail in one rollout, for the lab's pod IP reuse (see runStrategy).
const maxFailed = 5

// countAnswers says how many answers each user got, e.g. "user 2113".
func (r *strategyRun) countAnswers() string {
	n := map[string]int{}
	var order []string
	for _, a := range r.answers {
		if n[a.user] == 0 {
			order = append(order, a.user)
		}
		n[a.user]++
	}
	var b strings.Builder
	for i, u := range order {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", u, n[u])
	}
	return b.String()
}

// of returns the answers user got between from (inclusive) and to (exclusive; zero means no end), leaving out
// failed requests (runStrategy counts those).
func (r *strategyRun) of(user string, from, to time.Time) []answer {
	var out []answer
	for _, a := range r.answers {
		if a.user == user && a.Err == nil && !a.At.Before(from) && (to.IsZero() || a.At.Before(to)) {
			out = append(out, a)
		}
	}
	return out
}

// canaryShare is the percentage of answers that came from canary pods.
func canaryShare(as []answer) float64 {
	n := 0
	for _, a := range as {
		if !a.Primary() {
			n++
		}
	}
	return 100 * float64(n) / float64(len(as))
}

// requireOrdered checks that out holds each of lines (as substrings), each after the one before.
func requireOrdered(t *testing.T, what, out string, lines ...string) {
	t.Helper()
	rest := out
	for _, l := range lines {
		i := strings.Index(rest, l)
		require.GreaterOrEqual(t, i, 0, "%s: %q missing or out of order (want %q in this order); output:\n%s", what, l, lines, out)
		rest = rest[i+len(l):]
	}
}

// A weighted canary: the split advances 20, 40, 60 % and after the promotion steps back to the primary by 30; at
// each weight the users' answers come from the canary in that share.
func checkCanary(t *testing.T, r *strategyRun) {
	requireOrdered(t, "starter rollout", r.rollout.Output, "phase Progressing",
		"weight primary 80 canary 20", "check request-success-rate", "weight primary 60 canary 40",
		"weight primary 40 canary 60", "phase Promoting", "weight primary 70 canary 30",
		"weight primary 100 canary 0", "phase Succeeded", "promoted")
	require.Equal(t, []Split{{100, 0, 0}, {80, 20, 0}, {60, 40, 0}, {40, 60, 0}, {70, 30, 0}, {100, 0, 0}}, r.apex.splits(),
		"the TraefikService's splits over the rollout")
	r.requireShares(t, "user")
}

// requireShares checks, for each split the TraefikService held long enough, that user's answers came from the
// canary in the split's share (±15 points: the load test's requests share Traefik's round robin).
func (r *strategyRun) requireShares(t *testing.T, user string) {
	t.Helper()
	for _, p := range r.apex.periods() {
		as := r.of(user, p.from.Add(settle), p.to)
		if len(as) < 60 {
			continue
		}
		got := canaryShare(as)
		t.Logf("split %-6s %5.1f%% of %3d answers from the canary", p.Split, got, len(as))
		require.InDelta(t, float64(p.Canary), got, 15, "at split %s, %d answers", p.Split, len(as))
	}
}

// A/B testing: the requests that match (the header, or the cookie) reach the canary during the iterations, and
// only those; the others never do.
func checkABTesting(t *testing.T, r *strategyRun) {
	require.Equal(t, []Split{{100, 0, 0}}, r.apex.splits(), "the TraefikService of the unmatched requests stays on the primary")
	require.Equal(t, []Split{{100, 0, 0}, {0, 100, 0}, {100, 0, 0}}, r.ab.splits(), "the TraefikService of the matching requests")
	requireIterations(t, r, 3)
	requireOrdered(t, "starter rollout", r.rollout.Output, "phase Progressing", "weight primary 0 canary 100",
		"check request-success-rate", "phase Promoting", "weight primary 100 canary 0", "phase Succeeded")
	for _, u := range []string{"anonymous", "outsider"} {
		as := r.of(u, time.Time{}, time.Time{})
		require.NotEmpty(t, as, u)
		require.Zero(t, canaryShare(as), "%s: a request that does not match never reaches the canary", u)
	}
	p := r.ab.periods()[1] // the iterations
	for _, u := range []string{"insider", "cookie"} {
		as := r.of(u, p.from.Add(settle), p.to)
		require.Greater(t, len(as), 20, "%s: answers during the iterations", u)
		require.Equal(t, 100.0, canaryShare(as), "%s: a matching request reaches the canary during the iterations", u)
		for _, a := range as {
			require.Equal(t, "6.0.1", a.Version)
		}
	}
}

// Blue/green: no user reaches the canary during the iterations; then all traffic switches to the new version and
// stays there, served by the primary after the promotion.
func checkBlueGreen(t *testing.T, r *strategyRun) {
	require.Equal(t, []Split{{100, 0, 0}, {0, 100, 0}, {100, 0, 0}}, r.apex.splits(), "the TraefikService's splits")
	requireIterations(t, r, 3)
	requireOrdered(t, "starter rollout", r.rollout.Output, "phase Progressing", "check request-success-rate",
		"weight primary 0 canary 100", "phase Promoting", "weight primary 100 canary 0", "phase Succeeded")
	requireCleanSwitch(t, r)
}

// requireIterations checks that the iterations were counted up one by one to n (the starter's stream of the
// history), and that the status query followed them while Progressing: never back, up to n. A poll may miss a
// value when the machine is loaded (once on 2 cores it missed one a whole interval long; the poll drops failed
// queries, so most likely none answered then), so the query is not required to see each one; the longest time
// without an answer is logged.
func requireIterations(t *testing.T, r *strategyRun, n int) {
	t.Helper()
	var advances []string
	for i := 1; i <= n; i++ {
		advances = append(advances, fmt.Sprintf("canary iteration %d/%d", i, n))
	}
	requireOrdered(t, "starter rollout", r.rollout.Output, advances...)
	var seen []int
	for _, st := range r.statuses.all() {
		if st.Phase == workflows.PhaseProgressing && (len(seen) == 0 || seen[len(seen)-1] != st.Iterations) {
			seen = append(seen, st.Iterations)
		}
	}
	t.Logf("iterations while Progressing, from the status query: %v (longest without an answer: %s)", seen,
		r.statuses.longestGap().Round(time.Millisecond))
	require.NotEmpty(t, seen, "the status query never answered while Progressing")
	for i, it := range seen {
		require.True(t, it >= 0 && it <= n && (i == 0 || it > seen[i-1]),
			"iterations while Progressing, from the status query, go up from 0 to %d: %v", n, seen)
	}
	require.Equal(t, n, seen[len(seen)-1], "iterations while Progressing, from the status query: %v", seen)
	require.Equal(t, n, r.final.Iterations)
}

// requireCleanSwitch checks that the user got only the primary's 6.0.0 until the switch, and once it first got
// 6.0.1 never 6.0.0 again.
func requireCleanSwitch(t *testing.T, r *strategyRun) {
	t.Helper()
	var switched time.Time
	for _, p := range r.apex.periods() {
		if p.Canary > 0 && switched.IsZero() {
			switched = p.from
		}
	}
	require.False(t, switched.IsZero(), "the TraefikService never switched to the canary")
	before := r.of("user", time.Time{}, switched)
	require.Greater(t, len(before), 200)
	for _, a := range before {
		require.True(t, a.Primary() && a.Version == "6.0.0", "before the switch every user is served by the primary's 6.0.0, got %s from %s at %s",
			a.Version, a.Pod, a.At.Format(time.TimeOnly))
	}
	var first time.Time
	for _, a := range r.of("user", switched, time.Time{}) {
		if first.IsZero() && a.Version == "6.0.1" {
			first = a.At
		}
		// Traefik applies a new split to its handlers within its settle time, not all at one instant: a request
		// may still meet the old split then. After that, never the old version again.
		require.False(t, !first.IsZero() && a.At.After(switched.Add(settle)) && a.Version != "6.0.1",
			"after the switch to 6.0.1 at %s (settled by %s), a user got %s from %s at %s", first.Format(time.TimeOnly),
			switched.Add(settle).Format(time.TimeOnly), a.Version, a.Pod, a.At.Format(time.TimeOnly))
	}
	require.False(t, first.IsZero(), "users never got 6.0.1")
	canary := 0
	for _, a := range r.of("user", switched, time.Time{}) {
		if !a.Primary() {
			canary++
		}
	}
	t.Logf("%d answers before the switch, all from the primary; %d from the canary after it", len(before), canary)
}

// Mirroring: users get only the primary's answers while the canary receives a copy of each request (mirrorBurst);
// then the switch as blue/green.
func checkMirroring(t *testing.T, r *strategyRun) {
	require.Equal(t, []Split{{100, 0, 0}, {100, 0, 100}, {0, 100, 0}, {100, 0, 0}}, r.apex.splits(), "the TraefikService's splits")
	requireIterations(t, r, 3)
	requireOrdered(t, "starter rollout", r.rollout.Output, "phase Progressing", "(canary gets mirrored traffic)",
		"check request-success-rate", "weight primary 0 canary 100", "phase Promoting", "weight primary 100 canary 0", "phase Succeeded")
	requireCleanSwitch(t, r)
}

// mirrorBurst waits until the TraefikService mirrors the primary, then sends 200 requests for /version (which
// the users' traffic does not ask for) and checks that each answer came from the primary while the canary's pods
// served exactly 200 copies.
func mirrorBurst(ctx context.Context, t *testing.T, r *strategyRun) error {
	const n = 200
	var since time.Time
	for since.IsZero() || time.Since(since) < settle {
		if p := r.apex.periods(); p[len(p)-1].MirrorPercent == 100 && since.IsZero() {
			since = p[len(p)-1].from
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the TraefikService never mirrored the primary: splits %v", r.apex.splits())
		case <-time.After(100 * time.Millisecond):
		}
	}
	before, err := canaryRequests(ctx, r.sc, "version")
	if err != nil {
		return err
	}
	for i := range n {
		a, err := r.sc.ask(ctx, "/version", nil)
		if err != nil {
			return err
		}
		if a.Version != "6.0.0" {
			return fmt.Errorf("mirrored request %d answered by %s: users get only the primary's answers", i, a.Version)
		}
	}
	end := time.Now()
	var got int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got, err = canaryRequests(ctx, r.sc, "version"); err != nil {
			return err
		}
		if got-before >= n {
			break
		}
	}
	if p := r.apex.periods(); len(p) != 2 || p[1].from != since {
		return fmt.Errorf("the split changed during the burst (by %s): %v", end.Format(time.TimeOnly), r.apex.splits())
	}
	t.Logf("%d requests to the users' host, all answered by the primary; the canary's pods served %d copies", n, got-before)
	if got-before != n {
		return fmt.Errorf("the canary's pods served %d copies of %d mirrored requests", got-before, n)
	}
	return nil
}

// canaryRequests sums the requests for path (podinfo's label, e.g. "version") the canary's pods have served, from
// their own metrics (pods answer at their IPs from the host).
func canaryRequests(ctx context.Context, sc *Scenarios, path string) (int, error) {
	pods, err := sc.S.Kube.CoreV1().Pods(sc.NS).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	total := 0
	for _, p := range pods.Items {
		if strings.HasPrefix(p.Name, "podinfo-primary-") || p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Status.PodIP+":9898/metrics", nil)
		if err != nil {
			return 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, fmt.Errorf("metrics of canary pod %s: %w", p.Name, err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "http_request_duration_seconds_count{") && strings.Contains(line, `path="`+path+`"`) {
				f := strings.Fields(line)
				v, err := strconv.ParseFloat(f[len(f)-1], 64)
				if err != nil {
					resp.Body.Close()
					return 0, fmt.Errorf("metrics of canary pod %s: %q: %w", p.Name, line, err)
				}
				total += int(math.Round(v))
			}
		}
		resp.Body.Close()
	}
	return total, nil
}

// Session affinity: a user who reached the canary keeps its cookie and is served by the canary on every request
// until the promotion, while users without the cookie are split by weight.
func checkSessionAffinity(t *testing.T, r *strategyRun) {
	requireOrdered(t, "starter rollout", r.rollout.Output, "phase Progressing", "weight primary 90 canary 10",
		"check request-success-rate", "weight primary 50 canary 50", "phase Promoting", "weight primary 75 canary 25",
		"weight primary 100 canary 0", "phase Succeeded")
	require.Equal(t, []Split{{100, 0, 0}, {90, 10, 0}, {50, 50, 0}, {75, 25, 0}, {100, 0, 0}}, r.apex.splits(), "the TraefikService's splits")
	promoting := r.apex.periods()[3].from
	var withCookie []answer
	for _, a := range r.of("sticky", time.Time{}, time.Time{}) {
		if a.Cookie {
			withCookie = append(withCookie, a)
			require.Equal(t, "6.0.1", a.Version, "a user with the canary's cookie is never served the old version (%s at %s)", a.Pod, a.At.Format(time.TimeOnly))
			require.False(t, a.At.Before(promoting) && a.Primary(), "a user with the canary's cookie is served by the canary until the promotion (%s at %s)", a.Pod, a.At.Format(time.TimeOnly))
		}
	}
	require.Greater(t, len(withCookie), 100, "answers to the user with the cookie")
	t.Logf("the user with the cookie got it at %s and %d answers, all 6.0.1", withCookie[0].At.Format(time.TimeOnly), len(withCookie))
	r.requireShares(t, "anonymous")
}

// ---------------------------------------------------------------- what the test watches

// Split changes as the watch saw them.
type splitLog struct {
	mu   sync.Mutex
	seen []period
}

// period is a split and when the TraefikService held it (to is zero while it still does).
type period struct {
	Split
	from, to time.Time
}

func (l *splitLog) add(sp Split) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.seen); n > 0 {
		if l.seen[n-1].Split == sp {
			return
		}
		l.seen[n-1].to = time.Now()
	}
	l.seen = append(l.seen, period{Split: sp, from: time.Now()})
}

func (l *splitLog) periods() []period {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]period(nil), l.seen...)
}

func (l *splitLog) splits() []Split {
	var out []Split
	for _, p := range l.periods() {
		out = append(out, p.Split)
	}
	return out
}

// watchSplits records every split of the TraefikService name (over <apex>-primary and <apex>-canary) until ctx
// ends, from a watch on the API server, so no change between two polls can be missed.
func watchSplits(ctx context.Context, t *testing.T, s *Stack, ns, name, apex string) *splitLog {
	t.Helper()
	l := &splitLog{}
	ri := s.Dynamic.Resource(labtest.TraefikServices).Namespace(ns)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	list, err := ri.List(ctx, metav1.ListOptions{FieldSelector: sel})
	require.NoError(t, err)
	require.Len(t, list.Items, 1, "TraefikService %s/%s after the initialisation", ns, name)
	l.add(splitOf(&list.Items[0], apex))
	rv := list.GetResourceVersion()
	go func() {
		for ctx.Err() == nil {
			w, err := ri.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				u, ok := ev.Object.(*unstructured.Unstructured)
				switch {
				case ev.Type == watch.Error || !ok:
					rv = "" // expired: start again from the current state
				case ev.Type == watch.Added || ev.Type == watch.Modified:
					rv = u.GetResourceVersion()
					l.add(splitOf(u, apex))
				}
			}
			w.Stop()
		}
	}()
	return l
}

// statusLog is every distinct status the status query returned, polled.
type statusLog struct {
	mu   sync.Mutex
	seen []workflows.Status
	// lastAnswer and gap: when the query last answered, and the longest time it went without an answer.
	lastAnswer time.Time
	gap        time.Duration
}

func (l *statusLog) longestGap() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gap
}

func (l *statusLog) all() []workflows.Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]workflows.Status(nil), l.seen...)
}

// pollStatus queries the rollout's status every 200 ms (a tenth of an interval) until ctx ends, keeping each
// change of phase, weights or iterations.
func pollStatus(ctx context.Context, sc *Scenarios) *statusLog {
	l := &statusLog{}
	go func() {
		for ctx.Err() == nil {
			var st workflows.Status
			if v, err := sc.Temporal.QueryWorkflow(ctx, sc.id(), "", workflows.QueryStatus); err == nil && v.Get(&st) == nil {
				l.mu.Lock()
				now := time.Now()
				if !l.lastAnswer.IsZero() && now.Sub(l.lastAnswer) > l.gap {
					l.gap = now.Sub(l.lastAnswer)
				}
				l.lastAnswer = now
				if n := len(l.seen); n == 0 || l.seen[n-1].Phase != st.Phase || l.seen[n-1].Iterations != st.Iterations ||
					l.seen[n-1].CanaryWeight != st.CanaryWeight || l.seen[n-1].Mirrored != st.Mirrored {
					l.seen = append(l.seen, st)
				}
				l.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return l
}

// user is one kind of client of the users' host, by the headers it sends. A sticky user is a browser that reached
// the canary: it asks without cookies until a canary answer sets the affinity cookie, then sends that cookie
// with every request and keeps what later answers set.
type user struct {
	name   string
	header http.Header
	sticky string // the affinity cookie's name
}

// answer is what one request of a user got, and when.
type answer struct {
	Answer
	user   string
	At     time.Time
	Err    error
	Cookie bool // a sticky user's request carried the affinity cookie
}

// traffic is users asking the users' host in turn through Traefik until stopped.
type traffic struct {
	stop    context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	answers []answer
}

// startTraffic sends one request per user every gap on average (GET /api/info, which names the pod that
// answers). The gaps are random (exponential, as independent users arrive): Traefik's weighted round robin is
// deterministic, so users in step with the load test would get the same slots of its cycle over and over instead
// of the split.
func startTraffic(ctx context.Context, sc *Scenarios, gap time.Duration, users ...user) *traffic {
	ctx, stop := context.WithCancel(ctx)
	tr := &traffic{stop: stop, done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		cookies := map[string]*http.Cookie{}
		for {
			for _, u := range users {
				h := u.header.Clone()
				c := cookies[u.name]
				if c != nil {
					h = http.Header{"Cookie": {c.Name + "=" + c.Value}}
				}
				a, err := sc.ask(ctx, "/api/info", h)
				if ctx.Err() != nil {
					return
				}
				if u.sticky != "" && err == nil {
					for _, k := range a.Cookies {
						if k.Name == u.sticky && (c != nil || !a.Primary()) {
							cookies[u.name] = k
						}
					}
				}
				tr.mu.Lock()
				tr.answers = append(tr.answers, answer{Answer: a, user: u.name, At: time.Now(), Err: err, Cookie: c != nil})
				tr.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(rand.ExpFloat64() * float64(gap))):
			}
		}
	}()
	return tr
}

// Stop ends the traffic and returns every answer.
func (tr *traffic) Stop() []answer {
	tr.stop()
	<-tr.done
	return tr.answers
}

// awaitServed waits until each user without a sticky cookie has been answered by the primary's pods with version
// (checkSessionAffinity judges the sticky user's answers up to the promotion only): the test's own probe
// (ExpectPrimary) may see the new primary through Traefik a moment before the users' next requests do, and a
// blue/green switch can be shorter than Traefik takes to apply it, so without this wait a user may not have met
// the new version at all when the traffic stops.
func (tr *traffic) awaitServed(ctx context.Context, version string, within time.Duration, users ...user) error {
	deadline := time.Now().Add(within)
	for {
		tr.mu.Lock()
		served := map[string]bool{}
		for _, a := range tr.answers {
			if a.Err == nil && a.Primary() && a.Version == version {
				served[a.user] = true
			}
		}
		tr.mu.Unlock()
		var waiting []string
		for _, u := range users {
			if u.sticky == "" && !served[u.name] {
				waiting = append(waiting, u.name)
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s the primary had not answered %s with %s", within, strings.Join(waiting, ", "), version)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
