package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/internal/testenv"
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

// startProxy serves cfgYAML on a loopback port with the real router and
// returns its base URL.
func startProxy(tb testing.TB, cfgYAML string, opts Options) (string, *Server, *router.Client) {
	tb.Helper()
	dir := tb.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfgYAML), 0o644); err != nil {
		tb.Fatal(err)
	}
	c, err := router.Open(context.Background(), path, router.Options{ModelsDir: testenv.ModelsDir(tb), Logger: opts.Logger})
	if err != nil {
		tb.Fatal(err)
	}
	if opts.Limits == (Options{}).Limits {
		opts.Limits = c.Config().GeneralSettings.Limits
	}
	srv := New(opts)
	if err := srv.SetClient(c); err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(ln)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		c.Close()
	})
	return "http://" + ln.Addr().String(), srv, c
}

// post sends a JSON body with key as its bearer token ("" for none).
func post(t testing.TB, url, key, body string) (*http.Response, string) {
	return testenv.Send(t, "POST", url, key, body)
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

const chatBody = `{"model":"gpt","messages":[{"role":"user","content":"x"}]}`

func TestChatNonStream(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "bad path "+r.URL.Path, 500)
			return
		}
		okCompletion(w, "gpt-4o")
	})
	base, _, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
	body := `{"model":"gpt","messages":[{"role":"user","content":"hi"}],"temperature":0.25,"api_base":"http://evil.example","api_key":"stolen","extra":{"a":[1,2,{"b":"c"}]}}`
	resp, out := post(t, base+"/v1/chat/completions", "", body)
	if resp.StatusCode != 200 || !strings.Contains(out, "hi from gpt-4o") {
		t.Fatalf("status %d body %s", resp.StatusCode, out)
	}
	if got := resp.Header.Get("x-autorouter-model"); got != "gpt" {
		t.Errorf("x-autorouter-model = %q, want gpt", got)
	}
	if got := resp.Header.Get("x-litellm-model-id"); got != "gpt/0" {
		t.Errorf("x-litellm-model-id = %q", got)
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

// TestStreamFlagCaseSensitive: the proxy reads "stream" exactly as the
// upstream does, so a differently cased key neither makes the proxy expect
// SSE nor reaches the upstream as a stream request it would misread.
func TestStreamFlagCaseSensitive(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) { okCompletion(w, "gpt-4o") })
	base, _, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
	resp, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","STREAM":true,"messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(out, "hi from gpt-4o") {
		t.Fatalf("status %d type %s body %s", resp.StatusCode, resp.Header.Get("Content-Type"), out)
	}
}

func TestAuth(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) { okCompletion(w, "gpt-4o") })
	base, _, _ := startProxy(t, plainConfig(up.URL, "general_settings:\n  master_key: sk-master\n"), Options{})
	for _, tc := range []struct {
		name, key string
		want      int
	}{{"no key", "", 401}, {"wrong key", "sk-wrong", 401}, {"prefix of key", "sk-mast", 401}, {"right key", "sk-master", 200}} {
		t.Run(tc.name, func(t *testing.T) {
			resp, out := post(t, base+"/v1/chat/completions", tc.key, chatBody)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, out)
			}
			if tc.want == 401 && !strings.Contains(out, `"type":"authentication_error"`) {
				t.Fatalf("401 body is not an OpenAI error: %s", out)
			}
		})
	}
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("x-api-key", "sk-master")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("x-api-key: %v %v", err, resp)
	}
	resp, _ := http.Get(base + "/health/liveliness")
	if resp.StatusCode != 200 {
		t.Fatalf("liveliness needs no key, got %d", resp.StatusCode)
	}
}

func TestErrors(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":{"message":"upstream says: bad temperature","type":"invalid_request_error","param":"temperature","code":null}}`)
	})
	base, _, _ := startProxy(t, plainConfig(up.URL, "general_settings:\n  max_request_size_mb: 0.001\n"), Options{})
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"malformed JSON", `{"model":`, 400, "not valid JSON"},
		{"not an object", `[1,2]`, 400, "JSON object"},
		{"missing model", `{"messages":[{"role":"user","content":"x"}]}`, 400, `"param":"model"`},
		{"model not a string", `{"model":5,"messages":[]}`, 400, `"param":"model"`},
		{"stream not a bool", `{"model":"gpt","stream":"yes","messages":[{"role":"user","content":"x"}]}`, 400, `"param":"stream"`},
		{"missing messages", `{"model":"gpt"}`, 400, `"param":"messages"`},
		{"empty messages", `{"model":"gpt","messages":[]}`, 400, `"param":"messages"`},
		{"unknown model", `{"model":"nope","messages":[{"role":"user","content":"x"}]}`, 404, "valid models: backup, gpt"},
		{"too large", `{"model":"gpt","messages":[{"role":"user","content":"` + strings.Repeat("x", 2000) + `"}]}`, 413, "limit"},
		{"upstream 4xx passed through", chatBody, 400, "upstream says: bad temperature"},
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
	base, _, _ := startProxy(t, plainConfig(up.URL, "router_settings:\n  num_retries: 2\n  allowed_fails: 10\n"), Options{})
	resp, out := post(t, base+"/v1/chat/completions", "", chatBody)
	if resp.StatusCode != 200 || up.calls.Load() != 3 {
		t.Fatalf("status %d after %d calls: %s", resp.StatusCode, up.calls.Load(), out)
	}
}

func TestRetriesExhaustedThenFallback(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		http.Error(w, `{"error":{"message":"rate limited"}}`, 429)
	})
	t.Run("502 without fallback", func(t *testing.T) {
		base, _, _ := startProxy(t, plainConfig(up.URL, "router_settings:\n  num_retries: 1\n"), Options{})
		resp, out := post(t, base+"/v1/chat/completions", "", chatBody)
		if resp.StatusCode != 502 || !strings.Contains(out, "429") || !strings.Contains(out, "rate limited") {
			t.Fatalf("status %d body %s; want 502 carrying the upstream 429", resp.StatusCode, out)
		}
		if strings.Contains(out, "sk-upstream-secret") {
			t.Fatal("upstream key leaked into the error")
		}
	})
	t.Run("fallback group answers", func(t *testing.T) {
		base, _, _ := startProxy(t, plainConfig(up.URL, "router_settings:\n  num_retries: 1\n  fallbacks: [{\"gpt\": [\"backup\"]}]\n"), Options{})
		resp, out := post(t, base+"/v1/chat/completions", "", chatBody)
		if resp.StatusCode != 200 || !strings.Contains(out, "from backup") || resp.Header.Get("x-autorouter-model") != "backup" {
			t.Fatalf("status %d body %s headers %v", resp.StatusCode, out, resp.Header)
		}
	})
}

// TestCooldown: failed requests (not one request's retries) put a
// deployment on cooldown, after which only probes reach it.
func TestCooldown(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) { http.Error(w, "down", 500) })
	base, _, _ := startProxy(t, plainConfig(up.URL, "router_settings:\n  num_retries: 0\n  allowed_fails: 2\n  cooldown_time: 60\n"), Options{})
	for i := 0; i < 3; i++ {
		post(t, base+"/v1/chat/completions", "", chatBody)
	}
	if got := up.calls.Load(); got != 3 {
		t.Fatalf("upstream called %d times, want 3", got)
	}
	// Cooling down: a probe goes through at most once a second; the other
	// requests fail fast with 503.
	codes := map[int]int{}
	for i := 0; i < 5; i++ {
		resp, _ := post(t, base+"/v1/chat/completions", "", chatBody)
		codes[resp.StatusCode]++
	}
	if up.calls.Load() > 4 || codes[503] < 4 {
		t.Fatalf("while cooling down: %d upstream calls, statuses %v", up.calls.Load(), codes)
	}
}

// TestOneBadRequestDoesNotCoolDown: a request whose upstream fails all of
// its own retries must not take a one-deployment model offline for
// everyone else.
func TestOneBadRequestDoesNotCoolDown(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n <= 3 {
			http.Error(w, "boom", 500)
			return
		}
		okCompletion(w, "gpt-4o")
	})
	base, _, _ := startProxy(t, plainConfig(up.URL, "router_settings:\n  num_retries: 2\n"), Options{})
	if resp, _ := post(t, base+"/v1/chat/completions", "", chatBody); resp.StatusCode != 502 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	if resp, out := post(t, base+"/v1/chat/completions", "", chatBody); resp.StatusCode != 200 {
		t.Fatalf("the next client got %d %s: one request's retries put the model on cooldown", resp.StatusCode, out)
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
	base, _, _ := startProxy(t, cfg, Options{})
	start := time.Now()
	resp, out := post(t, base+"/v1/chat/completions", "", chatBody)
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
	base, _, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
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

// TestStreamCROnly relays a stream whose lines end in a lone CR, which
// used to grow the relay's buffer without bound.
func TestStreamCROnly(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\rdata: [DONE]\r\r")
	})
	base, _, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
	_, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	if out != "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n" {
		t.Fatalf("relayed %q", out)
	}
}

func TestStreamCutOff(t *testing.T) {
	up := newFakeUpstream(t, sseHandler([]string{`{"choices":[{"delta":{"content":"partial"}}]}`}, false, nil))
	base, _, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
	_, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	if !strings.Contains(out, "partial") || !strings.Contains(out, `"code":"stream_cut_off"`) || strings.Contains(out, "data: [DONE]\n") {
		t.Fatalf("a stream without [DONE] must end with an error event, got %q", out)
	}
}

// TestStreamTimeoutNotWholeStream: timeout bounds a whole non-streaming
// call; a stream that sends an event every 300 ms for 2 s is healthy.
func TestStreamTimeoutNotWholeStream(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 7; i++ {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"%d\"}}]}\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(300 * time.Millisecond)
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	cfg := strings.Replace(plainConfig(up.URL, ""), "timeout: 2", "timeout: 1", 1)
	base, _, _ := startProxy(t, cfg, Options{})
	_, out := post(t, base+"/v1/chat/completions", "", `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"x"}]}`)
	if strings.Contains(out, "error") || !strings.HasSuffix(out, "data: [DONE]\n\n") {
		t.Fatalf("a healthy stream was cut: %q", out)
	}
}

func TestStreamClientDisconnectCancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	up := newFakeUpstream(t, sseHandler([]string{`{"first":true}`}, false, cancelled))
	base, _, _ := startProxy(t, plainConfig(up.URL, ""), Options{})
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

// TestNonStreamClientDisconnectCancelsUpstream: a client that leaves a
// non-streaming request while the upstream is still thinking ends the
// upstream call (and its retries) at once.
func TestNonStreamClientDisconnectCancelsUpstream(t *testing.T) {
	gone := make(chan struct{}, 4)
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		select {
		case <-r.Context().Done():
			gone <- struct{}{}
		case <-time.After(20 * time.Second):
		}
	})
	base, _, _ := startProxy(t, strings.Replace(plainConfig(up.URL, "router_settings:\n  num_retries: 3\n"), "timeout: 2", "timeout: 8", 1), Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(chatBody), chatBody)
	time.Sleep(300 * time.Millisecond)
	conn.Close()
	select {
	case <-gone:
	case <-time.After(3 * time.Second):
		t.Fatal("the upstream call outlived its client")
	}
	time.Sleep(500 * time.Millisecond)
	if n := up.calls.Load(); n != 1 {
		t.Fatalf("%d upstream attempts after the client left, want 1", n)
	}
}

func TestMockModelsAndReadiness(t *testing.T) {
	base, _, _ := startProxy(t, plainConfig("http://127.0.0.1:1", ""), Options{})
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
	srv := New(Options{})
	if err := srv.SetClient(nil); err == nil {
		t.Fatal("SetClient(nil) must be refused")
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	for path, want := range map[string]int{"/health/readiness": 503, "/health/liveliness": 200, "/v1/models": 503} {
		r, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil || r.StatusCode != want {
			t.Fatalf("%s before SetClient: %v %v, want %d", path, err, r, want)
		}
		r.Body.Close()
	}
}

// traffic calls fn from n goroutines, each in a loop, until the returned
// stop is called; stop waits for them and returns how many calls
// succeeded. A call's error fails the test and ends its goroutine.
func traffic(t *testing.T, n int, fn func() error) (stop func() int64) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := fn(); err != nil {
					t.Errorf("under traffic: %v", err)
					return
				}
				served.Add(1)
			}
		}()
	}
	return func() int64 {
		close(done)
		wg.Wait()
		return served.Load()
	}
}
