package proxy

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// limitListener guards the accept loop of a public-facing proxy:
//
//   - running out of file descriptors (EMFILE, ENFILE) or another
//     temporary accept error backs off and retries, as net/http does,
//     instead of ending Serve (fasthttp's own loop returns on it, and the
//     process then exits);
//   - at most max connections are open: past it the connection idle the
//     longest (between requests, or still sending one) is closed to make
//     room, so that silent or slow clients cannot lock others out, and
//     when every connection is busy in a request the new one gets a 503;
//   - at most perIP connections come from one address (0: no limit), past
//     which a new one gets a 429;
//   - every write to a client has a deadline, so that a client that stops
//     reading frees its connection instead of holding it for good.
type limitListener struct {
	net.Listener
	max, perIP   int
	writeTimeout time.Duration
	logger       *slog.Logger
	onReject     func(reason string)

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	byIP  map[string]int
	// lastLog rate-limits the accept-error and rejection log lines.
	lastLog map[string]time.Time
}

func newLimitListener(ln net.Listener, max, perIP int, writeTimeout time.Duration, logger *slog.Logger, onReject func(string)) *limitListener {
	return &limitListener{Listener: ln, max: max, perIP: perIP, writeTimeout: writeTimeout, logger: logger, onReject: onReject,
		conns: map[*trackedConn]struct{}{}, byIP: map[string]int{}, lastLog: map[string]time.Time{}}
}

// Accept returns the next connection, backing off on temporary errors.
func (l *limitListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !temporary(err) {
				return nil, err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.logEvery("accept", "accepting connections failed; backing off and retrying (raise the open-file limit, ulimit -n, or lower general_settings.max_connections)",
				"err", err.Error(), "retry_in", delay.String())
			time.Sleep(delay)
			continue
		}
		delay = 0
		if tc := l.admit(c); tc != nil {
			return tc, nil
		}
	}
}

// temporary reports whether an accept error will likely pass: descriptors
// running out, aborted handshakes, kernel buffers.
func temporary(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// admit applies the limits to a new connection; nil means it was refused.
func (l *limitListener) admit(c net.Conn) *trackedConn {
	ip := hostOf(c.RemoteAddr())
	l.mu.Lock()
	if l.perIP > 0 && l.byIP[ip] >= l.perIP {
		l.mu.Unlock()
		l.refuse(c, "per_ip", "HTTP/1.1 429 Too Many Requests", "too many connections from this address (general_settings.max_connections_per_ip)")
		return nil
	}
	var evict *trackedConn
	if len(l.conns) >= l.max {
		for tc := range l.conns {
			if tc.busy.Load() == 0 && (evict == nil || tc.lastActive.Load() < evict.lastActive.Load()) {
				evict = tc
			}
		}
		if evict == nil {
			l.mu.Unlock()
			l.refuse(c, "full", "HTTP/1.1 503 Service Unavailable", "the server is at its connection limit (general_settings.max_connections)")
			return nil
		}
		l.forgetLocked(evict)
	}
	tc := &trackedConn{Conn: c, l: l, ip: ip, fd: -1}
	tc.lastActive.Store(time.Now().UnixNano())
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { tc.fd = int(fd) })
		}
	}
	l.conns[tc] = struct{}{}
	l.byIP[ip]++
	l.mu.Unlock()
	if evict != nil {
		l.onReject("evicted_idle")
		l.logEvery("evict", "connection limit reached; closed the longest idle connection to admit a new one (general_settings.max_connections)",
			"max_connections", l.max)
		evict.Conn.Close()
	}
	return tc
}

// refuse answers a refused connection with a bare status line and closes it.
func (l *limitListener) refuse(c net.Conn, reason, statusLine, why string) {
	l.onReject(reason)
	l.logEvery("refuse-"+reason, "connection refused: "+why)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(statusLine + "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
	_ = c.Close()
}

func (l *limitListener) forgetLocked(tc *trackedConn) {
	if _, ok := l.conns[tc]; !ok {
		return
	}
	delete(l.conns, tc)
	if l.byIP[tc.ip]--; l.byIP[tc.ip] <= 0 {
		delete(l.byIP, tc.ip)
	}
}

// open counts the connections open now.
func (l *limitListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// logEvery logs key's message at most once every ten seconds.
func (l *limitListener) logEvery(key, msg string, args ...any) {
	l.mu.Lock()
	last, ok := l.lastLog[key]
	now := time.Now()
	if ok && now.Sub(last) < 10*time.Second {
		l.mu.Unlock()
		return
	}
	l.lastLog[key] = now
	l.mu.Unlock()
	l.logger.Warn(msg, args...)
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return string(ta.IP.To16())
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// trackedConn is a client connection the listener counts. busy is above
// zero while a request on it is being answered, which keeps it from being
// evicted.
type trackedConn struct {
	net.Conn
	l          *limitListener
	ip         string
	fd         int
	busy       atomic.Int32
	lastActive atomic.Int64
	closed     atomic.Bool
}

// Write bounds each write by the write timeout: a client that stops
// reading is cut off, while a long stream that keeps being read is not.
func (c *trackedConn) Write(p []byte) (int, error) {
	if c.l.writeTimeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.l.writeTimeout))
	}
	return c.Conn.Write(p)
}

// Read marks the connection active.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.lastActive.Store(time.Now().UnixNano())
	}
	return n, err
}

// Close forgets the connection and closes it.
func (c *trackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.mu.Lock()
		c.l.forgetLocked(c)
		c.l.mu.Unlock()
	}
	return c.Conn.Close()
}

// SetWriteDeadline is ignored: Write sets its own per-write deadline, and
// fasthttp's whole-response deadline would cut long streams.
func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	if c.l.writeTimeout > 0 {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// enter and leave bracket a request being answered.
func (c *trackedConn) enter() { c.busy.Add(1) }
func (c *trackedConn) leave() {
	c.lastActive.Store(time.Now().UnixNano())
	c.busy.Add(-1)
}
