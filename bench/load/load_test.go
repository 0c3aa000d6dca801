package load

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // reversed: Percentiles must sort
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single", ms(7), 99.9, 7 * time.Millisecond},
		{"p50 of 1..100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p90 of 1..100", ms(hundred...), 90, 90 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p99.9 of 1..100 is the max", ms(hundred...), 99.9, 100 * time.Millisecond},
		{"p100", ms(3, 1, 2), 100, 3 * time.Millisecond},
		{"nearest rank rounds up", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tc.in...)
			if got := Percentile(tc.in, tc.p); got != tc.want {
				t.Errorf("Percentile(p%g) = %v, want %v", tc.p, got, tc.want)
			}
			for i := range in {
				if in[i] != tc.in[i] {
					t.Fatal("Percentile modified its input")
				}
			}
		})
	}
}

// server answers like a chat endpoint; stream answers are SSE, cut off
// (no [DONE]) when cut is set.
func server(t *testing.T, delay time.Duration, cut bool, calls *atomic.Int64) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(delay)
		if r.Header.Get("X-Test") != "yes" {
			http.Error(w, "missing header", http.StatusBadRequest)
			return
		}
		if strings.Contains(r.URL.Path, "stream") {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: {\"x\":1}\n\n")
			w.(http.Flusher).Flush()
			time.Sleep(5 * time.Millisecond)
			if !cut {
				fmt.Fprint(w, "data: [DONE]\n\n")
			}
			return
		}
		fmt.Fprint(w, `{"ok":true}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestClosedLoopCountsAndErrors(t *testing.T) {
	var calls atomic.Int64
	s := server(t, time.Millisecond, false, &calls)
	hdr := http.Header{"X-Test": {"yes"}}
	body := func(int) []byte { return []byte(`{}`) }
	res := ClosedLoop(context.Background(), Client(4), Request{URL: s.URL + "/v1/chat", Header: hdr, Body: body}, 4, 10, 40)
	if res.OK() != 40 || res.Errors != 0 || calls.Load() != 50 {
		t.Fatalf("ok=%d errors=%d calls=%d, want 40 measured, 0 errors, 50 calls with warm-up (first error %v)", res.OK(), res.Errors, calls.Load(), res.FirstErr)
	}
	for _, d := range res.Total {
		if d < time.Millisecond {
			t.Fatalf("latency %v below the server's 1ms delay", d)
		}
	}
	if res.Throughput() <= 0 {
		t.Fatal("no throughput")
	}
	bad := ClosedLoop(context.Background(), Client(2), Request{URL: s.URL + "/v1/chat", Body: body}, 2, 0, 6)
	if bad.Errors != 6 || bad.OK() != 0 || bad.FirstErr == nil || !strings.Contains(bad.FirstErr.Error(), "status 400") {
		t.Fatalf("missing header: errors=%d ok=%d first=%v, want 6 errors naming status 400", bad.Errors, bad.OK(), bad.FirstErr)
	}
}

func TestStreamTTFBAndCutOff(t *testing.T) {
	var calls atomic.Int64
	hdr := http.Header{"X-Test": {"yes"}}
	body := func(int) []byte { return []byte(`{}`) }
	ok := server(t, 0, false, &calls)
	res := ClosedLoop(context.Background(), Client(1), Request{URL: ok.URL + "/stream", Header: hdr, Body: body, Stream: true}, 1, 0, 5)
	if res.OK() != 5 {
		t.Fatalf("stream: %d ok, first error %v", res.OK(), res.FirstErr)
	}
	for i := range res.Total {
		if res.TTFB[i] <= 0 || res.Total[i]-res.TTFB[i] < 4*time.Millisecond {
			t.Fatalf("ttfb %v total %v: the first event comes 5ms before [DONE]", res.TTFB[i], res.Total[i])
		}
	}
	cut := server(t, 0, true, &calls)
	res = ClosedLoop(context.Background(), Client(1), Request{URL: cut.URL + "/stream", Header: hdr, Body: body, Stream: true}, 1, 0, 3)
	if res.Errors != 3 || !strings.Contains(fmt.Sprint(res.FirstErr), "[DONE]") {
		t.Fatalf("cut-off stream: errors=%d first=%v, want 3 errors about [DONE]", res.Errors, res.FirstErr)
	}
}

// TestOpenLoopChargesQueueing checks the open loop measures from the
// intended send time: against a server that serialises requests, later
// requests wait and their latency must include that wait.
func TestOpenLoopChargesQueueing(t *testing.T) {
	var calls atomic.Int64
	gate := make(chan struct{}, 1)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gate <- struct{}{}
		calls.Add(1)
		time.Sleep(20 * time.Millisecond)
		<-gate
		fmt.Fprint(w, "{}")
	}))
	defer s.Close()
	// 100 req/s for 200ms offers 20 requests; served one at a time at 20ms
	// each they need 400ms, so the last waits ~200ms beyond its schedule.
	res := OpenLoop(context.Background(), Client(32), Request{URL: s.URL, Body: func(int) []byte { return []byte("{}") }}, 100, 0, 200*time.Millisecond)
	if res.OK() != 20 {
		t.Fatalf("ok=%d errors=%d (%v), want 20", res.OK(), res.Errors, res.FirstErr)
	}
	if p := Percentile(res.Total, 100); p < 150*time.Millisecond {
		t.Fatalf("max latency %v: queueing behind a serial server was not charged", p)
	}
	if bad := OpenLoop(context.Background(), Client(1), Request{URL: s.URL}, 0, 0, time.Second); bad.Errors != 1 || bad.FirstErr == nil {
		t.Fatal("rate 0 must be an error")
	}
}
