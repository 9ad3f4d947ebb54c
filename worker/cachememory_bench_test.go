package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/canaryflow/canaryflow/activities/activitiestest"
	"github.com/canaryflow/canaryflow/workflows"
)

// BenchmarkCachedRolloutMemory measures what one rollout held in the worker's sticky cache costs the worker: its
// goroutines, their stacks and its live heap. CANARYFLOW_BENCH_ROLLOUTS (default 300) rollouts of the seed analysis
// are released through one worker with the worker binary's options and a private Temporal dev server, and left
// waiting where a release at scale spends most of its time (CANARYFLOW_BENCH_WAIT):
//   - "admission" (the default): in the admission queue of --release-rate, which no worker serves here;
//   - "step": after the first weight increase, on the interval's timer (the interval is an hour here);
//   - "init": in a canary's first run, initialising it, on the timer between two looks at a primary that does not
//     get ready (as while a control plane makes a thousand new primaries ready).
//
// Once every rollout waits there, the benchmark collects garbage three times (a collection halves a stack that
// uses less than a quarter of it, once) and reports the worker process's figures per rollout, over a baseline
// taken before the release: goroutines, stack bytes and live heap bytes. CANARYFLOW_BENCH_HEAPPROFILE=<file> also
// writes a heap profile sampled every 4 KiB, and <file>.goroutines the goroutines' stacks. The activities are
// activitiestest's in-memory stand-ins, so the figures are orchestration's (workflow state, SDK cache,
// coroutines), which is what grows with the rollouts cached; make bench-scale measures the whole process.
func BenchmarkCachedRolloutMemory(b *testing.B) {
	n := benchRollouts(b, 300)
	wait := os.Getenv("CANARYFLOW_BENCH_WAIT")
	if wait == "" {
		wait = "admission"
	}
	if wait != "admission" && wait != "step" && wait != "init" {
		b.Fatalf("CANARYFLOW_BENCH_WAIT=%q: want admission, step or init", wait)
	}
	profile := os.Getenv("CANARYFLOW_BENCH_HEAPPROFILE")
	if profile != "" {
		runtime.MemProfileRate = 4096
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cluster := activitiestest.NewCluster()
	const queue = "canaryflow-bench"
	if wait == "admission" {
		cluster.AdmissionQueue = queue + "-admission" // nobody serves it: every release waits there
	}
	tc, stop := benchWorker(ctx, b, cluster, queue)
	defer stop()

	b.ResetTimer()
	for round := range b.N {
		ns := fmt.Sprintf("mem-%d", round)
		before := settledMemory()
		ids := releaseWaiting(ctx, b, tc, cluster, queue, ns, n, wait)
		after := settledMemory()
		b.ReportMetric(float64(after.goroutines-before.goroutines)/float64(n), "goroutines/rollout")
		b.ReportMetric(float64(after.stack-before.stack)/float64(n)/1024, "stack-KiB/rollout")
		b.ReportMetric(float64(after.heap-before.heap)/float64(n)/1024, "heap-KiB/rollout")
		b.ReportMetric(float64(n), "rollouts")
		if profile != "" {
			f, err := os.Create(profile)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				b.Fatal(err)
			}
			_ = f.Close()
			if f, err = os.Create(profile + ".goroutines"); err != nil {
				b.Fatal(err)
			}
			if err := pprof.Lookup("goroutine").WriteTo(f, 1); err != nil {
				b.Fatal(err)
			}
			_ = f.Close()
		}
		for _, id := range ids { // ends the round's rollouts, so that a next round starts from an empty cache
			_ = tc.TerminateWorkflow(ctx, id, "", "benchmark round over")
		}
	}
}

type memFigures struct {
	goroutines  int
	stack, heap uint64
}

// settledMemory collects garbage three times and reads the goroutines, stack bytes in use and live heap bytes.
func settledMemory() memFigures {
	for range 3 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{goroutines: runtime.NumGoroutine(), stack: ms.StackInuse, heap: ms.HeapAlloc}
}

// releaseWaiting releases n canaries of namespace ns and returns when every one waits where wait says (the
// admission queue, the first step's interval, or the primary's readiness in the initialisation), with their
// workflow IDs.
func releaseWaiting(ctx context.Context, b *testing.B, tc client.Client, cluster *activitiestest.Cluster, queue, ns string, n int, wait string) []string {
	spec := strings.Replace(benchCanary, "interval: 10s", "interval: 1h", 1)
	var prepare func(name string)
	if wait == "init" {
		prepare = func(name string) {
			cluster.Set(ns, name, func(c *activitiestest.Canary) { c.Primary, c.Unready = "", true })
		}
	}
	runs, _ := releaseAll(ctx, b, tc, queue, spec, ns, n, prepare)
	ids := make([]string, n)
	for i, run := range runs {
		ids[i] = run.GetID()
	}
	waiting := func(i int) bool {
		c := cluster.Get(ns, fmt.Sprintf("app-%04d", i))
		switch wait {
		case "step":
			return len(c.Routes) == 1 && c.Routes[0] == "90/10"
		case "init":
			return c.ReadyChecks >= 2 // looked at twice: waiting on the timer to the next look
		}
		v, err := tc.QueryWorkflow(ctx, ids[i], "", workflows.QueryStatus)
		if err != nil {
			return false
		}
		var st workflows.Status
		return v.Get(&st) == nil && strings.HasPrefix(st.Message, "Waiting for admission")
	}
	// Generous polling: every rollout reaches its wait within seconds of its release on an idle machine.
	for i := 0; i < n; {
		if waiting(i) {
			i++
			continue
		}
		select {
		case <-ctx.Done():
			b.Fatalf("%s did not reach its wait (%s) in time", ids[i], wait)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return ids
}
