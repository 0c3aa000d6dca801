package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autorouter/autorouter/bench/load"
	"github.com/autorouter/autorouter/bench/report"
	"github.com/autorouter/autorouter/embed"
)

// agentTurns is how many requests one agent conversation makes: its user
// turn, then ten tool round trips that resend it with a growing history.
const agentTurns = 11

// agentBodies builds conversation conv's request k: the same last user
// message every time, with k tool round trips behind it.
func agentBody(model, prompt string, conv, k int) []byte {
	msgs := []map[string]any{{"role": "system", "content": "You are a coding agent."}, {"role": "user", "content": prompt}}
	for i := 0; i < k; i++ {
		id := fmt.Sprintf("call_%d_%d", conv, i)
		msgs = append(msgs,
			map[string]any{"role": "assistant", "content": nil, "tool_calls": []map[string]any{{"id": id, "type": "function",
				"function": map[string]string{"name": "read_file", "arguments": fmt.Sprintf(`{"path":"src/file%d.go"}`, i)}}}},
			map[string]any{"role": "tool", "tool_call_id": id, "content": strings.Repeat("package main // file contents ", 8)})
	}
	b, _ := json.Marshal(map[string]any{"model": model, "messages": msgs})
	return b
}

// agentLoad runs conversations at concurrency c: each worker runs whole
// conversations, their requests one after another, as an agent does. The
// bodies are built before the clock starts, so the rate is the server's,
// not the load generator's JSON encoding; a few conversations of their own
// warm the server up first.
func agentLoad(ctx context.Context, url string, prompts []string, conc, convs int) (reqPerSec float64, errs int, first error) {
	client := load.Client(conc)
	const warmup = 4
	bodies := make([][][]byte, warmup+convs)
	for conv := range bodies {
		// A different opening turn per conversation, so only the loop's
		// resends can hit the cache.
		prompt := fmt.Sprintf("%s (task %d)", prompts[conv%len(prompts)], conv)
		bodies[conv] = make([][]byte, agentTurns)
		for k := range agentTurns {
			bodies[conv][k] = agentBody("auto", prompt, conv, k)
		}
	}
	run := func(convs [][][]byte) int {
		var failed atomic.Int64
		var mu sync.Mutex
		load.Each(ctx, conc, len(convs), func(conv int) {
			for _, body := range convs[conv] {
				s := load.Do(ctx, client, load.Request{URL: url, Body: func(int) []byte { return body }}, 0, time.Now())
				if s.Err != nil {
					failed.Add(1)
					mu.Lock()
					if first == nil {
						first = s.Err
					}
					mu.Unlock()
				}
			}
		})
		return int(failed.Load())
	}
	errs = run(bodies[:warmup])
	start := time.Now()
	failed := run(bodies[warmup:])
	el := time.Since(start)
	return float64(convs*agentTurns-failed) / el.Seconds(), errs + failed, first
}

// agentConfig writes the routed config with router_settings and
// general_settings lines added and optional router.json keys.
func (h *harness) agentConfig(name, settings string, routerExtra map[string]any) (string, error) {
	cfg, err := h.routedConfig(false, true)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(h.o.work, "agent-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	body, err := os.ReadFile(cfg)
	if err != nil {
		return "", err
	}
	rj, err := os.ReadFile(filepath.Join(filepath.Dir(cfg), "router.json"))
	if err != nil {
		return "", err
	}
	if len(routerExtra) > 0 {
		var m map[string]any
		if err := json.Unmarshal(rj, &m); err != nil {
			return "", err
		}
		for k, v := range routerExtra {
			m[k] = v
		}
		rj, _ = json.MarshalIndent(m, "", "  ")
	}
	if err := os.WriteFile(filepath.Join(dir, "router.json"), rj, 0o644); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "config.yaml")
	return path, os.WriteFile(path, append(body, []byte(settings)...), 0o644)
}

// agent measures routing at agent scale: the decision cache on an agent
// loop's resent user turns, and short prompts' tail latency while long
// prompts flood the encoder, with and without the long-prompt lanes and
// the max_embed_tokens bound.
func (h *harness) agent(ctx context.Context) error {
	prompts, err := h.sentences()
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("## 7. Routing at agent scale\n\n")
	convs := 120
	if h.o.quick {
		convs = 20
	}
	t := report.Table{Header: []string{"concurrency", "decision cache off (req/s)", "on (req/s)", "on / off"}}
	rates := map[string]map[int]float64{}
	for _, mode := range []struct{ name, settings string }{
		{"off", "router_settings:\n  decision_cache_entries: -1\n"},
		{"on", ""},
	} {
		cfg, err := h.agentConfig("cache-"+mode.name, mode.settings, nil)
		if err != nil {
			return err
		}
		base, p, err := h.startAutorouter(ctx, "autorouter-cache-"+mode.name, cfg, filepath.Join(h.o.work, "cache-routed"), 2*time.Minute)
		if err != nil {
			return err
		}
		rates[mode.name] = map[int]float64{}
		for _, c := range []int{1, 8, 32} {
			rps, errs, first := agentLoad(ctx, base+"/v1/chat/completions", prompts, c, max(convs, c))
			if errs > 0 {
				h.note("agent loop, cache %s, c=%d: %d failed requests, first: %v", mode.name, c, errs, first)
			}
			rates[mode.name][c] = rps
			h.progress("agent: cache %s c=%d: %.0f routed req/s", mode.name, c, rps)
		}
		p.stop()
	}
	worst := 0.0
	for _, c := range []int{1, 8, 32} {
		r := rates["on"][c] / rates["off"][c]
		if worst == 0 || r < worst {
			worst = r
		}
		t.Add(fmt.Sprint(c), fmt.Sprintf("%.0f", rates["off"][c]), fmt.Sprintf("%.0f", rates["on"][c]), fmt.Sprintf("%.1fx", r))
	}
	fmt.Fprintf(&b, "An agent loop: each conversation sends its user turn, then ten tool round trips that resend it behind a growing history (%d conversations per cell after 4 of warm-up, whole conversations per worker, bodies built before the clock starts, fake upstream answering at once). With the cache, ten of eleven decisions are lookups.\n\n%s\n", max(convs, 32), t.Markdown())
	h.goal("agent loop, decision cache on vs off", "≥ 5x routed requests/s", fmt.Sprintf("%.1fx at worst (c=1, 8, 32)", worst), worst >= 5)

	// Mixed lengths: 80% short prompts, 20% of 512 tokens.
	tok, err := embed.LoadTokenizer(filepath.Join(h.o.models, "all-MiniLM-L6-v2", "tokenizer.json"), 1024)
	if err != nil {
		return err
	}
	long, got, err := textOfTokens(tok, prompts, 512)
	if err != nil {
		return err
	}
	n := 1500
	if h.o.quick {
		n = 400
	}
	const conc = 16
	mt := report.Table{Header: []string{"setting", "workload", "short p50", "short p99", "long p50", "long p99", "req/s"}}
	var alone, lanes time.Duration
	for _, v := range []struct {
		name, settings string
		extra          map[string]any
	}{
		{"no lanes", "general_settings:\n  long_prompt_chars: 1000000000\n  max_concurrent_routing: 1024\nrouter_settings:\n  decision_cache_entries: -1\n", nil},
		{"lanes (default)", "router_settings:\n  decision_cache_entries: -1\n", nil},
		{"lanes + max_embed_tokens 128", "router_settings:\n  decision_cache_entries: -1\n", map[string]any{"max_embed_tokens": 128}},
	} {
		cfg, err := h.agentConfig(strings.NewReplacer(" ", "-", "(", "", ")", "", "+", "").Replace(v.name), v.settings, v.extra)
		if err != nil {
			return err
		}
		base, p, err := h.startAutorouter(ctx, "autorouter-mixed", cfg, filepath.Join(h.o.work, "cache-routed"), 2*time.Minute)
		if err != nil {
			return err
		}
		url := base + "/v1/chat/completions"
		for _, mixed := range []bool{false, true} {
			if !mixed && v.name != "lanes (default)" {
				continue
			}
			short, longs, el := mixedLoad(ctx, url, prompts, long, mixed, conc, n)
			sp, lp := load.Percentiles(short, 50, 99), load.Percentiles(longs, 50, 99)
			wl := "short only"
			if mixed {
				wl = "80% short, 20% 512 tokens"
			}
			lp50, lp99 := "", ""
			if len(longs) > 0 {
				lp50, lp99 = report.Ms(lp[0]), report.Ms(lp[1])
			}
			mt.Add(v.name, wl, report.Ms(sp[0]), report.Ms(sp[1]), lp50, lp99, fmt.Sprintf("%.0f", float64(len(short)+len(longs))/el.Seconds()))
			switch {
			case !mixed:
				alone = sp[1]
			case v.name == "lanes (default)":
				lanes = sp[1]
			}
			h.progress("agent: mixed %s (%s): short p99 %s", v.name, wl, report.Ms(sp[1]))
		}
		p.stop()
	}
	fmt.Fprintf(&b, "\nMixed lengths at concurrency %d, %d requests per row, decision cache off: short prompts are the bench's sentences, long ones %d tokens (the model embeds at most 256). The lanes let long embeddings hold all but one CPU at once; `max_embed_tokens` embeds only a long prompt's first 128 tokens.\n\n%s\n", conc, n, got, mt.Markdown())
	ratio := float64(lanes) / float64(alone)
	h.goal("short prompts' p99 under mixed load", "within 2x of alone", fmt.Sprintf("%s vs %s alone (%.2fx)", report.Ms(lanes), report.Ms(alone), ratio), alone > 0 && ratio <= 2)
	h.section(b.String())
	return nil
}

// mixedLoad sends n requests at concurrency conc, every fifth one long
// when mixed, and returns short and long latencies apart.
func mixedLoad(ctx context.Context, url string, prompts []string, long string, mixed bool, conc, n int) (short, longs []time.Duration, el time.Duration) {
	client := load.Client(conc)
	var mu sync.Mutex
	start := time.Now()
	load.Each(ctx, conc, n, func(i int) {
		isLong := mixed && i%5 == 4
		text := fmt.Sprintf("%s (%d)", prompts[i%len(prompts)], i)
		if isLong {
			text = fmt.Sprintf("%s (%d)", long, i)
		}
		body, _ := json.Marshal(map[string]any{"model": "auto", "messages": []map[string]string{{"role": "user", "content": text}}})
		s := load.Do(ctx, client, load.Request{URL: url, Body: func(int) []byte { return body }}, i, time.Now())
		if s.Err != nil {
			return
		}
		mu.Lock()
		if isLong {
			longs = append(longs, s.Total)
		} else {
			short = append(short, s.Total)
		}
		mu.Unlock()
	})
	return short, longs, time.Since(start)
}
