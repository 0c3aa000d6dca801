package openai

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/autorouter/autorouter/router/internal/testenv"
)

func TestParseBody(t *testing.T) {
	for _, tc := range []struct {
		name, in     string
		model        string
		stream       bool
		want         string // AppendBody(…, "m")
		messagesSeen int
	}{
		{"plain", `{"model":"a","x":1}`, "a", false, `{"model":"m","x":1}`, 0},
		{"model added when missing", `{"x":[1, 2]}`, "", false, `{"model":"m","x":[1, 2]}`, 0},
		{"client keys stripped", `{"api_key":"k","model":"a","api_base":"b","base_url":"c","mock_response":"r"}`, "a", false, `{"model":"m"}`, 0},
		{"unicode kept", `{"ключ":"значение","model":"a"}`, "a", false, `{"model":"m","ключ":"значение"}`, 0},
		{"stream", `{"model":"a","stream":true}`, "a", true, `{"model":"m","stream":true}`, 0},
		{"stream null", `{"model":"a","stream":null}`, "a", false, `{"model":"m","stream":null}`, 0},
		{"case-sensitive keys", `{"model":"a","STREAM":true,"Model":"b"}`, "a", false, `{"model":"m","STREAM":true,"Model":"b"}`, 0},
		{"duplicates: last wins, written once", `{"model":"a","stream":false,"model":"b","stream":true}`, "b", true, `{"model":"m","stream":true}`, 0},
		{"escaped key", `{"mod\u0065l":"a","str\u0065am":true}`, "a", true, `{"model":"m","str\u0065am":true}`, 0},
		{"escaped value", `{"model":"a\"b\u00e9"}`, `a"bé`, false, `{"model":"m"}`, 0},
		{"whitespace", " {\n \"model\" : \"a\" ,\n \"messages\" : [ {\"role\":\"user\",\"content\":\"hi\"} ] }\n", "a", false,
			`{"model":"m","messages":[ {"role":"user","content":"hi"} ]}`, 1},
		{"nested braces in strings", `{"model":"a","messages":[{"role":"user","content":"{[\"}]"}]}`, "a", false,
			`{"model":"m","messages":[{"role":"user","content":"{[\"}]"}]}`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBody([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if b.Model != tc.model || b.Stream != tc.stream {
				t.Errorf("model %q stream %v; want %q %v", b.Model, b.Stream, tc.model, tc.stream)
			}
			if got := string(b.AppendBody(nil, "m")); got != tc.want {
				t.Errorf("AppendBody = %s\nwant        %s", got, tc.want)
			}
			n := 0
			b.EachMessage(func(role, content []byte) bool { n++; return true })
			if n != tc.messagesSeen {
				t.Errorf("%d messages, want %d", n, tc.messagesSeen)
			}
		})
	}
}

func TestParseBodyErrors(t *testing.T) {
	for _, tc := range []struct{ in, want, param string }{
		{``, "invalid JSON", ""},
		{`{"model":`, "invalid JSON", ""},
		{`{"a":1} x`, "invalid JSON", ""},
		{`[1]`, "JSON object", ""},
		{`"x"`, "JSON object", ""},
		{`{"model":5}`, "must be a string", "model"},
		{`{"model":"a","stream":"yes"}`, "true or false", "stream"},
	} {
		_, err := ParseBody([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseBody(%q) = %v; want %q", tc.in, err, tc.want)
			continue
		}
		var fe *FieldError
		if tc.param != "" && (!errors.As(err, &fe) || fe.Param != tc.param) {
			t.Errorf("ParseBody(%q): want a FieldError for %s, got %v", tc.in, tc.param, err)
		}
	}
}

func TestEachMessage(t *testing.T) {
	b, err := ParseBody([]byte(`{"messages":[{"role":"system","content":"s"},{"content":[{"type":"text","text":"a"},{"type":"image_url"}],"role":"user"},5,{"role":"user","content":null}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	b.EachMessage(func(role, content []byte) bool {
		got = append(got, string(role)+"="+ContentText(content))
		return true
	})
	if want := []string{"system=s", "user=a", "=", "user="}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestBodyAllocs keeps the proxy's per-request parse and rewrite free of
// allocations once the Body's memory is warm.
func TestBodyAllocs(t *testing.T) {
	in := []byte(`{"model":"auto","stream":true,"temperature":0.2,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"write a python function that reverses a linked list"}]}`)
	var b Body
	dst := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		if err := b.Reset(in); err != nil {
			t.Fatal(err)
		}
		dst = b.AppendBody(dst[:0], "gpt-4o")
		b.EachMessage(func(role, content []byte) bool { return true })
	})
	// One allocation: the model name string.
	if allocs > 1 && !testenv.Race {
		t.Fatalf("%v allocations per parse and rewrite, want at most 1", allocs)
	}
}

// FuzzParseBody checks the one-pass reader against encoding/json: the
// same validity, the same model and stream (the last of duplicates), and a
// rewrite that is valid JSON with model set and every other kept field's
// value unchanged.
func FuzzParseBody(f *testing.F) {
	for _, s := range []string{`{"model":"a"}`, `{}`, `{"messages":[{"role":"user","content":"hi"}],"stream":true}`, `[1]`,
		`{"model":"a","model":"b"}`, `{"mod\u0065l":"x"}`, `{"a":{"b":[1,"]}"]},"model":"\u00e9"}`, ` {"stream" : false } `} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBody([]byte(s))
		var ref map[string]json.RawMessage
		refErr := json.Unmarshal([]byte(s), &ref)
		if err != nil {
			var fe *FieldError
			if refErr == nil && ref != nil && !errors.As(err, &fe) {
				t.Fatalf("ParseBody(%q) = %v, but encoding/json accepts it", s, err)
			}
			return
		}
		if refErr != nil {
			t.Fatalf("ParseBody(%q) accepted what encoding/json rejects: %v", s, refErr)
		}
		if m, ok := ref["model"]; ok {
			var want string
			if json.Unmarshal(m, &want) == nil && want != b.Model {
				t.Fatalf("model %q, encoding/json says %q", b.Model, want)
			}
		}
		if st, ok := ref["stream"]; ok {
			var want bool
			_ = json.Unmarshal(st, &want)
			if want != b.Stream {
				t.Fatalf("stream %v, encoding/json says %v", b.Stream, want)
			}
		}
		out := b.AppendBody(nil, "m")
		var got map[string]json.RawMessage
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("rewrite of %q is invalid JSON %q: %v", s, out, err)
		}
		if string(got["model"]) != `"m"` {
			t.Fatalf("model not set in %q", out)
		}
		for k, v := range ref {
			if k == "model" || clientOnly[k] {
				continue
			}
			if !jsonEqual(got[k], v) {
				t.Fatalf("field %q changed: %s -> %s", k, v, got[k])
			}
		}
	})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}
