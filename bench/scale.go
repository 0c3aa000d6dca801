package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/autorouter/autorouter/bench/load"
	"github.com/autorouter/autorouter/bench/report"
	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/simd"
)

func (h *harness) scale(ctx context.Context) error {
	var b strings.Builder
	b.WriteString("## 5. Scale\n\n### Scoring time against the utterance matrix\n\nOne query (384 dims) against every utterance, top-5 kept, grouped into 150 routes, on one goroutine: the `router.Index.Score_Into` the server runs.\n\n")
	queries := 2000
	if h.o.quick {
		queries = 300
	}
	t := report.Table{Header: []string{"utterances", "p50", "p99", "utterances scored per µs"}}
	rng := rand.New(rand.NewPCG(7, 7))
	q := make([]float32, 384)
	scores := make([]router.RouteScore, 0, 8)
	var at15k, at100k time.Duration
	for _, rows := range []int{1000, 15000, 100000} {
		ix, err := randomIndex(384, rows, 150, uint64(rows))
		if err != nil {
			return err
		}
		var ds []time.Duration
		for i := range queries + 20 {
			for j := range q {
				q[j] = float32(rng.NormFloat64())
			}
			simd.Normalize(q)
			t0 := time.Now()
			scores = ix.Score_Into(scores[:0], q)
			if i >= 20 {
				ds = append(ds, time.Since(t0))
			}
		}
		p := load.Percentiles(ds, 50, 99)
		t.Add(fmt.Sprint(rows), report.Ms(p[0]), report.Ms(p[1]), fmt.Sprintf("%.0f", float64(rows)/(float64(p[0])/1e3)))
		switch rows {
		case 15000:
			at15k = p[0]
		case 100000:
			at100k = p[0]
		}
		h.progress("scale: scoring %d utterances: p50 %s", rows, report.Ms(p[0]))
	}
	b.WriteString(t.Markdown())
	h.goal("score 15k utterances", "≤ 0.5 ms", report.Ms(at15k), at15k <= 500*time.Microsecond)
	h.goal("score 100k utterances", "≤ 3 ms", report.Ms(at100k), at100k <= 3*time.Millisecond)

	// Cold start with 150 routes / 15,000 utterances.
	c, err := loadCLINC(h.o.dataset)
	if err != nil {
		h.section(b.String())
		return err
	}
	names, utts := c.routes(0)
	total := 0
	for _, u := range utts {
		total += len(u)
	}
	dir := filepath.Join(h.o.work, "coldstart")
	cfg, err := clincConfig(dir, names, true)
	if err != nil {
		return err
	}
	rj, err := routerJSON(names, utts, "", "", nil)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, "router.json"), rj); err != nil {
		return err
	}
	cache := filepath.Join(dir, "cache")
	if err := os.RemoveAll(cache); err != nil {
		return fmt.Errorf("clearing %s: %w", cache, err)
	}
	startOnce := func(name string) (time.Duration, error) {
		t0 := time.Now()
		_, p, err := h.startAutorouter(ctx, name, cfg, cache, 10*time.Minute)
		if err != nil {
			return 0, err
		}
		d := time.Since(t0)
		p.stop()
		return d, nil
	}
	h.progress("scale: cold start, embedding %d utterances (int8)...", total)
	first, err := startOnce("coldstart-first")
	if err != nil {
		return err
	}
	var restarts []time.Duration
	for i := range 3 {
		d, err := startOnce(fmt.Sprintf("coldstart-restart-%d", i))
		if err != nil {
			return err
		}
		restarts = append(restarts, d)
	}
	restart := medianDur(restarts)
	fmt.Fprintf(&b, "\n### Cold start to readiness, %d routes / %d utterances (CLINC150 train split, int8 model)\n\nTime from starting `autorouter serve` until `/health/readiness` answers 200, including process start and model load.\n\n", len(names), total)
	ct := report.Table{Header: []string{"start", "time to ready", "utterances/s"}}
	ct.Add("first start (embeds everything, writes the cache)", fmt.Sprintf("%.1f s", first.Seconds()), fmt.Sprintf("%.0f", float64(total)/first.Seconds()))
	ct.Add("restart with the persistent cache (median of 3)", fmt.Sprintf("%.2f s", restart.Seconds()), "")
	b.WriteString(ct.Markdown())
	h.section(b.String())
	h.goal("restart with cache, 15k utterances", "≤ 1 s", fmt.Sprintf("%.2f s (first start %.0f s, %.0f utterances/s)", restart.Seconds(), first.Seconds(), float64(total)/first.Seconds()), restart <= time.Second)
	return nil
}
