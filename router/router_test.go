package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/autorouter/autorouter/router/internal/testenv"
	"github.com/autorouter/autorouter/router/openai"
)

const testRouterJSON = `{
  "encoder_type": "local", "encoder_name": "all-MiniLM-L6-v2",
  "routes": [
    {"name": "coder", "utterances": ["write a python function to sort a list", "fix this bug in my javascript code", "implement binary search in go", "how do I make an http request in rust"], "score_threshold": 0.2},
    {"name": "writer", "utterances": ["write a poem about the sea", "compose a haiku about autumn", "write a short story about a dragon"], "score_threshold": 0.2}
  ]%s
}`

// writeTestConfig writes a config with one auto router over mock models.
func writeTestConfig(t *testing.T, dir, routerExtra string) string {
	t.Helper()
	cfg := `model_list:
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
  - model_name: coder
    litellm_params: {model: mock/coder}
  - model_name: writer
    litellm_params: {model: mock/writer}
  - model_name: general
    litellm_params: {model: mock/general}
`
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "router.json"), []byte(strings.Replace(testRouterJSON, "%s", routerExtra, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func newTestClient(t *testing.T, path, cacheDir string, logs *bytes.Buffer) *Client {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	c, err := Open(context.Background(), path, Options{Logger: logger, ModelsDir: testenv.ModelsDir(t), CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func userMsgs(texts ...string) []openai.Message {
	var out []openai.Message
	for i, t := range texts {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		b, _ := json.Marshal(t)
		out = append(out, openai.Message{Role: role, Content: b})
	}
	return out
}

func TestSetRoutesWithRealModel(t *testing.T) {
	s := newTestClient(t, writeTestConfig(t, t.TempDir(), ""), "", nil)
	for _, tc := range []struct {
		name     string
		msgs     []openai.Message
		model    string
		fallback bool
		reason   string
	}{
		{"coding prompt", userMsgs("write a go function that sorts a slice of ints"), "coder", false, ""},
		{"poetry prompt", userMsgs("a haiku about winter snow"), "writer", false, ""},
		{"off-topic falls back", userMsgs("what's the weather in Paris tomorrow?"), "general", true, ReasonBelowThreshold},
		{"no user message", []openai.Message{{Role: "system", Content: json.RawMessage(`"hi"`)}}, "general", true, ReasonNoUserMessage},
		{"empty text", userMsgs(""), "general", true, ReasonEmptyText},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := s.Route(context.Background(), "auto", tc.msgs)
			if err != nil {
				t.Fatal(err)
			}
			if d.Model != tc.model || d.Fallback != tc.fallback || d.Reason != tc.reason {
				t.Fatalf("decision %+v; want model %s fallback %v reason %q", d, tc.model, tc.fallback, tc.reason)
			}
			if !d.Fallback && (d.Route != tc.model || d.Score < 0.2 || len(d.Scores) == 0) {
				t.Fatalf("decision %+v lacks route/score", d)
			}
		})
	}
	if _, err := s.Route(context.Background(), "nope", userMsgs("x")); err == nil {
		t.Fatal("unknown router: want ErrUnknownRouter")
	}
}

func TestRouteTextsMatchesRoute(t *testing.T) {
	s := newTestClient(t, writeTestConfig(t, t.TempDir(), ""), "", nil)
	texts := []string{"implement quicksort in python", "write a sonnet about love", "book a flight", ""}
	batch, err := s.RouteTexts(context.Background(), "auto", texts)
	if err != nil {
		t.Fatal(err)
	}
	for i, text := range texts {
		one, _ := s.RouteText(context.Background(), "auto", text)
		if one.Model != batch[i].Model || one.Fallback != batch[i].Fallback {
			t.Errorf("%q: batch says %s, single says %s", text, batch[i].Model, one.Model)
		}
	}
}

// TestNearest checks that the nearest utterances of a routed text are the
// router's own, from the winning route first, best first, and capped by the
// router's size.
func TestNearest(t *testing.T) {
	s := newTestClient(t, writeTestConfig(t, t.TempDir(), ""), "", nil)
	ctx := context.Background()
	got, err := s.Nearest(ctx, "auto", "write a haiku about the autumn moon", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Route != "writer" || got[0].Utterance != "compose a haiku about autumn" {
		t.Fatalf("nearest %+v: want 3, the haiku utterance of writer first", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Score > got[i-1].Score {
			t.Fatalf("nearest %+v not highest first", got)
		}
	}
	d, _ := s.RouteText(ctx, "auto", "write a haiku about the autumn moon")
	if d.Route != got[0].Route {
		t.Errorf("decision %+v disagrees with its nearest utterance %+v", d, got[0])
	}
	all, err := s.Nearest(ctx, "auto", "anything", 50)
	if err != nil || len(all) != 7 {
		t.Fatalf("k over the router's 7 utterances: got %d, %v", len(all), err)
	}
	if none, err := s.Nearest(ctx, "auto", "", 3); err != nil || none != nil {
		t.Errorf("empty text: %v, %v; want nothing", none, err)
	}
	if _, err := s.Nearest(ctx, "nope", "x", 3); !errors.Is(err, ErrUnknownRouter) {
		t.Errorf("unknown router: %v", err)
	}
}

func TestCacheAvoidsReembedding(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	path := writeTestConfig(t, dir, "")
	var first, second bytes.Buffer
	newTestClient(t, path, cache, &first)
	newTestClient(t, path, cache, &second)
	if !strings.Contains(first.String(), "cached=0") || !strings.Contains(second.String(), "cached=7") {
		t.Fatalf("want cached=0 then cached=7;\nfirst: %s\nsecond: %s", first.String(), second.String())
	}
}

func TestConversationWindow(t *testing.T) {
	msgs := userMsgs("write a python function to sort a list", "def sort(xs): ...", "and in go")
	off := newTestClient(t, writeTestConfig(t, t.TempDir(), ""), "", nil)
	on := newTestClient(t, writeTestConfig(t, t.TempDir(), `, "conversation_window": 2`), "", nil)
	d1, _ := off.Route(context.Background(), "auto", msgs)
	d2, _ := on.Route(context.Background(), "auto", msgs)
	if d2.Model != "coder" {
		t.Fatalf("with a window of 2, the follow-up should stay on coder; got %+v", d2)
	}
	if d1.Text != "and in go" || !strings.Contains(d2.Text, "python") {
		t.Fatalf("texts: off %q, on %q", d1.Text, d2.Text)
	}
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := writeTestConfig(t, dir, "")
	s := newTestClient(t, path, "", nil)
	// A broken router.json keeps the old routers.
	os.WriteFile(filepath.Join(dir, "router.json"), []byte(`{"routes": [{"name": "coder", "utterances": [], "score_threshold": 0.2}]}`), 0o644)
	if err := s.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), `route "coder": no utterances`) {
		t.Fatalf("reload of a bad file: err = %v", err)
	}
	if d, _ := s.RouteText(context.Background(), "auto", "compose a poem about the ocean"); d.Model != "writer" {
		t.Fatalf("old routers should still answer; got %+v", d)
	}
	// A good change is swapped in.
	os.WriteFile(filepath.Join(dir, "router.json"), []byte(`{"routes": [{"name": "writer", "utterances": ["debug my python code"], "score_threshold": 0.2}]}`), 0o644)
	if err := s.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.RouteText(context.Background(), "auto", "my python code has a bug"); d.Model != "writer" {
		t.Fatalf("reloaded routes not in effect: %+v", d)
	}
}

// TestRemoteEncoder routes with encoder_type "openai"
// against a local OpenAI-compatible /v1/embeddings server backed by the real
// local model, the way a team would point autorouter at another embedding
// service.
func TestRemoteEncoder(t *testing.T) {
	local := newTestClient(t, writeTestConfig(t, t.TempDir(), ""), "", nil)
	snap := local.Acquire()
	defer snap.Release()
	enc, err := snap.Encoder("minilm")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Input []string }
		json.NewDecoder(r.Body).Decode(&req)
		vecs := make([]float32, len(req.Input)*enc.Dim())
		if err := enc.Embed(r.Context(), req.Input, vecs); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		var data []map[string]any
		for i := range req.Input {
			data = append(data, map[string]any{"index": i, "embedding": vecs[i*enc.Dim() : (i+1)*enc.Dim()]})
		}
		json.NewEncoder(w).Encode(map[string]any{"data": data})
	}))
	defer srv.Close()
	dir := t.TempDir()
	path := writeTestConfig(t, dir, "")
	b, _ := os.ReadFile(path)
	cfgText := strings.Replace(string(b), "      model: local/all-MiniLM-L6-v2\n    model_info:\n      quantized: true\n",
		"      model: openai/remote-minilm\n      api_base: "+srv.URL+"/v1\n", 1)
	os.WriteFile(path, []byte(cfgText), 0o644)
	remote := newTestClient(t, path, "", nil)
	d, err := remote.RouteText(context.Background(), "auto", "write a go function that sorts a slice of ints")
	if err != nil || d.Model != "coder" {
		t.Fatalf("remote-encoder decision %+v, %v", d, err)
	}
	srv.Close()
	d, _ = remote.RouteText(context.Background(), "auto", "write a go function")
	if !d.Fallback || d.Reason != ReasonEmbedError || d.Err == nil {
		t.Fatalf("with the embedding endpoint down, want an embed_error fallback; got %+v", d)
	}
}

// TestProgressReportsFailure: a router whose utterances cannot be
// embedded fails to load with its name in the error, and its last
// progress report says it failed.
func TestProgressReportsFailure(t *testing.T) {
	// The size probe (one input) is answered; the utterances (a batch)
	// are refused.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Input []string }
		json.NewDecoder(r.Body).Decode(&req)
		if len(req.Input) > 1 {
			http.Error(w, `{"error":{"message":"batch too large"}}`, 400)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"data": []map[string]any{{"index": 0, "embedding": []float32{0.6, 0.8}}}})
	}))
	defer srv.Close()
	path := writeTestConfig(t, t.TempDir(), "")
	b, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(b), "      model: local/all-MiniLM-L6-v2\n    model_info:\n      quantized: true\n",
		"      model: openai/remote-minilm\n      api_base: "+srv.URL+"/v1\n", 1)), 0o644)
	var mu sync.Mutex
	var last Progress
	_, err := Open(context.Background(), path, Options{Logger: slog.New(slog.DiscardHandler), OnProgress: func(p Progress) {
		mu.Lock()
		last = p
		mu.Unlock()
	}})
	if err == nil || !strings.Contains(err.Error(), `auto router "auto"`) {
		t.Fatalf("open: %v; want the router's embedding failure", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if last.Router != "auto" || last.Err == nil {
		t.Fatalf("last progress %+v: want the failure", last)
	}
}
