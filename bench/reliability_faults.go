package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/autorouter/autorouter/bench/fake"
)

// sseResult is how an OpenAI-style event stream ended.
type sseResult struct {
	// events counts data events other than [DONE] and the error event.
	events int
	// done says data: [DONE] arrived.
	done bool
	// errCode is the code of an {"error":{...}} event ("null" when it has
	// none); "" when no error event came.
	errCode string
	// err is the read error that ended the stream, nil at a clean end.
	err error
}

func (s sseResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d events", s.events)
	if s.errCode != "" {
		fmt.Fprintf(&b, ", error event %s", s.errCode)
	}
	if s.done {
		b.WriteString(", [DONE]")
	} else {
		b.WriteString(", no [DONE]")
	}
	if s.err != nil {
		fmt.Fprintf(&b, ", read error: %v", s.err)
	}
	return b.String()
}

// readSSE reads an event stream to its end.
func readSSE(r io.Reader) sseResult {
	var s sseResult
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadString('\n')
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "data:"); ok && strings.HasSuffix(line, "\n") {
			v = strings.TrimSpace(v)
			switch {
			case v == "[DONE]":
				s.done = true
			case strings.HasPrefix(v, `{"error"`):
				var env struct {
					Error struct {
						Code *string `json:"code"`
					} `json:"error"`
				}
				s.errCode = "unparsable"
				if json.Unmarshal([]byte(v), &env) == nil {
					s.errCode = "null"
					if env.Error.Code != nil {
						s.errCode = *env.Error.Code
					}
				}
			default:
				s.events++
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.err = err
			}
			return s
		}
	}
}

// fakeStats reads the fake upstream's fault record.
func (r *relRun) fakeStats() (fake.Stats, error) {
	var st fake.Stats
	resp, err := metricsClient.Get(r.h.upBase + "/faults")
	if err != nil {
		return st, fmt.Errorf("reading the fake's fault record: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("reading the fake's fault record: %w", err)
	}
	return st, nil
}

func (r *relRun) resetFake() error {
	resp, err := metricsClient.Post(r.h.upBase+"/faults/reset", "text/plain", nil)
	if err != nil {
		return fmt.Errorf("resetting the fake's fault record: %w", err)
	}
	resp.Body.Close()
	return nil
}

// closeDelays matches the fake's connection records to the times their
// clients gave up: for each tag, how long after its client left the fake
// saw the proxy close the upstream connection. missing counts tags the
// fake never saw or saw still open; early counts connections the fake,
// not the proxy, ended (the proxy kept them to their natural end).
func closeDelays(recs []fake.ConnRecord, gaveUp map[string]time.Time) (delays []time.Duration, missing, early int) {
	seen := map[string]fake.ConnRecord{}
	for _, c := range recs {
		if _, ok := gaveUp[c.Tag]; ok {
			seen[c.Tag] = c
		}
	}
	for tag, t := range gaveUp {
		c, ok := seen[tag]
		if !ok || c.Closed == 0 {
			missing++
			continue
		}
		if !c.ByPeer {
			early++
		}
		delays = append(delays, time.Unix(0, c.Closed).Sub(t))
	}
	slices.Sort(delays)
	return delays, missing, early
}

// waitClosed polls the fake until every tag in gaveUp is recorded closed
// or d passes, and returns the delays.
func (r *relRun) waitClosed(ctx context.Context, gaveUp map[string]time.Time, d time.Duration) (delays []time.Duration, missing, early int, err error) {
	t0 := time.Now()
	for {
		st, err := r.fakeStats()
		if err != nil {
			return nil, len(gaveUp), 0, err
		}
		delays, missing, early = closeDelays(st.Conns, gaveUp)
		if missing == 0 || time.Since(t0) > d || ctx.Err() != nil {
			return delays, missing, early, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rawClient is a client on its own TCP connection that can hang up at a
// moment of its choosing.
type rawClient struct {
	c  net.Conn
	br *bufio.Reader
}

// rawSend opens a connection and sends one chat request with the bench key.
func (r *relRun) rawSend(body []byte) (*rawClient, error) {
	c, err := net.DialTimeout("tcp", r.mainAddr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	req := fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", r.mainAddr, relKey, len(body))
	if _, err := c.Write(append([]byte(req), body...)); err != nil {
		c.Close()
		return nil, err
	}
	return &rawClient{c: c, br: bufio.NewReader(c)}, nil
}

// waitData reads until the first SSE data line or d passes.
func (rc *rawClient) waitData(d time.Duration) error {
	_ = rc.c.SetReadDeadline(time.Now().Add(d))
	defer rc.c.SetReadDeadline(time.Time{})
	for {
		line, err := rc.br.ReadString('\n')
		if strings.HasPrefix(line, "data:") {
			return nil
		}
		if err != nil {
			return fmt.Errorf("no event: %w", err)
		}
	}
}

// hangUp closes the connection and returns when it did.
func (rc *rawClient) hangUp() time.Time {
	rc.c.Close()
	return time.Now()
}

// --- 5. upstream faults ---

func (r *relRun) faults(ctx context.Context, _ relSizes) {
	if err := r.resetFake(); err != nil {
		r.add("5. upstream faults", "(fake upstream)", err.Error(), false)
		return
	}
	c := &http.Client{Timeout: 30 * time.Second}
	post := func(model string, stream bool) answer {
		return r.do(ctx, c, r.mainBase, "/v1/chat/completions", chatReq(model, stream, ""), stream)
	}
	attempts := func(mode string) int64 {
		st, err := r.fakeStats()
		if err != nil {
			return -1
		}
		return st.Requests[mode]
	}

	// 429 and 500: retried num_retries times, then a quick 502.
	for _, f := range []struct {
		model string
		limit time.Duration
		why   string
	}{
		{fake.Fault500, 3 * time.Second, "fault-500 (500 on every attempt)"},
		{fake.Fault429, 5 * time.Second, "fault-429 (429, Retry-After: 1)"},
	} {
		before := attempts(f.model)
		a := post(f.model, false)
		n := attempts(f.model) - before
		r.add("5. "+f.model, fmt.Sprintf("one chat request to %s, num_retries 2. PASS if 502 after 3 upstream attempts within %s", f.why, secs(f.limit)),
			fmt.Sprintf("%s (code %s) after %d upstream attempts", a, a.errorCode(), n), a.err == nil && a.status == 502 && n == 3 && a.took <= f.limit)
	}

	// A hung upstream whose client gives up after 1 s.
	r.hangOnce(ctx)

	// Streams cut off upstream: a clean early close and a body cut mid-chunk.
	for _, m := range []string{fake.FaultCut, fake.FaultCutChunked} {
		a := post(m, true)
		what := "a stream that sends 3 events and closes without data: [DONE]"
		if m == fake.FaultCutChunked {
			what = "a chunked stream that sends 3 events and closes in the middle of a chunk"
		}
		r.add("5. "+m, what+". PASS if the client's stream ends with a stream_cut_off error event",
			fmt.Sprintf("%s: %s", a, a.sse), a.err == nil && a.status == 200 && a.sse.errCode == "stream_cut_off" && !a.sse.done && a.sse.events >= 1)
	}

	// Huge answers, five at once.
	for _, m := range []string{fake.FaultHuge, fake.FaultHugeChunked} {
		r.hugeOnce(ctx, c, m)
	}

	a := post(fake.FaultClose, false)
	r.add("5. fault-close", "one chat request to an upstream that closes the connection without answering. PASS if 502 within 5 s",
		fmt.Sprintf("%s (code %s)", a, a.errorCode()), a.err == nil && a.status == 502 && a.took < 5*time.Second)

	a = post(fake.FaultSlowStream, true)
	r.add("5. fault-slowstream", "a healthy stream of one event per 400 ms for 4 s, on a deployment with timeout 1 and stream_timeout 2. PASS if it completes with [DONE] (timeout bounds no stream)",
		fmt.Sprintf("%s: %s", a, a.sse), a.err == nil && a.status == 200 && a.sse.done && a.sse.errCode == "" && a.sse.events >= 10)

	// A failing deployment must not fail requests its healthy sibling can take.
	const n = 20
	statuses := map[int]int{}
	var worst time.Duration
	for range n {
		a := post("mixed", false)
		statuses[a.status]++
		worst = max(worst, a.took)
	}
	r.add("5. failing deployment in a group", fmt.Sprintf("%d requests to a model group of a fault-500 deployment and a healthy one. PASS if all get 200", n),
		fmt.Sprintf("statuses %v, slowest %s", statuses, secs(worst)), statuses[200] == n)
}

func (r *relRun) hangOnce(ctx context.Context) {
	const name = "5. fault-hang"
	tried := "a non-streaming request to an upstream that never answers; the client hangs up after 1 s. PASS if the proxy closes its upstream connection within 1 s of that"
	rc, err := r.rawSend(chatReq(fake.FaultHang, false, "h5"))
	if err != nil {
		r.add(name, tried, err.Error(), false)
		return
	}
	sleepCtx(ctx, time.Second)
	gave := rc.hangUp()
	delays, missing, early, err := r.waitClosed(ctx, map[string]time.Time{"h5": gave}, 5*time.Second)
	switch {
	case err != nil:
		r.add(name, tried, err.Error(), false)
	case missing > 0:
		r.add(name, tried, "the upstream connection was still open 5 s after the client left", false)
	default:
		r.add(name, tried, fmt.Sprintf("upstream connection closed %s after the client left (by the proxy: %t)", secs(delays[0]), early == 0),
			early == 0 && delays[0] <= time.Second)
	}
}

func (r *relRun) hugeOnce(ctx context.Context, c *http.Client, model string) {
	const conc = 5
	name := "5. " + model
	how := "with Content-Length"
	if model == fake.FaultHugeChunked {
		how = "chunked"
	}
	tried := fmt.Sprintf("%d concurrent requests whose answer is 80 MB (%s), max_response_size_mb 16. PASS if each gets 502 response_too_large within 10 s and RSS grows < 250 MB (5 × 16 MB buffered with growth and GC slack; 5 × 80 MB held would be 400 MB)", conc, how)
	pid := r.main.cmd.Process.Pid
	before, _ := readMem(pid)
	s := sampleMem(pid, "")
	answers := make([]answer, conc)
	var wg sync.WaitGroup
	for i := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = r.do(ctx, c, r.mainBase, "/v1/chat/completions", chatReq(model, false, ""), false)
		}()
	}
	wg.Wait()
	peak, _ := s.Stop()
	ok := true
	var got []string
	var worst time.Duration
	for _, a := range answers {
		worst = max(worst, a.took)
		code := a.errorCode()
		if a.err != nil || a.status != 502 || code != "response_too_large" || a.took > 10*time.Second {
			ok = false
		}
		if a.err != nil {
			got = append(got, a.err.Error())
		} else {
			got = append(got, fmt.Sprintf("%d %s", a.status, code))
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	growth := peak - before.RSS
	r.add(name, tried, fmt.Sprintf("%s, slowest %s; RSS growth %s (before %s, peak %s)", strings.Join(got, " / "), secs(worst), rssMB(growth), rssMB(before.RSS), rssMB(peak)),
		ok && growth < 250e6)
}

// --- 6. client disconnects ---

func (r *relRun) disconnects(ctx context.Context, sz relSizes) {
	const name = "6. client disconnects"
	n := sz.disconnects
	tried := fmt.Sprintf("%d streaming (fault-slowstream) and %d non-streaming (fault-hang) requests whose clients hang up after 1 s. PASS if the fake sees every upstream connection closed by the proxy within 2 s of its client leaving, and autorouter_in_flight_requests returns to 0", n, n)
	if err := r.resetFake(); err != nil {
		r.add(name, tried, err.Error(), false)
		return
	}
	var mu sync.Mutex
	gaveUp := map[string]time.Time{}
	var failures []string
	var wg sync.WaitGroup
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := i < n
			model, tag := fake.FaultHang, fmt.Sprintf("d6-h-%d", i)
			if stream {
				model, tag = fake.FaultSlowStream, fmt.Sprintf("d6-s-%d", i)
			}
			t0 := time.Now()
			rc, err := r.rawSend(chatReq(model, stream, tag))
			if err == nil && stream {
				if err = rc.waitData(5 * time.Second); err != nil {
					rc.hangUp()
				}
			}
			if err != nil {
				mu.Lock()
				failures = append(failures, tag+": "+err.Error())
				mu.Unlock()
				return
			}
			sleepCtx(ctx, time.Until(t0.Add(time.Second)))
			at := rc.hangUp()
			mu.Lock()
			gaveUp[tag] = at
			mu.Unlock()
		}()
	}
	wg.Wait()
	delays, missing, early, err := r.waitClosed(ctx, gaveUp, 8*time.Second)
	flight, flightIn, ferr := waitInFlightZero(ctx, r.mainBase, 5*time.Second)
	if err != nil {
		r.add(name, tried, err.Error(), false)
		return
	}
	m := fmt.Sprintf("%d clients hung up (%d could not start", len(gaveUp), len(failures))
	if len(failures) > 0 {
		m += ", first: " + failures[0]
	}
	m += ")"
	late := 0
	for _, d := range delays {
		if d > 2*time.Second {
			late++
		}
	}
	if len(delays) > 0 {
		m += fmt.Sprintf("; upstream closed after p50 %s, max %s; %d later than 2 s", secs(delays[len(delays)/2]), secs(delays[len(delays)-1]), late)
	}
	m += fmt.Sprintf("; %d never closed, %d ended by the fake rather than the proxy", missing, early)
	if ferr != nil {
		m += "; in-flight gauge unreadable: " + ferr.Error()
	} else {
		m += fmt.Sprintf("; in flight %g after %s", flight, secs(flightIn))
	}
	r.add(name, tried, m, len(failures) == 0 && len(gaveUp) == 2*n && missing == 0 && early == 0 && late == 0 && ferr == nil && flight == 0)
}
