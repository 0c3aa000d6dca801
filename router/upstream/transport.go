package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Transports holds the keep-alive connection pools to upstream hosts. One
// Transports is shared by every generation of a config, so a reload keeps
// its warm connections. It is safe for concurrent use.
//
// It drives fasthttp's HostClient connection by connection instead of
// calling HostClient.Do, because Do cannot be cancelled: a client that
// leaves, or a context that ends, must abort the upstream call at once
// (Do would hold it until its timeout), and a stream needs a deadline per
// read (time to first byte and between events), not one for its whole
// length. net/http can do both, at about 40 more allocations a request.
type Transports struct {
	mu    sync.Mutex
	hosts map[string]*fasthttp.HostClient
	// maxConns bounds connections to one host.
	maxConns int
	// events holds *Events, their read buffers and event memory, reused
	// across streams.
	events sync.Pool
}

// NewTransports returns an empty set of connection pools.
func NewTransports() *Transports {
	return &Transports{hosts: map[string]*fasthttp.HostClient{}, maxConns: 4096}
}

// endpoint is where one deployment's requests go.
type endpoint struct {
	hc *fasthttp.HostClient
	// base is api_base without a trailing slash: requests go to base+path.
	base string
}

// endpoint returns the pool for an api_base, creating it on first use.
func (t *Transports) endpoint(base string) (endpoint, error) {
	pu, err := url.Parse(base)
	if err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
		return endpoint{}, errors.New("want an http(s) URL such as https://api.openai.com/v1")
	}
	addr := pu.Host
	if pu.Port() == "" {
		port := "80"
		if pu.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(pu.Hostname(), port)
	}
	key := pu.Scheme + "://" + addr
	t.mu.Lock()
	defer t.mu.Unlock()
	hc, ok := t.hosts[key]
	if !ok {
		hc = &fasthttp.HostClient{
			Addr:                     addr,
			IsTLS:                    pu.Scheme == "https",
			MaxConns:                 t.maxConns,
			MaxIdleConnDuration:      60 * time.Second,
			NoDefaultUserAgentHeader: true,
			DisablePathNormalizing:   true,
			// Waiting for a free connection is better than failing a burst;
			// an attempt's own deadline still bounds the wait.
			MaxConnWaitTimeout: 10 * time.Second,
			// Upstream error messages may quote the request; never put them
			// in our errors.
			SecureErrorLogMessage: true,
		}
		t.hosts[key] = hc
	}
	return endpoint{hc: hc, base: strings.TrimRight(base, "/")}, nil
}

// deadlines of one attempt.
type deadlines struct {
	// total bounds the whole attempt (non-streaming): connect, send, the
	// answer's header and its body.
	total time.Duration
	// idle, when set, bounds instead each wait for the upstream: the first
	// byte of the answer and every read of a stream after it.
	idle time.Duration
}

// errConnClosedIdle means a pooled connection turned out to be closed by
// the upstream before it read the request; the attempt is retried once on
// a new connection, as net/http does.
var errConnClosedIdle = errors.New("upstream closed an idle connection")

// exchange sends req and reads the answer's header; the returned Body
// reads the rest. The caller owns req; resp belongs to the Body.
func (t *Transports) exchange(ctx context.Context, ep endpoint, req *fasthttp.Request, d deadlines, maxBody int) (*Body, error) {
	for try := 0; ; try++ {
		b, err := t.exchangeOnce(ctx, ep, req, d, maxBody)
		if errors.Is(err, errConnClosedIdle) && try == 0 {
			continue
		}
		return b, err
	}
}

func (t *Transports) exchangeOnce(ctx context.Context, ep endpoint, req *fasthttp.Request, d deadlines, maxBody int) (*Body, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	wait := d.total
	if d.idle > 0 {
		wait = d.idle
	}
	deadline := now.Add(wait)
	if cd, ok := ctx.Deadline(); ok && cd.Before(deadline) {
		deadline = cd
	}
	cc, err := ep.hc.AcquireConn(time.Until(deadline), false)
	if err != nil {
		if errors.Is(err, fasthttp.ErrNoFreeConns) {
			return nil, ErrNoFreeConns
		}
		if isTimeout(err) {
			return nil, fmt.Errorf("connecting: %w", ErrTimeout)
		}
		return nil, fmt.Errorf("connecting: %w", err)
	}
	reused := cc.LastUseTime().After(cc.CreatedTime())
	hc := ep.hc
	b := &Body{hc: hc, conn: cc.Conn(), resp: fasthttp.AcquireResponse(), idle: d.idle, max: maxBody,
		finish: func(reuse bool) {
			if reuse {
				hc.ReleaseConn(cc)
			} else {
				hc.CloseConn(cc)
			}
		}}
	b.watch(ctx)
	if err := b.conn.SetDeadline(deadline); err != nil {
		b.discard()
		return nil, fmt.Errorf("connecting: %w", err)
	}
	bw := ep.hc.AcquireWriter(b.conn)
	err = req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	ep.hc.ReleaseWriter(bw)
	if err != nil {
		b.discard()
		if reused && ctx.Err() == nil && !isTimeout(err) {
			return nil, errConnClosedIdle
		}
		return nil, b.ioError("sending the request", err)
	}
	b.br = ep.hc.AcquireReader(b.conn)
	b.resp.StreamBody = true
	if err := b.resp.ReadLimitBody(b.br, 0); err != nil {
		b.discard()
		if reused && errors.Is(err, io.EOF) && ctx.Err() == nil {
			return nil, errConnClosedIdle
		}
		if errors.Is(err, io.EOF) {
			err = errors.New("the upstream closed the connection before answering")
		}
		return nil, b.ioError("reading the answer", err)
	}
	if n := b.resp.Header.ContentLength(); n >= 0 {
		b.left = int64(n)
	} else {
		b.left = -1
	}
	b.stream = b.resp.BodyStream()
	b.status = b.resp.StatusCode()
	return b, nil
}

// Body is an upstream answer's body, read straight from the connection. It
// enforces the attempt's deadlines and size limit, ends with the context,
// and gives its connection back to the pool on Close when it was read to
// the end (else it closes it). It is not safe for concurrent use, except
// that Close may be called while a Read is blocked elsewhere.
type Body struct {
	hc *fasthttp.HostClient
	// finish gives the connection back to its pool (reuse) or closes it.
	// It is a closure because fasthttp's connection type is unexported.
	finish func(reuse bool)
	conn   net.Conn
	resp   *fasthttp.Response
	br     *bufio.Reader
	stream io.Reader
	status int
	stop   func() bool
	idle   time.Duration
	// deadlineSet is when the stream's read deadline was last moved.
	deadlineSet time.Time
	max         int
	read        int
	left        int64 // Content-Length still to come; -1 when not known
	eof         bool
	// cancelled is set (before the connection's deadline is forced into
	// the past) when the context ends, so that a deadline refreshed for
	// the next read cannot undo the cancellation.
	cancelled atomic.Bool
	ctxErr    func() error
	// mu guards reading, closed and released: a Close during a Read
	// forces the read to fail and leaves the release to it.
	mu       sync.Mutex
	reading  bool
	closed   bool
	released bool
}

// watch makes the context's end interrupt any blocked read or write.
func (b *Body) watch(ctx context.Context) {
	b.ctxErr = ctx.Err
	if ctx.Done() == nil {
		return
	}
	conn := b.conn
	b.stop = context.AfterFunc(ctx, func() {
		b.cancelled.Store(true)
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
}

// ioError names what failed, and says so when the context ended it.
func (b *Body) ioError(doing string, err error) error {
	if b.cancelled.Load() || b.ctxErr() != nil {
		if ce := b.ctxErr(); ce != nil {
			return fmt.Errorf("%s: %w", doing, ce)
		}
	}
	if isTimeout(err) {
		return fmt.Errorf("%s: %w", doing, ErrTimeout)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// Status is the upstream's HTTP status.
func (b *Body) Status() int { return b.status }

// ContentLength is the body's length, or -1 when the upstream did not say.
func (b *Body) ContentLength() int64 { return b.left }

// VisitHeaders calls f for each response header. k and v are valid only
// during the call; the headers are gone after Close.
func (b *Body) VisitHeaders(f func(k, v []byte)) {
	if b.resp != nil {
		b.resp.Header.VisitAll(f)
	}
}

// Header returns one response header, or "" (also after Close).
func (b *Body) Header(key string) string {
	if b.resp == nil {
		return ""
	}
	return string(b.resp.Header.Peek(key))
}

// Read reads the body. In a stream every Read may wait up to the idle
// deadline for the upstream; past the size limit Read fails with
// ErrTooLarge.
func (b *Body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, errBodyClosed
	}
	b.reading = true
	b.mu.Unlock()
	n, err := b.readLocked(p)
	b.mu.Lock()
	b.reading = false
	if b.closed && !b.released {
		b.releaseLocked()
	}
	b.mu.Unlock()
	return n, err
}

var errBodyClosed = errors.New("upstream: body read after Close")

func (b *Body) readLocked(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if b.stream == nil {
		b.eof = true
		return 0, io.EOF
	}
	if b.idle > 0 {
		// Moving the deadline costs a timer update; doing it at most every
		// idle/16 stretches the bound by that much at most.
		if now := time.Now(); now.Sub(b.deadlineSet) > b.idle/16 {
			_ = b.conn.SetReadDeadline(now.Add(b.idle))
			b.deadlineSet = now
		}
		if b.cancelled.Load() {
			return 0, b.ioError("reading the answer", context.Canceled)
		}
	}
	if b.max > 0 && b.read >= b.max {
		return 0, ErrTooLarge
	}
	if b.max > 0 && len(p) > b.max-b.read+1 {
		p = p[:b.max-b.read+1]
	}
	n, err := b.stream.Read(p)
	b.read += n
	if b.max > 0 && b.read > b.max {
		return n - (b.read - b.max), ErrTooLarge
	}
	if errors.Is(err, io.EOF) {
		b.eof = true
		return n, io.EOF
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// A chunked stream cut in the middle of a chunk is as cut off as
			// one that ends between events.
			return n, fmt.Errorf("%w: the upstream closed the connection in the middle of the answer", ErrCutOff)
		}
		return n, b.ioError("reading the answer", err)
	}
	return n, nil
}

// Close releases the connection: back to the pool when the body was read
// to its end and the upstream keeps connections alive, else closed. It is
// safe to call more than once and while a Read is blocked elsewhere (the
// read then fails and releases the connection when it returns).
func (b *Body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.stopWatch()
	if b.reading {
		_ = b.conn.SetDeadline(time.Unix(1, 0))
		return nil
	}
	b.releaseLocked()
	return nil
}

// stopWatch ends the context watch. When the context has already ended,
// its callback may still be about to force the connection's deadline into
// the past, so the connection must not go back to the pool.
func (b *Body) stopWatch() {
	if b.stop != nil && !b.stop() {
		b.cancelled.Store(true)
	}
	b.stop = nil
}

// discard drops a body whose exchange failed.
func (b *Body) discard() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.stopWatch()
	b.eof = false
	b.releaseLocked()
}

func (b *Body) releaseLocked() {
	b.released = true
	reuse := b.eof && !b.cancelled.Load() && !b.resp.ConnectionClose()
	if b.resp.IsBodyStream() {
		b.resp.CloseBodyStream()
	}
	if b.br != nil {
		b.hc.ReleaseReader(b.br)
		b.br = nil
	}
	if reuse {
		_ = b.conn.SetDeadline(time.Time{})
	}
	b.finish(reuse)
	fasthttp.ReleaseResponse(b.resp)
	b.resp, b.stream = nil, nil
}
