package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/autorouter/autorouter/bench/load"
	"github.com/autorouter/autorouter/bench/report"
)

// pcts are the percentiles the overhead tables report.
var pcts = []float64{50, 90, 99, 99.9}

// dist is a latency distribution summarised over several runs: the median
// across runs of each percentile, and the spread of p50 across runs.
type dist struct {
	P          []time.Duration // per pcts
	P50Lo      time.Duration
	P50Hi      time.Duration
	Throughput float64 // median req/s
	Errors     int
	FirstErr   error
	N          int // successful samples over all runs
}

// summarise reduces per-run latency samples to a dist.
func summarise(runs [][]time.Duration, tput []float64, errs int, firstErr error) dist {
	d := dist{P: make([]time.Duration, len(pcts)), Errors: errs, FirstErr: firstErr}
	if len(runs) == 0 {
		return d
	}
	per := make([][]time.Duration, len(pcts))
	for _, r := range runs {
		d.N += len(r)
		if len(r) == 0 {
			continue
		}
		ps := load.Percentiles(r, pcts...)
		for i := range pcts {
			per[i] = append(per[i], ps[i])
		}
	}
	if d.N == 0 {
		return d
	}
	for i := range pcts {
		d.P[i] = medianDur(per[i])
	}
	d.P50Lo, d.P50Hi = slices.Min(per[0]), slices.Max(per[0])
	d.Throughput = medianF(tput)
	return d
}

func medianDur(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// chatBody is a small chat request for the given model.
func chatBody(model string, stream bool) func(int) []byte {
	b := []byte(fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Say hello in one short sentence."}],"stream":%t}`, model, stream))
	return func(int) []byte { return b }
}

// overheadKey names one measured cell.
type overheadKey struct {
	target string
	stream bool
	conc   int
}

// overheadCell holds the total-latency and TTFB distributions of a cell.
type overheadCell struct{ total, ttfb dist }

func (h *harness) overhead(ctx context.Context) error {
	targets := []target{h.direct()}
	ar, err := h.autorouterPlain(ctx)
	if err != nil {
		return fmt.Errorf("starting autorouter: %w", err)
	}
	defer ar.stop()
	targets = append(targets, ar)
	if h.o.peers {
		if t, err := h.startNginx(ctx); err != nil {
			h.note("nginx skipped: %v", err)
		} else {
			defer t.stop()
			targets = append(targets, t)
		}
		if t, err := h.startPortkey(ctx); err != nil {
			h.note("Portkey gateway skipped: %v", err)
		} else {
			defer t.stop()
			targets = append(targets, t)
		}
	} else {
		h.note("peers (nginx, Portkey) not measured: --peers=false")
	}
	runs, n, warm := 5, 5000, 500
	if h.o.quick {
		runs, n, warm = 3, 1500, 200
	}
	concs := []int{1, 16, 64}
	cells := map[overheadKey]overheadCell{}
	explained := false // the Portkey streaming failure is noted once
	for _, stream := range []bool{false, true} {
		for _, c := range concs {
			type acc struct {
				total, ttfb [][]time.Duration
				tput        []float64
				errs        int
				first       error
			}
			accs := make([]acc, len(targets))
			client := load.Client(c)
			// Runs interleave targets so slow drift on the machine hits all
			// of them alike.
			for r := range runs {
				for i, t := range targets {
					req := load.Request{URL: t.url, Header: t.header, Body: chatBody(t.model, stream), Stream: stream}
					res := load.ClosedLoop(ctx, client, req, c, warm, n)
					if ctx.Err() != nil {
						return ctx.Err()
					}
					a := &accs[i]
					a.total = append(a.total, res.Total)
					a.ttfb = append(a.ttfb, res.TTFB)
					a.tput = append(a.tput, res.Throughput())
					a.errs += res.Errors
					if a.first == nil {
						a.first = res.FirstErr
					}
					h.progress("overhead: %-22s stream=%-5t c=%-2d run %d/%d: %7.0f req/s, p50 %s, %d errors",
						t.name, stream, c, r+1, runs, res.Throughput(), report.Ms(load.Percentile(res.Total, 50)), res.Errors)
				}
			}
			for i, t := range targets {
				a := accs[i]
				cells[overheadKey{t.name, stream, c}] = overheadCell{
					total: summarise(a.total, a.tput, a.errs, a.first),
					ttfb:  summarise(a.ttfb, a.tput, a.errs, a.first),
				}
				if a.errs > 0 {
					h.note("%s (stream=%t, c=%d): %d failed requests, first: %v", t.name, stream, c, a.errs, a.first)
					if stream && strings.HasPrefix(t.name, "Portkey") && !explained {
						explained = h.explainPortkey()
					}
				}
			}
		}
	}
	if a, err := h.allocsPerRequest(ctx, ar.url, nil); err != nil {
		h.note("allocations per proxied request not measured: %v", err)
	} else {
		h.plainAllocs = a
	}
	open := h.openLoop(ctx, targets)
	h.renderOverhead(targets, concs, runs, n, cells, open)
	return nil
}

// openLoopResult is one target's open-loop distribution.
type openLoopResult struct {
	rate float64
	dist dist
}

// openLoop offers each target the same fixed request rate (non-streaming)
// and measures from the intended send time.
func (h *harness) openLoop(ctx context.Context, targets []target) map[string]openLoopResult {
	rate, dur, warm := 1000.0, 20*time.Second, 3*time.Second
	if h.o.quick {
		rate, dur, warm = 500, 5*time.Second, time.Second
	}
	out := map[string]openLoopResult{}
	client := load.Client(64)
	for _, t := range targets {
		req := load.Request{URL: t.url, Header: t.header, Body: chatBody(t.model, false)}
		res := load.OpenLoop(ctx, client, req, rate, warm, dur)
		out[t.name] = openLoopResult{rate: rate, dist: summarise([][]time.Duration{res.Total}, []float64{res.Throughput()}, res.Errors, res.FirstErr)}
		h.progress("overhead: open loop %s at %.0f req/s: p50 %s p99 %s, %d errors", t.name, rate, report.Ms(load.Percentile(res.Total, 50)), report.Ms(load.Percentile(res.Total, 99)), res.Errors)
		if res.Errors > 0 {
			h.note("%s (open loop): %d failed requests, first: %v", t.name, res.Errors, res.FirstErr)
		}
	}
	return out
}

func (h *harness) renderOverhead(targets []target, concs []int, runs, n int, cells map[overheadKey]overheadCell, open map[string]openLoopResult) {
	var b strings.Builder
	direct := targets[0].name
	fmt.Fprintf(&b, "## 1. Proxy overhead\n\nAdded latency over calling the fake upstream directly, same requests, same upstream. Closed loop: %d measured requests per run after warm-up, median of %d runs per cell (p50 spread across runs in brackets). Each proxy runs as its own process with its default settings.\n\n", n, runs)
	for _, stream := range []bool{false, true} {
		title := "Non-streaming, total latency"
		if stream {
			title = "Streaming (16 SSE events), time to first byte / total"
		}
		fmt.Fprintf(&b, "### %s\n\n", title)
		hdr := []string{"target", "concurrency", "req/s"}
		if stream {
			hdr = append(hdr, "TTFB p50", "TTFB p99", "total p50", "total p90", "total p99", "total p99.9")
		} else {
			hdr = append(hdr, "p50", "p90", "p99", "p99.9", "p50 spread")
		}
		t := report.Table{Header: hdr}
		for _, c := range concs {
			base := cells[overheadKey{direct, stream, c}]
			for _, tg := range targets {
				cell, ok := cells[overheadKey{tg.name, stream, c}]
				if !ok {
					continue
				}
				row := []string{tg.name, fmt.Sprint(c), fmt.Sprintf("%.0f", cell.total.Throughput)}
				if cell.total.N == 0 {
					row = append(row, fmt.Sprintf("all %d requests failed", cell.total.Errors))
					t.Add(row...)
					continue
				}
				show := func(d, b time.Duration) string {
					if tg.name == direct {
						return report.Ms(d)
					}
					return report.Us(d - b)
				}
				if stream {
					row = append(row, show(cell.ttfb.P[0], base.ttfb.P[0]), show(cell.ttfb.P[2], base.ttfb.P[2]))
					for i := range pcts {
						row = append(row, show(cell.total.P[i], base.total.P[i]))
					}
				} else {
					for i := range pcts {
						row = append(row, show(cell.total.P[i], base.total.P[i]))
					}
					row = append(row, fmt.Sprintf("[%s, %s]", report.Ms(cell.total.P50Lo), report.Ms(cell.total.P50Hi)))
				}
				t.Add(row...)
			}
		}
		b.WriteString(t.Markdown())
		b.WriteString("\nThe direct row gives absolute latency; the others give what the proxy adds to it.\n\n")
	}
	if len(open) > 0 {
		var rate float64
		t := report.Table{Header: []string{"target", "p50", "p90", "p99", "p99.9", "errors"}}
		base := open[direct].dist
		for _, tg := range targets {
			r, ok := open[tg.name]
			if !ok {
				continue
			}
			rate = r.rate
			row := []string{tg.name}
			for i := range pcts {
				if tg.name == direct {
					row = append(row, report.Ms(r.dist.P[i]))
				} else {
					row = append(row, report.Us(r.dist.P[i]-base.P[i]))
				}
			}
			row = append(row, fmt.Sprint(r.dist.Errors))
			t.Add(row...)
		}
		fmt.Fprintf(&b, "### Open loop, %.0f req/s, non-streaming\n\nRequests leave on a fixed schedule whatever the proxy does; latency counts from the scheduled send time, so queueing is charged (no coordinated omission).\n\n%s\n", rate, t.Markdown())
	}
	// Plot absolute latency at concurrency 16, non-streaming.
	var series []report.Series
	for _, tg := range targets {
		cell, ok := cells[overheadKey{tg.name, false, 16}]
		if !ok {
			continue
		}
		s := report.Series{Name: tg.name}
		for i, p := range pcts {
			s.Points = append(s.Points, report.Point{Percentile: p, Latency: cell.total.P[i]})
		}
		series = append(series, s)
	}
	h.plots["latency.svg"] = report.PercentilePlot("Chat completion latency, concurrency 16, non-streaming", series)
	b.WriteString("![latency percentiles at concurrency 16](latency.svg)\n")
	h.section(b.String())

	// Goals: below Portkey at every percentile; within 2x of nginx at p50.
	ar, pk, ng := "autorouter", "", ""
	for _, tg := range targets {
		switch {
		case strings.HasPrefix(tg.name, "Portkey"):
			pk = tg.name
		case strings.HasPrefix(tg.name, "nginx"):
			ng = tg.name
		}
	}
	if pk != "" {
		worse := 0
		total := 0
		var worst string
		for _, stream := range []bool{false, true} {
			for _, c := range concs {
				base := cells[overheadKey{direct, stream, c}]
				a, p := cells[overheadKey{ar, stream, c}], cells[overheadKey{pk, stream, c}]
				if p.total.N == 0 {
					continue // Portkey failed these requests; nothing to compare
				}
				for i := range pcts {
					total++
					if a.total.P[i]-base.total.P[i] >= p.total.P[i]-base.total.P[i] {
						worse++
						worst = fmt.Sprintf("stream=%t c=%d p%g", stream, c, pcts[i])
					}
				}
			}
		}
		m := fmt.Sprintf("below Portkey in %d of %d cells", total-worse, total)
		if worse > 0 {
			m += " (not at " + worst + ")"
		}
		h.goal("proxy overhead vs Portkey", "below at every percentile", m, worse == 0)
	} else {
		h.goal("proxy overhead vs Portkey", "below at every percentile", "Portkey not measured", false)
	}
	if ng != "" {
		var parts []string
		ok := true
		for _, c := range concs {
			base := cells[overheadKey{direct, false, c}].total.P[0]
			a := cells[overheadKey{ar, false, c}].total.P[0] - base
			n := cells[overheadKey{ng, false, c}].total.P[0] - base
			ratio := float64(a) / float64(max(n, time.Microsecond))
			parts = append(parts, fmt.Sprintf("c=%d: %s vs %s (%.2fx)", c, report.Us(a), report.Us(n), ratio))
			if ratio > 2 {
				ok = false
			}
		}
		h.goal("p50 overhead vs nginx", "≤ 2x nginx's", strings.Join(parts, "; "), ok)
	} else {
		h.goal("p50 overhead vs nginx", "≤ 2x nginx's", "nginx not measured", false)
	}
}

// explainPortkey notes the cause of Portkey's failed streams when its log
// shows the gateway's known header bug, and reports whether it did.
func (h *harness) explainPortkey() bool {
	b, err := os.ReadFile(filepath.Join(h.logs, "portkey.log"))
	if err != nil || !strings.Contains(string(b), "TypeError: immutable") {
		return false
	}
	h.note("Portkey's failed streams are the gateway's own bug: its log shows `TypeError: immutable` when it adds headers to a streamed response, reported upstream as Portkey-AI/gateway#1389 and #1550 (open). Its non-streaming rows are measured; its streaming rows cannot be.")
	return true
}
