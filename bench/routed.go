package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/autorouter/autorouter/bench/load"
	"github.com/autorouter/autorouter/bench/report"
)

// routedConfig writes a config whose auto router sends the example routes
// (coder, writer, math; default general) to the fake upstream, embedding
// with the local int8 model, micro-batching on or off. Without cache the
// decision cache is off, so that every request embeds its prompt: the
// bench's prompts repeat, and cached decisions are measured in section 7.
func (h *harness) routedConfig(microBatch, cache bool) (string, error) {
	example := filepath.Join(h.o.repo, "cmd", "autorouter", "example", "router.json")
	rj, err := os.ReadFile(example)
	if err != nil {
		return "", fmt.Errorf("reading the example router: %w", err)
	}
	dir := filepath.Join(h.o.work, fmt.Sprintf("routed-batch-%t-cache-%t", microBatch, cache))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "router.json"), rj, 0o644); err != nil {
		return "", fmt.Errorf("writing router.json: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `model_list:
  - model_name: auto
    litellm_params:
      model: auto_router/auto
      auto_router_config_path: router.json
      auto_router_default_model: general
      auto_router_embedding_model: minilm
  - model_name: minilm
    litellm_params:
      model: local/all-MiniLM-L6-v2
    model_info:
      quantized: true
      micro_batch: %t
`, microBatch)
	for _, m := range []string{"coder", "writer", "math", "general"} {
		fmt.Fprintf(&b, "  - model_name: %s\n    litellm_params:\n      model: openai/fake-%s\n      api_base: %s/v1\n      api_key: sk-fake\n", m, m, h.upBase)
	}
	if !cache {
		b.WriteString("router_settings:\n  decision_cache_entries: -1\n")
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", cfg, err)
	}
	return cfg, nil
}

// promptBodies turns prompts into chat bodies for model, cycling through
// them so concurrent requests carry different texts of different lengths.
func promptBodies(model string, prompts []string) func(int) []byte {
	bodies := make([][]byte, len(prompts))
	for i, p := range prompts {
		bodies[i] = []byte(fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}]}`, model, p))
	}
	return func(i int) []byte { return bodies[i%len(bodies)] }
}

// memRow is one memory reading of a server.
type memRow struct {
	what       string
	idle, peak int64
}

func (h *harness) routed(ctx context.Context) error {
	prompts, err := h.sentences()
	if err != nil {
		return err
	}
	type variant struct {
		name  string
		url   string
		proc  *proc
		batch bool
	}
	variants := []variant{{name: "direct (no proxy)", url: h.upBase + "/v1/chat/completions"}}
	var mems []memRow
	for _, mb := range []bool{false, true} {
		cfg, err := h.routedConfig(mb, false)
		if err != nil {
			return err
		}
		name := "autorouter, no batching"
		if mb {
			name = "autorouter, micro-batching"
		}
		base, p, err := h.startAutorouter(ctx, strings.ReplaceAll(name, ", ", "-"), cfg, filepath.Join(h.o.work, "cache-routed"), 2*time.Minute)
		if err != nil {
			return fmt.Errorf("starting %s: %w", name, err)
		}
		defer p.stop()
		// A first request loads lazily built state; idle is measured after it.
		if s := load.Do(ctx, load.Client(1), load.Request{URL: base + "/v1/chat/completions", Body: promptBodies("auto", prompts)}, 0, time.Now()); s.Err != nil {
			return fmt.Errorf("%s: first request: %w", name, s.Err)
		}
		m, err := readMem(p.cmd.Process.Pid)
		if err != nil {
			return err
		}
		mems = append(mems, memRow{what: name, idle: m.RSS})
		variants = append(variants, variant{name: name, url: base + "/v1/chat/completions", proc: p, batch: mb})
	}
	runs := 5
	if h.o.quick {
		runs = 3
	}
	concs := []int{1, 8, 32, 64}
	type cellKey struct {
		v string
		c int
	}
	cells := map[cellKey]dist{}
	for _, c := range concs {
		n := map[int]int{1: 300, 8: 600}[c]
		if n == 0 {
			n = 1200
		}
		if !h.o.quick {
			n *= 3
		}
		client := load.Client(c)
		acc := make([][][]time.Duration, len(variants))
		tput := make([][]float64, len(variants))
		errs := make([]int, len(variants))
		firsts := make([]error, len(variants))
		for r := range runs {
			for i, v := range variants {
				model := "auto"
				if v.proc == nil {
					model = "fake-direct"
				}
				res := load.ClosedLoop(ctx, client, load.Request{URL: v.url, Body: promptBodies(model, prompts)}, c, n/10, n)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				acc[i] = append(acc[i], res.Total)
				tput[i] = append(tput[i], res.Throughput())
				errs[i] += res.Errors
				if firsts[i] == nil {
					firsts[i] = res.FirstErr
				}
				h.progress("routed: %-26s c=%-2d run %d/%d: %6.0f req/s, p50 %s", v.name, c, r+1, runs, res.Throughput(), report.Ms(load.Percentile(res.Total, 50)))
			}
		}
		for i, v := range variants {
			cells[cellKey{v.name, c}] = summarise(acc[i], tput[i], errs[i], firsts[i])
			if errs[i] > 0 {
				h.note("%s c=%d: %d failed requests, first: %v", v.name, c, errs[i], firsts[i])
			}
		}
	}
	for i, v := range variants[1:] {
		m, err := readMem(v.proc.cmd.Process.Pid)
		if err != nil {
			return err
		}
		mems[i].peak = m.Peak
	}
	allocs, err := h.allocsPerRequest(ctx, variants[1].url, prompts)
	if err != nil {
		h.note("allocations per routed request not measured: %v", err)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "## 3. Routed throughput\n\nChat requests for the auto router (the example's coder/writer/math routes, default general) with the local int8 model, each prompt embedded in-process before forwarding to the fake upstream. Prompts cycle through %d varied sentences; the decision cache is off, so every request embeds its prompt (section 7 measures the cache). Closed loop, median of %d runs; added latency is over the direct upstream at the same concurrency. Micro-batching (`model_info: {micro_batch: true}`, max batch 32) merges prompts that queue while the model is busy into one ONNX run.\n\n", len(prompts), runs)
	t := report.Table{Header: []string{"concurrency", "variant", "req/s", "added p50", "added p99", "p50 spread"}}
	for _, c := range concs {
		base := cells[cellKey{variants[0].name, c}]
		for _, v := range variants {
			d := cells[cellKey{v.name, c}]
			if v.proc == nil {
				t.Add(fmt.Sprint(c), v.name, fmt.Sprintf("%.0f", d.Throughput), report.Ms(d.P[0])+" (absolute)", report.Ms(d.P[2])+" (absolute)", "")
				continue
			}
			t.Add(fmt.Sprint(c), v.name, fmt.Sprintf("%.0f", d.Throughput), report.Us(d.P[0]-base.P[0]), report.Us(d.P[2]-base.P[2]),
				fmt.Sprintf("[%s, %s]", report.Ms(d.P50Lo), report.Ms(d.P50Hi)))
		}
	}
	b.WriteString(t.Markdown())
	nb, mb := variants[1].name, variants[2].name
	gain := cells[cellKey{mb, 32}].Throughput / cells[cellKey{nb, 32}].Throughput
	c1 := float64(cells[cellKey{mb, 1}].P[0]) / float64(cells[cellKey{nb, 1}].P[0])
	fmt.Fprintf(&b, "\nMicro-batching at concurrency 32: %.2fx the throughput without it; p50 at concurrency 1: %+.1f%%.\n", gain, 100*(c1-1))
	h.section(b.String())
	h.goal("micro-batching throughput, c=32", "≥ 1.5x no batching", fmt.Sprintf("%.2fx", gain), gain >= 1.5)
	h.goal("micro-batching p50, c=1", "≤ 5% worse", fmt.Sprintf("%+.1f%%", 100*(c1-1)), c1 <= 1.05)

	// Section 4: memory, measured on the processes the routed load just ran.
	var mbld strings.Builder
	mbld.WriteString("## 4. Memory\n\nResident memory of the autorouter process serving the routed config (int8 model loaded), from /proc: idle after the first request, and peak (VmHWM) after the routed load above.\n\n")
	mt := report.Table{Header: []string{"server", "RSS idle", "peak RSS under load"}}
	worst := int64(0)
	for _, m := range mems {
		mt.Add(m.what, mib(m.idle), mib(m.peak))
		worst = max(worst, m.peak)
	}
	mbld.WriteString(mt.Markdown())
	if allocs > 0 {
		fmt.Fprintf(&mbld, "\nHeap allocations per routed request (server side, from /metrics `go_gc_heap_allocs_objects_total`, c=1): %.0f.\n", allocs)
	}
	if h.plainAllocs > 0 {
		fmt.Fprintf(&mbld, "Heap allocations per proxied request, plain model (no routing): %.0f.\n", h.plainAllocs)
	}
	h.section(mbld.String())
	h.goal("peak RSS under load, model loaded", "≤ 250 MB", mib(worst), worst > 0 && worst <= 250<<20)
	return nil
}

// allocsPerRequest sends requests at concurrency 1 and divides the server's
// heap allocation count by them. The /metrics scrapes themselves allocate a
// little; over 1,000 requests that is noise.
func (h *harness) allocsPerRequest(ctx context.Context, url string, prompts []string) (float64, error) {
	base := strings.TrimSuffix(url, "/v1/chat/completions")
	before, err := scrape(base, "go_gc_heap_allocs_objects_total")
	if err != nil {
		return 0, err
	}
	const n = 1000
	model := "auto"
	if prompts == nil {
		model = "fake-model"
		prompts = []string{"Say hello in one short sentence."}
	}
	res := load.ClosedLoop(ctx, load.Client(1), load.Request{URL: url, Body: promptBodies(model, prompts)}, 1, 0, n)
	if res.Errors > 0 {
		return 0, fmt.Errorf("%d of %d requests failed: %w", res.Errors, n, res.FirstErr)
	}
	after, err := scrape(base, "go_gc_heap_allocs_objects_total")
	if err != nil {
		return 0, err
	}
	return (after - before) / n, nil
}

func mib(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }
