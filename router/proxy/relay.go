package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/autorouter/autorouter/router/upstream"
)

// relay is an upstream stream as the body fasthttp writes to the client,
// one flushed chunk per Read. Each Read hands out whole events, as many as
// arrived together: an event is never held back waiting for a later one,
// and events already buffered go out in one write instead of one each. A
// stream that cannot finish (cut off upstream, stalled past
// stream_timeout, an oversized event, the server shutting down) ends with
// a final error event in its API's format, never a silent truncation.
type relay struct{ rs *reqState }

// maxChunk bounds how many buffered events one Read batches.
const maxChunk = 64 << 10

func (r relay) Read(p []byte) (n int, err error) {
	rs := r.rs
	defer func() {
		// A panic here would kill the connection's goroutine and every
		// stream on the process with it; end this stream instead.
		if v := recover(); v != nil {
			rs.s.logger.Error("panic relaying a stream; ended it", "id", rs.id, "panic", fmt.Sprint(v))
			rs.err = fmt.Errorf("panic: %v", v)
			rs.finished, rs.out = true, nil
			n, err = 0, io.EOF
		}
	}()
	for len(rs.out) == 0 {
		if rs.finished {
			return 0, io.EOF
		}
		rs.fill()
	}
	n = copy(p, rs.out)
	rs.out = rs.out[n:]
	if !rs.sentFirst {
		rs.sentFirst = true
		rs.s.metrics.ttfb.Observe(time.Since(rs.start).Seconds())
	}
	return n, nil
}

// fill reads the next events: at least one, then every further whole
// event already buffered.
func (rs *reqState) fill() {
	rs.buf = rs.buf[:0]
	ev := rs.resp.Events
	for {
		e, err := ev.Next()
		if err != nil {
			rs.finished = true
			if !errors.Is(err, io.EOF) {
				rs.endWithError(err)
			}
			break
		}
		rs.buf = append(rs.buf, e...)
		if !ev.Ready() || len(rs.buf) >= maxChunk {
			break
		}
	}
	rs.out = rs.buf
}

// endWithError appends the stream's final error event.
func (rs *reqState) endWithError(err error) {
	code, msg := "stream_error", "upstream stream failed: "+err.Error()
	cause := context.Cause(rs.ctx)
	switch {
	case errors.Is(cause, errShutdown):
		code, msg = "server_shutdown", "the server is shutting down; the stream was ended before it finished"
		err = errShutdown
	case errors.Is(cause, errClientGone):
		err = errClientGone
	case errors.Is(err, upstream.ErrCutOff):
		code, msg = "stream_cut_off", "upstream closed the stream before data: [DONE]"
	case errors.Is(err, upstream.ErrTimeout):
		code, msg = "stream_timeout", "upstream sent nothing within stream_timeout"
	case errors.Is(err, upstream.ErrEventTooLarge):
		code, msg = "event_too_large", err.Error()
	}
	rs.err = err
	if rs.status == 200 && !errors.Is(err, errClientGone) {
		rs.s.logger.Warn("stream ended early", "id", rs.id, "code", code)
	}
	rs.buf = appendErrorEvent(rs.buf, rs.api, code, msg)
}

// appendErrorEvent writes an error event in the API's own stream format.
func appendErrorEvent(dst []byte, api upstream.API, code, msg string) []byte {
	m, _ := json.Marshal(msg)
	c, _ := json.Marshal(code)
	switch api {
	case upstream.Messages:
		dst = append(dst, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"...)
		dst = append(dst, m...)
		return append(dst, "}}\n\n"...)
	case upstream.Responses:
		dst = append(dst, "event: error\ndata: {\"type\":\"error\",\"code\":"...)
		dst = append(dst, c...)
		dst = append(dst, ",\"message\":"...)
		dst = append(dst, m...)
		return append(dst, ",\"param\":null}\n\n"...)
	}
	dst = append(dst, "data: {\"error\":{\"message\":"...)
	dst = append(dst, m...)
	dst = append(dst, ",\"type\":\"upstream_error\",\"param\":null,\"code\":"...)
	dst = append(dst, c...)
	return append(dst, "}}\n\n"...)
}

// CloseWithError is called by fasthttp when the response is done: err is
// nil after the whole stream was written, or the write error when the
// client went away. Closing the upstream answer cancels its generation.
func (r relay) CloseWithError(err error) error {
	rs := r.rs
	if err != nil || !rs.finished {
		rs.err = errClientGone
	}
	rs.streamEnded()
	return nil
}
