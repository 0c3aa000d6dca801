package fake

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The fault modes, chosen by a chat request's model name. A proxy config
// entry such as `model: openai/fault-hang` sends the name upstream as it
// is, so one fake serves every mode at once.
const (
	// Fault500 answers 500 with an OpenAI error body.
	Fault500 = "fault-500"
	// Fault429 answers 429 with Retry-After: 1.
	Fault429 = "fault-429"
	// FaultHang reads the request and never answers; it waits for the
	// client to close the connection and records when it did.
	FaultHang = "fault-hang"
	// FaultCut streams three events and closes the connection without
	// data: [DONE]; the body is delimited by the close (no length, not
	// chunked), so the stream ends cleanly but early.
	FaultCut = "fault-cut"
	// FaultCutChunked streams three events in chunked encoding and closes
	// the connection without the final chunk: a body cut in the middle.
	FaultCutChunked = "fault-cut-chunked"
	// FaultHuge answers with Options.HugeBytes of JSON and a Content-Length.
	FaultHuge = "fault-huge"
	// FaultHugeChunked answers with Options.HugeBytes of JSON, chunked.
	FaultHugeChunked = "fault-huge-chunked"
	// FaultClose closes the connection without answering.
	FaultClose = "fault-close"
	// FaultSlowStream sends an event every Options.FaultEvery,
	// Options.FaultEvents times, then finishes with data: [DONE] and closes
	// the connection. It notices at once when the client closes first.
	FaultSlowStream = "fault-slowstream"
	// FaultPace is FaultSlowStream's pacing on an ordinary keep-alive
	// response, untracked: for holding many healthy streams open.
	FaultPace = "fault-pace"
)

// faultFunc serves one fault mode.
type faultFunc func(s *Server, ctx *fasthttp.RequestCtx, req *request, rec *ConnRecord)

var faults = map[string]faultFunc{
	Fault500:         (*Server).status500,
	Fault429:         (*Server).status429,
	FaultHang:        hijacked((*Server).hang),
	FaultCut:         hijacked((*Server).cut),
	FaultCutChunked:  hijacked((*Server).cutChunked),
	FaultHuge:        (*Server).huge,
	FaultHugeChunked: (*Server).huge,
	FaultClose:       hijacked((*Server).closeConn),
	FaultSlowStream:  hijacked((*Server).slowStream),
	FaultPace:        (*Server).pace,
}

// Stats is what the fault modes saw since the last reset: GET /faults.
type Stats struct {
	// Requests counts fault requests by mode, retries included.
	Requests map[string]int64 `json:"requests"`
	// Open is how many hijacked fault connections are still open.
	Open int64 `json:"open"`
	// Conns are the tagged requests (those with a "user" field), in
	// arrival order.
	Conns []ConnRecord `json:"conns"`
}

// ConnRecord is one tagged fault request's connection.
type ConnRecord struct {
	Tag  string `json:"tag"`
	Mode string `json:"mode"`
	// Arrived and Closed are Unix times in nanoseconds (the same clock as
	// the harness on the same machine); Closed is 0 while the connection
	// is open. Modes that answer through fasthttp record no Closed.
	Arrived int64 `json:"arrived"`
	Closed  int64 `json:"closed"`
	// ByPeer says the client (the proxy) closed the connection before the
	// fake had finished with it.
	ByPeer bool `json:"by_peer"`
}

// maxRecords bounds the tagged connections remembered between resets.
const maxRecords = 100_000

// faultLog is the fake's record of fault requests. It is safe for
// concurrent use.
type faultLog struct {
	mu       sync.Mutex
	requests map[string]int64
	open     int64
	conns    []*ConnRecord
}

func (l *faultLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = map[string]int64{}
	l.conns = nil
}

// arrive counts a request and returns its record, nil when untagged.
func (l *faultLog) arrive(mode, tag string) *ConnRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests[mode]++
	if tag == "" || len(l.conns) >= maxRecords {
		return nil
	}
	r := &ConnRecord{Tag: tag, Mode: mode, Arrived: time.Now().UnixNano()}
	l.conns = append(l.conns, r)
	return r
}

// closedAt marks rec's connection closed at Unix nanoseconds at.
func (l *faultLog) closedAt(rec *ConnRecord, byPeer bool, at int64) {
	if rec == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if rec.Closed == 0 {
		rec.Closed, rec.ByPeer = at, byPeer
	}
}

func (l *faultLog) addOpen(n int64) {
	l.mu.Lock()
	l.open += n
	l.mu.Unlock()
}

func (l *faultLog) stats() []byte {
	l.mu.Lock()
	st := Stats{Requests: make(map[string]int64, len(l.requests)), Open: l.open, Conns: make([]ConnRecord, len(l.conns))}
	for k, v := range l.requests {
		st.Requests[k] = v
	}
	for i, r := range l.conns {
		st.Conns[i] = *r
	}
	l.mu.Unlock()
	b, _ := json.Marshal(st)
	return b
}

func (s *Server) fault(ctx *fasthttp.RequestCtx, f faultFunc, req *request) {
	rec := s.faults.arrive(req.Model, req.User)
	f(s, ctx, req, rec)
}

func (s *Server) status500(ctx *fasthttp.RequestCtx, _ *request, _ *ConnRecord) {
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(fasthttp.StatusInternalServerError)
	ctx.SetBodyString(`{"error":{"message":"fake upstream: fault-500","type":"server_error","param":null,"code":null}}`)
}

func (s *Server) status429(ctx *fasthttp.RequestCtx, _ *request, _ *ConnRecord) {
	ctx.SetContentType("application/json")
	ctx.SetStatusCode(fasthttp.StatusTooManyRequests)
	ctx.Response.Header.Set("Retry-After", "1")
	ctx.SetBodyString(`{"error":{"message":"fake upstream: fault-429, slow down","type":"rate_limit_error","param":null,"code":"rate_limit_exceeded"}}`)
}

// hijackedConn is a fault connection taken over from fasthttp: the fault
// writes raw HTTP on it, and gone closes when the peer hangs up.
type hijackedConn struct {
	net.Conn
	gone   chan struct{}
	goneAt atomic.Int64 // Unix nanoseconds of the peer's close, 0 before
}

// Write fails once the peer has gone, so a fault that writes after the
// peer's close reports it as the peer's, even when the kernel would still
// have taken the bytes.
func (c *hijackedConn) Write(p []byte) (int, error) {
	select {
	case <-c.gone:
		return 0, net.ErrClosed
	default:
	}
	return c.Conn.Write(p)
}

// hijacked runs a raw-connection fault after the handler returns, with no
// response written by fasthttp. A reader goroutine notices the peer's
// close at once (the request was read whole, so anything arriving is its
// end); fasthttp closes the connection when f returns.
//
// f reports whether the peer closed first. Only f decides: a client that
// closes right after reading the whole answer must not count as leaving
// early, and only f knows whether it had finished.
func hijacked(f func(s *Server, c *hijackedConn, req request) (byPeer bool)) faultFunc {
	return func(s *Server, ctx *fasthttp.RequestCtx, req *request, rec *ConnRecord) {
		r := *req
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(c net.Conn) {
			// The server's read deadline for the request is still set.
			_ = c.SetDeadline(time.Time{})
			hc := &hijackedConn{Conn: c, gone: make(chan struct{})}
			s.faults.addOpen(1)
			defer s.faults.addOpen(-1)
			go func() {
				_, _ = io.Copy(io.Discard, c)
				hc.goneAt.Store(time.Now().UnixNano())
				close(hc.gone)
			}()
			byPeer := f(s, hc, r)
			at := time.Now().UnixNano()
			if t := hc.goneAt.Load(); byPeer && t != 0 {
				at = t // when the peer left, not when f noticed
			}
			s.faults.closedAt(rec, byPeer, at)
			// fasthttp recycles c when this returns: stop the reader first.
			_ = c.SetReadDeadline(time.Unix(1, 0))
			<-hc.gone
		})
	}
}

func (s *Server) hang(c *hijackedConn, _ request) bool {
	<-c.gone
	return true
}

func (s *Server) closeConn(*hijackedConn, request) bool { return false }

// sseHead and sseHeadChunked are the raw response head of the hijacked streams.
const (
	sseHead        = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n"
	sseHeadChunked = sseHead + "Transfer-Encoding: chunked\r\n\r\n"
)

func (s *Server) event(model string, i int, finish bool) string {
	m, _ := json.Marshal(model)
	if finish {
		return `data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":` + string(m) + `,"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n"
	}
	return fmt.Sprintf(`data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","created":1700000000,"model":%s,"choices":[{"index":0,"delta":{"content":"part %d "},"finish_reason":null}]}`+"\n\n", m, i)
}

// chunk frames p as one HTTP/1.1 chunk.
func chunk(p string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(p), p) }

// A failed write means the peer has gone: every fault below reports it
// so.

func (s *Server) cut(c *hijackedConn, req request) bool {
	if _, err := io.WriteString(c, sseHead+"\r\n"); err != nil {
		return true
	}
	for i := range 3 {
		time.Sleep(20 * time.Millisecond)
		if _, err := io.WriteString(c, s.event(req.Model, i, false)); err != nil {
			return true
		}
	}
	return false
}

func (s *Server) cutChunked(c *hijackedConn, req request) bool {
	if _, err := io.WriteString(c, sseHeadChunked); err != nil {
		return true
	}
	for i := range 3 {
		time.Sleep(20 * time.Millisecond)
		if _, err := io.WriteString(c, chunk(s.event(req.Model, i, false))); err != nil {
			return true
		}
	}
	// Half a chunk, then the close: the body is cut mid-frame.
	_, err := io.WriteString(c, "40\r\ndata: {\"id\":")
	return err != nil
}

func (s *Server) slowStream(c *hijackedConn, req request) bool {
	if _, err := io.WriteString(c, sseHeadChunked); err != nil {
		return true
	}
	t := time.NewTicker(s.opts.FaultEvery)
	defer t.Stop()
	for i := range s.opts.FaultEvents {
		if i > 0 {
			select {
			case <-c.gone:
				return true
			case <-t.C:
			}
		}
		if _, err := io.WriteString(c, chunk(s.event(req.Model, i, false))); err != nil {
			return true
		}
	}
	select {
	case <-c.gone:
		return true
	case <-t.C:
	}
	_, err := io.WriteString(c, chunk(s.event(req.Model, 0, true)+"data: [DONE]\n\n")+"0\r\n\r\n")
	return err != nil
}

func (s *Server) pace(ctx *fasthttp.RequestCtx, req *request, _ *ConnRecord) {
	model := req.Model
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		for i := range s.opts.FaultEvents {
			if i > 0 {
				time.Sleep(s.opts.FaultEvery)
			}
			if _, err := w.WriteString(s.event(model, i, false)); err != nil {
				return
			}
			if err := w.Flush(); err != nil {
				return // the client went away
			}
		}
		time.Sleep(s.opts.FaultEvery)
		_, _ = w.WriteString(s.event(model, 0, true) + "data: [DONE]\n\n")
		_ = w.Flush()
	})
}

// huge answers with a HugeBytes-long chat completion, with its length or
// chunked, generated as it is written (the fake holds none of it).
func (s *Server) huge(ctx *fasthttp.RequestCtx, req *request, _ *ConnRecord) {
	ctx.SetContentType("application/json")
	size := s.opts.HugeBytes
	r := newHugeBody(size)
	if req.Model == FaultHugeChunked {
		size = -1
	}
	ctx.SetBodyStream(r, size)
}

// fillerBytes is what a huge answer's content is made of.
var fillerBytes = func() (b [32 << 10]byte) {
	for i := range b {
		b[i] = 'x'
	}
	return b
}()

// hugeBody is a chat completion of exactly n bytes whose content is filler.
type hugeBody struct {
	prefix, suffix string
	filler         int // filler bytes still to come
	off            int // bytes of prefix (then suffix) already read
	inSuffix       bool
}

func newHugeBody(n int) *hugeBody {
	b := &hugeBody{prefix: `{"id":"chatcmpl-huge","object":"chat.completion","created":1700000000,"model":"fault-huge","choices":[{"index":0,"message":{"role":"assistant","content":"`,
		suffix: `"},"finish_reason":"stop"}]}`}
	b.filler = max(0, n-len(b.prefix)-len(b.suffix))
	return b
}

func (b *hugeBody) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		switch {
		case !b.inSuffix && b.off < len(b.prefix):
			k := copy(p[n:], b.prefix[b.off:])
			b.off += k
			n += k
		case !b.inSuffix && b.filler > 0:
			k := copy(p[n:min(len(p), n+b.filler)], fillerBytes[:])
			b.filler -= k
			n += k
		case !b.inSuffix:
			b.inSuffix, b.off = true, 0
		case b.off < len(b.suffix):
			k := copy(p[n:], b.suffix[b.off:])
			b.off += k
			n += k
		default:
			if n == 0 {
				return 0, io.EOF
			}
			return n, nil
		}
	}
	return n, nil
}
