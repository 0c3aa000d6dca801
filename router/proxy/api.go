package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/upstream"
)

// reqState is one API request from decoding to its last byte. For a
// response written after the handler returns (a stream, or a large body
// passed through) it is the body fasthttp reads, and ends when fasthttp
// closes it; otherwise it ends with the handler.
type reqState struct {
	s        *Server
	id       uint64
	start    time.Time
	endpoint string
	api      upstream.API
	fctx     *fasthttp.RequestCtx
	conn     *trackedConn
	snap     *router.Snapshot
	body     openai.Body
	ctx      context.Context
	cancel   context.CancelCauseFunc
	model    string // the requested model, as a metrics label
	dec      router.Decision
	resp     *upstream.Response
	status   int
	err      error
	// relay state
	out, buf  []byte
	sentFirst bool
	finished  bool
	ended     bool
}

// begin starts a request's state and counts it in flight.
func (s *Server) begin(ctx *fasthttp.RequestCtx, snap *router.Snapshot, endpoint string, api upstream.API) *reqState {
	rs, _ := s.reqs.Get().(*reqState)
	if rs == nil {
		rs = new(reqState)
	}
	// Keep the body's and the relay's memory; reset everything else.
	body, buf := rs.body, rs.buf[:0]
	*rs = reqState{s: s, id: s.reqID.Add(1), start: time.Now(), endpoint: endpoint, api: api, fctx: ctx, snap: snap, model: "none",
		body: body, buf: buf}
	rs.ctx, rs.cancel = context.WithCancelCause(context.Background())
	if k := ctx.Request.Header.Peek("x-autorouter-session"); len(k) > 0 && len(k) <= 256 {
		rs.ctx = router.WithSession(rs.ctx, string(k))
	}
	if tc, ok := ctx.Conn().(*trackedConn); ok {
		rs.conn = tc
		tc.enter()
		s.gone.watch(rs, tc.fd)
	}
	s.metrics.inFlight.Inc()
	return rs
}

// clientGone is called by the watcher when the client hangs up.
func (rs *reqState) clientGone() { rs.cancel(errClientGone) }

// end finishes the request: it releases the upstream answer and the
// snapshot, and counts and logs the request.
func (rs *reqState) end() {
	if rs.ended {
		return
	}
	rs.ended = true
	s := rs.s
	s.gone.unwatch(rs)
	cause := context.Cause(rs.ctx)
	// Close the answer before ending the context, so that a complete
	// answer's connection goes back to the pool.
	if rs.resp != nil {
		rs.resp.Close()
	}
	rs.cancel(nil)
	if rs.conn != nil {
		rs.conn.leave()
	}
	took := time.Since(rs.start)
	s.metrics.inFlight.Dec()
	route := ""
	if rs.dec.Router != "" {
		route = rs.dec.Route
		if rs.dec.Fallback {
			route = "default"
		}
	}
	s.metrics.request(rs.endpoint, rs.model, route, rs.status, took)
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs, slog.Uint64("id", rs.id), slog.String("path", rs.endpoint), slog.String("model", rs.body.Model))
	if rs.dec.Router != "" {
		attrs = append(attrs, slog.String("route", route), slog.Float64("score", float64(rs.dec.Score)),
			slog.Float64("embed_ms", float64(rs.dec.EmbedTime.Microseconds())/1000))
		if rs.dec.Fallback {
			attrs = append(attrs, slog.String("fallback", rs.dec.Reason))
		}
	}
	if rs.resp != nil {
		attrs = append(attrs, slog.String("target", rs.resp.Group), slog.String("deployment", rs.resp.Deployment.ID))
	}
	attrs = append(attrs, slog.Int("status", rs.status), slog.Float64("ms", float64(took.Microseconds())/1000))
	level := slog.LevelInfo
	if rs.err != nil {
		attrs = append(attrs, slog.String("err", rs.err.Error()))
	}
	if errors.Is(cause, errShutdown) {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("ended_by", "shutdown"))
	}
	s.logger.LogAttrs(context.Background(), level, "request", attrs...)
	rs.snap.Release()
	rs.snap = nil
	// Nothing holds rs any more: the watcher and the stream registry have
	// let go, and fasthttp reads a body stream no further once closed.
	rs.fctx, rs.resp, rs.conn, rs.err, rs.out = nil, nil, nil, nil, nil
	rs.body.Clear()
	s.reqs.Put(rs)
}

// fail writes err as the request's answer and ends it.
func (rs *reqState) fail(err error) {
	if c := context.Cause(rs.ctx); c != nil && errors.Is(c, errClientGone) {
		err = errClientGone
	}
	var ae *apiError
	if rs.api == upstream.Messages {
		ae = writeAnthropicError(rs.fctx, err)
	} else {
		ae = writeError(rs.fctx, err)
	}
	rs.status, rs.err = ae.status, err
	rs.end()
}

// beginBody begins a request whose JSON body names a model: it reads the
// body in one pass and fails the request (ok false) when it is not JSON or
// has no model.
func (s *Server) beginBody(ctx *fasthttp.RequestCtx, snap *router.Snapshot, endpoint string, api upstream.API) (rs *reqState, ok bool) {
	rs = s.begin(ctx, snap, endpoint, api)
	if err := rs.body.Reset(ctx.PostBody()); err != nil {
		rs.fail(bodyError(err))
		return rs, false
	}
	if rs.body.Model == "" {
		rs.fail(badRequest("model", "missing required field: model"))
		return rs, false
	}
	rs.model = modelLabel(snap, rs.body.Model)
	return rs, true
}

// serveAPI serves a chat or text completion: decode, call the library,
// write the answer.
func (s *Server) serveAPI(ctx *fasthttp.RequestCtx, snap *router.Snapshot, endpoint string, api upstream.API) {
	rs, ok := s.beginBody(ctx, snap, endpoint, api)
	if !ok {
		return
	}
	switch api {
	case upstream.Chat, upstream.Messages:
		if m := rs.body.Field("messages"); len(m) == 0 || m[0] != '[' || len(m) < 3 {
			rs.fail(badRequest("messages", "missing required field: messages (a non-empty array)"))
			return
		}
	case upstream.Responses:
		if in := rs.body.Field("input"); len(in) == 0 || string(in) == "null" {
			rs.fail(badRequest("input", "missing required field: input (a string or a list of input items)"))
			return
		}
	}
	t0 := time.Now()
	resp, dec, err := snap.Call(rs.ctx, api, &rs.body)
	rs.dec = dec
	s.observeDecision(&dec)
	if err != nil {
		rs.fail(err)
		return
	}
	s.metrics.upstream.Observe(time.Since(t0).Seconds())
	rs.respond(resp)
}

// respond writes a successful call's answer: a stream relayed event by
// event, a small body copied whole, a large one passed through.
func (rs *reqState) respond(resp *upstream.Response) {
	ctx := rs.fctx
	rs.resp = resp
	rs.writeHead()
	switch {
	case resp.Events != nil:
		ctx.SetContentType("text/event-stream")
		ctx.Response.Header.Set("Cache-Control", "no-cache")
		ctx.Response.Header.Set("X-Accel-Buffering", "no")
		rs.stream(relay{rs}, -1)
	case resp.ContentLength >= 0 && resp.ContentLength <= inlineBody:
		// Small answers are copied whole, so that an upstream failing in
		// the middle still gets the client a clean 502.
		if err := rs.s.copyBody(ctx, resp.Body); err != nil {
			ctx.Response.ResetBody()
			rs.fail(err)
			return
		}
		rs.end()
	default:
		rs.stream(passthrough{rs}, int(resp.ContentLength))
	}
}

// copyBody appends all of r to the response body through a pooled buffer
// (io.Copy would allocate 32 KiB a request).
func (s *Server) copyBody(ctx *fasthttp.RequestCtx, r io.Reader) error {
	bp := s.copyBufs.Get().(*[]byte)
	defer s.copyBufs.Put(bp)
	for {
		n, err := r.Read(*bp)
		ctx.Response.AppendBody((*bp)[:n])
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// inlineBody is the largest non-streaming answer copied whole; larger ones
// are passed through as they arrive, never held in memory.
const inlineBody = 1 << 20

// stream hands the rest of the response to fasthttp, which reads r after
// the handler returns; the request ends when fasthttp closes it.
func (rs *reqState) stream(r io.Reader, size int) {
	s := rs.s
	s.streamsMu.Lock()
	s.streams[rs] = struct{}{}
	s.streamsWG.Add(1)
	s.streamsMu.Unlock()
	rs.fctx.SetBodyStream(r, size)
}

// streamEnded removes a finished stream from the shutdown registry.
func (rs *reqState) streamEnded() {
	s := rs.s
	s.streamsMu.Lock()
	delete(s.streams, rs)
	s.streamsMu.Unlock()
	rs.end()
	s.streamsWG.Done()
}

// hopHeaders are connection-level headers never copied between hops
// (RFC 9110 §7.6.1), plus those the proxy sets itself.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Date": true, "Server": true, "Content-Type": true, "Set-Cookie": true,
	"X-Autorouter-Route": true, "X-Autorouter-Score": true, "X-Autorouter-Model": true, "X-Litellm-Model-Id": true,
}

// writeHead copies the upstream's status and headers and adds the routing
// headers.
func (rs *reqState) writeHead() {
	h := &rs.fctx.Response.Header
	rs.resp.VisitHeaders(func(k, v []byte) {
		if !hopHeaders[string(k)] {
			h.SetBytesKV(k, v)
		}
	})
	rs.status = rs.resp.Status
	rs.fctx.SetStatusCode(rs.resp.Status)
	rs.fctx.SetContentType("application/json")
	setRoutingHeaders(h, &rs.dec, rs.resp)
}

// setRoutingHeaders tells the client what routing decided and who answered.
func setRoutingHeaders(h *fasthttp.ResponseHeader, dec *router.Decision, resp *upstream.Response) {
	if dec.Router != "" {
		route := dec.Route
		if dec.Fallback {
			route = "default"
		}
		h.Set("x-autorouter-route", route)
		switch {
		case dec.Session:
			h.Set("x-autorouter-cache", "session")
		case dec.Cached:
			h.Set("x-autorouter-cache", "hit")
		default:
			h.Set("x-autorouter-cache", "miss")
		}
		var b [16]byte
		h.SetBytesV("x-autorouter-score", strconv.AppendFloat(b[:0], float64(dec.Score), 'f', 4, 32))
	}
	if resp != nil {
		h.Set("x-autorouter-model", resp.Group)
		h.Set("x-litellm-model-id", resp.Deployment.ID)
	}
}

// observeDecision records a routing decision's latency and fallback.
func (s *Server) observeDecision(d *router.Decision) {
	if d.Router == "" {
		return
	}
	s.metrics.embed.Observe(d.EmbedTime.Seconds())
	s.metrics.score.Observe(d.ScoreTime.Seconds())
	if d.Fallback {
		s.metrics.fallbacks.WithLabelValues(d.Router, d.Reason).Inc()
	}
}

// modelLabel is the model as a metrics label: a configured name, or
// "unknown", so that clients cannot mint series.
func modelLabel(snap *router.Snapshot, model string) string {
	if g := snap.Config().Group(model); len(g) > 0 {
		return g[0].ModelName
	}
	return "unknown"
}

// bodyError turns a body decoding error into a 400.
func bodyError(err error) error {
	var fe *openai.FieldError
	if errors.As(err, &fe) {
		return badRequest(fe.Param, "%s", fe.Error())
	}
	return badRequest("", "request body is not valid JSON for this endpoint: %v", err)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, err)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// passthrough relays a large non-streaming answer as it arrives.
type passthrough struct{ rs *reqState }

func (p passthrough) Read(b []byte) (int, error) {
	n, err := p.rs.resp.Body.Read(b)
	if err != nil && !errors.Is(err, io.EOF) {
		p.rs.err = err
	}
	return n, err
}

// CloseWithError is called by fasthttp once the body is written or the
// client has gone.
func (p passthrough) CloseWithError(err error) error {
	if err != nil && p.rs.err == nil {
		p.rs.err = errClientGone
	}
	p.rs.streamEnded()
	return nil
}
