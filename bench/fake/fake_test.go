package fake

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T, o Options) string {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := s.Server()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestNonStream(t *testing.T) {
	base := serve(t, Options{ContentBytes: 100, Chunks: 4, Latency: 20 * time.Millisecond})
	t0 := time.Now()
	resp := post(t, base+"/v1/chat/completions", `{"model":"m\"x","messages":[{"role":"user","content":"hi"}]}`)
	if d := time.Since(t0); d < 20*time.Millisecond {
		t.Errorf("answered in %v, before its 20ms latency", d)
	}
	var out struct {
		Model   string
		Choices []struct{ Message struct{ Content string } }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	if resp.StatusCode != 200 || out.Model != `m"x` || len(out.Choices) != 1 || len(out.Choices[0].Message.Content) != 100 {
		t.Fatalf("status %d, %+v: want the model echoed and a 100-byte message", resp.StatusCode, out)
	}
}

func TestStream(t *testing.T) {
	base := serve(t, Options{ContentBytes: 90, Chunks: 3, ChunkDelay: 10 * time.Millisecond})
	resp := post(t, base+"/chat/completions", `{"model":"m","stream":true}`)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	var content strings.Builder
	var events int
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			done = true
			break
		}
		var ev struct {
			Choices []struct {
				Delta        struct{ Content string }
				FinishReason *string `json:"finish_reason"`
			}
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		events++
		content.WriteString(ev.Choices[0].Delta.Content)
	}
	if !done || events != 4 || content.Len() != 90 {
		t.Fatalf("done=%t events=%d content=%d bytes: want 3 content events + a finish event, 90 bytes, then [DONE]", done, events, content.Len())
	}
}

func TestBadRequests(t *testing.T) {
	base := serve(t, Options{ContentBytes: 10, Chunks: 1})
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/v1/chat/completions", `not json`, 400},
		{"/v1/chat/completions", `{"messages":[]}`, 400},
		{"/v1/other", `{"model":"m"}`, 404},
	} {
		resp := post(t, base+tc.path, tc.body)
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.want || !strings.Contains(string(b), `"error"`) {
			t.Errorf("POST %s %s: %d %s, want %d with an OpenAI error body", tc.path, tc.body, resp.StatusCode, b, tc.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Options{
		{ContentBytes: 0, Chunks: 1},
		{ContentBytes: 10, Chunks: 0},
		{ContentBytes: 10, Chunks: 11},
		{ContentBytes: 10, Chunks: 1, Latency: -1},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) accepted invalid options", o)
		}
	}
}
