package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/internal/testenv"
	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/upstream"
)

// seedConfig is the seed's router in Go; tag marks every mock's answer so
// a test can tell generations apart, and swap exchanges the two routes'
// utterances.
func seedConfig(tag string, swap bool, info config.ModelInfo) *config.Config {
	th := 0.5
	a, b := "litellm is great", "how to code a program in [language]"
	if swap {
		a, b = b, a
	}
	mock := func(name string) config.Deployment {
		r := tag + ":" + name
		return config.Deployment{ModelName: name, Params: config.LiteLLMParams{Model: "mock/" + name, MockResponse: &r}}
	}
	info.Quantized = true
	return &config.Config{ModelList: []config.Deployment{
		{ModelName: "auto_router1", Params: config.LiteLLMParams{
			Model: "auto_router/auto_router1",
			AutoRouterConfig: &config.RouterFile{Routes: []config.RouteSpec{
				{Name: "litellm-gpt-4.1", Utterances: []string{a}, ScoreThreshold: &th},
				{Name: "litellm-claude-35", Utterances: []string{b}, ScoreThreshold: &th},
			}},
			AutoRouterDefaultModel: "gpt-4o-mini", AutoRouterEmbeddingModel: "minilm",
		}},
		{ModelName: "minilm", Params: config.LiteLLMParams{Model: "local/all-MiniLM-L6-v2"}, ModelInfo: info},
		mock("litellm-gpt-4.1"), mock("litellm-claude-35"), mock("gpt-4o-mini"),
	}}
}

func newSeedClient(t *testing.T, cfg *config.Config) *Client {
	t.Helper()
	c, err := New(context.Background(), cfg, Options{ModelsDir: testenv.ModelsDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func python() *openai.ChatRequest {
	return &openai.ChatRequest{Model: "auto_router1", Messages: []openai.Message{openai.UserMessage("how to code a program in python")}}
}

func TestCompletionThroughRouter(t *testing.T) {
	c := newSeedClient(t, seedConfig("g1", false, config.ModelInfo{}))
	resp, err := c.Completion(context.Background(), python())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Decision == nil || resp.Decision.Route != "litellm-claude-35" || resp.Model != "litellm-claude-35" ||
		resp.Text() != "g1:litellm-claude-35" || resp.Deployment != "litellm-claude-35/3" || resp.FellBack() {
		t.Fatalf("completion %+v decision %+v", resp, resp.Decision)
	}
	plain, err := c.Completion(context.Background(), &openai.ChatRequest{Model: "gpt-4o-mini", Messages: python().Messages})
	if err != nil || plain.Decision != nil || plain.Text() != "g1:gpt-4o-mini" {
		t.Fatalf("plain model: %+v %v", plain, err)
	}
	_, err = c.Completion(context.Background(), &openai.ChatRequest{Model: "gpt-4o-mnii", Messages: python().Messages})
	if !errors.Is(err, ErrUnknownModel) || !strings.Contains(err.Error(), "valid models: auto_router1, gpt-4o-mini") {
		t.Fatalf("typo: %v", err)
	}
	_, err = c.Completion(context.Background(), &openai.ChatRequest{Model: "minilm", Messages: python().Messages})
	if !errors.Is(err, ErrWrongAPI) {
		t.Fatalf("embedding model asked for chat: %v", err)
	}
}

// TestConfigTypoIsAnError: a config built in Go with a typo fails New with
// the entry named, instead of panicking.
func TestConfigTypoIsAnError(t *testing.T) {
	cfg := seedConfig("g", false, config.ModelInfo{})
	cfg.ModelList[0].Params.AutoRouterEmbeddingModel = "minlm"
	_, err := New(context.Background(), cfg, Options{ModelsDir: testenv.ModelsDir(t)})
	if err == nil || !strings.Contains(err.Error(), `auto_router_embedding_model "minlm" is not a model_name`) {
		t.Fatalf("err = %v", err)
	}
}

func TestModelsDirInError(t *testing.T) {
	dir := t.TempDir()
	_, err := New(context.Background(), seedConfig("g", false, config.ModelInfo{}), Options{
		LookupEnv: func(k string) (string, bool) { return dir, k == "AUTOROUTER_MODELS" }})
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "$AUTOROUTER_MODELS") {
		t.Fatalf("a missing model must say where it looked: %v", err)
	}
}

// TestStreamCutOff: the library's stream ends with an error, not a silent
// success, when the upstream stops before data: [DONE].
func TestStreamCutOff(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"partial\"}}]}\n\n")
	}))
	defer up.Close()
	cfg := seedConfig("g", false, config.ModelInfo{})
	cfg.ModelList[3] = config.Deployment{ModelName: "litellm-claude-35", Params: config.LiteLLMParams{Model: "openai/claude", APIBase: up.URL}}
	c := newSeedClient(t, cfg)
	st, err := c.Stream(context.Background(), python())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got string
	for st.Next() {
		got += st.Current().Text()
	}
	if got != "partial" || !errors.Is(st.Err(), upstream.ErrCutOff) {
		t.Fatalf("got %q, err %v", got, st.Err())
	}
}

// TestCancelCancelsUpstream: cancelling the context ends the upstream call.
func TestCancelCancelsUpstream(t *testing.T) {
	gone := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // net/http notices a gone client only once the body is read
		<-r.Context().Done()
		close(gone)
	}))
	defer up.Close()
	cfg := seedConfig("g", false, config.ModelInfo{})
	cfg.ModelList[3] = config.Deployment{ModelName: "litellm-claude-35", Params: config.LiteLLMParams{Model: "openai/claude", APIBase: up.URL}}
	c := newSeedClient(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Completion(ctx, python()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request outlived the context")
	}
}

// TestApplyUnderTraffic swaps two generations whose routes are exchanged
// while requests flow: no request fails, and each is routed and answered
// by one generation, never the router of one and the deployments of the
// other.
func TestApplyUnderTraffic(t *testing.T) {
	c := newSeedClient(t, seedConfig("g1", false, config.ModelInfo{}))
	want := map[string]bool{"g1:litellm-claude-35": true, "g2:litellm-gpt-4.1": true}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var served, failed atomic.Int64
	errs := make(chan string, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := c.Completion(context.Background(), python())
				if err != nil {
					failed.Add(1)
					errs <- err.Error()
					return
				}
				if !want[resp.Text()] {
					failed.Add(1)
					errs <- "inconsistent generation: " + resp.Text()
					return
				}
				served.Add(1)
			}
		}()
	}
	for i := range 6 {
		tag, swap := "g1", false
		if i%2 == 0 {
			tag, swap = "g2", true
		}
		if err := c.Apply(context.Background(), seedConfig(tag, swap, config.ModelInfo{})); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond)
	}
	stop()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if failed.Load() > 0 || served.Load() < 10 {
		t.Fatalf("served %d, failed %d", served.Load(), failed.Load())
	}
	if n := c.encoders.open(); n != 1 {
		t.Fatalf("%d encoders open after six reloads of one model; replaced generations must release theirs", n)
	}
}

// TestEncoderOptionsRebuild: an encoder option changed on reload builds a
// new encoder (and closes the old one) instead of being silently ignored.
func TestEncoderOptionsRebuild(t *testing.T) {
	c := newSeedClient(t, seedConfig("g1", false, config.ModelInfo{}))
	s1 := c.Acquire()
	before := s1.encoders["minilm"]
	s1.Release()
	if err := c.Apply(context.Background(), seedConfig("g1", false, config.ModelInfo{MicroBatch: true, MaxBatch: 8})); err != nil {
		t.Fatal(err)
	}
	s2 := c.Acquire()
	defer s2.Release()
	after := s2.encoders["minilm"]
	if after == before || c.encoders.open() != 1 {
		t.Fatalf("micro_batch change kept the old encoder (same %v), %d open", after == before, c.encoders.open())
	}
	if _, ok := after.enc.(interface{ Close() error }); !ok {
		t.Fatal("encoder is not closable")
	}
	// The router itself is unchanged, so a generation holding the old
	// snapshot still decides on its own encoder until it is released.
	if d, _ := s2.Route(context.Background(), "auto_router1", python().Messages); d.Route != "litellm-claude-35" {
		t.Fatalf("decision %+v", d)
	}
}

// TestWatchReloadErrorHasPosition: a reload that fails on bad JSON names
// the line and column, as a failed start does.
func TestWatchReloadErrorHasPosition(t *testing.T) {
	dir := t.TempDir()
	path := writeTestConfig(t, dir, "")
	c := newTestClient(t, path, "", nil)
	os.WriteFile(filepath.Join(dir, "router.json"), []byte("{\n  \"routes\": [\n    {\"name\": \"coder\",}\n  ]\n}"), 0o644)
	err := c.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "invalid JSON at line 3, column") {
		t.Fatalf("err = %v", err)
	}
}

// TestTwoModelDirectories: local models in different directories load side
// by side on the one process-wide ONNX Runtime.
func TestTwoModelDirectories(t *testing.T) {
	src := filepath.Join(testenv.ModelsDir(t), "all-MiniLM-L6-v2")
	other := filepath.Join(t.TempDir(), "elsewhere", "minilm-copy")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"model_int8.onnx", "tokenizer.json", "manifest.json"} {
		if err := os.Symlink(filepath.Join(src, f), filepath.Join(other, f)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := seedConfig("g", false, config.ModelInfo{})
	cfg.ModelList = append(cfg.ModelList, config.Deployment{ModelName: "minilm-copy",
		Params: config.LiteLLMParams{Model: "local/copy", ModelPath: other}, ModelInfo: config.ModelInfo{Quantized: true}})
	c := newSeedClient(t, cfg)
	a, err := c.Embed(context.Background(), "minilm", []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Embed(context.Background(), "minilm-copy", []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if len(a[0]) != 384 || len(b[0]) != 384 || a[0][0] != b[0][0] {
		t.Fatalf("the two directories' models disagree: %v vs %v", a[0][:3], b[0][:3])
	}
}

func seedWith(mut func(cfg *config.Config)) *config.Config {
	cfg := seedConfig("g", false, config.ModelInfo{})
	mut(cfg)
	return cfg
}

// TestDecisionCache: the same text on the same router is decided once;
// the cached decision equals the fresh one; a changed router starts
// afresh; the cache stays within its bounds under concurrent use.
func TestDecisionCache(t *testing.T) {
	c := newSeedClient(t, seedWith(func(cfg *config.Config) { cfg.RouterSettings.DecisionCacheEntries = 32 }))
	ctx := context.Background()
	msgs := python().Messages
	fresh, _ := c.Route(ctx, "auto_router1", msgs)
	cached, _ := c.Route(ctx, "auto_router1", msgs)
	if fresh.Cached || !cached.Cached || cached.Model != fresh.Model || cached.Score != fresh.Score || len(cached.Scores) != len(fresh.Scores) || cached.Scores[0] != fresh.Scores[0] {
		t.Fatalf("fresh %+v\ncached %+v", fresh, cached)
	}
	if st := c.CacheStats(); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A changed router is a new router: its first decision is fresh.
	swapped := seedConfig("g", true, config.ModelInfo{})
	swapped.RouterSettings.DecisionCacheEntries = 32
	if err := c.Apply(ctx, swapped); err != nil {
		t.Fatal(err)
	}
	after, _ := c.Route(ctx, "auto_router1", msgs)
	if after.Cached || after.Route != "litellm-gpt-4.1" {
		t.Fatalf("after a reload that swapped the routes: %+v", after)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				c.RouteText(ctx, "auto_router1", fmt.Sprintf("prompt %d of worker %d", i%40, w))
			}
		}()
	}
	wg.Wait()
	st := c.CacheStats()
	if st.Entries > 32 || st.Evictions == 0 {
		t.Fatalf("under load: %+v", st)
	}
}

// TestSessionAffinity: with affinity on, a session's later turns keep its
// first decision, other sessions decide for themselves, and a changed
// router starts every session afresh.
func TestSessionAffinity(t *testing.T) {
	c := newSeedClient(t, seedWith(func(cfg *config.Config) { cfg.RouterSettings.SessionAffinity = true }))
	ctx := WithSession(context.Background(), "conv-1")
	first, _ := c.Route(ctx, "auto_router1", python().Messages)
	follow, _ := c.Route(ctx, "auto_router1", []openai.Message{openai.UserMessage("litellm is great")})
	other, _ := c.Route(WithSession(context.Background(), "conv-2"), "auto_router1", []openai.Message{openai.UserMessage("litellm is great")})
	if first.Route != "litellm-claude-35" || follow.Route != "litellm-claude-35" || !follow.Session || other.Route != "litellm-gpt-4.1" || other.Session {
		t.Fatalf("first %+v\nfollow %+v\nother %+v", first, follow, other)
	}
	// The session key may come in the body's metadata too.
	resp, err := c.Completion(context.Background(), &openai.ChatRequest{Model: "auto_router1", Metadata: json.RawMessage(`{"session_id":"conv-1"}`),
		Messages: []openai.Message{openai.UserMessage("litellm is great")}})
	if err != nil || resp.Decision.Route != "litellm-claude-35" || !resp.Decision.Session {
		t.Fatalf("metadata.session_id: %+v %v", resp, err)
	}
	if err := c.Apply(context.Background(), seedWith(func(cfg *config.Config) {
		cfg.RouterSettings.SessionAffinity = true
		cfg.ModelList[0].Params.AutoRouterConfig.Routes[0].Utterances = []string{"litellm is great!"}
	})); err != nil {
		t.Fatal(err)
	}
	again, _ := c.Route(ctx, "auto_router1", []openai.Message{openai.UserMessage("litellm is great")})
	if again.Session || again.Route != "litellm-gpt-4.1" {
		t.Fatalf("after the router changed, the session kept its old decision: %+v", again)
	}
}

// TestMaxEmbedTokens: a router with max_embed_tokens decides a long
// prompt on its opening words.
func TestMaxEmbedTokens(t *testing.T) {
	long := "how to code a program in python " + strings.Repeat("and then the weather in paris tomorrow ", 40)
	off := newSeedClient(t, seedConfig("g", false, config.ModelInfo{}))
	on := newSeedClient(t, seedWith(func(cfg *config.Config) { cfg.ModelList[0].Params.AutoRouterConfig.MaxEmbedTokens = 10 }))
	d1, _ := off.RouteText(context.Background(), "auto_router1", long)
	d2, _ := on.RouteText(context.Background(), "auto_router1", long)
	if d2.Route != "litellm-claude-35" || d1.Route == "litellm-claude-35" {
		t.Fatalf("without the bound %+v; with it %+v", d1, d2)
	}
	// Batch routing (eval, route --batch) embeds the same clipped text.
	batch, err := on.RouteTexts(context.Background(), "auto_router1", []string{long, "litellm is great"})
	// (A batch quantises its activations together, so scores differ in
	// the third decimal; without the clip it would route elsewhere.)
	if err != nil || batch[0].Route != d2.Route || math.Abs(float64(batch[0].Score-d2.Score)) > 0.01 || batch[0].Text != long {
		t.Fatalf("batch: route %q score %v, %v; single: route %q score %v", batch[0].Route, batch[0].Score, err, d2.Route, d2.Score)
	}
}
