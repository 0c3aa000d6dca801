package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/autorouter/autorouter/bench/fake"
	"github.com/autorouter/autorouter/bench/load"
	"github.com/autorouter/autorouter/bench/report"
)

// The reliability section (7) replays the attacks of issue #11 against the
// real autorouter binary, each as a row with what was tried, what was
// measured and a PASS/FAIL rule. Most run against one proxy (rel-main)
// whose deployments point at the fake upstream's fault modes; the
// embeddings, low open-file limit, reload and shutdown attacks get a
// process of their own. One attack's failure never stops the others.

// relKey is the master key of every proxy this section starts; no response
// and no log line may ever show it.
const relKey = "sk-bench"

// relHeaderTimeout is general_settings.header_timeout of the proxies here.
const relHeaderTimeout = 2 * time.Second

// relRow is one line of the reliability table.
type relRow struct {
	attack, tried, measured string
	pass                    bool
}

// relRun is one run of the section.
type relRun struct {
	h     *harness
	rows  []relRow
	procs []*proc // every autorouter started, for the log check

	main     *proc
	mainBase string // http://127.0.0.1:port
	mainAddr string // 127.0.0.1:port
	auth     http.Header
	client   *http.Client
}

func (r *relRun) add(attack, tried, measured string, pass bool) {
	r.rows = append(r.rows, relRow{attack, tried, measured, pass})
	res := "PASS"
	if !pass {
		res = "FAIL"
	}
	r.h.progress("reliability: %s: %s: %s", attack, res, measured)
}

// relSizes are the attack sizes of a full or a quick run.
type relSizes struct {
	streams, streamsTotal int
	settle                time.Duration
	silent, slowloris     int
	idleLowFD             int
	embedConc             int
	disconnects           int
	reloadFor             time.Duration
	shutdownStreams       int
}

func (h *harness) relSizes() relSizes {
	if h.o.quick {
		return relSizes{streams: 200, streamsTotal: 600, settle: 10 * time.Second, silent: 500, slowloris: 20, idleLowFD: 400,
			embedConc: 50, disconnects: 200, reloadFor: 6 * time.Second, shutdownStreams: 50}
	}
	return relSizes{streams: 1000, streamsTotal: 6000, settle: 60 * time.Second, silent: 3000, slowloris: 100, idleLowFD: 400,
		embedConc: 50, disconnects: 200, reloadFor: 10 * time.Second, shutdownStreams: 50}
}

// relModel is one model_list entry of a generated config.
type relModel struct {
	name   string
	params string // the litellm_params flow mapping's contents
	info   string // model_info's contents, or ""
}

// upstreamModel is an entry sending upstream model up to the fake, with
// extra litellm_params (timeouts) appended.
func (h *harness) upstreamModel(name, up, extra string) relModel {
	p := fmt.Sprintf("model: openai/%s, api_base: %s/v1, api_key: sk-fake", up, h.upBase)
	if extra != "" {
		p += ", " + extra
	}
	return relModel{name: name, params: p}
}

// relConfigYAML renders a LiteLLM config.yaml with the bench master key.
// general holds further general_settings lines ("key: value").
func relConfigYAML(models []relModel, router string, general ...string) string {
	var b strings.Builder
	b.WriteString("model_list:\n")
	for _, m := range models {
		fmt.Fprintf(&b, "  - model_name: %s\n    litellm_params: {%s}\n", m.name, m.params)
		if m.info != "" {
			fmt.Fprintf(&b, "    model_info: {%s}\n", m.info)
		}
	}
	if router != "" {
		fmt.Fprintf(&b, "router_settings: {%s}\n", router)
	}
	fmt.Fprintf(&b, "general_settings:\n  master_key: %s\n", relKey)
	for _, g := range general {
		fmt.Fprintf(&b, "  %s\n", g)
	}
	return b.String()
}

// mainModels are rel-main's deployments: a healthy model, every fault mode,
// and a group of one failing and one healthy deployment.
func (h *harness) mainModels() []relModel {
	return []relModel{
		h.upstreamModel("ok", "fake-model", "timeout: 8, stream_timeout: 2"),
		h.upstreamModel("fault-pace", fake.FaultPace, "timeout: 30, stream_timeout: 2"),
		h.upstreamModel("fault-500", fake.Fault500, "timeout: 10"),
		h.upstreamModel("fault-429", fake.Fault429, "timeout: 10"),
		h.upstreamModel("fault-hang", fake.FaultHang, "timeout: 30"),
		h.upstreamModel("fault-cut", fake.FaultCut, "timeout: 10, stream_timeout: 5"),
		h.upstreamModel("fault-cut-chunked", fake.FaultCutChunked, "timeout: 10, stream_timeout: 5"),
		h.upstreamModel("fault-huge", fake.FaultHuge, "timeout: 30"),
		h.upstreamModel("fault-huge-chunked", fake.FaultHugeChunked, "timeout: 30"),
		h.upstreamModel("fault-close", fake.FaultClose, "timeout: 10"),
		// A healthy stream longer than timeout: timeout must not cut it.
		h.upstreamModel("fault-slowstream", fake.FaultSlowStream, "timeout: 1, stream_timeout: 2"),
		h.upstreamModel("mixed", fake.Fault500, "timeout: 10"),
		h.upstreamModel("mixed", "fake-model", "timeout: 10"),
	}
}

const relRouter = "num_retries: 2, allowed_fails: 3, cooldown_time: 5"

// writeRelConfig writes a generated config into the section's directory.
func (h *harness) writeRelConfig(name, body string) (string, error) {
	dir := filepath.Join(h.o.work, "reliability")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	path := filepath.Join(dir, name)
	if err := writeFileAtomic(path, []byte(body)); err != nil {
		return "", err
	}
	return path, nil
}

// startRel starts an autorouter for the section and remembers it for the
// log check.
func (r *relRun) startRel(ctx context.Context, name, cfgName, cfg string, timeout time.Duration, prefix []string, extra ...string) (string, *proc, error) {
	path, err := r.h.writeRelConfig(cfgName, cfg)
	if err != nil {
		return "", nil, err
	}
	base, p, err := r.h.launchAutorouter(ctx, name, path, "", timeout, prefix, extra...)
	if err != nil {
		return "", nil, err
	}
	r.procs = append(r.procs, p)
	return base, p, nil
}

func (h *harness) reliability(ctx context.Context) error {
	r := &relRun{h: h, auth: http.Header{"Authorization": {"Bearer " + relKey}}, client: &http.Client{Timeout: 60 * time.Second}}
	sz := h.relSizes()
	general := []string{"max_response_size_mb: 16", fmt.Sprintf("header_timeout: %d", int(relHeaderTimeout.Seconds())), "max_connections: 2000"}
	base, p, err := r.startRel(ctx, "rel-main", "main.yaml", relConfigYAML(h.mainModels(), relRouter, general...), 30*time.Second, nil)
	var mainErr error
	if err != nil {
		mainErr = fmt.Errorf("rel-main did not start: %w", err)
	} else {
		defer p.stop()
		r.main, r.mainBase, r.mainAddr = p, base, strings.TrimPrefix(base, "http://")
	}
	attacks := []struct {
		name     string
		needMain bool
		fn       func(context.Context, relSizes)
	}{
		{"1. concurrent streams", true, r.streams},
		{"2. silent and slowloris connections", true, r.silent},
		{"2b. low open-file limit", false, r.lowFD},
		{"3. secret leakage", true, r.secrets},
		{"4. embeddings amplification", false, r.embeddings},
		{"5. upstream faults", true, r.faults},
		{"6. client disconnects", true, r.disconnects},
		{"7. reload under load", false, r.reload},
		{"8. graceful shutdown", false, r.shutdown},
	}
	for _, a := range attacks {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if a.needMain && mainErr != nil {
			r.add(a.name, "(not run)", mainErr.Error(), false)
			continue
		}
		t0 := time.Now()
		h.progress("reliability: %s", a.name)
		r.guard(ctx, a.name, sz, a.fn)
		h.progress("reliability: %s done in %s", a.name, since(t0))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if r.main != nil && !r.main.alive() {
		r.add("rel-main", "the proxy every attack above shares", "exited during the section; log "+r.main.log+":\n"+r.main.tail(), false)
	}
	r.logSecrets()
	r.render()
	return nil
}

// guard runs one attack with a deadline, turning a panic into a FAIL row.
func (r *relRun) guard(ctx context.Context, name string, sz relSizes, fn func(context.Context, relSizes)) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	n := len(r.rows)
	defer func() {
		if v := recover(); v != nil {
			r.add(name, "(harness panic)", fmt.Sprint(v), false)
		}
		if len(r.rows) == n && ctx.Err() == nil {
			r.add(name, "(no result)", "the attack recorded nothing", false)
		}
	}()
	fn(actx, sz)
}

// logSecrets checks every log of the section's proxies for the key.
func (r *relRun) logSecrets() {
	var hits []string
	for _, p := range r.procs {
		b, err := os.ReadFile(p.log)
		if err != nil {
			hits = append(hits, fmt.Sprintf("%s: unreadable: %v", p.name, err))
			continue
		}
		if n := bytes.Count(b, []byte(relKey)); n > 0 {
			hits = append(hits, fmt.Sprintf("%s.log: %d occurrence(s)", p.name, n))
		}
	}
	m := fmt.Sprintf("%s in none of the %d proxy logs", relKey, len(r.procs))
	if len(hits) > 0 {
		m = strings.Join(hits, "; ")
	}
	r.add("3b. key in logs", "grep every proxy log of this section for the master key, after every attack; PASS if absent", m, len(hits) == 0 && len(r.procs) > 0)
}

// relOrder is a row's place in the table: by its attack number ("3b."
// comes after "3."), rows without one last.
func relOrder(attack string) (int, string) {
	num, _, _ := strings.Cut(attack, " ")
	num = strings.TrimSuffix(num, ".")
	n, rest := 0, num
	for rest != "" && rest[0] >= '0' && rest[0] <= '9' {
		n = 10*n + int(rest[0]-'0')
		rest = rest[1:]
	}
	if rest == num {
		return 1 << 30, attack
	}
	return n, rest
}

// relCompare orders two attack names by relOrder.
func relCompare(a, b string) int {
	an, as := relOrder(a)
	bn, bs := relOrder(b)
	if an != bn {
		return an - bn
	}
	return strings.Compare(as, bs)
}

func (r *relRun) render() {
	h := r.h
	t := report.Table{Header: []string{"attack", "tried", "measured", "result"}}
	failed := []string{}
	rows := slices.Clone(r.rows)
	slices.SortStableFunc(rows, func(a, b relRow) int { return relCompare(a.attack, b.attack) })
	for _, row := range rows {
		res := "PASS"
		if !row.pass {
			res = "**FAIL**"
			failed = append(failed, row.attack)
		}
		t.Add(mdCell(row.attack), mdCell(row.tried), mdCell(row.measured), res)
	}
	var b strings.Builder
	b.WriteString("## 8. Reliability\n\nThe attacks of issue #11 replayed against the real `autorouter serve` binary, each on the deployments of one fake upstream process whose fault mode is chosen by the upstream model name (`fault-500`, `fault-429` with Retry-After: 1, `fault-hang`, `fault-cut`, `fault-huge` 80 MB, `fault-close`, `fault-slowstream` one event per 400 ms for 4 s). The main proxy runs with `num_retries: 2, allowed_fails: 3, cooldown_time: 5`, `max_response_size_mb: 16`, `header_timeout: 2`, `max_connections: 2000`; the embeddings, low open-file limit, reload and shutdown attacks get a proxy of their own. Each row says what was tried and its PASS rule, and what was measured.\n\n")
	b.WriteString(t.Markdown())
	h.section(b.String())
	target := "every attack PASS"
	m := fmt.Sprintf("%d of %d rows pass", len(r.rows)-len(failed), len(r.rows))
	if len(failed) > 0 {
		m += "; FAIL: " + strings.Join(failed, ", ")
	}
	h.goal("reliability: every attack", target, m, len(failed) == 0 && len(r.rows) > 0)
	fmt.Fprintf(h.log, "\n%s\n", t.Markdown())
}

// mdCell keeps a table cell on one line.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// --- shared helpers ---

// chatReq is a chat body for model; tag goes in "user", which the fake
// records its connection under.
func chatReq(model string, stream bool, tag string) []byte {
	b, _ := json.Marshal(map[string]any{"model": model, "stream": stream, "user": tag,
		"messages": []map[string]string{{"role": "user", "content": "Say hello in one short sentence."}}})
	return b
}

// answer is one HTTP exchange's outcome.
type answer struct {
	status int
	header http.Header
	body   []byte
	sse    sseResult // for streams
	took   time.Duration
	err    error
}

// errorCode is the error envelope's code, "" when there is none.
func (a answer) errorCode() string {
	var env struct {
		Error struct {
			Code *string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(a.body, &env) != nil || env.Error.Code == nil {
		return ""
	}
	return *env.Error.Code
}

func (a answer) String() string {
	if a.err != nil {
		return fmt.Sprintf("error after %s: %v", report.Ms(a.took), a.err)
	}
	return fmt.Sprintf("%d in %s", a.status, secs(a.took))
}

// post sends body as JSON to url with the bench key.
func (r *relRun) post(ctx context.Context, c *http.Client, url string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.auth.Clone()
	req.Header.Set("Content-Type", "application/json")
	return c.Do(req)
}

// do POSTs body to base+path with the bench key; a stream's events are
// read to their end.
func (r *relRun) do(ctx context.Context, c *http.Client, base, path string, body []byte, stream bool) answer {
	t0 := time.Now()
	resp, err := r.post(ctx, c, base+path, body)
	if err != nil {
		return answer{err: err, took: time.Since(t0)}
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if stream && resp.StatusCode == 200 {
		a.sse = readSSE(resp.Body)
	} else {
		a.body, a.err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	}
	a.took = time.Since(t0)
	return a
}

func secs(d time.Duration) string {
	if d < time.Second {
		return report.Ms(d)
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// memSampler records the highest RSS of a process, and of the proxy's
// in-flight gauge, while it runs.
type memSampler struct {
	stop        chan struct{}
	done        chan struct{}
	maxRSS      atomic.Int64
	maxInFlight atomic.Int64
}

// sampleMem reads pid's RSS every 20 ms and, when base is set, its
// in-flight gauge every 500 ms, until Stop.
func sampleMem(pid int, base string) *memSampler {
	s := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	if m, err := readMem(pid); err == nil {
		s.maxRSS.Store(m.RSS)
	}
	go func() {
		defer close(s.done)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
			if m, err := readMem(pid); err == nil && m.RSS > s.maxRSS.Load() {
				s.maxRSS.Store(m.RSS)
			}
			if base != "" && i%25 == 0 {
				if v, err := inFlight(base); err == nil && int64(v) > s.maxInFlight.Load() {
					s.maxInFlight.Store(int64(v))
				}
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the peaks.
func (s *memSampler) Stop() (rss int64, inFlight int64) {
	close(s.stop)
	<-s.done
	return s.maxRSS.Load(), s.maxInFlight.Load()
}

var metricsClient = &http.Client{Timeout: 3 * time.Second}

// inFlight reads autorouter_in_flight_requests.
func inFlight(base string) (float64, error) {
	resp, err := metricsClient.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	return metricValue(string(b), "autorouter_in_flight_requests")
}

// waitInFlightZero polls the gauge until it is 0 or d passes; it returns
// the last value and how long it took.
func waitInFlightZero(ctx context.Context, base string, d time.Duration) (float64, time.Duration, error) {
	t0 := time.Now()
	for {
		v, err := inFlight(base)
		if err == nil && v == 0 {
			return 0, time.Since(t0), nil
		}
		if time.Since(t0) > d || ctx.Err() != nil {
			if err != nil {
				return -1, time.Since(t0), err
			}
			return v, time.Since(t0), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func rssMB(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// --- 1. concurrent streams ---

func (r *relRun) streams(ctx context.Context, sz relSizes) {
	const name = "1. concurrent streams"
	tried := fmt.Sprintf("%s streams held open at once (fault-pace: 11 events over 4 s), %s in all, closed loop; RSS before, at peak, after and %s later. PASS if every stream ends with [DONE] and RSS %s later ≤ peak (+2 MB: the idle runtime's GC and scavenger touch a few pages) and ≤ 400 MB",
		count(sz.streams), count(sz.streamsTotal), sz.settle, sz.settle)
	pid := r.main.cmd.Process.Pid
	warm := load.ClosedLoop(ctx, load.Client(8), load.Request{URL: r.mainBase + "/v1/chat/completions", Header: r.auth, Body: chatBody("ok", true), Stream: true}, 8, 0, 200)
	if warm.Errors > 0 {
		r.add(name, tried, fmt.Sprintf("warm-up failed: %d errors, first: %v", warm.Errors, warm.FirstErr), false)
		return
	}
	before, err := readMem(pid)
	if err != nil {
		r.add(name, tried, err.Error(), false)
		return
	}
	s := sampleMem(pid, r.mainBase)
	req := load.Request{URL: r.mainBase + "/v1/chat/completions", Header: r.auth, Body: chatBody("fault-pace", true), Stream: true}
	res := load.ClosedLoop(ctx, load.Client(sz.streams), req, sz.streams, 0, sz.streamsTotal)
	sampled, peakFlight := s.Stop()
	after, err := readMem(pid)
	if err != nil {
		r.add(name, tried, "the proxy is gone: "+err.Error(), false)
		return
	}
	// VmHWM is the kernel's own peak, which 20 ms samples can miss by a
	// page or two; RSS that later passes it has not settled.
	peak := max(sampled, after.Peak)
	sleepCtx(ctx, sz.settle)
	later, err := readMem(pid)
	if err != nil {
		r.add(name, tried, "the proxy is gone: "+err.Error(), false)
		return
	}
	m := fmt.Sprintf("%d of %d streams ended with [DONE] in %s (%d errors", res.OK(), sz.streamsTotal, secs(res.Elapsed), res.Errors)
	if res.FirstErr != nil {
		m += ", first: " + res.FirstErr.Error()
	}
	m += fmt.Sprintf("); peak in flight %d; RSS before %s, peak %s (VmHWM), after %s, %s later %s", peakFlight, rssMB(before.RSS), rssMB(peak), rssMB(after.RSS), sz.settle, rssMB(later.RSS))
	r.add(name, tried, m, res.Errors == 0 && res.OK() == sz.streamsTotal && later.RSS <= peak+2<<20 && later.RSS <= 400e6)
}

func count(n int) string {
	if n >= 1000 && n%1000 == 0 {
		return fmt.Sprintf("%d,000", n/1000)
	}
	if n >= 1000 {
		return fmt.Sprintf("%d,%03d", n/1000, n%1000)
	}
	return fmt.Sprint(n)
}

// --- 2. silent and slowloris connections ---

// connWatch holds connections the harness opened and records how long each
// stayed open before the server closed it.
type connWatch struct {
	mu        sync.Mutex
	open      []time.Duration // per closed connection
	dialErrs  int
	firstErr  error
	wg        sync.WaitGroup
	stillOpen atomic.Int64
}

func (w *connWatch) dialErr(err error) {
	w.mu.Lock()
	w.dialErrs++
	if w.firstErr == nil {
		w.firstErr = err
	}
	w.mu.Unlock()
}

// hold reads c until the server closes it (or limit passes, which counts
// as never closed), and records the time since t0.
func (w *connWatch) hold(c net.Conn, t0 time.Time, limit time.Duration) {
	w.wg.Add(1)
	w.stillOpen.Add(1)
	go func() {
		defer w.wg.Done()
		defer c.Close()
		_ = c.SetReadDeadline(t0.Add(limit))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return // never closed by the server
		}
		w.stillOpen.Add(-1)
		w.mu.Lock()
		w.open = append(w.open, time.Since(t0))
		w.mu.Unlock()
	}()
}

// dialMany opens n connections to addr, par at a time, and hands each to
// use; it returns when all are dialled.
func dialMany(ctx context.Context, addr string, n, par int, w *connWatch, use func(c net.Conn, t0 time.Time)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	d := net.Dialer{Timeout: 5 * time.Second}
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					w.dialErr(err)
					continue
				}
				use(c, time.Now())
			}
		}()
	}
	wg.Wait()
}

// legitLoad sends healthy requests from its workers until stop closes.
type legitLoad struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstErr   error
	done       chan struct{}
}

func (r *relRun) startLegit(ctx context.Context, base string, conc int, stop <-chan struct{}) *legitLoad {
	c := load.Client(conc)
	c.Timeout = 15 * time.Second
	req := load.Request{URL: base + "/v1/chat/completions", Header: r.auth, Body: chatBody("ok", false)}
	return startLoad(ctx, c, []load.Request{req}, conc, 5*time.Millisecond, stop)
}

// startLoad runs workers that each send one of reqs (worker i the
// i-th, round robin) over and over, pause apart, until stop closes or ctx
// ends.
func startLoad(ctx context.Context, c *http.Client, reqs []load.Request, workers int, pause time.Duration, stop <-chan struct{}) *legitLoad {
	l := &legitLoad{done: make(chan struct{})}
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := reqs[i%len(reqs)]
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				s := load.Do(ctx, c, req, 0, time.Now())
				if s.Err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if l.firstErr == nil {
						l.firstErr = s.Err
					}
					l.mu.Unlock()
				} else {
					l.ok.Add(1)
				}
				if pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
	go func() { wg.Wait(); close(l.done) }()
	return l
}

func (l *legitLoad) wait() (ok, failed int64, first error) {
	<-l.done
	return l.ok.Load(), l.failed.Load(), l.firstErr
}

func (r *relRun) silent(ctx context.Context, sz relSizes) {
	const name = "2. silent and slowloris connections"
	slack := 1500 * time.Millisecond
	tried := fmt.Sprintf("%s TCP connections that send nothing and %d slowloris ones (one header byte a second), while 4 clients send healthy requests; max_connections 2000, header_timeout 2 s. PASS if the proxy lives, ≥ 99%% of healthy requests succeed and every silent/slow connection is closed within %s",
		count(sz.silent), sz.slowloris, secs(relHeaderTimeout+slack))
	stop := make(chan struct{})
	legit := r.startLegit(ctx, r.mainBase, 4, stop)
	silent, slow := &connWatch{}, &connWatch{}
	limit := relHeaderTimeout + 15*time.Second
	dialMany(ctx, r.mainAddr, sz.slowloris, 8, slow, func(c net.Conn, t0 time.Time) {
		slow.hold(c, t0, limit)
		go func() {
			msg := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 60)
			for i := 0; i < len(msg); i++ {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write([]byte{msg[i]}); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
	})
	dialMany(ctx, r.mainAddr, sz.silent, 32, silent, func(c net.Conn, t0 time.Time) { silent.hold(c, t0, limit) })
	sleepCtx(ctx, relHeaderTimeout+3*time.Second)
	close(stop)
	ok, failed, first := legit.wait()
	silent.wg.Wait()
	slow.wg.Wait()
	alive := r.main.alive()
	worst := func(w *connWatch) (time.Duration, int) {
		var m time.Duration
		late := 0
		for _, d := range w.open {
			m = max(m, d)
			if d > relHeaderTimeout+slack {
				late++
			}
		}
		return m, late
	}
	sMax, sLate := worst(silent)
	lMax, lLate := worst(slow)
	total := ok + failed
	share := 0.0
	if total > 0 {
		share = float64(ok) / float64(total)
	}
	m := fmt.Sprintf("proxy alive: %t; healthy requests %d/%d ok (%.2f%%)", alive, ok, total, 100*share)
	if first != nil {
		m += ", first failure: " + first.Error()
	}
	m += fmt.Sprintf("; silent: %d closed (slowest after %s, %d late), %d never closed, %d dial errors; slowloris: %d closed (slowest after %s, %d late), %d never closed",
		len(silent.open), secs(sMax), sLate, silent.stillOpen.Load(), silent.dialErrs, len(slow.open), secs(lMax), lLate, slow.stillOpen.Load())
	if silent.firstErr != nil {
		m += ", first dial error: " + silent.firstErr.Error()
	}
	pass := alive && total > 0 && share >= 0.99 && sLate == 0 && lLate == 0 && silent.stillOpen.Load() == 0 && slow.stillOpen.Load() == 0 &&
		len(silent.open) == sz.silent && len(slow.open) == sz.slowloris
	r.add(name, tried, m, pass)
}

// --- 2b. low open-file limit ---

// rlimitPrefix is a command prefix that runs the rest with an open-file
// limit of n.
func rlimitPrefix(n int) []string {
	if p, err := exec.LookPath("prlimit"); err == nil {
		return []string{p, fmt.Sprintf("--nofile=%d:%d", n, n), "--"}
	}
	return []string{"bash", "-c", fmt.Sprintf(`ulimit -n %d && exec "$@"`, n), "bash"}
}

func (r *relRun) lowFD(ctx context.Context, sz relSizes) {
	for _, v := range []struct {
		name, general, what string
	}{
		{"rel-lowfd-default", "", "max_connections left to its default (half the limit)"},
		{"rel-lowfd-over", "max_connections: 2000", "max_connections 2000, above the limit (accept hits EMFILE)"},
	} {
		if ctx.Err() != nil {
			return
		}
		r.lowFDOnce(ctx, sz, v.name, v.general, v.what)
	}
}

func (r *relRun) lowFDOnce(ctx context.Context, sz relSizes, name, general, what string) {
	attack := "2b. low open-file limit (" + strings.TrimPrefix(name, "rel-lowfd-") + ")"
	tried := fmt.Sprintf("the proxy under an open-file limit of 256 (%s), %d idle connections opened at once. PASS if it is still running and answers a request after they time out", what, sz.idleLowFD)
	g := []string{fmt.Sprintf("header_timeout: %d", int(relHeaderTimeout.Seconds()))}
	if general != "" {
		g = append(g, general)
	}
	cfg := relConfigYAML([]relModel{r.h.upstreamModel("ok", "fake-model", "timeout: 8")}, "", g...)
	base, p, err := r.startRel(ctx, name, name+".yaml", cfg, 30*time.Second, rlimitPrefix(256))
	if err != nil {
		r.add(attack, tried, err.Error(), false)
		return
	}
	defer p.stop()
	limit := ""
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Max open files") {
				limit = strings.Join(strings.Fields(l)[3:5], "/")
			}
		}
	}
	w := &connWatch{}
	t0 := time.Now()
	dialMany(ctx, strings.TrimPrefix(base, "http://"), sz.idleLowFD, 32, w, func(c net.Conn, t0 time.Time) { w.hold(c, t0, 30*time.Second) })
	sleepCtx(ctx, time.Second)
	aliveDuring := p.alive()
	w.wg.Wait()
	closedIn := time.Since(t0)
	c := &http.Client{Timeout: 20 * time.Second}
	a := r.do(ctx, c, base, "/v1/chat/completions", chatReq("ok", false, ""), false)
	aliveAfter := p.alive()
	logb, _ := os.ReadFile(p.log)
	backoff := bytes.Contains(logb, []byte("accepting connections failed"))
	evicted := bytes.Contains(logb, []byte("closed the longest idle connection"))
	m := fmt.Sprintf("open-file limit %s; alive with the idle connections open: %t; %d/%d idle connections closed by the proxy within %s (%d dial errors); request afterwards: %s; alive after: %t; log: accept back-off %t, idle eviction %t",
		limit, aliveDuring, len(w.open), sz.idleLowFD, secs(closedIn), w.dialErrs, a, aliveAfter, backoff, evicted)
	r.add(attack, tried, m, aliveDuring && aliveAfter && a.err == nil && a.status == 200)
}

// --- 3. secret leakage ---

// rawExchange writes req on a new connection and reads the answer until
// the server closes it or d passes.
func rawExchange(addr string, req []byte, d time.Duration) (status int, raw []byte, err error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write(req); err != nil {
		return 0, nil, fmt.Errorf("writing: %w", err)
	}
	raw, rerr := io.ReadAll(c)
	status, perr := parseStatusLine(raw)
	if perr != nil {
		if rerr != nil {
			return 0, raw, fmt.Errorf("%w (reading: %v)", perr, rerr)
		}
		return 0, raw, perr
	}
	return status, raw, nil
}

// parseStatusLine reads the status code of a raw HTTP/1.x answer.
func parseStatusLine(raw []byte) (int, error) {
	line, _, _ := bytes.Cut(raw, []byte("\r\n"))
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, fmt.Errorf("no HTTP status line in %q", truncate(string(line), 60))
	}
	var code int
	if _, err := fmt.Sscanf(f[1], "%d", &code); err != nil || code < 100 || code > 999 {
		return 0, fmt.Errorf("bad status code in %q", truncate(string(line), 60))
	}
	return code, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func (r *relRun) secrets(ctx context.Context, _ relSizes) {
	const name = "3. secret leakage"
	key := "Authorization: Bearer " + relKey + "\r\n"
	cases := []struct {
		what string
		req  string
		want []int
	}{
		{"a request line with no method or version", "GARBAGE\r\nHost: x\r\n" + key + "\r\n", []int{400}},
		{"a request line with a bad version", "POST /v1/chat/completions HTTP/9.z\r\nHost: x\r\n" + key + "\r\n", []int{400, 505}},
		{"a header line without a colon", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + key + "this line has no colon\r\n\r\n", []int{400}},
		{"a 20 KB header block", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + key + "X-Pad: " + strings.Repeat("p", 20<<10) + "\r\nContent-Length: 2\r\n\r\n{}", []int{431}},
	}
	tried := "malformed requests carrying `Authorization: Bearer " + relKey + "`: " + strings.Join(func() []string {
		var s []string
		for _, c := range cases {
			s = append(s, c.what)
		}
		return s
	}(), ", ") + ". PASS if each gets 400 (431 for the header block) and the answer never holds the key"
	var parts []string
	pass := true
	for _, c := range cases {
		status, raw, err := rawExchange(r.mainAddr, []byte(c.req), 5*time.Second)
		leaked := bytes.Contains(raw, []byte(relKey))
		ok := err == nil && !leaked && containsInt(c.want, status)
		pass = pass && ok
		switch {
		case err != nil:
			parts = append(parts, fmt.Sprintf("%s: %v", c.what, err))
		case leaked:
			parts = append(parts, fmt.Sprintf("%s: %d, KEY IN ANSWER", c.what, status))
		default:
			parts = append(parts, fmt.Sprintf("%s: %d", c.what, status))
		}
	}
	r.add(name, tried, strings.Join(parts, "; ")+"; no answer held the key: "+fmt.Sprint(pass), pass)
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// --- 4. embeddings amplification ---

func (r *relRun) embeddings(ctx context.Context, sz relSizes) {
	const name = "4. embeddings amplification"
	if _, err := os.Stat(filepath.Join(r.h.o.models, "all-MiniLM-L6-v2")); err != nil {
		r.add(name, "(not run)", "the local model is not installed in "+r.h.o.models+" (run scripts/setup.sh)", false)
		return
	}
	cfg := relConfigYAML([]relModel{{name: "minilm", params: "model: local/all-MiniLM-L6-v2", info: "quantized: true"}}, "",
		"max_queued_embeddings: 8")
	base, p, err := r.startRel(ctx, "rel-embed", "embed.yaml", cfg, 2*time.Minute, nil)
	if err != nil {
		r.add(name, "(proxy with the local model)", err.Error(), false)
		return
	}
	defer p.stop()
	c := &http.Client{Timeout: 60 * time.Second}
	embed := func(inputs []string) answer {
		b, _ := json.Marshal(map[string]any{"model": "minilm", "input": inputs})
		return r.do(ctx, c, base, "/v1/embeddings", b, false)
	}
	rep := func(s string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	if a := embed([]string{"warm up the model"}); a.status != 200 {
		r.add(name, "(warm-up)", "a valid embedding request failed: "+a.String()+" "+truncate(string(a.body), 200), false)
		return
	}
	pid := p.cmd.Process.Pid
	before, _ := readMem(pid)
	s := sampleMem(pid, "")
	bad := []struct {
		what   string
		inputs []string
	}{
		{"20,000 empty inputs", rep("", 20000)},
		{"2,049 inputs", rep("a short input", 2049)},
		{"1,000 inputs of 200 words (over max_embedding_tokens)", rep(strings.Repeat("token ", 200), 1000)},
	}
	var parts []string
	badOK := true
	for _, b := range bad {
		a := embed(b.inputs)
		ok := a.err == nil && a.status == 400 && a.took < time.Second
		badOK = badOK && ok
		parts = append(parts, fmt.Sprintf("%s: %s", b.what, a))
	}
	peak, _ := s.Stop()
	growth := peak - before.RSS
	// Then a burst of valid requests: a full queue may answer 429, never 5xx.
	inputs := rep("The quick brown fox jumps over the lazy dog near the river bank.", 32)
	var mu sync.Mutex
	statuses := map[int]int{}
	var transport, noRetryAfter int
	var wg sync.WaitGroup
	for range sz.embedConc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := embed(inputs)
			mu.Lock()
			defer mu.Unlock()
			if a.err != nil {
				transport++
				return
			}
			statuses[a.status]++
			if a.status == 429 && a.header.Get("Retry-After") == "" {
				noRetryAfter++
			}
		}()
	}
	wg.Wait()
	burstOK := transport == 0 && noRetryAfter == 0
	var st []string
	for code, n := range statuses {
		st = append(st, fmt.Sprintf("%d×%d", n, code))
		if code != 200 && code != 429 {
			burstOK = false
		}
	}
	tried := fmt.Sprintf("/v1/embeddings on the local int8 model: 20,000 empty inputs, 2,049 inputs, 1,000 × 200-word inputs; then %d concurrent valid requests of 32 inputs (max_queued_embeddings 8). PASS if each bad request gets 400 within 1 s with RSS growth < 50 MB, and the burst gets only 200s and 429s with Retry-After", sz.embedConc)
	m := strings.Join(parts, "; ") + fmt.Sprintf("; RSS growth %s (before %s, peak %s); burst: %s, %d transport errors, %d 429s without Retry-After",
		rssMB(growth), rssMB(before.RSS), rssMB(peak), strings.Join(st, ", "), transport, noRetryAfter)
	r.add(name, tried, m, badOK && growth < 50e6 && burstOK)
}

// --- 7. reload under load ---

func (r *relRun) reloadConfig(gen int) string {
	models := []relModel{
		r.h.upstreamModel("ok", "fake-model", "timeout: 8"),
		{name: "mocked", params: fmt.Sprintf("model: mock/mocked, mock_response: \"generation %d\"", gen)},
	}
	for i := 1; i <= gen; i++ {
		models = append(models, relModel{name: fmt.Sprintf("added-%d", i), params: fmt.Sprintf("model: mock/added-%d", i)})
	}
	return relConfigYAML(models, "")
}

func (r *relRun) reload(ctx context.Context, sz relSizes) {
	const name, reloads, clients = "7. reload under load", 5, 50
	tried := fmt.Sprintf("%d clients sending requests (upstream and mock models, some streaming) for %s while config.yaml is rewritten %d times (new mock_response, one more model) with a SIGHUP each. PASS if no request fails and every generation is served",
		clients, sz.reloadFor, reloads)
	base, p, err := r.startRel(ctx, "rel-reload", "reload.yaml", r.reloadConfig(0), 30*time.Second, nil)
	if err != nil {
		r.add(name, tried, err.Error(), false)
		return
	}
	defer p.stop()
	cfgPath := filepath.Join(r.h.o.work, "reliability", "reload.yaml")
	stop := make(chan struct{})
	c := load.Client(clients)
	c.Timeout = 20 * time.Second
	reqs := []load.Request{
		{URL: base + "/v1/chat/completions", Header: r.auth, Body: chatBody("ok", false)},
		{URL: base + "/v1/chat/completions", Header: r.auth, Body: chatBody("mocked", false)},
		{URL: base + "/v1/chat/completions", Header: r.auth, Body: chatBody("ok", true), Stream: true},
		{URL: base + "/v1/chat/completions", Header: r.auth, Body: chatBody("mocked", true), Stream: true},
	}
	traffic := startLoad(ctx, c, reqs, clients, 0, stop)
	probe := &http.Client{Timeout: 5 * time.Second}
	applied := 0
	var applyTimes []string
	var reloadErr error
	gap := sz.reloadFor / (reloads + 1)
	for gen := 1; gen <= reloads && ctx.Err() == nil; gen++ {
		sleepCtx(ctx, gap)
		if err := writeFileAtomic(cfgPath, []byte(r.reloadConfig(gen))); err != nil {
			reloadErr = err
			break
		}
		t0 := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			reloadErr = err
			break
		}
		want := fmt.Sprintf("generation %d", gen)
		for time.Since(t0) < 5*time.Second {
			a := r.do(ctx, probe, base, "/v1/chat/completions", chatReq("mocked", false, ""), false)
			b := r.do(ctx, probe, base, "/v1/chat/completions", chatReq(fmt.Sprintf("added-%d", gen), false, ""), false)
			if a.status == 200 && bytes.Contains(a.body, []byte(want)) && b.status == 200 {
				applied++
				applyTimes = append(applyTimes, secs(time.Since(t0)))
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	sleepCtx(ctx, gap)
	close(stop)
	ok, failed, first := traffic.wait()
	m := fmt.Sprintf("%d requests ok, %d failed", ok, failed)
	if first != nil {
		m += " (first: " + first.Error() + ")"
	}
	m += fmt.Sprintf("; %d/%d generations served (after %s); proxy alive: %t", applied, reloads, strings.Join(applyTimes, ", "), p.alive())
	if reloadErr != nil {
		m += "; reload step failed: " + reloadErr.Error()
	}
	logb, _ := os.ReadFile(p.log)
	if n := bytes.Count(logb, []byte("reload failed")); n > 0 {
		m += fmt.Sprintf("; %d failed reloads logged", n)
	}
	r.add(name, tried, m, failed == 0 && ok > 0 && applied == reloads && reloadErr == nil)
}

// --- 8. graceful shutdown ---

func (r *relRun) shutdown(ctx context.Context, sz relSizes) {
	const name = "8. graceful shutdown"
	n := sz.shutdownStreams
	tried := fmt.Sprintf("%d slow streams open (4 s each; half started 2.5 s before the other half), then SIGTERM with --shutdown-timeout 3s. PASS if every stream either finishes with [DONE] or ends with a server_shutdown error event (none cut silently), the process exits within 5 s, and the log has one ended_by=shutdown line per stream ended so", n)
	cfg := relConfigYAML([]relModel{r.h.upstreamModel("slow", fake.FaultSlowStream, "timeout: 30, stream_timeout: 2")}, "")
	base, p, err := r.startRel(ctx, "rel-shutdown", "shutdown.yaml", cfg, 30*time.Second, nil, "--shutdown-timeout", "3s")
	if err != nil {
		r.add(name, tried, err.Error(), false)
		return
	}
	defer func() {
		if p.alive() {
			p.stop()
		}
	}()
	c := load.Client(n)
	c.Timeout = 30 * time.Second
	results := make([]answer, n)
	started := make(chan struct{}, n)
	var wg sync.WaitGroup
	open := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = r.streamUntilEnd(ctx, c, base, chatReq("slow", true, fmt.Sprintf("s8-%d", i)), started)
		}()
	}
	for i := range n / 2 {
		open(i)
	}
	sleepCtx(ctx, 2500*time.Millisecond)
	for i := n / 2; i < n; i++ {
		open(i)
	}
	firstEvents := 0
	timeout := time.After(10 * time.Second)
wait:
	for firstEvents < n {
		select {
		case <-started:
			firstEvents++
		case <-timeout:
			break wait
		}
	}
	t0 := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var exitErr error
	exited := false
	select {
	case exitErr = <-p.done:
		p.done <- exitErr
		exited = true
	case <-time.After(10 * time.Second):
	}
	exitIn := time.Since(t0)
	wg.Wait()
	done, shut, other := 0, 0, []string{}
	for _, a := range results {
		switch {
		case a.err == nil && a.status == 200 && a.sse.done && a.sse.errCode == "":
			done++
		case a.err == nil && a.status == 200 && a.sse.errCode == "server_shutdown":
			shut++
		default:
			if len(other) < 3 {
				other = append(other, a.describe())
			}
		}
	}
	logb, _ := os.ReadFile(p.log)
	logged := bytes.Count(logb, []byte("ended_by=shutdown"))
	how := "exited"
	switch {
	case !exited:
		how = "still running"
	case exitErr != nil:
		how = "exited (" + exitErr.Error() + ")"
	}
	m := fmt.Sprintf("%d/%d streams had their first event; %s %s after SIGTERM; %d finished with [DONE], %d ended with server_shutdown, %d otherwise",
		firstEvents, n, how, secs(exitIn), done, shut, n-done-shut)
	if len(other) > 0 {
		m += " (" + strings.Join(other, "; ") + ")"
	}
	m += fmt.Sprintf("; %d ended_by=shutdown log lines", logged)
	r.add(name, tried, m, exited && exitIn <= 5*time.Second && done+shut == n && logged == shut && firstEvents == n)
}

// streamUntilEnd sends a streaming request and reads it to its end,
// signalling started at its first byte.
func (r *relRun) streamUntilEnd(ctx context.Context, c *http.Client, base string, body []byte, started chan<- struct{}) answer {
	t0 := time.Now()
	resp, err := r.post(ctx, c, base+"/v1/chat/completions", body)
	if err != nil {
		return answer{err: err, took: time.Since(t0)}
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != 200 {
		a.body, _ = io.ReadAll(resp.Body)
		return a
	}
	a.sse = readSSE(&firstByte{r: resp.Body, signal: started})
	a.took = time.Since(t0)
	return a
}

// firstByte signals once when its reader yields its first bytes.
type firstByte struct {
	r      io.Reader
	signal chan<- struct{}
	sent   bool
}

func (f *firstByte) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if n > 0 && !f.sent {
		f.sent = true
		f.signal <- struct{}{}
	}
	return n, err
}

// describe summarises an answer for a FAIL message.
func (a answer) describe() string {
	switch {
	case a.err != nil:
		return a.err.Error()
	case a.status != 200:
		return fmt.Sprintf("status %d %s", a.status, truncate(string(a.body), 120))
	}
	return a.sse.String()
}
