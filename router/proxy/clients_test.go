package proxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runNode installs a testdata Node package from its lockfile and runs one
// of its test files with env, failing the test with the output.
func runNode(t *testing.T, dir, file string, env ...string) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required for the client tests: install Node.js and npm", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	run := exec.CommandContext(ctx, "node", "--test", file)
	run.Dir = dir
	run.Env = append(os.Environ(), env...)
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("%s failed: %v\n%s", file, err, out)
	}
	t.Logf("%s", out)
}

// chatOnlyUpstream is a real-shaped provider that speaks only chat
// completions (as vLLM or Ollama do): /v1/responses and /v1/messages are
// 404 here, so the proxy must translate. It answers tools with a call of
// the first tool until a tool result comes back, and streams as OpenAI
// does, usage chunk included when asked.
func chatOnlyUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			fmt.Fprintf(w, `{"error":{"message":"Invalid URL (POST %s)","type":"invalid_request_error"}}`, r.URL.Path)
			return
		}
		var req struct {
			Model    string `json:"model"`
			Stream   bool   `json:"stream"`
			Messages []struct {
				Role string `json:"role"`
			} `json:"messages"`
			Tools []struct {
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			} `json:"tools"`
			StreamOptions *struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) == 0 {
			http.Error(w, `{"error":{"message":"bad request","type":"invalid_request_error"}}`, 400)
			return
		}
		callTool := len(req.Tools) > 0 && req.Messages[len(req.Messages)-1].Role != "tool"
		text := "fake answer from " + req.Model
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			if callTool {
				fmt.Fprintf(w, `{"id":"chatcmpl-fake","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":%q,"arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}`, req.Model, req.Tools[0].Function.Name)
				return
			}
			fmt.Fprintf(w, `{"id":"chatcmpl-fake","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`, req.Model, text)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		send := func(s string) { fmt.Fprintf(w, "data: %s\n\n", s); fl.Flush() }
		head := fmt.Sprintf(`{"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":%q,"choices":[`, req.Model)
		if callTool {
			send(head + fmt.Sprintf(`{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":%q,"arguments":""}}]},"finish_reason":null}]}`, req.Tools[0].Function.Name))
			send(head + `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"finish_reason":null}]}`)
			send(head + `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"finish_reason":null}]}`)
			send(head + `{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`)
		} else {
			send(head + `{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`)
			for _, w := range strings.Fields(text) {
				send(head + fmt.Sprintf(`{"index":0,"delta":{"content":%q},"finish_reason":null}]}`, w+" "))
			}
			send(head + `{"index":0,"delta":{},"finish_reason":"stop"}]}`)
		}
		if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
			send(fmt.Sprintf(`{"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1,"model":%q,"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`, req.Model))
		}
		send("[DONE]")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestAPIClients runs the OpenAI SDK (Responses API), the Vercel AI SDK's
// default provider and the Anthropic SDK against the real proxy: over the
// example config's mock upstreams, and over an upstream that speaks only
// chat completions, which the proxy translates for.
func TestAPIClients(t *testing.T) {
	dir := "testdata/clients"
	t.Run("mock upstreams", func(t *testing.T) {
		base := startExampleProxy(t, false)
		runNode(t, dir, "clients.test.mjs", "AUTOROUTER_BASE_URL="+base+"/v1", "AUTOROUTER_KEY=sk-1234", "AUTOROUTER_CODER=coder")
	})
	t.Run("chat-only upstream", func(t *testing.T) {
		up := chatOnlyUpstream(t)
		ex, _ := os.ReadFile("../../cmd/autorouter/example/config.yaml")
		cfg := string(ex)
		for _, name := range []string{"coder", "writer", "math", "general"} {
			cfg = strings.Replace(cfg, "model: mock/"+name+"\n", fmt.Sprintf("model: openai/fake-%s\n      api_base: %s/v1\n      api_key: sk-up\n", name, up.URL), 1)
		}
		rdir := t.TempDir()
		rj, _ := os.ReadFile("../../cmd/autorouter/example/router.json")
		os.WriteFile(filepath.Join(rdir, "router.json"), rj, 0o644)
		cfg = strings.Replace(cfg, "auto_router_config_path: router.json", "auto_router_config_path: "+filepath.Join(rdir, "router.json"), 1)
		base, _, _ := startProxy(t, cfg, Options{})
		runNode(t, dir, "clients.test.mjs", "AUTOROUTER_BASE_URL="+base+"/v1", "AUTOROUTER_KEY=sk-1234", "AUTOROUTER_CODER=coder")
	})
}

// TestTranslatedStreamCutOff: a chat-only upstream that dies mid-stream
// ends a translated stream with an error event in the client's own API.
func TestTranslatedStreamCutOff(t *testing.T) {
	up := newFakeUpstream(t, sseHandler([]string{`{"id":"c","choices":[{"index":0,"delta":{"content":"partial"}}]}`}, false, nil))
	base, _, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/responses", `{"model":"gpt","input":"x","stream":true}`, "event: error\ndata: {\"type\":\"error\",\"code\":\"stream_cut_off\""},
		{"/v1/messages", `{"model":"gpt","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"x"}]}`, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\""},
	} {
		_, out := post(t, base+tc.path, "", tc.body)
		if !strings.Contains(out, "partial") || !strings.Contains(out, tc.want) || strings.Contains(out, "response.completed") || strings.Contains(out, "message_stop") {
			t.Errorf("%s: %q", tc.path, out)
		}
	}
}

func TestTranslatedBadRequests(t *testing.T) {
	base, _, _ := startProxy(t, plainConfig("http://127.0.0.1:1", ""), Options{})
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/responses", `{"model":"gpt"}`, `"param":"input"`},
		{"/v1/responses", `{"model":"gpt","input":"x","tools":[{"type":"file_search"}]}`, `"param":"tools[0].type"`},
		{"/v1/messages", `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`, `max_tokens`},
		{"/v1/messages", `{"model":"gpt","max_tokens":3}`, `messages`},
	} {
		resp, out := post(t, base+tc.path, "", tc.body)
		if resp.StatusCode != 400 || !strings.Contains(out, tc.want) {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, resp.StatusCode, out)
		}
	}
}
