package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
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
	rj, err := routerJSON(names, utts, routerDoc{})
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
	stored, add, err := h.storedRestart(ctx, dir, cfg, cache, rj)
	if err != nil {
		h.note("stored-router restart not measured: %v", err)
	} else {
		ct.Add("router stored through /model/new: the write (cache warm)", fmt.Sprintf("%.2f s", add.Seconds()), "")
		ct.Add("router stored in the database: restart (median of 3)", fmt.Sprintf("%.2f s", stored.Seconds()), "")
	}
	b.WriteString(ct.Markdown())
	h.section(b.String())
	h.goal("restart with cache, 15k utterances", "≤ 1 s", fmt.Sprintf("%.2f s (first start %.0f s, %.0f utterances/s)", restart.Seconds(), first.Seconds(), float64(total)/first.Seconds()), restart <= time.Second)
	if err == nil {
		h.goal("restart with a stored 15k-utterance router", "≤ 1 s", fmt.Sprintf("%.2f s", stored.Seconds()), stored <= time.Second)
	}
	return nil
}

// storedRestart adds the CLINC router through the management API of a
// replica with an SQLite store, then times restarts to readiness: the
// router comes back from the database and the embedding cache.
func (h *harness) storedRestart(ctx context.Context, dir, cfg, cache string, routerJSON []byte) (restart, add time.Duration, err error) {
	body, err := os.ReadFile(cfg)
	if err != nil {
		return 0, 0, err
	}
	// The same models without the file's router, with the store on.
	lines := strings.Split(string(body), "\n")
	var kept []string
	for i := 0; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "  - model_name: clinc") {
			i += 5 // its litellm_params block
			continue
		}
		kept = append(kept, lines[i])
	}
	sdir := filepath.Join(dir, "stored")
	if err := os.MkdirAll(sdir, 0o755); err != nil {
		return 0, 0, err
	}
	scfg := filepath.Join(sdir, "config.yaml")
	yaml := strings.Join(kept, "\n") + "\ngeneral_settings:\n  master_key: sk-bench\n  store_model_in_db: true\n"
	if err := os.WriteFile(scfg, []byte(yaml), 0o644); err != nil {
		return 0, 0, err
	}
	db := filepath.Join(sdir, "models.db")
	os.Remove(db)
	base, p, err := h.startAutorouter(ctx, "stored-add", scfg, cache, 2*time.Minute, "--db", db)
	if err != nil {
		return 0, 0, err
	}
	req, _ := json.Marshal(map[string]any{"model_name": "clinc", "litellm_params": map[string]any{"model": "auto_router/clinc",
		"auto_router_config": string(routerJSON), "auto_router_default_model": "oos", "auto_router_embedding_model": "minilm"}})
	t0 := time.Now()
	status, out, err := postJSON(ctx, base+"/model/new", "sk-bench", req)
	add = time.Since(t0)
	p.stop()
	if err != nil || status != 200 {
		return 0, 0, fmt.Errorf("/model/new: %d %.300s %v", status, out, err)
	}
	var ds []time.Duration
	for i := range 3 {
		t0 := time.Now()
		base, p, err := h.startAutorouter(ctx, fmt.Sprintf("stored-restart-%d", i), scfg, cache, 2*time.Minute, "--db", db)
		if err != nil {
			return 0, 0, err
		}
		d := time.Since(t0)
		// Ready means the stored router is in: it must route.
		status, out, err := postJSON(ctx, base+"/route", "sk-bench", []byte(`{"model":"clinc","messages":[{"role":"user","content":"what is my balance"}]}`))
		p.stop()
		if err != nil || status != 200 {
			return 0, 0, fmt.Errorf("the stored router did not come back: %d %.300s %v", status, out, err)
		}
		ds = append(ds, d)
	}
	return medianDur(ds), add, nil
}

// postJSON posts body with a bearer key and returns the status and body.
func postJSON(ctx context.Context, url, key string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}
