package proxy

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// fastUpstream is an in-process fasthttp fake provider answering at once.
func fastUpstream(b *testing.B) string {
	b.Helper()
	body := []byte(`{"id":"x","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`)
	events := []byte("data: {\"choices\":[{\"delta\":{\"content\":\"hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if strings.Contains(string(ctx.PostBody()), `"stream":true`) {
			ctx.SetContentType("text/event-stream")
			ctx.SetBody(events)
			return
		}
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// BenchmarkProxyOverhead measures a plain-model request through the proxy
// against the same request sent to the upstream directly, at concurrency 1
// and 64, and reports p50/p99 of each and the p50 the proxy adds.
func BenchmarkProxyOverhead(b *testing.B) {
	up := fastUpstream(b)
	cfg := plainConfig(up, "")
	base, _, _ := startProxy(b, cfg, Options{})
	client := &fasthttp.Client{MaxConnsPerHost: 256}
	for _, stream := range []bool{false, true} {
		body := `{"model":"gpt","messages":[{"role":"user","content":"hi"}],"stream":` + fmt.Sprint(stream) + `}`
		for _, conc := range []int{1, 64} {
			name := fmt.Sprintf("stream=%v/c=%d", stream, conc)
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				direct := measure(b, client, up+"/v1/chat/completions", body, conc, b.N)
				proxied := measure(b, client, base+"/v1/chat/completions", body, conc, b.N)
				b.ReportMetric(float64(pct(direct, 50).Microseconds()), "direct-p50-µs")
				b.ReportMetric(float64(pct(direct, 99).Microseconds()), "direct-p99-µs")
				b.ReportMetric(float64(pct(proxied, 50).Microseconds()), "proxy-p50-µs")
				b.ReportMetric(float64(pct(proxied, 99).Microseconds()), "proxy-p99-µs")
				b.ReportMetric(float64((pct(proxied, 50) - pct(direct, 50)).Microseconds()), "added-p50-µs")
			})
		}
	}
}

// measure sends n requests at the given concurrency and returns each latency.
func measure(b *testing.B, c *fasthttp.Client, url, body string, conc, n int) []time.Duration {
	return measureAuth(b, c, url, body, "", conc, n)
}

// measureAuth is measure with a bearer key.
func measureAuth(b *testing.B, c *fasthttp.Client, url, body, key string, conc, n int) []time.Duration {
	lat := make([]time.Duration, n)
	var next int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if int(i) >= n {
					return
				}
				req.SetRequestURI(url)
				req.Header.SetMethod("POST")
				req.SetBodyString(body)
				if key != "" {
					req.Header.Set("Authorization", "Bearer "+key)
				}
				t0 := time.Now()
				if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
					b.Errorf("request failed: %v %d %s", err, resp.StatusCode(), resp.Body())
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	return lat
}

func pct(lat []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), lat...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

// BenchmarkRoutedRequests sends chat requests for the example config's auto
// router (local MiniLM int8, mock upstreams) at concurrency 1, 8 and 64 and
// reports throughput and latency percentiles.
func BenchmarkRoutedRequests(b *testing.B) {
	for _, batch := range []bool{false, true} {
		url := startExampleProxy(b, batch) + "/v1/chat/completions"
		routedLoad(b, url, fmt.Sprintf("micro_batch=%v/", batch))
	}
}

func routedLoad(b *testing.B, url, prefix string) {
	body := `{"model":"auto","messages":[{"role":"user","content":"write a python function that parses a csv file and sums the second column"}]}`
	client := &fasthttp.Client{MaxConnsPerHost: 256}
	for _, conc := range []int{1, 8, 32, 64} {
		b.Run(fmt.Sprintf("%sc=%d", prefix, conc), func(b *testing.B) {
			b.ReportAllocs()
			start := time.Now()
			lat := measureAuth(b, client, url, body, "sk-1234", conc, b.N)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			b.ReportMetric(float64(pct(lat, 50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(pct(lat, 99).Microseconds()), "p99-µs")
		})
	}
}
