package fake

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fastFaults paces the fault streams in milliseconds, so the tests stay fast.
var fastFaults = Options{ContentBytes: 10, Chunks: 1, FaultEvery: 10 * time.Millisecond, FaultEvents: 3, HugeBytes: 100 << 10}

func faultBody(model, tag string, stream bool) string {
	b, _ := json.Marshal(map[string]any{"model": model, "user": tag, "stream": stream, "messages": []map[string]string{{"role": "user", "content": "hi"}}})
	return string(b)
}

func stats(t *testing.T, base string) Stats {
	t.Helper()
	resp, err := http.Get(base + "/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("GET /faults: %v", err)
	}
	return st
}

// record waits until tag's connection is closed and returns its record.
func record(t *testing.T, base, tag string) ConnRecord {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, c := range stats(t, base).Conns {
			if c.Tag == tag && c.Closed != 0 {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection %q not recorded closed", tag)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sse reads a stream's data lines until EOF or an error.
func sse(r io.Reader) (data []string, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, v)
		}
	}
	return data, sc.Err()
}

func TestFaultStatuses(t *testing.T) {
	base := serve(t, fastFaults)
	for _, tc := range []struct {
		model      string
		want       int
		retryAfter string
	}{{Fault500, 500, ""}, {Fault429, 429, "1"}} {
		resp := post(t, base+"/v1/chat/completions", faultBody(tc.model, "", false))
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.want || resp.Header.Get("Retry-After") != tc.retryAfter || !strings.Contains(string(b), `"error"`) {
			t.Errorf("%s: %d Retry-After %q %s, want %d Retry-After %q and an OpenAI error", tc.model, resp.StatusCode, resp.Header.Get("Retry-After"), b, tc.want, tc.retryAfter)
		}
	}
	if n := stats(t, base).Requests[Fault500]; n != 1 {
		t.Errorf("fault-500 counted %d times, want 1", n)
	}
	resp, err := http.Post(base+"/faults/reset", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := stats(t, base); len(st.Requests) != 0 {
		t.Errorf("after reset: %+v", st)
	}
}

func TestFaultHuge(t *testing.T) {
	base := serve(t, fastFaults)
	for _, tc := range []struct {
		model   string
		chunked bool
	}{{FaultHuge, false}, {FaultHugeChunked, true}} {
		resp := post(t, base+"/v1/chat/completions", faultBody(tc.model, "", false))
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Choices []struct{ Message struct{ Content string } }
		}
		if err := json.Unmarshal(b, &out); err != nil || len(out.Choices) != 1 {
			t.Fatalf("%s: not a chat completion: %v", tc.model, err)
		}
		if len(b) != 100<<10 {
			t.Errorf("%s: %d bytes, want %d", tc.model, len(b), 100<<10)
		}
		if chunked := resp.ContentLength < 0; chunked != tc.chunked {
			t.Errorf("%s: Content-Length %d, want chunked=%t", tc.model, resp.ContentLength, tc.chunked)
		}
	}
}

func TestFaultCut(t *testing.T) {
	base := serve(t, fastFaults)
	resp := post(t, base+"/v1/chat/completions", faultBody(FaultCut, "", true))
	data, err := sse(resp.Body)
	if err != nil || len(data) != 3 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("fault-cut: %d events, err %v: want 3 events and a clean end", len(data), err)
	}
	for _, d := range data {
		if d == "[DONE]" {
			t.Fatal("fault-cut sent [DONE]")
		}
	}
	resp = post(t, base+"/v1/chat/completions", faultBody(FaultCutChunked, "", true))
	data, err = sse(resp.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) || len(data) < 3 {
		t.Fatalf("fault-cut-chunked: %d events, err %v: want 3 events, then a body cut mid-chunk", len(data), err)
	}
}

func TestFaultClose(t *testing.T) {
	base := serve(t, fastFaults)
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(faultBody(FaultClose, "c", false)))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("fault-close answered %d", resp.StatusCode)
	}
	if r := record(t, base, "c"); r.ByPeer || r.Mode != FaultClose {
		t.Errorf("record %+v: want closed by the fake", r)
	}
}

func TestFaultStreams(t *testing.T) {
	base := serve(t, fastFaults)
	for _, model := range []string{FaultSlowStream, FaultPace} {
		t0 := time.Now()
		resp := post(t, base+"/v1/chat/completions", faultBody(model, "whole-"+model, true))
		data, err := sse(resp.Body)
		if err != nil || len(data) != 5 || data[4] != "[DONE]" {
			t.Fatalf("%s: %q, %v: want 3 content events, a finish event and [DONE]", model, data, err)
		}
		if d := time.Since(t0); d < 30*time.Millisecond {
			t.Errorf("%s took %v, less than its 3 pauses of 10ms", model, d)
		}
	}
	if r := record(t, base, "whole-"+FaultSlowStream); r.ByPeer {
		t.Errorf("finished slow stream recorded as closed by the peer: %+v", r)
	}
}

// TestFaultPeerClose checks that the fake notices at once when the client
// leaves a hung request or a slow stream.
func TestFaultPeerClose(t *testing.T) {
	o := fastFaults
	o.FaultEvery, o.FaultEvents = time.Second, 10
	base := serve(t, o)
	for _, tc := range []struct{ model, tag string }{{FaultHang, "h"}, {FaultSlowStream, "s"}} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/v1/chat/completions", strings.NewReader(faultBody(tc.model, tc.tag, true)))
		errc := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			errc <- err
		}()
		time.Sleep(100 * time.Millisecond)
		if st := stats(t, base); st.Open < 1 {
			t.Errorf("%s: %d open connections while one waits", tc.model, st.Open)
		}
		gave := time.Now()
		cancel()
		<-errc
		r := record(t, base, tc.tag)
		if !r.ByPeer || time.Unix(0, r.Closed).Sub(gave) > 500*time.Millisecond {
			t.Errorf("%s: %+v: want closed by the peer within 500ms of %v", tc.model, r, gave.UnixNano())
		}
	}
}
