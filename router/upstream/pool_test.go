package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/sse"
)

// fakeUpstream is a local OpenAI-compatible server standing in for a
// remote provider; handler decides each answer.
type fakeUpstream struct {
	*httptest.Server
	calls    atomic.Int64
	conns    atomic.Int64
	lastBody atomic.Value
	lastAuth atomic.Value
}

func newFake(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, n int64)) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		f.lastBody.Store(string(b))
		f.lastAuth.Store(r.Header.Get("Authorization"))
		handler(w, r, n)
	}))
	f.Server.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

func okChat(w http.ResponseWriter, model string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"id":"x","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hi from %s"},"finish_reason":"stop"}]}`, model, model)
}

// newPool builds a pool over cfgYAML's model_list.
func newPool(t *testing.T, yaml string) *Pool {
	t.Helper()
	cfg, err := config.Parse("", []byte(yaml), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func chatConfig(base, extra string) string {
	return fmt.Sprintf(`
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-4o
      api_base: %s/v1
      api_key: sk-upstream
      timeout: 5
  - model_name: backup
    litellm_params:
      model: mock/backup
      mock_response: "from backup"
%s`, base, extra)
}

func chatRequest(t *testing.T, stream bool) *Request {
	t.Helper()
	raw := fmt.Sprintf(`{"model":"gpt","stream":%v,"messages":[{"role":"user","content":"hello"}]}`, stream)
	b, err := openai.ParseBody([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return &Request{API: Chat, Stream: stream, Body: b, Raw: b.Raw()}
}

func readBody(t *testing.T, r *Response) string {
	t.Helper()
	defer r.Close()
	if r.Body == nil {
		t.Fatal("no body")
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDoForwards(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "bad path "+r.URL.Path, 500)
			return
		}
		okChat(w, "gpt-4o")
	})
	p := newPool(t, chatConfig(up.URL, ""))
	for range 3 {
		resp, err := p.Do(context.Background(), "gpt", chatRequest(t, false))
		if err != nil {
			t.Fatal(err)
		}
		if out := readBody(t, resp); resp.Status != 200 || !strings.Contains(out, "hi from gpt-4o") {
			t.Fatalf("status %d body %s", resp.Status, out)
		}
		if resp.Group != "gpt" || resp.Deployment.ID != "gpt/0" || resp.Attempts != 1 {
			t.Fatalf("group %q deployment %q attempts %d", resp.Group, resp.Deployment.ID, resp.Attempts)
		}
	}
	var sent map[string]any
	json.Unmarshal([]byte(up.lastBody.Load().(string)), &sent)
	if sent["model"] != "gpt-4o" || up.lastAuth.Load() != "Bearer sk-upstream" {
		t.Fatalf("upstream got %v with auth %v", sent, up.lastAuth.Load())
	}
	if c := up.conns.Load(); c != 1 {
		t.Fatalf("%d connections for 3 sequential requests; a read-to-the-end body must give its connection back", c)
	}
}

func TestDoRetriesThenFallback(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n <= 2 {
			http.Error(w, `{"error":{"message":"overloaded"}}`, 503)
			return
		}
		okChat(w, "gpt-4o")
	})
	p := newPool(t, chatConfig(up.URL, "router_settings:\n  num_retries: 2\n  allowed_fails: 10\n"))
	resp, err := p.Do(context.Background(), "gpt", chatRequest(t, false))
	if err != nil || resp.Attempts != 3 {
		t.Fatalf("err %v after %d calls", err, up.calls.Load())
	}
	resp.Close()

	down := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		http.Error(w, `{"error":{"message":"rate limited"}}`, 429)
	})
	p = newPool(t, chatConfig(down.URL, "router_settings:\n  num_retries: 1\n"))
	_, err = p.Do(context.Background(), "gpt", chatRequest(t, false))
	var ue *Error
	if !errors.As(err, &ue) || ue.Status != 429 || ue.UpstreamMessage != "rate limited" || !errors.Is(err, ErrFailed) {
		t.Fatalf("err = %#v", err)
	}
	if strings.Contains(err.Error(), "sk-upstream") || strings.Contains(err.Error(), "rate limited") {
		t.Fatalf("the error carries a key or upstream text: %v", err)
	}
	p = newPool(t, chatConfig(down.URL, "router_settings:\n  num_retries: 1\n  fallbacks: [{\"gpt\": [\"backup\"]}]\n"))
	resp, err = p.Do(context.Background(), "gpt", chatRequest(t, false))
	if err != nil || resp.Group != "backup" || !strings.Contains(readBody(t, resp), "from backup") {
		t.Fatalf("fallback: %v %+v", err, resp)
	}
}

// TestDoPassesClientErrors: an upstream 4xx is the client's to see, not a
// failure to retry or hold against the deployment.
func TestDoPassesClientErrors(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprint(w, `{"error":{"message":"bad temperature","type":"invalid_request_error"}}`)
	})
	p := newPool(t, chatConfig(up.URL, "router_settings:\n  allowed_fails: 0\n"))
	for range 3 {
		resp, err := p.Do(context.Background(), "gpt", chatRequest(t, false))
		if err != nil || resp.Status != 400 || !strings.Contains(readBody(t, resp), "bad temperature") {
			t.Fatalf("%v %+v", err, resp)
		}
	}
	if up.calls.Load() != 3 || p.Deployments("gpt")[0].CoolingDown() {
		t.Fatalf("%d calls, cooling %v", up.calls.Load(), p.Deployments("gpt")[0].CoolingDown())
	}
}

// TestCooldownCountsRequests: one request's own retries count as one
// failure, so they never take a model offline for everyone; failures of
// separate requests do, and then a probe is let through.
func TestCooldownCountsRequests(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if fail.Load() {
			http.Error(w, "down", 500)
			return
		}
		okChat(w, "gpt-4o")
	})
	p := newPool(t, chatConfig(up.URL, "router_settings:\n  num_retries: 3\n  allowed_fails: 2\n  cooldown_time: 60\n"))
	p.backoff = time.Millisecond
	if _, err := p.Do(context.Background(), "gpt", chatRequest(t, false)); err == nil {
		t.Fatal("want an error")
	}
	if up.calls.Load() != 4 || p.Deployments("gpt")[0].CoolingDown() {
		t.Fatalf("one request made %d calls and cooling = %v; its retries must count once", up.calls.Load(), p.Deployments("gpt")[0].CoolingDown())
	}
	p2 := newPool(t, chatConfig(up.URL, "router_settings:\n  num_retries: 0\n  allowed_fails: 2\n  cooldown_time: 60\n"))
	for range 3 {
		p2.Do(context.Background(), "gpt", chatRequest(t, false))
	}
	if !p2.Deployments("gpt")[0].CoolingDown() {
		t.Fatal("three failed requests with allowed_fails 2 must start a cooldown")
	}
	// The group's only deployment is cooling down: one probe at a time
	// still reaches it, and its success ends the cooldown.
	fail.Store(false)
	before := up.calls.Load()
	resp, err := p2.Do(context.Background(), "gpt", chatRequest(t, false))
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	resp.Close()
	if up.calls.Load() != before+1 || p2.Deployments("gpt")[0].CoolingDown() {
		t.Fatalf("probe calls %d, still cooling %v", up.calls.Load()-before, p2.Deployments("gpt")[0].CoolingDown())
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var first atomic.Int64
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			first.Store(time.Now().UnixNano())
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", 429)
			return
		}
		if time.Since(time.Unix(0, first.Load())) < 900*time.Millisecond {
			http.Error(w, "retried before Retry-After", 500)
			return
		}
		okChat(w, "gpt-4o")
	})
	p := newPool(t, chatConfig(up.URL, "router_settings:\n  num_retries: 1\n"))
	resp, err := p.Do(context.Background(), "gpt", chatRequest(t, false))
	if err != nil {
		t.Fatal(err)
	}
	resp.Close()
}

// TestCancelStopsEverything: the caller's context ends an upstream call
// that is waiting for its answer, and a pending retry.
func TestCancelStopsEverything(t *testing.T) {
	gone := make(chan struct{}, 4)
	var retryLater atomic.Bool
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if retryLater.Load() {
			w.Header().Set("Retry-After", "2")
			http.Error(w, "later", 503)
			return
		}
		select {
		case <-r.Context().Done():
			gone <- struct{}{}
		case <-time.After(20 * time.Second):
		}
	})
	p := newPool(t, chatConfig(up.URL, "router_settings:\n  num_retries: 3\n"))
	for _, name := range []string{"waiting for the answer", "waiting to retry"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			start := time.Now()
			_, err := p.Do(ctx, "gpt", chatRequest(t, false))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if time.Since(start) > 3*time.Second {
				t.Fatalf("Do returned %v after the cancel", time.Since(start))
			}
		})
		retryLater.Store(true) // the next calls answer 503 with Retry-After: 5
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream never saw the request go away")
	}
}

func sseEvents(w http.ResponseWriter, n int, gap time.Duration, done bool) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"%d\"}}]}\n\n", i)
		fl.Flush()
		time.Sleep(gap)
	}
	if done {
		fmt.Fprint(w, "data: [DONE]\n\n")
	}
}

// TestStreamTimeout: stream_timeout bounds the wait between events, never
// a healthy stream's length.
func TestStreamTimeout(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.URL.Query().Get("stall") != "" {
			sseEvents(w, 1, 3*time.Second, true)
			return
		}
		sseEvents(w, 8, 150*time.Millisecond, true)
	})
	p := newPool(t, chatConfig(up.URL, "")+"router_settings:\n  stream_timeout: 0.6\n  timeout: 0.6\n  num_retries: 0\n")
	resp, err := p.Do(context.Background(), "gpt", chatRequest(t, true))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := resp.Events.Next()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("a healthy 1.2 s stream was cut after %d events: %v", n, err)
			}
			break
		}
		n++
	}
	resp.Close()

	p = newPool(t, chatConfig(up.URL+"/x?stall=1#", "")+"router_settings:\n  stream_timeout: 0.5\n  num_retries: 0\n")
	resp, err = p.Do(context.Background(), "gpt", chatRequest(t, true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	resp.Events.Next()
	if _, err := resp.Events.Next(); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a stalled stream: err %v, want ErrTimeout", err)
	}
}

// TestStreamRetriedBeforeFirstEvent: a stream that dies before any event
// reached the client is retried; the client never sees it.
func TestStreamRetriedBeforeFirstEvent(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if n == 1 {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(200)
			return // no event at all
		}
		sseEvents(w, 2, 0, true)
	})
	p := newPool(t, chatConfig(up.URL, ""))
	resp, err := p.Do(context.Background(), "gpt", chatRequest(t, true))
	if err != nil || resp.Attempts != 2 {
		t.Fatalf("%v, attempts %d", err, resp.Attempts)
	}
	resp.Close()
}

func TestResponseSizeLimit(t *testing.T) {
	big := strings.Repeat("x", 3<<20)
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", fmt.Sprint(len(big)+2))
		}
		fmt.Fprintf(w, "%q", big)
	})
	for _, q := range []string{"", "?chunked=1#"} {
		p := newPool(t, chatConfig(up.URL+"/x"+q, "general_settings:\n  max_response_size_mb: 1\n"))
		_, err := p.Do(context.Background(), "gpt", chatRequest(t, false))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("%q: err = %v, want ErrTooLarge", q, err)
		}
	}
}

// TestStaleConnectionRetried: an idle pooled connection the upstream has
// closed is replaced transparently.
func TestStaleConnectionRetried(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) { okChat(w, "gpt-4o") })
	p := newPool(t, chatConfig(up.URL, "router_settings:\n  num_retries: 0\n"))
	resp, err := p.Do(context.Background(), "gpt", chatRequest(t, false))
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, resp)
	up.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	resp, err = p.Do(context.Background(), "gpt", chatRequest(t, false))
	if err != nil {
		t.Fatalf("a request on a stale connection failed: %v", err)
	}
	readBody(t, resp)
}

func TestMockStreams(t *testing.T) {
	p := newPool(t, chatConfig("http://127.0.0.1:1", ""))
	req := chatRequest(t, true)
	resp, err := p.Do(context.Background(), "backup", req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	var text strings.Builder
	for {
		ev, err := resp.Events.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := sse.Data(nil, ev)
		var c openai.ChatChunk
		if json.Unmarshal(data, &c) == nil {
			text.WriteString(c.Text())
		}
	}
	if text.String() != "from backup" {
		t.Fatalf("streamed %q", text.String())
	}
}

// TestCancelAfterAnswerKeepsPoolHealthy: a context cancelled after its
// answer was read, but before the answer was closed, must not leave a
// connection with a deadline in the past in the pool for the next request.
func TestCancelAfterAnswerKeepsPoolHealthy(t *testing.T) {
	up := newFake(t, func(w http.ResponseWriter, r *http.Request, n int64) { okChat(w, "gpt-4o") })
	p := newPool(t, chatConfig(up.URL, "router_settings:\n  num_retries: 0\n"))
	for i := range 200 {
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := p.Do(ctx, "gpt", chatRequest(t, false))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.ReadAll(resp.Body)
		cancel()
		resp.Close()
	}
}

// TestChunkedStreamCutMidChunk: an upstream that dies in the middle of a
// chunk has cut its stream off, like one that ends between events.
func TestChunkedStreamCutMidChunk(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		c.Read(buf)
		ev := "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n40\r\ndata: {\"choi", len(ev), ev)
		time.Sleep(50 * time.Millisecond)
		c.Close()
	}()
	p := newPool(t, chatConfig("http://"+ln.Addr().String(), "router_settings:\n  num_retries: 0\n"))
	resp, err := p.Do(context.Background(), "gpt", chatRequest(t, true))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	resp.Events.Next()
	if _, err := resp.Events.Next(); !errors.Is(err, ErrCutOff) {
		t.Fatalf("err = %v, want ErrCutOff", err)
	}
}
