// Package load is the bench harness's HTTP load generator. It drives an
// OpenAI-style chat endpoint closed-loop (N workers, each sending its next
// request when the last one finished) or open-loop (requests sent at a fixed
// rate whatever the server does, with latency measured from the intended
// send time, so a stalled server cannot hide its stall by slowing the
// generator down: no coordinated omission).
package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request describes the request a run sends.
type Request struct {
	// URL is the full endpoint, e.g. http://127.0.0.1:4000/v1/chat/completions.
	URL string
	// Header is sent with every request (Content-Type is always JSON).
	Header http.Header
	// Body returns the body of the i-th request. It must be safe for
	// concurrent use.
	Body func(i int) []byte
	// Stream says the response is an SSE stream that must end with
	// "data: [DONE]"; the time to its first byte is recorded too.
	Stream bool
}

// Sample is one request's outcome. Durations are from the (intended) send
// time.
type Sample struct {
	TTFB, Total time.Duration
	Err         error
}

// Result is what one run measured.
type Result struct {
	// Total and TTFB hold the latencies of successful requests.
	Total, TTFB []time.Duration
	// Errors counts failed requests; FirstErr is one of them.
	Errors   int
	FirstErr error
	// Elapsed is the wall time of the measured part of the run.
	Elapsed time.Duration
}

// OK is the number of successful requests.
func (r *Result) OK() int { return len(r.Total) }

// Throughput is successful requests per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK()) / r.Elapsed.Seconds()
}

func (r *Result) add(s Sample) {
	if s.Err != nil {
		r.Errors++
		if r.FirstErr == nil {
			r.FirstErr = s.Err
		}
		return
	}
	r.Total = append(r.Total, s.Total)
	r.TTFB = append(r.TTFB, s.TTFB)
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of ds by the
// nearest-rank method, or 0 for no data. ds need not be sorted and is not
// modified.
func Percentile(ds []time.Duration, p float64) time.Duration {
	return Percentiles(ds, p)[0]
}

// Percentiles returns several percentiles of ds at once (one sort).
func Percentiles(ds []time.Duration, ps ...float64) []time.Duration {
	out := make([]time.Duration, len(ps))
	if len(ds) == 0 {
		return out
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	for i, p := range ps {
		rank := int(p/100*float64(len(s)) + 0.999999999)
		rank = min(max(rank, 1), len(s))
		out[i] = s[rank-1]
	}
	return out
}

// Client returns an HTTP client sized for concurrency parallel requests on
// keep-alive connections to one host.
func Client(concurrency int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = concurrency * 2
	t.MaxIdleConnsPerHost = concurrency * 2
	t.DisableCompression = true
	return &http.Client{Transport: t, Timeout: 60 * time.Second}
}

// Do sends the i-th request and measures it from start.
func Do(ctx context.Context, c *http.Client, r Request, i int, start time.Time) Sample {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body(i)))
	if err != nil {
		return Sample{Err: fmt.Errorf("building request: %w", err)}
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return Sample{Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Sample{Err: fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))}
	}
	if !r.Stream {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return Sample{Err: fmt.Errorf("reading body: %w", err)}
		}
		d := time.Since(start)
		return Sample{TTFB: d, Total: d}
	}
	return readStream(resp.Body, start)
}

// errCutOff marks a stream that ended without its [DONE] event.
var errCutOff = errors.New("stream ended without data: [DONE]")

func readStream(body io.Reader, start time.Time) Sample {
	br := bufio.NewReaderSize(body, 4096)
	var s Sample
	first := true
	for {
		line, err := br.ReadSlice('\n')
		if first && len(line) > 0 {
			s.TTFB = time.Since(start)
			first = false
		}
		if bytes.HasPrefix(line, []byte("data: [DONE]")) {
			_, _ = io.Copy(io.Discard, br)
			s.Total = time.Since(start)
			return s
		}
		if err != nil {
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF {
				err = errCutOff
			}
			return Sample{Err: err}
		}
	}
}

// Each calls job(i) for i from 0 to n-1 on concurrency workers, each
// worker taking the next index as soon as its last job returned, and
// returns when all are done or ctx ends (jobs not started by then are
// not run).
func Each(ctx context.Context, concurrency, n int, job func(i int)) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				job(i)
			}
		}()
	}
	wg.Wait()
}

// ClosedLoop runs concurrency workers that together send warmup unmeasured
// requests and then n measured ones, each worker sending its next request
// as soon as its last one finished.
func ClosedLoop(ctx context.Context, c *http.Client, r Request, concurrency, warmup, n int) Result {
	run := func(total int, offset int) Result {
		var (
			mu  sync.Mutex
			res Result
		)
		t0 := time.Now()
		Each(ctx, concurrency, total, func(i int) {
			s := Do(ctx, c, r, offset+i, time.Now())
			mu.Lock()
			res.add(s)
			mu.Unlock()
		})
		res.Elapsed = time.Since(t0)
		return res
	}
	if warmup > 0 {
		run(warmup, 0)
	}
	return run(n, warmup)
}

// OpenLoop sends requests at rate per second for d, each at its scheduled
// time whether or not earlier ones have finished, after warming up for
// warmup at the same rate. Latency counts from the scheduled time, so a
// request delayed by a backed-up client or server is charged for the wait.
func OpenLoop(ctx context.Context, c *http.Client, r Request, rate float64, warmup, d time.Duration) Result {
	if rate <= 0 {
		return Result{Errors: 1, FirstErr: fmt.Errorf("open loop: rate %g must be positive", rate)}
	}
	interval := time.Duration(float64(time.Second) / rate)
	run := func(dur time.Duration, offset int) Result {
		var (
			mu  sync.Mutex
			res Result
			wg  sync.WaitGroup
		)
		t0 := time.Now()
		for i := 0; ; i++ {
			at := t0.Add(time.Duration(i) * interval)
			if at.Sub(t0) >= dur || ctx.Err() != nil {
				break
			}
			if wait := time.Until(at); wait > 0 {
				time.Sleep(wait)
			}
			wg.Add(1)
			go func(i int, at time.Time) {
				defer wg.Done()
				s := Do(ctx, c, r, offset+i, at)
				mu.Lock()
				res.add(s)
				mu.Unlock()
			}(i, at)
		}
		wg.Wait()
		res.Elapsed = time.Since(t0)
		return res
	}
	if warmup > 0 {
		run(warmup, 0)
	}
	return run(d, 1<<20)
}
