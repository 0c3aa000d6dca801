package sse

import "testing"

func TestData(t *testing.T) {
	for _, tc := range []struct{ ev, data string }{
		{"data: {\"a\":1}\n\n", `{"a":1}`},
		{"data:x\ndata: y\n\n", "x\ny"},
		{"event: message_stop\ndata: {}\n\n", "{}"},
	} {
		got, ok := Data(nil, []byte(tc.ev))
		if !ok || string(got) != tc.data {
			t.Errorf("Data(%q) = %q, %v; want %q", tc.ev, got, ok, tc.data)
		}
	}
	if _, ok := Data(nil, []byte(": ping\n\n")); ok {
		t.Error("a comment has no data")
	}
	if string(Type([]byte("event: message_stop\ndata: {}\n\n"))) != "message_stop" {
		t.Error("Type")
	}
}

func TestIsDone(t *testing.T) {
	for ev, want := range map[string]bool{
		"data: [DONE]\n\n":           true,
		"data:[DONE]\n\n":            true,
		"event: x\ndata: [DONE]\n\n": true,
		"data: {}\n\n":               false,
		": [DONE]\n\n":               false,
	} {
		if got := IsDone([]byte(ev)); got != want {
			t.Errorf("IsDone(%q) = %v, want %v", ev, got, want)
		}
	}
}

func TestAppendEvent(t *testing.T) {
	ev := AppendEvent([]byte("x"), "message_stop", []byte(`{"type":"message_stop"}`))
	if string(ev) != "xevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n" {
		t.Fatalf("got %q", ev)
	}
	if d, ok := Data(nil, ev[1:]); !ok || string(d) != `{"type":"message_stop"}` || string(Type(ev[1:])) != "message_stop" {
		t.Fatalf("round trip: %q %v %q", d, ok, Type(ev[1:]))
	}
}

func TestDataAllocs(t *testing.T) {
	ev := []byte("event: x\ndata: {\"a\":1}\n\n")
	dst := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { dst, _ = Data(dst[:0], ev) }); n != 0 {
		t.Fatalf("%v allocs per Data", n)
	}
}
