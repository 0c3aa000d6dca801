package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/openai"
)

// attempt is one upstream answer: a status with a whole body, or (for a
// successful stream) a reader of SSE bytes and a release function that
// closes the upstream connection.
type attempt struct {
	status  int
	body    []byte
	header  *fasthttp.ResponseHeader
	stream  io.Reader
	release func()
}

func (a *attempt) close() {
	if a.release != nil {
		a.release()
	}
}

// hopHeaders are connection-level headers never copied between hops
// (RFC 9110 §7.6.1), plus those fasthttp computes itself.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Date": true, "Server": true, "Content-Type": true,
}

// forward sends the request to target's deployments, retrying retryable
// failures with backoff, cooling down deployments that keep failing, and
// moving on to router_settings.fallbacks. It writes the response itself and
// returns the deployment that answered, or an error to write.
func (s *Server) forward(ctx *fasthttp.RequestCtx, start time.Time, target, path string, req *openai.ChatRequest, dec *router.Decision, id uint64) (string, error) {
	ups := s.ups.Load()
	var last error
	timedOut := false
	for _, group := range ups.chain(target) {
		if len(ups.groups[group]) == 0 {
			continue
		}
		tried := map[*deployment]bool{}
		for n := 0; ; n++ {
			d := ups.pick(group, tried)
			if d == nil {
				last = fmt.Errorf("every deployment of %q is cooling down after repeated failures", group)
				break
			}
			d.inFlight.Add(1)
			t0 := time.Now()
			a, err := s.send(d, path, ctx.PostBody(), req)
			d.inFlight.Add(-1)
			s.metrics.observe("autorouter_upstream_seconds", time.Since(t0))
			switch {
			case err == nil && a.status < 400:
				ups.succeeded(d)
				s.respond(ctx, start, a, dec, d, id, target)
				return d.group, nil
			case err == nil && !retryable(a.status):
				// The upstream's own 4xx is the client's to see, unchanged.
				ups.succeeded(d)
				ctx.SetStatusCode(a.status)
				ctx.SetContentType("application/json")
				ctx.SetBody(a.body)
				setRoutingHeaders(&ctx.Response.Header, dec, d)
				a.close()
				return d.group, nil
			case err != nil:
				last = fmt.Errorf("deployment %s: %w", d.id, err)
				timedOut = timedOut || isTimeout(err)
			default:
				last = fmt.Errorf("deployment %s answered %d: %s", d.id, a.status, upstreamMessage(a.body))
				a.close()
			}
			ups.failed(d)
			tried[d] = true
			if n >= d.retries {
				break
			}
			time.Sleep(min(ups.backoff<<n, 2*time.Second))
		}
	}
	status, typ := 502, "upstream_error"
	if timedOut {
		status, typ = 504, "timeout"
	}
	return "", &apiError{status: status, typ: typ, msg: fmt.Sprintf("upstream for model %q failed after retries and fallbacks: %v", target, last)}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// upstreamMessage pulls OpenAI's error message out of an error body.
func upstreamMessage(body []byte) string {
	var env openai.ErrorEnvelope
	if err := jsonUnmarshal(body, &env); err == nil && env.Error.Message != "" {
		return env.Error.Message
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return string(bytes.TrimSpace(body))
}

// send makes one attempt against one deployment.
func (s *Server) send(d *deployment, path string, body []byte, req *openai.ChatRequest) (attempt, error) {
	if d.mock != nil {
		return d.mock.respond(d.model, req, req.Stream), nil
	}
	out, err := rewriteBody(nil, body, d.model)
	if err != nil {
		return attempt{}, badRequest("", "request body is not a JSON object: %v", err)
	}
	freq := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	freq.SetRequestURI(d.base + path)
	freq.Header.SetMethod("POST")
	freq.Header.SetContentType("application/json")
	if k := d.key.Value(); k != "" {
		freq.Header.Set("Authorization", "Bearer "+k)
	}
	if req.Stream {
		freq.Header.Set("Accept", "text/event-stream")
	}
	freq.SetBody(out)
	freq.SetTimeout(d.timeout)
	err = d.client.Do(freq, resp)
	fasthttp.ReleaseRequest(freq)
	if err != nil {
		fasthttp.ReleaseResponse(resp)
		return attempt{}, err
	}
	release := func() {
		resp.CloseBodyStream()
		fasthttp.ReleaseResponse(resp)
	}
	status := resp.StatusCode()
	if req.Stream && status < 400 {
		return attempt{status: status, header: &resp.Header, stream: resp.BodyStream(), release: release}, nil
	}
	b := append([]byte(nil), resp.Body()...)
	a := attempt{status: status, body: b, header: nil}
	release()
	return a, nil
}

// respond writes a successful attempt to the client.
func (s *Server) respond(ctx *fasthttp.RequestCtx, start time.Time, a attempt, dec *router.Decision, d *deployment, id uint64, target string) {
	if a.header != nil {
		a.header.VisitAll(func(k, v []byte) {
			if !hopHeaders[string(k)] {
				ctx.Response.Header.SetBytesKV(k, v)
			}
		})
	}
	setRoutingHeaders(&ctx.Response.Header, dec, d)
	ctx.SetStatusCode(a.status)
	if a.stream == nil {
		ctx.SetContentType("application/json")
		ctx.SetBody(a.body)
		return
	}
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	path := string(ctx.Path())
	// A body stream, not SetBodyStreamWriter: fasthttp writes each Read as
	// one flushed chunk, with no pipe and goroutine in between.
	ctx.SetBodyStream(newSSEStream(a.stream, a.close,
		func() { s.metrics.observe("autorouter_stream_ttfb_seconds", time.Since(start)) },
		func(err error) {
			if err != nil && !errors.Is(err, errClientGone) {
				s.logger.Warn("stream cut off", "id", id, "deployment", d.id, "err", err)
			}
			s.logRequest(id, path, target, dec, d.group, 200, time.Since(start), err)
		}), -1)
}

// nextEventBuffered reports whether r already holds a whole SSE event, one
// ending in a blank line, so that relaying it needs no read from upstream.
func nextEventBuffered(r *bufio.Reader) bool {
	b, _ := r.Peek(r.Buffered())
	return bytes.Contains(b, lf2) || bytes.Contains(b, crlf2)
}

var (
	lf2        = []byte("\n\n")
	crlf2      = []byte("\n\r\n")
	dataPrefix = []byte("data:")
	doneMarker = []byte("[DONE]")
	// errClientGone means the client stopped reading; the upstream is then
	// closed, which cancels its generation.
	errClientGone = errors.New("client went away")
)

// sseStream relays an upstream SSE body to the client as fasthttp reads
// it. Each Read hands out whole events, as many as arrived together: an
// event is never held back waiting for a later one, and events already
// buffered go out in one write instead of one each. A stream that ends
// without "data: [DONE]" was cut off: the client gets a final error event
// rather than a silent, truncated success.
type sseStream struct {
	r         *bufio.Reader
	release   func()
	firstByte func()
	// end is called once, when fasthttp closes the stream, with nil, the
	// cut-off cause, or errClientGone.
	end       func(error)
	out       []byte // bytes ready for the next Read
	buf       []byte
	sawDone   bool
	sentFirst bool
	finished  bool
	cause     error
	closed    bool
}

func newSSEStream(upstream io.Reader, release, firstByte func(), end func(error)) *sseStream {
	return &sseStream{r: bufio.NewReaderSize(upstream, 16<<10), release: release, firstByte: firstByte, end: end}
}

// Read implements io.Reader.
func (s *sseStream) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.finished {
			return 0, io.EOF
		}
		s.fill()
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	if !s.sentFirst {
		s.sentFirst = true
		s.firstByte()
	}
	return n, nil
}

// fill reads the next events: up to an event end with no further whole
// event buffered, or to the end of the upstream body.
func (s *sseStream) fill() {
	s.buf = s.buf[:0]
	for {
		line, err := s.r.ReadSlice('\n')
		if len(line) > 0 {
			isDone := bytes.HasPrefix(line, dataPrefix) && bytes.Equal(bytes.TrimSpace(line[len(dataPrefix):]), doneMarker)
			s.sawDone = s.sawDone || isDone
			s.buf = append(s.buf, line...)
			// An event ends at a blank line; [DONE] goes out at once unless
			// its blank line is already here, in case the upstream sends
			// none before closing.
			endOfEvent := len(bytes.TrimSpace(line)) == 0 && !nextEventBuffered(s.r)
			if endOfEvent || (isDone && s.r.Buffered() == 0) {
				break
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			s.finished = true
			if s.sawDone && errors.Is(err, io.EOF) {
				break
			}
			cause := "upstream closed the stream before data: [DONE]"
			if !errors.Is(err, io.EOF) {
				cause = "upstream stream failed: " + err.Error()
			}
			s.cause = errors.New(cause)
			s.buf = fmt.Appendf(s.buf, "\ndata: {\"error\":{\"message\":%q,\"type\":\"upstream_error\",\"param\":null,\"code\":\"stream_cut_off\"}}\n\n", cause)
			break
		}
	}
	s.out = s.buf
}

// CloseWithError is called by fasthttp when the response is done: err is
// nil after the whole stream was written, or the write error when the
// client went away. Closing the upstream body cancels its generation.
func (s *sseStream) CloseWithError(err error) error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.release()
	switch {
	case err != nil:
		s.end(errClientGone)
	case !s.finished:
		s.end(errClientGone) // fasthttp stopped reading early
	default:
		s.end(s.cause)
	}
	return nil
}
