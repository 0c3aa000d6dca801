package upstream

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/autorouter/autorouter/router/sse"
)

func readAll(t *testing.T, e *Events) ([]string, error) {
	t.Helper()
	var out []string
	for {
		ev, err := e.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, string(ev))
	}
}

func TestEventsLineEndings(t *testing.T) {
	want := []string{"data: {\"a\":1}\n\n", "event: x\ndata: 2\n\n", ": ping\n\n", "data: [DONE]\n\n"}
	for name, in := range map[string]string{
		"LF":      "data: {\"a\":1}\n\nevent: x\ndata: 2\n\n: ping\n\ndata: [DONE]\n\n",
		"CRLF":    "data: {\"a\":1}\r\n\r\nevent: x\r\ndata: 2\r\n\r\n: ping\r\n\r\ndata: [DONE]\r\n\r\n",
		"CR":      "data: {\"a\":1}\r\revent: x\rdata: 2\r\r: ping\r\rdata: [DONE]\r\r",
		"mixed":   "\n\ndata: {\"a\":1}\r\n\nevent: x\rdata: 2\n\r\n: ping\n\ndata: [DONE]\n",
		"no last": "data: {\"a\":1}\n\nevent: x\ndata: 2\n\n: ping\n\ndata: [DONE]",
	} {
		t.Run(name, func(t *testing.T) {
			e := NewEvents(strings.NewReader(in), 1<<10, sse.IsDone)
			got, err := readAll(t, e)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Fatalf("got %q\nwant %q", got, want)
			}
		})
	}
}

func TestEventsCutOff(t *testing.T) {
	e := NewEvents(strings.NewReader("data: 1\n\ndata: 2\n\n"), 1<<10, sse.IsDone)
	got, err := readAll(t, e)
	if !errors.Is(err, ErrCutOff) || len(got) != 2 {
		t.Fatalf("got %q, %v; want two events then ErrCutOff", got, err)
	}
}

// TestEventsBounded feeds a stream whose one "line" never ends (a CR-less,
// LF-less flood, and a huge event of many short lines): the reader must
// stop at the limit instead of buffering all of it.
func TestEventsBounded(t *testing.T) {
	for name, r := range map[string]io.Reader{
		"one endless line":  io.MultiReader(strings.NewReader("data: "), &repeat{b: 'x'}),
		"one endless event": io.MultiReader(strings.NewReader("data: a\n"), &repeat{s: "data: more\n"}),
	} {
		t.Run(name, func(t *testing.T) {
			e := NewEvents(r, 64<<10, sse.IsDone)
			done := make(chan error, 1)
			go func() { _, err := e.Next(); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, ErrEventTooLarge) {
					t.Fatalf("err = %v, want ErrEventTooLarge", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the reader kept buffering past the limit")
			}
		})
	}
}

// repeat is an endless reader of one byte or one string.
type repeat struct {
	b byte
	s string
	n int
}

func (r *repeat) Read(p []byte) (int, error) {
	for i := range p {
		if r.s != "" {
			p[i] = r.s[r.n%len(r.s)]
			r.n++
		} else {
			p[i] = r.b
		}
	}
	return len(p), nil
}

func TestEventsReadyAndPeek(t *testing.T) {
	e := NewEvents(strings.NewReader("data: 1\n\ndata: 2\n\ndata: [DONE]\n\n"), 1<<10, sse.IsDone)
	if err := e.Peek(); err != nil {
		t.Fatal(err)
	}
	if !e.Ready() {
		t.Fatal("a peeked event is ready")
	}
	got, err := readAll(t, e)
	if err != nil || len(got) != 3 || got[0] != "data: 1\n\n" || !e.Done() {
		t.Fatalf("got %q, %v, done %v", got, err, e.Done())
	}
}

// FuzzEvents feeds arbitrary bytes to the SSE reader: it must end (EOF,
// cut-off or too-large), never return an event over the limit, and always
// frame events with LF line endings and a blank line.
func FuzzEvents(f *testing.F) {
	for _, s := range []string{"data: {}\n\ndata: [DONE]\n\n", "data: a\r\rdata: [DONE]\r\r", "event: x\r\ndata: y\r\n\r\n", ":\n\n", "data", "\r\n\r\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e := NewEvents(bytes.NewReader(in), 256, sse.IsDone)
		for i := 0; ; i++ {
			if i > len(in)+1 {
				t.Fatal("more events than input bytes")
			}
			ev, err := e.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrCutOff) && !errors.Is(err, ErrEventTooLarge) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(ev) > 256+2 || !bytes.HasSuffix(ev, []byte("\n\n")) || bytes.IndexByte(ev, '\r') >= 0 {
				t.Fatalf("bad event %q", ev)
			}
		}
	})
}
