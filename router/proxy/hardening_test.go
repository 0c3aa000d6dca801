package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/internal/testenv"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func debugLogger(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// flakyListener fails its first Accepts with EMFILE, as a process out of
// file descriptors does.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// loggedServer is a Server for cfgYAML, not yet serving, that logs to
// logs at debug level.
func loggedServer(t *testing.T, cfgYAML string, logs *syncBuffer) *Server {
	t.Helper()
	c, err := router.New(context.Background(), mustConfig(t, cfgYAML), router.Options{ModelsDir: testenv.ModelsDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	srv := New(Options{Logger: debugLogger(logs)})
	srv.SetClient(c)
	return srv
}

func TestAcceptBacksOffWhenOutOfFiles(t *testing.T) {
	var logs syncBuffer
	srv := loggedServer(t, plainConfig("http://127.0.0.1:1", ""), &logs)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	fl := &flakyListener{Listener: ln}
	fl.fails.Store(5)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(fl) }()
	defer srv.Shutdown(context.Background())
	resp, out := post(t, "http://"+ln.Addr().String()+"/v1/chat/completions", "", `{"model":"backup","messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 200 || !strings.Contains(out, "from backup") {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	select {
	case err := <-served:
		t.Fatalf("Serve returned on EMFILE: %v", err)
	default:
	}
	if !strings.Contains(logs.String(), "backing off and retrying") {
		t.Fatalf("no back-off log: %s", logs.String())
	}
}

func mustConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("", []byte(yaml), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestSilentConnectionsAreShed: connections that send nothing are closed
// after the header timeout, and at the connection limit the longest idle
// one makes room for a new client.
func TestSilentConnectionsAreShed(t *testing.T) {
	cfg := plainConfig("http://127.0.0.1:1", "general_settings:\n  max_connections: 8\n  header_timeout: 0.5\n")
	base, srv, _ := startProxy(t, cfg, Options{})
	addr := strings.TrimPrefix(base, "http://")
	var idle []net.Conn
	for range 8 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	time.Sleep(50 * time.Millisecond)
	resp, out := post(t, base+"/v1/chat/completions", "", `{"model":"backup","messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("a client was locked out by 8 silent connections: %d %s", resp.StatusCode, out)
	}
	// The silent ones go once the header timeout passes.
	idle[7].SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadAll(idle[7]); err != nil {
		t.Fatalf("a silent connection was still open after 3 s with a 0.5 s header timeout: %v", err)
	}
	_ = srv
}

// TestNoRequestContentInErrors: requests fasthttp cannot parse get an
// error envelope that never echoes them (their headers may hold the
// master key), oversized headers get 431 and slow ones 408, and nothing
// of them reaches the logs.
func TestNoRequestContentInErrors(t *testing.T) {
	var logs syncBuffer
	const key = "sk-master-secret-123"
	base, _, _ := startProxy(t, plainConfig("http://127.0.0.1:1", "general_settings:\n  master_key: "+key+"\n  header_timeout: 0.5\n"),
		Options{Logger: debugLogger(&logs)})
	addr := strings.TrimPrefix(base, "http://")
	raw := func(req string, wait time.Duration) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, req)
		c.SetReadDeadline(time.Now().Add(wait))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	for _, tc := range []struct {
		name, req, status string
	}{
		{"malformed request line", "GARBAGE /\x00 nope\r\nAuthorization: Bearer " + key + "\r\n\r\n", "400"},
		{"malformed header", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + "\r\nbroken header line\r\n\r\n", "400"},
		{"oversized headers", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + "\r\nX-Pad: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", "431"},
		{"slow headers", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + "\r\n", "408"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := raw(tc.req, 3*time.Second)
			if !strings.HasPrefix(out, "HTTP/1.1 "+tc.status) {
				t.Fatalf("answer %q, want status %s", out, tc.status)
			}
			if strings.Contains(out, key) || strings.Contains(out, "GARBAGE") {
				t.Fatalf("the answer echoes the request: %q", out)
			}
			if !strings.Contains(out, `{"error":{"message":`) {
				t.Fatalf("not an OpenAI error envelope: %q", out)
			}
		})
	}
	if strings.Contains(logs.String(), key) {
		t.Fatalf("the master key reached the logs:\n%s", logs.String())
	}
}

func embedConfig(extra string) string {
	return `
model_list:
  - model_name: minilm
    litellm_params:
      model: local/all-MiniLM-L6-v2
    model_info:
      quantized: true
general_settings:
` + extra
}

func TestEmbeddingLimits(t *testing.T) {
	base, srv, _ := startProxy(t, embedConfig("  max_embedding_inputs: 16\n  max_embedding_tokens: 300\n  max_concurrent_embeddings: 1\n  max_queued_embeddings: 1\n"), Options{})
	url := base + "/v1/embeddings"
	resp, out := post(t, url, "", `{"model":"minilm","input":["hello world","routing"]}`)
	var got struct {
		Data []struct {
			Embedding []float32
			Index     int
		}
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || resp.StatusCode != 200 || len(got.Data) != 2 || len(got.Data[1].Embedding) != 384 || got.Data[1].Index != 1 || got.Usage.PromptTokens == 0 {
		t.Fatalf("%d %.200s (%v)", resp.StatusCode, out, err)
	}
	if _, b64 := post(t, url, "", `{"model":"minilm","input":"hello","encoding_format":"base64"}`); !strings.Contains(b64, `"embedding":"`) {
		t.Fatalf("base64: %.200s", b64)
	}
	many, _ := json.Marshal(map[string]any{"model": "minilm", "input": make([]string, 17)})
	for _, tc := range []struct{ name, body, want string }{
		{"too many inputs", string(many), "17 inputs, more than the limit of 16"},
		{"empty input", `{"model":"minilm","input":["a",""]}`, "input[1] is empty"},
		{"too many tokens", `{"model":"minilm","input":["` + strings.Repeat("word ", 250) + `","` + strings.Repeat("word ", 250) + `"]}`, "more than 300 tokens"},
		{"token arrays", `{"model":"minilm","input":[[1,2,3]]}`, "token arrays are not supported"},
	} {
		resp, out := post(t, url, "", tc.body)
		if resp.StatusCode != 400 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %d %.300s", tc.name, resp.StatusCode, out)
		}
	}
	// Both slots busy: one request waits in the queue of one, the next is
	// turned away with 429 and Retry-After.
	srv.embedSlots <- struct{}{}
	srv.embedQueue.Add(1)
	resp, out = post(t, url, "", `{"model":"minilm","input":"hello"}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("busy: %d %s", resp.StatusCode, out)
	}
	srv.embedQueue.Add(-1)
	<-srv.embedSlots
}

func TestLargeUpstreamAnswers(t *testing.T) {
	answer := func(n int) string {
		return `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("x", n) + `"},"finish_reason":"stop"}]}`
	}
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		size := 3 << 20
		if r.URL.Path == "/small/chat/completions" {
			size = 2 << 20
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(answer(size))))
		io.WriteString(w, answer(size))
	})
	cfg := plainConfig(up.URL, "general_settings:\n  max_response_size_mb: 2.5\n") + `
  - model_name: small
    litellm_params: {model: openai/x, api_base: ` + up.URL + `/small}
`
	cfg = strings.Replace(cfg, "general_settings:\n  max_response_size_mb: 2.5\n", "", 1) + "general_settings:\n  max_response_size_mb: 2.5\n"
	base, _, _ := startProxy(t, cfg, Options{})
	resp, out := post(t, base+"/v1/chat/completions", "", chatBody)
	if resp.StatusCode != 502 || !strings.Contains(out, "response_too_large") {
		t.Fatalf("3 MB answer with a 2.5 MB limit: %d %.200s", resp.StatusCode, out)
	}
	resp, out = post(t, base+"/v1/chat/completions", "", `{"model":"small","messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 200 || out != answer(2<<20) {
		t.Fatalf("2 MB answer: %d, %d bytes", resp.StatusCode, len(out))
	}
}

// TestPanicBecomes500: a panic serves a 500 to its own request, is logged
// with a stack, and the server goes on serving.
func TestPanicBecomes500(t *testing.T) {
	var logs syncBuffer
	base, srv, _ := startProxy(t, plainConfig("http://127.0.0.1:1", ""), Options{Logger: debugLogger(&logs)})
	srv.metrics.handler = func(*fasthttp.RequestCtx) { panic("boom") }
	r, err := http.Get(base + "/metrics")
	if err != nil || r.StatusCode != 500 {
		t.Fatalf("%v %v", err, r)
	}
	r.Body.Close()
	if resp, _ := post(t, base+"/v1/chat/completions", "", `{"model":"backup","messages":[{"role":"user","content":"x"}]}`); resp.StatusCode != 200 {
		t.Fatalf("the server stopped serving after a panic: %d", resp.StatusCode)
	}
	if !strings.Contains(logs.String(), "panic serving a request") || !strings.Contains(logs.String(), "goroutine") {
		t.Fatalf("no panic log with a stack:\n%s", logs.String())
	}
}

func scrape(t *testing.T, base, key string) (int, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		return r.StatusCode, nil
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r.Body)
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v", err)
	}
	return 200, fams
}

func TestMetrics(t *testing.T) {
	up := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {}\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(time.Second)
		fmt.Fprint(w, "data: [DONE]\n\n")
	})
	base, _, _ := startProxy(t, plainConfig(up.URL, "general_settings:\n  master_key: sk-m\n  require_auth_for_metrics_endpoint: true\n"), Options{})
	if code, _ := scrape(t, base, ""); code != 401 {
		t.Fatalf("/metrics without the key: %d, want 401", code)
	}
	for i := range 3 {
		post(t, base+"/v1/chat/completions", "sk-m", `{"model":"backup","messages":[{"role":"user","content":"x"}]}`)
		post(t, base+"/v1/chat/completions", "sk-m", fmt.Sprintf(`{"model":"made-up-\\u00e9-%d","messages":[{"role":"user","content":"x"}]}`, i))
	}
	streamDone := make(chan struct{})
	go func() {
		post(t, base+"/v1/chat/completions", "sk-m", `{"model":"gpt","stream":true,"messages":[{"role":"user","content":"x"}]}`)
		close(streamDone)
	}()
	time.Sleep(400 * time.Millisecond)
	_, fams := scrape(t, base, "sk-m")
	if g := fams["autorouter_in_flight_requests"]; g == nil || g.Metric[0].Gauge.GetValue() < 1 {
		t.Fatalf("in-flight gauge during a stream: %v", g)
	}
	<-streamDone
	_, fams = scrape(t, base, "sk-m")
	counts := map[string]float64{}
	for _, m := range fams["autorouter_requests_total"].Metric {
		labels := map[string]string{}
		for _, l := range m.Label {
			labels[l.GetName()] = l.GetValue()
		}
		counts[labels["model"]+"/"+labels["status"]] += m.Counter.GetValue()
	}
	if counts["backup/200"] != 3 || counts["unknown/404"] != 3 || counts["gpt/200"] != 1 {
		t.Fatalf("request counts %v; made-up models must share the label \"unknown\"", counts)
	}
	for _, name := range []string{"go_gc_heap_allocs_objects_total", "autorouter_request_seconds", "autorouter_deployment_cooling_down"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestShutdownEndsOpenStreams: streams still open when the grace ends get
// a final server_shutdown event and a log line each.
func TestShutdownEndsOpenStreams(t *testing.T) {
	var logs syncBuffer
	up := newFakeUpstream(t, sseHandler([]string{`{"first":true}`}, false, make(chan struct{})))
	srv := loggedServer(t, plainConfig(up.URL, ""), &logs)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	resp, err := http.Post("http://"+ln.Addr().String()+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"gpt","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	br.ReadString('\n')
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	go srv.Shutdown(ctx)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), `"code":"server_shutdown"`) {
		t.Fatalf("the stream ended without a server_shutdown event: ...%q", tail(string(rest)))
	}
	time.Sleep(100 * time.Millisecond)
	if !strings.Contains(logs.String(), "ended_by=shutdown") {
		t.Fatalf("no log line for the stream ended by shutdown:\n%s", logs.String())
	}
}

func tail(s string) string {
	if len(s) > 300 {
		return s[len(s)-300:]
	}
	return s
}

// TestReloadUnderTraffic serves requests while the config file changes
// and is reloaded: none fails, and each is routed and answered by one
// generation.
func TestReloadUnderTraffic(t *testing.T) {
	dir := t.TempDir()
	write := func(gen string, swap bool) {
		a, b := "litellm is great", "how to code a program in [language]"
		if swap {
			a, b = b, a
		}
		rj := fmt.Sprintf(`{"routes":[{"name":"gpt41","utterances":[%q],"score_threshold":0.5},{"name":"claude","utterances":[%q],"score_threshold":0.5}]}`, a, b)
		cfg := fmt.Sprintf(`
model_list:
  - {model_name: auto, litellm_params: {model: auto_router/auto, auto_router_config_path: router.json, auto_router_default_model: mini, auto_router_embedding_model: minilm}}
  - {model_name: minilm, litellm_params: {model: local/all-MiniLM-L6-v2}, model_info: {quantized: true}}
  - {model_name: gpt41, litellm_params: {model: mock/a, mock_response: "%[1]s-gpt41"}}
  - {model_name: claude, litellm_params: {model: mock/b, mock_response: "%[1]s-claude"}}
  - {model_name: mini, litellm_params: {model: mock/c, mock_response: "%[1]s-mini"}}
`, gen)
		os.WriteFile(filepath.Join(dir, "router.json"), []byte(rj), 0o644)
		os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o644)
	}
	write("g1", false)
	c, err := router.Open(context.Background(), filepath.Join(dir, "config.yaml"), router.Options{ModelsDir: testenv.ModelsDir(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := New(Options{})
	srv.SetClient(c)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	url := "http://" + ln.Addr().String() + "/v1/chat/completions"
	body := `{"model":"auto","messages":[{"role":"user","content":"how to code a program in python"}]}`
	ok := map[string]bool{"g1-claude": true, "g2-gpt41": true}
	stop := traffic(t, 4, func() error {
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var cc struct {
			Choices []struct{ Message struct{ Content string } }
		}
		json.Unmarshal(b, &cc)
		if resp.StatusCode != 200 || len(cc.Choices) == 0 || !ok[cc.Choices[0].Message.Content] {
			return fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		return nil
	})
	for i := range 6 {
		if i%2 == 0 {
			write("g2", true)
		} else {
			write("g1", false)
		}
		if err := c.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond)
	}
	if served := stop(); served < 10 {
		t.Fatalf("only %d requests served", served)
	}
}
