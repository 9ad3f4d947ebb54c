//go:build lab

// Package kubefault breaks the Kubernetes API server under a live rollout of the real worker binary: it stops
// the API server of a private lab (so the tests sharing the usual lab are not disturbed), and puts a proxy that
// injects API errors between the worker and the API server. A package of its own so that it runs beside e2e.
package kubefault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/canaryflow/canaryflow/e2e"
	"github.com/canaryflow/canaryflow/lab/labtest"
)

// privateNet is this package's network for its private lab, apart from the usual lab's (10.244.0.0/24,
// canaryflow-lab) and from the example of lab/README.md (10.245.0.0/24).
var privateNet = labtest.PrivateNet{
	Netns: "cflab-kf", VethHost: "cfkf0", VethNS: "cfkf1",
	LinkHostIP: "10.246.255.1", LinkNSIP: "10.246.255.2", PodCIDR: "10.246.0.0/24",
}

// TestRolloutSurvivesTheAPIServerStoppedFor40s stops the API server (SIGSTOP: it holds every connection and
// answers nothing, as a hung or partitioned server does) for 40 s while the canary holds 20% or more of the
// traffic, then resumes it (SIGCONT). The rollout must move on and promote, every weight decided exactly once,
// and end with the primary on the new version, all traffic on it and the canary scaled to zero. With
// CANARYFLOW_LONG=1, it stops the API server three times, at three successive weights.
func TestRolloutSurvivesTheAPIServerStoppedFor40s(t *testing.T) {
	const outage = 40 * time.Second
	outages := 1
	if os.Getenv("CANARYFLOW_LONG") == "1" {
		outages = 3
	}
	env := labtest.PrivateLab(t, privateNet)
	ctx, sc := startScenarios(t, env, "apistop", 20*time.Minute)
	require.NoError(t, sc.Initialise(ctx), "initialisation")

	pid, err := env.PID("kube-apiserver")
	require.NoError(t, err)
	stopped := false
	resume := func() error {
		if !stopped {
			return nil
		}
		stopped = false
		return syscall.Kill(pid, syscall.SIGCONT)
	}
	// A failed test must not leave the private lab's API server stopped: down.sh could not stop it gracefully.
	t.Cleanup(func() { _ = resume() })

	var recovered []time.Duration
	f, err := sc.RolloutAcross(ctx, func(ctx context.Context, weight int) error {
		for i := range outages {
			sc.Say("Stopping the API server (SIGSTOP, pid %d) at canary weight %d for %s", pid, weight, outage)
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				return err
			}
			stopped = true
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(outage):
			}
			if err := resume(); err != nil {
				return err
			}
			resumed := time.Now()
			next, err := sc.WaitWeightPast(ctx, weight, 5*time.Minute)
			if err != nil {
				return fmt.Errorf("outage %d: the rollout did not move past weight %d within 5 minutes of SIGCONT: %w", i+1, weight, err)
			}
			recovered = append(recovered, time.Since(resumed))
			sc.Say("API server resumed; the rollout moved from weight %d to %d %s later", weight, next, recovered[i].Round(100*time.Millisecond))
			weight = next
			if weight >= 50 {
				break
			}
		}
		return nil
	})
	require.NoError(t, err)
	t.Logf("API server stopped for %s at canary weight %d (%d outage(s)); from SIGCONT to the next weight change: %v; the rollout took %s",
		outage, f.AtWeight, len(recovered), roundAll(recovered), f.Took.Round(time.Second))
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(100 * time.Millisecond)
	}
	return out
}

// startScenarios starts the stack (worker, load tester) on env and the scenarios on a fresh namespace named after
// prefix; on failure the processes' logs go into the test log.
func startScenarios(t *testing.T, env *labtest.Env, prefix string, within time.Duration) (
	context.Context, *e2e.Scenarios) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	t.Cleanup(cancel)
	s, err := e2e.Start(ctx, env, e2e.Narrator(t))
	require.NoError(t, err)
	t.Cleanup(func() {
		if t.Failed() {
			for _, name := range []string{"worker", "loadtester"} {
				t.Logf("%s log:\n%s", name, s.LogTail(name, 80))
			}
			t.Logf("private lab's logs: %s/logs", env.Run)
		}
		s.Close()
	})
	sc, err := e2e.NewScenarios(s, env.Namespace(t, prefix))
	require.NoError(t, err)
	t.Cleanup(func() { sc.Temporal.Close() })
	return ctx, sc
}

// TestRolloutCompletesThroughAnAPIThatFailsOneRequestInFive puts a proxy between the worker and the API server
// that answers one request in five (reads at random, writes in turn; seeded, CANARYFLOW_FAULT_SEED replays a
// run) with a fault: 500, 503, 409 on writes, 429 with Retry-After, a request held until the client gives up,
// or a request applied whose answer is lost to a connection reset. The initialisation and the rollout must complete with every weight decided
// once and the end state right, and the worker's request counter must show the faults it met.
func TestRolloutCompletesThroughAnAPIThatFailsOneRequestInFive(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CANARYFLOW_FAULT_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "CANARYFLOW_FAULT_SEED")
	}
	env := labtest.PrivateLab(t, privateNet)
	ctx, sc := startScenarios(t, env, "apifaults", 25*time.Minute)
	s := sc.S

	proxy, err := startFaultProxy(env.KubeServer, env.KubeCAFile, s.Dir, 0.2, seed)
	require.NoError(t, err)
	t.Cleanup(proxy.Close)
	t.Logf("fault proxy %s in front of %s, CANARYFLOW_FAULT_SEED=%d", proxy.URL, env.KubeServer, seed)
	// The worker Start began talks to the API server directly: replace it by one that talks through the proxy.
	require.NoError(t, s.Kill("worker"))
	kc, err := clientcmd.LoadFromFile(s.WorkerKubeconfig)
	require.NoError(t, err)
	for _, c := range kc.Clusters {
		c.Server, c.CertificateAuthority = proxy.URL, proxy.CAFile
	}
	proxied := filepath.Join(s.Dir, "worker-proxied.kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*kc, proxied))
	s.WorkerKubeconfig = proxied
	require.NoError(t, s.StartWorker(ctx, "worker"))

	start := time.Now()
	require.NoError(t, sc.Initialise(ctx), "initialisation through the fault proxy (%s)", proxy.Summary())
	f, err := sc.RolloutAcross(ctx, nil)
	require.NoError(t, err, "rollout through the fault proxy (%s)", proxy.Summary())
	t.Logf("initialisation and rollout through the fault proxy took %s (the rollout %s); %s",
		time.Since(start).Round(time.Second), f.Took.Round(time.Second), proxy.Summary())

	// The worker counts a request when its answer arrives, and a held one when its try's deadline passes (10 s):
	// a request of the rollout's last moments can still be on its way when the starter reports the promotion.
	// So the counts are compared until they agree, for a minute (six try deadlines) at most.
	_, injected := proxy.Injected()
	for _, code := range []string{fault500, fault503, fault409, fault429, faultTimeout} {
		require.Positive(t, injected[code], "the proxy injected no %s: too few requests for every kind (%s)", code, proxy.Summary())
	}
	var byCode map[string]int
	var short string
	deadline := time.Now().Add(time.Minute)
	for {
		byCode, err = s.KubeRequestsByCode(ctx, "worker")
		require.NoError(t, err)
		_, injected = proxy.Injected()
		short = countedShort(byCode, injected)
		if short == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("the worker's canaryflow_kube_requests_total by code: %v", byCode)
	require.Empty(t, short, "the worker's counts fall short of the faults the proxy injected (%s)", proxy.Summary())
}

// countedShort says which injected faults the worker's request counter (byCode) has fewer of than the proxy
// gave, "" when none. A held request always ends in an error (the try's deadline); a reset one does only when
// Go's HTTP client cannot send it again by itself (it does, unseen, for a read on a reused connection), so
// resets are not compared.
func countedShort(byCode, injected map[string]int) string {
	var short []string
	for _, code := range []string{fault500, fault503, fault409, fault429} {
		if byCode[code] < injected[code] {
			short = append(short, fmt.Sprintf("%s: counted %d, injected %d", code, byCode[code], injected[code]))
		}
	}
	if byCode["error"] < injected[faultTimeout] {
		short = append(short, fmt.Sprintf("no answer: counted %d, held %d", byCode["error"], injected[faultTimeout]))
	}
	return strings.Join(short, "; ")
}
