package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorouter/autorouter/router"
)

// fakeUpstream is a local OpenAI-compatible server standing in for a remote
// provider. handler decides each answer; requests are recorded.
type fakeUpstream struct {
	*httptest.Server
	calls    atomic.Int64
	lastBody atomic.Value // string
	lastAuth atomic.Value // string
}

func newFakeUpstream(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, n int64)) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		f.lastBody.Store(string(b))
		f.lastAuth.Store(r.Header.Get("Authorization"))
		handler(w, r, n)
	}))
	t.Cleanup(f.Close)
	return f
}

func okCompletion(w http.ResponseWriter, model string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"x","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hi from %s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`, model, model)
}

// startProxy serves cfgYAML on a loopback port and returns its base URL.
func startProxy(t testing.TB, cfgYAML string, opts Options) (string, *Server) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := router.LoadConfig(path, router.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String(), srv
}

func post(t *testing.T, url, key, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func plainConfig(base string, extra string) string {
	return fmt.Sprintf(`
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o
      api_base: %s/v1
      api_key: sk-upstream-secret
      timeout: 2
  - model_name: backup
    litellm_params:
      model: mock/backup
      mock_response: "from backup"
%s`, base, extra)
}

func TestChatNonStream(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "bad path "+r.URL.Path, 500)
			return
		}
		okCompletion(w, "gpt-4o")
	})
	base, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
	body := `{"model":"gpt","messages":[{"role":"user","content":"hi"}],"temperature":0.25,"api_base":"http://evil.example","api_key":"stolen","extra":{"a":[1,2,{"b":"c"}]}}`
	resp, out := post(t, base+"/v1/chat/completions", "", body)
	if resp.StatusCode != 200 || !strings.Contains(out, "hi from gpt-4o") {
		t.Fatalf("status %d body %s", resp.StatusCode, out)
	}
	if got := resp.Header.Get("x-autorouter-model"); got != "gpt" {
		t.Errorf("x-autorouter-model = %q, want gpt", got)
	}
	if got := resp.Header.Get("x-litellm-model-id"); got == "" {
		t.Error("x-litellm-model-id missing")
	}
	sent := up.lastBody.Load().(string)
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(sent), &m); err != nil {
		t.Fatalf("upstream got invalid JSON %s: %v", sent, err)
	}
	if string(m["model"]) != `"gpt-4o"` {
		t.Errorf("upstream model = %s, want \"gpt-4o\"", m["model"])
	}
	if _, ok := m["api_base"]; ok {
		t.Error("client api_base was forwarded")
	}
	if _, ok := m["api_key"]; ok {
		t.Error("client api_key was forwarded")
	}
	if string(m["temperature"]) != `0.25` || string(m["extra"]) != `{"a":[1,2,{"b":"c"}]}` {
		t.Errorf("other fields changed: %s", sent)
	}
	if got := up.lastAuth.Load().(string); got != "Bearer sk-upstream-secret" {
		t.Errorf("upstream auth = %q", got)
	}
}

func TestAuth(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) { okCompletion(w, "gpt-4o") })
	base, _ := startProxy(t, plainConfig(up.URL, "general_settings:\n  master_key: sk-master\n"), Options{})
	body := `{"model":"gpt","messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name, key string
		want      int
	}{{"no key", "", 401}, {"wrong key", "sk-wrong", 401}, {"prefix of key", "sk-mast", 401}, {"right key", "sk-master", 200}} {
		t.Run(tc.name, func(t *testing.T) {
			resp, out := post(t, base+"/v1/chat/completions", tc.key, body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, out)
			}
			if tc.want == 401 && !strings.Contains(out, `"type":"authentication_error"`) {
				t.Fatalf("401 body is not an OpenAI error: %s", out)
			}
		})
	}
	resp, _ := http.Get(base + "/health/liveliness")
	if resp.StatusCode != 200 {
		t.Fatalf("liveliness needs no key, got %d", resp.StatusCode)
	}
}

func TestErrors(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		var req struct{ Messages []struct{ Content string } }
		json.NewDecoder(strings.NewReader(fmt.Sprint(r.Context().Value("x")))).Decode(&req)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":{"message":"upstream says: bad temperature","type":"invalid_request_error","param":"temperature","code":null}}`)
	})
	base, _ := startProxy(t, plainConfig(up.URL, ""), Options{MaxBodyBytes: 1 << 10})
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"malformed JSON", `{"model":`, 400, "not valid JSON"},
		{"missing model", `{"messages":[{"role":"user","content":"x"}]}`, 400, `"param":"model"`},
		{"missing messages", `{"model":"gpt"}`, 400, `"param":"messages"`},
		{"unknown model", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, "valid models: backup, gpt"},
		{"too large", `{"model":"gpt","messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}`, 413, "limit"},
		{"upstream 4xx passed through", `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`, 400, "upstream says: bad temperature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, out := post(t, base+"/v1/chat/completions", "", tc.body)
			if resp.StatusCode != tc.status || !strings.Contains(out, tc.want) {
				t.Fatalf("status %d body %s; want %d containing %q", resp.StatusCode, out, tc.status, tc.want)
			}
			var env struct {
				Error *struct{ Message, Type string }
			}
			if json.Unmarshal([]byte(out), &env) != nil || env.Error == nil || env.Error.Message == "" {
				t.Fatalf("not an OpenAI error envelope: %s", out)
			}
		})
	}
}

func TestRetriesThenSuccess(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n <= 2 {
			http.Error(w, `{"error":{"message":"overloaded"}}`, 503)
			return
		}
		okCompletion(w, "gpt-4o")
	})
	base, _ := startProxy(t, plainConfig(up.URL, "router_settings:\n  num_retries: 2\n  allowed_fails: 10\n"), Options{})
	resp, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 200 || up.calls.Load() != 3 {
		t.Fatalf("status %d after %d calls: %s", resp.StatusCode, up.calls.Load(), out)
	}
}

func TestRetriesExhaustedThenFallback(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		http.Error(w, `{"error":{"message":"rate limited"}}`, 429)
	})
	t.Run("502 without fallback", func(t *testing.T) {
		base, _ := startProxy(t, plainConfig(up.URL, "router_settings:\n  num_retries: 1\n"), Options{})
		resp, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`)
		if resp.StatusCode != 502 || !strings.Contains(out, "429") || !strings.Contains(out, "rate limited") {
			t.Fatalf("status %d body %s; want 502 carrying the upstream 429", resp.StatusCode, out)
		}
		if strings.Contains(out, "sk-upstream-secret") {
			t.Fatal("upstream key leaked into the error")
		}
	})
	t.Run("fallback group answers", func(t *testing.T) {
		base, _ := startProxy(t, plainConfig(up.URL, "router_settings:\n  num_retries: 1\n  fallbacks: [{\"gpt\": [\"backup\"]}]\n"), Options{})
		resp, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`)
		if resp.StatusCode != 200 || !strings.Contains(out, "from backup") || resp.Header.Get("x-autorouter-model") != "backup" {
			t.Fatalf("status %d body %s headers %v", resp.StatusCode, out, resp.Header)
		}
	})
}

func TestCooldown(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) { http.Error(w, "down", 500) })
	base, _ := startProxy(t, plainConfig(up.URL, "router_settings:\n  num_retries: 0\n  allowed_fails: 2\n  cooldown_time: 60\n"), Options{})
	for i := 0; i < 4; i++ {
		post(t, base+"/v1/chat/completions", "", `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`)
	}
	if got := up.calls.Load(); got != 2 {
		t.Fatalf("upstream called %d times; after 2 failures it should be cooling down", got)
	}
	_, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`)
	if !strings.Contains(out, "cooling down") {
		t.Fatalf("want a cooldown error, got %s", out)
	}
}

func TestTimeout(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	cfg := strings.Replace(plainConfig(up.URL, "router_settings:\n  num_retries: 0\n"), "timeout: 2", "timeout: 200ms", 1)
	base, _ := startProxy(t, cfg, Options{})
	start := time.Now()
	resp, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 504 {
		t.Fatalf("status %d body %s; want 504", resp.StatusCode, out)
	}
	if time.Since(start) > 4*time.Second {
		t.Fatal("timeout was not applied")
	}
}

func sseHandler(events []string, done bool, cancelled chan<- struct{}) func(w http.ResponseWriter, r *http.Request, n int64) {
	return func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "text/event-stream")
		fl := w.(http.Flusher)
		for _, e := range events {
			fmt.Fprintf(w, "data: %s\n\n", e)
			fl.Flush()
		}
		if done {
			fmt.Fprint(w, "data: [DONE]\n\n")
			fl.Flush()
			return
		}
		if cancelled != nil {
			// Keep generating until the proxy hangs up.
			for i := 0; ; i++ {
				select {
				case <-r.Context().Done():
					close(cancelled)
					return
				case <-time.After(10 * time.Millisecond):
					if _, err := fmt.Fprintf(w, "data: {\"tick\":%d}\n\n", i); err != nil {
						close(cancelled)
						return
					}
					fl.Flush()
				}
			}
		}
		// Otherwise die mid-stream: no [DONE].
	}
}

func TestStream(t *testing.T) {
	events := []string{`{"choices":[{"delta":{"content":"Hel"}}]}`, `{"choices":[{"delta":{"content":"lo"}}]}`}
	up := newFakeUpstream(t, sseHandler(events, true, nil))
	base, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
	resp, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	want := "data: " + events[0] + "\n\ndata: " + events[1] + "\n\ndata: [DONE]\n\n"
	if out != want {
		t.Fatalf("stream body:\n%q\nwant\n%q", out, want)
	}
	if resp.Header.Get("x-autorouter-model") != "gpt" {
		t.Fatal("routing headers missing on stream")
	}
}

func TestStreamCutOff(t *testing.T) {
	up := newFakeUpstream(t, sseHandler([]string{`{"choices":[{"delta":{"content":"partial"}}]}`}, false, nil))
	base, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
	_, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	if !strings.Contains(out, "partial") || !strings.Contains(out, `"code":"stream_cut_off"`) || strings.Contains(out, "data: [DONE]\n") {
		t.Fatalf("a stream without [DONE] must end with an error event, got %q", out)
	}
}

func TestStreamClientDisconnectCancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	up := newFakeUpstream(t, sseHandler([]string{`{"first":true}`}, false, cancelled))
	base, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(`{"model":"gpt","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "first") {
		t.Fatalf("first event: %q %v", line, err)
	}
	resp.Body.Close() // the client goes away mid-stream
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request was not cancelled after the client disconnected")
	}
}

func TestMockAndModelsAndReadiness(t *testing.T) {
	base, srv := startProxy(t, plainConfig("http://127.0.0.1:1", ""), Options{})
	resp, out := post(t, base+"/v1/chat/completions", "", `{"model":"backup","messages":[{"role":"user","content":"x"}],"mock_response":"overridden"}`)
	if resp.StatusCode != 200 || !strings.Contains(out, "overridden") {
		t.Fatalf("mock: %d %s", resp.StatusCode, out)
	}
	r, err := http.Get(base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if !strings.Contains(string(b), `"id":"gpt"`) || !strings.Contains(string(b), `"id":"backup"`) {
		t.Fatalf("models: %s", b)
	}
	r, _ = http.Get(base + "/health/readiness")
	r.Body.Close()
	if r.StatusCode != 503 {
		t.Fatalf("readiness before SetRouter = %d, want 503", r.StatusCode)
	}
	srv.SetRouter(nil, nil)
	r, _ = http.Get(base + "/health/readiness")
	r.Body.Close()
	if r.StatusCode != 200 {
		t.Fatalf("readiness after SetRouter = %d, want 200", r.StatusCode)
	}
}

func TestRewriteBody(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"replace", `{"model":"a","x":1}`, `{"model":"m","x":1}`},
		{"add when missing", `{"x":[1, 2]}`, `{"x":[1, 2],"model":"m"}`},
		{"strip client keys", `{"api_key":"k","model":"a","api_base":"b","base_url":"c"}`, `{"model":"m"}`},
		{"unicode key kept", `{"ключ":"значение","model":"a"}`, `{"ключ":"значение","model":"m"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rewriteBody(nil, []byte(tc.in), "m")
			if err != nil || string(got) != tc.want {
				t.Fatalf("rewriteBody(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{`[]`, `{"a":`, `{"a":1} x`, ``} {
		if _, err := rewriteBody(nil, []byte(bad), "m"); err == nil {
			t.Errorf("rewriteBody(%q): want an error", bad)
		}
	}
}

func FuzzRewriteBody(f *testing.F) {
	for _, s := range []string{`{"model":"a"}`, `{}`, `{"messages":[{"role":"user","content":"hi"}]}`, `[1]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := rewriteBody(nil, []byte(s), "m")
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("rewriteBody(%q) produced invalid JSON %q: %v", s, out, err)
		}
		if string(m["model"]) != `"m"` {
			t.Fatalf("model not set in %q", out)
		}
	})
}

// TestMetrics checks that /metrics counts requests by model and status and
// exposes the heap allocation counters load tests divide by request counts.
func TestMetrics(t *testing.T) {
	base, _ := startProxy(t, plainConfig("http://127.0.0.1:1", ""), Options{})
	for range 3 {
		post(t, base+"/v1/chat/completions", "", `{"model":"backup","messages":[{"role":"user","content":"x"}]}`)
	}
	r, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	out := string(b)
	for _, want := range []string{
		`autorouter_requests_total{endpoint="/v1/chat/completions",model="backup",route="",status="200"} 3`,
		"go_gc_heap_allocs_objects_total ",
		"go_gc_heap_allocs_bytes_total ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, out)
		}
	}
}

// readChunks reads s the way fasthttp does, one flushed chunk per Read,
// signalling each on got.
func readChunks(s *sseStream, got chan<- string) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			got <- string(buf[:n])
		}
		if err == io.EOF {
			close(got)
			return nil
		}
		if err != nil {
			close(got)
			return err
		}
	}
}

func TestSSEStreamChunks(t *testing.T) {
	events := []string{"data: {\"a\":1}\n\n", "data: {\"a\":2}\r\n\r\n", "data: {\"a\":3}\n\n", "data: [DONE]\n\n"}
	newStream := func(r io.Reader) (*sseStream, *error) {
		var ended error = errors.New("end not called")
		return newSSEStream(r, func() {}, func() {}, func(err error) { ended = err }), &ended
	}
	t.Run("events that arrive together go out together", func(t *testing.T) {
		s, ended := newStream(strings.NewReader(strings.Join(events, "")))
		got := make(chan string, 16)
		if err := readChunks(s, got); err != nil {
			t.Fatal(err)
		}
		var chunks []string
		for c := range got {
			chunks = append(chunks, c)
		}
		if len(chunks) != 1 || chunks[0] != strings.Join(events, "") {
			t.Fatalf("%d chunks %q, want the whole stream in one", len(chunks), chunks)
		}
		s.CloseWithError(nil)
		if *ended != nil {
			t.Fatalf("a complete stream ended with %v", *ended)
		}
	})
	t.Run("each event goes out before the next arrives", func(t *testing.T) {
		pr, pw := io.Pipe()
		s, ended := newStream(pr)
		got := make(chan string, 16)
		go readChunks(s, got)
		// Each write holds the rest of one event and half of the next: the
		// whole event must go out without waiting for the half.
		pending := ""
		var relayed []string
		for i, ev := range events {
			if _, err := pw.Write([]byte(pending + ev[:len(ev)/2])); err != nil {
				t.Fatal(err)
			}
			pending = ev[len(ev)/2:]
			if i == 0 {
				continue
			}
			select {
			case c := <-got:
				relayed = append(relayed, c)
			case <-time.After(5 * time.Second):
				t.Fatalf("event %d was held back waiting for event %d", i-1, i)
			}
		}
		pw.Write([]byte(pending))
		pw.Close()
		for c := range got {
			relayed = append(relayed, c)
		}
		if strings.Join(relayed, "") != strings.Join(events, "") {
			t.Fatalf("relayed %q", relayed)
		}
		s.CloseWithError(nil)
		if *ended != nil {
			t.Fatalf("a complete stream ended with %v", *ended)
		}
	})
	t.Run("a stream without [DONE] ends with an error event", func(t *testing.T) {
		s, ended := newStream(strings.NewReader(events[0]))
		got := make(chan string, 16)
		readChunks(s, got)
		var all string
		for c := range got {
			all += c
		}
		if !strings.HasPrefix(all, events[0]) || !strings.Contains(all, `"code":"stream_cut_off"`) {
			t.Fatalf("relayed %q", all)
		}
		s.CloseWithError(nil)
		if *ended == nil || !strings.Contains((*ended).Error(), "[DONE]") {
			t.Fatalf("cut-off stream ended with %v", *ended)
		}
	})
	t.Run("a client that goes away closes the upstream", func(t *testing.T) {
		released := false
		var ended error
		s := newSSEStream(strings.NewReader(events[0]), func() { released = true }, func() {}, func(err error) { ended = err })
		s.Read(make([]byte, 4))
		s.CloseWithError(errors.New("broken pipe"))
		s.CloseWithError(nil) // a second close is a no-op
		if !released || !errors.Is(ended, errClientGone) {
			t.Fatalf("released %v, ended %v", released, ended)
		}
	})
}
