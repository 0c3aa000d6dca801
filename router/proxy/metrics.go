package proxy

import (
	"fmt"
	"io"
	"maps"
	"math"
	rtmetrics "runtime/metrics"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the proxy's Prometheus series, written in the text format by
// hand: a handful of counters and histograms do not need a client library.
type metrics struct {
	mu        sync.Mutex
	requests  map[[4]string]uint64 // endpoint, model, route, status
	fallbacks map[[2]string]uint64 // router, reason
	hists     map[string]*histogram
	inFlight  atomic.Int64
}

func newMetrics() *metrics {
	m := &metrics{requests: map[[4]string]uint64{}, fallbacks: map[[2]string]uint64{}, hists: map[string]*histogram{}}
	for _, h := range []struct{ name, help string }{
		{"autorouter_route_embed_seconds", "Time to embed the prompt for a routing decision."},
		{"autorouter_route_score_seconds", "Time to score the prompt against the utterances."},
		{"autorouter_upstream_seconds", "Upstream latency until response headers, per attempt."},
		{"autorouter_stream_ttfb_seconds", "Time from request to the first streamed byte sent to the client."},
		{"autorouter_request_seconds", "Total request latency."},
	} {
		m.hists[h.name] = &histogram{help: h.help}
	}
	return m
}

// histogramBuckets span 100µs to 60s, in seconds.
var histogramBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

type histogram struct {
	help   string
	counts [19]uint64 // one per bucket, then +Inf
	sum    float64
	n      uint64
}

func (m *metrics) observe(name string, d time.Duration) {
	s := d.Seconds()
	m.mu.Lock()
	h := m.hists[name]
	i := sort.SearchFloat64s(histogramBuckets, s)
	h.counts[i]++
	h.sum += s
	h.n++
	m.mu.Unlock()
}

func (m *metrics) request(endpoint, model, route string, status int) {
	m.mu.Lock()
	m.requests[[4]string{endpoint, model, route, fmt.Sprint(status)}]++
	m.mu.Unlock()
}

func (m *metrics) fallback(router, reason string) {
	m.mu.Lock()
	m.fallbacks[[2]string{router, reason}]++
	m.mu.Unlock()
}

// write renders every series in Prometheus text format 0.0.4.
func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP autorouter_requests_total Requests by endpoint, model group, route and HTTP status.")
	fmt.Fprintln(w, "# TYPE autorouter_requests_total counter")
	for _, k := range sortedKeys(m.requests, func(k [4]string) string { return strings.Join(k[:], "\x00") }) {
		fmt.Fprintf(w, "autorouter_requests_total{endpoint=%q,model=%q,route=%q,status=%q} %d\n", k[0], k[1], k[2], k[3], m.requests[k])
	}
	fmt.Fprintln(w, "# HELP autorouter_fallbacks_total Routing decisions that fell back to the default model, by reason.")
	fmt.Fprintln(w, "# TYPE autorouter_fallbacks_total counter")
	for _, k := range sortedKeys(m.fallbacks, func(k [2]string) string { return k[0] + "\x00" + k[1] }) {
		fmt.Fprintf(w, "autorouter_fallbacks_total{router=%q,reason=%q} %d\n", k[0], k[1], m.fallbacks[k])
	}
	fmt.Fprintln(w, "# HELP autorouter_in_flight_requests Requests being served.")
	fmt.Fprintln(w, "# TYPE autorouter_in_flight_requests gauge")
	fmt.Fprintf(w, "autorouter_in_flight_requests %d\n", m.inFlight.Load())
	// Heap allocation counters let load tests compute allocations per request
	// from outside the process; runtime/metrics reads them without stopping
	// the world.
	samples := []rtmetrics.Sample{{Name: "/gc/heap/allocs:objects"}, {Name: "/gc/heap/allocs:bytes"}}
	rtmetrics.Read(samples)
	if samples[0].Value.Kind() == rtmetrics.KindUint64 && samples[1].Value.Kind() == rtmetrics.KindUint64 {
		fmt.Fprintln(w, "# HELP go_gc_heap_allocs_objects_total Cumulative count of heap allocations.")
		fmt.Fprintln(w, "# TYPE go_gc_heap_allocs_objects_total counter")
		fmt.Fprintf(w, "go_gc_heap_allocs_objects_total %d\n", samples[0].Value.Uint64())
		fmt.Fprintln(w, "# HELP go_gc_heap_allocs_bytes_total Cumulative bytes allocated on the heap.")
		fmt.Fprintln(w, "# TYPE go_gc_heap_allocs_bytes_total counter")
		fmt.Fprintf(w, "go_gc_heap_allocs_bytes_total %d\n", samples[1].Value.Uint64())
	}
	for _, name := range slices.Sorted(maps.Keys(m.hists)) {
		h := m.hists[name]
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, h.help, name)
		var cum uint64
		for i, b := range histogramBuckets {
			cum += h.counts[i]
			fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b, cum)
		}
		cum += h.counts[len(histogramBuckets)]
		fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, cum, name, roundSum(h.sum), name, h.n)
	}
}

func roundSum(s float64) float64 { return math.Round(s*1e9) / 1e9 }

func sortedKeys[K comparable, V any](m map[K]V, str func(K) string) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return str(keys[i]) < str(keys[j]) })
	return keys
}
