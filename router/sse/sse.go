// Package sse reads and writes the fields of one server-sent event, as
// the upstream stream reader frames it: lines end in LF and the event in
// a blank line. The upstream client and the stream translators both go
// through it.
package sse

import (
	"bytes"
	"iter"
)

// lines yields the lines of an event without their LF.
func lines(event []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for len(event) > 0 {
			i := bytes.IndexByte(event, '\n')
			if i < 0 {
				i = len(event)
			}
			line := event[:i]
			event = event[min(i+1, len(event)):]
			if !yield(line) {
				return
			}
		}
	}
}

// IsDone reports whether an event is OpenAI's end marker, data: [DONE].
func IsDone(event []byte) bool {
	for line := range lines(event) {
		if v, ok := bytes.CutPrefix(line, []byte("data:")); ok && string(bytes.TrimSpace(v)) == "[DONE]" {
			return true
		}
	}
	return false
}

// Data returns the value of an event's data lines joined with LF, as the
// SSE spec assembles them, appended to dst; ok is false for an event
// without data.
func Data(dst, event []byte) (data []byte, ok bool) {
	for line := range lines(event) {
		v, found := bytes.CutPrefix(line, []byte("data:"))
		if !found {
			if string(line) != "data" {
				continue
			}
			v = nil
		}
		if len(v) > 0 && v[0] == ' ' {
			v = v[1:]
		}
		if ok {
			dst = append(dst, '\n')
		}
		dst = append(dst, v...)
		ok = true
	}
	return dst, ok
}

// Type returns the value of an event's event: line (nil for none, which
// the SSE spec calls "message").
func Type(event []byte) []byte {
	for line := range lines(event) {
		if v, ok := bytes.CutPrefix(line, []byte("event:")); ok {
			return bytes.TrimSpace(v)
		}
	}
	return nil
}

// AppendEvent appends an event with an event: line naming typ and data as
// its one data line (data must not hold a line break, which JSON does
// not), ended by the blank line.
func AppendEvent(dst []byte, typ string, data []byte) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, typ...)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, data...)
	return append(dst, '\n', '\n')
}
