package proxy

import (
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/autorouter/autorouter/router"
)

// metrics are the proxy's Prometheus series, on a registry of its own.
// Label values are bounded: models and routes are configured names (a
// model the client made up is counted as "unknown"), endpoints are the
// served paths and statuses HTTP codes.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	inFlight  prometheus.Gauge
	embed     prometheus.Histogram
	score     prometheus.Histogram
	upstream  prometheus.Histogram
	ttfb      prometheus.Histogram
	latency   prometheus.Histogram
	rejected  *prometheus.CounterVec
	handler   fasthttp.RequestHandler
}

// latencyBuckets span 100 µs to 60 s, in seconds.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(current func() *router.Snapshot, client func() *router.Client) *metrics {
	reg := prometheus.NewRegistry()
	hist := func(name, help string) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: latencyBuckets})
		reg.MustRegister(h)
		return h
	}
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "autorouter_requests_total",
			Help: "Requests by endpoint, model group, route and HTTP status."}, []string{"endpoint", "model", "route", "status"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "autorouter_fallbacks_total",
			Help: "Routing decisions that fell back to the default model, by router and reason."}, []string{"router", "reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "autorouter_in_flight_requests",
			Help: "Requests being served, streams included until their last byte."}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "autorouter_rejected_connections_total",
			Help: "Client connections closed or refused to protect the server, by reason."}, []string{"reason"}),
		embed:    hist("autorouter_route_embed_seconds", "Time to embed the prompt for a routing decision."),
		score:    hist("autorouter_route_score_seconds", "Time to score the prompt against the utterances."),
		upstream: hist("autorouter_upstream_seconds", "Time from sending a request upstream to its answer's headers (streams: first event), retries included."),
		ttfb:     hist("autorouter_stream_ttfb_seconds", "Time from request to the first streamed byte sent to the client."),
		latency:  hist("autorouter_request_seconds", "Total request latency."),
	}
	cache := func(pick func(router.CacheStats) uint64) func() float64 {
		return func() float64 {
			if c := client(); c != nil {
				return float64(pick(c.CacheStats()))
			}
			return 0
		}
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "autorouter_decision_cache_hits_total",
			Help: "Routing decisions served from the decision cache."}, cache(func(s router.CacheStats) uint64 { return s.Hits })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "autorouter_decision_cache_misses_total",
			Help: "Routing decisions the decision cache did not hold."}, cache(func(s router.CacheStats) uint64 { return s.Misses })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "autorouter_decision_cache_evictions_total",
			Help: "Decisions evicted from the decision cache to stay within its bounds."}, cache(func(s router.CacheStats) uint64 { return s.Evictions })),
	)
	reg.MustRegister(m.requests, m.fallbacks, m.inFlight, m.rejected, &cooldownCollector{current: current},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		// The heap allocation counters let load tests compute allocations
		// per request from outside the process.
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
			collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/allocs:(objects|bytes)$`)})))
	m.handler = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	return m
}

// statusLabels are the status label values, made once so that counting a
// request formats nothing.
var statusLabels = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusLabel(code int) string {
	if code >= 0 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return "other"
}

func (m *metrics) request(endpoint, model, route string, status int, took time.Duration) {
	m.requests.WithLabelValues(endpoint, model, route, statusLabel(status)).Inc()
	m.latency.Observe(took.Seconds())
}

// cooldownCollector reports which deployments of the current config are
// cooling down, read at scrape time.
type cooldownCollector struct {
	current func() *router.Snapshot
}

var cooldownDesc = prometheus.NewDesc("autorouter_deployment_cooling_down",
	"1 while a deployment is skipped after repeated failures.", []string{"model", "deployment"}, nil)

func (c *cooldownCollector) Describe(ch chan<- *prometheus.Desc) { ch <- cooldownDesc }

func (c *cooldownCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.current()
	if s == nil {
		return
	}
	defer s.Release()
	for _, name := range s.Config().ModelNames() {
		for _, d := range s.Pool().Deployments(name) {
			v := 0.0
			if d.CoolingDown() {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(cooldownDesc, prometheus.GaugeValue, v, d.Group, d.ID)
		}
	}
}
