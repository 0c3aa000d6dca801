package upstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

// Events reads server-sent events from an upstream stream, one whole event
// at a time. Lines may end in LF, CRLF or a lone CR; each event comes out
// with LF line endings and a blank line after it, so relaying it needs no
// further framing. Lines and events are bounded: one larger than the limit
// ends the stream with ErrEventTooLarge instead of growing a buffer.
//
// An Events is not safe for concurrent use.
type Events struct {
	r      *bufio.Reader
	max    int
	done   func(event []byte) bool
	event  []byte // the event being assembled; returned by Next
	skipLF bool   // the last line ended in CR; a following LF belongs to it
	// peeked is set when event holds an event read ahead (to learn that
	// the stream started) that Next returns before reading more.
	peeked  bool
	sawDone bool
	err     error
	pool    *sync.Pool
}

// Errors ending a stream.
var (
	// ErrCutOff means the upstream ended the stream before its end marker
	// (data: [DONE] for OpenAI's APIs).
	ErrCutOff = errors.New("upstream: stream ended before its end marker (cut off)")
	// ErrEventTooLarge means one event or line exceeded the size limit
	// (general_settings.max_sse_event_bytes).
	ErrEventTooLarge = errors.New("upstream: server-sent event larger than the limit (general_settings.max_sse_event_bytes)")
)

// NewEvents reads events from r. maxEvent bounds one event in bytes (and so
// one line); done reports whether an event ends the stream.
func NewEvents(r io.Reader, maxEvent int, done func(event []byte) bool) *Events {
	return newEvents(nil, r, maxEvent, done)
}

// newEvents is NewEvents reusing pooled memory when pool is set; release
// gives it back.
func newEvents(pool *sync.Pool, r io.Reader, maxEvent int, done func(event []byte) bool) *Events {
	if maxEvent <= 0 {
		maxEvent = 4 << 20
	}
	var e *Events
	if pool != nil {
		e, _ = pool.Get().(*Events)
	}
	if e == nil {
		e = &Events{r: bufio.NewReaderSize(r, 16<<10)}
	} else {
		e.r.Reset(r)
	}
	e.max, e.done, e.pool = maxEvent, done, pool
	return e
}

// release resets e and gives it back to its pool. e must not be used
// afterwards.
func (e *Events) release() {
	if e.pool == nil {
		return
	}
	e.r.Reset(nil)
	if cap(e.event) > 64<<10 {
		e.event = nil // do not keep one huge event's memory around
	}
	pool := e.pool
	*e = Events{r: e.r, event: e.event[:0]}
	pool.Put(e)
}

// Next returns the next event, including comment-only events (keep-alive
// pings). The slice is valid until the following call. After the end marker
// and the end of the body it returns io.EOF; when the body ends without the
// marker it returns ErrCutOff; other read errors are returned as they are.
func (e *Events) Next() ([]byte, error) {
	if e.peeked {
		e.peeked = false
		return e.event, nil
	}
	if e.err != nil {
		return nil, e.err
	}
	ev, err := e.read()
	if err != nil {
		e.err = err
		return nil, err
	}
	return ev, nil
}

// Peek reads the first event ahead and keeps it for Next, so a caller can
// learn that the stream has really started (and retry elsewhere if not)
// before it commits to relaying it.
func (e *Events) Peek() error {
	if e.peeked {
		return nil
	}
	if _, err := e.Next(); err != nil {
		return err
	}
	e.peeked = true
	return nil
}

// Done reports whether the end marker has been seen.
func (e *Events) Done() bool { return e.sawDone }

// Ready reports whether a whole event is already buffered, so that Next
// will not wait on the upstream. It errs on the side of false.
func (e *Events) Ready() bool {
	if e.peeked {
		return true
	}
	if e.err != nil {
		return false
	}
	b, _ := e.r.Peek(e.r.Buffered())
	return bytes.Contains(b, lf2) || bytes.Contains(b, crlf2) || bytes.Contains(b, cr2)
}

var (
	lf2   = []byte("\n\n")
	crlf2 = []byte("\n\r\n")
	cr2   = []byte("\r\r")
)

// read assembles one event from lines until a blank line ends it.
func (e *Events) read() ([]byte, error) {
	e.event = e.event[:0]
	for {
		start := len(e.event)
		err := e.line()
		line := e.event[start:]
		switch {
		case err == nil && len(line) == 0:
			if start == 0 {
				continue // blank lines between events
			}
			e.event = append(e.event, '\n')
			if e.done != nil && e.done(e.event) {
				e.sawDone = true
			}
			return e.event, nil
		case err == nil:
			e.event = append(e.event, '\n')
			if len(e.event) > e.max {
				return nil, ErrEventTooLarge
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return nil, err
		}
		// The body ended. A last event without its blank line still counts,
		// as browsers' EventSource does not, but upstreams that close right
		// after "data: [DONE]\n" are common.
		if len(line) > 0 {
			e.event = append(e.event, '\n')
		}
		if len(e.event) > 0 {
			e.event = append(e.event, '\n')
			if e.done != nil && e.done(e.event) {
				e.sawDone = true
			}
			return e.event, nil
		}
		if e.sawDone || e.done == nil {
			return nil, io.EOF
		}
		return nil, ErrCutOff
	}
}

// line appends the next line, without its terminator, to e.event. It
// returns io.EOF at the end of the body (with any unterminated line's bytes
// appended) and ErrEventTooLarge past the limit.
func (e *Events) line() error {
	for {
		buf, err := e.r.Peek(max(1, e.r.Buffered()))
		if len(buf) == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return err
		}
		if e.skipLF {
			e.skipLF = false
			if buf[0] == '\n' {
				e.r.Discard(1)
				continue
			}
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if len(e.event)+len(buf) > e.max {
				return ErrEventTooLarge
			}
			e.event = append(e.event, buf...)
			e.r.Discard(len(buf))
			continue
		}
		if len(e.event)+i > e.max {
			return ErrEventTooLarge
		}
		e.event = append(e.event, buf[:i]...)
		e.skipLF = buf[i] == '\r'
		e.r.Discard(i + 1)
		return nil
	}
}
