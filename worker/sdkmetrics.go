package main

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// sdkMetrics exports the Temporal SDK's worker metrics (task latencies, poll counts, failures, …) to Prometheus.
// The SDK names a metric and then tags it with label sets that may differ between calls, which registered
// Prometheus vectors forbid, so samples are kept per (name, labels) and emitted as constant metrics at scrape.
type sdkMetrics struct {
	mu       sync.Mutex
	counters map[string]*sample
	gauges   map[string]*sample
	timers   map[string]*timerSample
}

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type timerSample struct {
	name    string
	labels  map[string]string
	count   uint64
	sum     float64
	buckets map[float64]uint64
}

// timerBuckets (seconds) cover task latencies from a millisecond to a minute.
var timerBuckets = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newSDKMetrics() *sdkMetrics {
	return &sdkMetrics{counters: map[string]*sample{}, gauges: map[string]*sample{}, timers: map[string]*timerSample{}}
}

// Handler returns the SDK's view of these metrics.
func (m *sdkMetrics) Handler() client.MetricsHandler { return &sdkHandler{m: m} }

func key(name string, labels map[string]string) string {
	var b strings.Builder
	b.WriteString(name)
	for _, k := range labelNames(labels) {
		b.WriteString("\x00" + k + "=" + labels[k])
	}
	return b.String()
}

// Describe sends nothing: the collector is unchecked because label sets vary.
func (m *sdkMetrics) Describe(chan<- *prometheus.Desc) {}

// Collect emits every sample.
func (m *sdkMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.counters {
		ch <- prometheus.MustNewConstMetric(desc(s.name, s.labels), prometheus.CounterValue, s.value, values(s.labels)...)
	}
	for _, s := range m.gauges {
		ch <- prometheus.MustNewConstMetric(desc(s.name, s.labels), prometheus.GaugeValue, s.value, values(s.labels)...)
	}
	for _, t := range m.timers {
		ch <- prometheus.MustNewConstHistogram(desc(t.name+"_seconds", t.labels), t.count, t.sum, t.cumulative(), values(t.labels)...)
	}
}

func (t *timerSample) cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(timerBuckets))
	var run uint64
	for _, b := range timerBuckets {
		run += t.buckets[b]
		out[b] = run
	}
	return out
}

func labelNames(labels map[string]string) []string {
	names := make([]string, 0, len(labels))
	for k := range labels {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

func values(labels map[string]string) []string {
	names := labelNames(labels)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = labels[n]
	}
	return out
}

func desc(name string, labels map[string]string) *prometheus.Desc {
	return prometheus.NewDesc(sanitize(name), "Temporal SDK metric "+name, labelNames(labels), nil)
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == ':' {
			return r
		}
		return '_'
	}, name)
}

type sdkHandler struct {
	m    *sdkMetrics
	tags map[string]string
}

func (h *sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[sanitize(k)] = v
	}
	for k, v := range tags {
		merged[sanitize(k)] = v
	}
	return &sdkHandler{m: h.m, tags: merged}
}

// update runs f on the sample of name with h's tags in samples, made by mk first if new; under the lock.
func update[T any](h *sdkHandler, samples map[string]*T, name string, mk func() *T, f func(*T)) {
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	k := key(name, h.tags)
	s := samples[k]
	if s == nil {
		s = mk()
		samples[k] = s
	}
	f(s)
}

func (h *sdkHandler) newSample(name string) func() *sample {
	return func() *sample { return &sample{name: name, labels: h.tags} }
}

func (h *sdkHandler) Counter(name string) client.MetricsCounter {
	return counterFunc(func(d int64) {
		update(h, h.m.counters, name, h.newSample(name), func(s *sample) { s.value += float64(d) })
	})
}

func (h *sdkHandler) Gauge(name string) client.MetricsGauge {
	return gaugeFunc(func(v float64) {
		update(h, h.m.gauges, name, h.newSample(name), func(s *sample) { s.value = v })
	})
}

func (h *sdkHandler) Timer(name string) client.MetricsTimer {
	return timerFunc(func(d time.Duration) {
		mk := func() *timerSample { return &timerSample{name: name, labels: h.tags, buckets: map[float64]uint64{}} }
		update(h, h.m.timers, name, mk, func(t *timerSample) {
			sec := d.Seconds()
			t.count++
			t.sum += sec
			for _, b := range timerBuckets {
				if sec <= b {
					t.buckets[b]++
					break
				}
			}
		})
	})
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }
