package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"unicode/utf8"
)

// Body is an API request body read in one pass: checked to be a JSON
// object, with the top-level fields autorouter acts on located by byte
// offset so that forwarding it rewrites "model" without decoding the rest.
//
// Keys match exactly, case included, as they do upstream (Python's and
// Go's JSON decoders and OpenAI's API); a key written with escapes
// ("mod\u0065l") is decoded first. A key given twice takes its last value,
// as those decoders do, and AppendBody writes it once, so the proxy and
// the upstream always agree on model and stream.
//
// A Body points into the bytes it was parsed from; they must not change
// while it is used. The zero Body is not valid; use ParseBody or Reset.
type Body struct {
	raw    []byte
	fields []field
	// Model and Stream are the request's "model" (the last one) and
	// "stream" (false when absent or null).
	Model  string
	Stream bool
	// indexes into fields of the values autorouter reads; -1 when absent.
	model, stream, messages, input, user, metadata int
}

// field is one top-level member: raw key (quotes included) and value.
type field struct {
	key, val span
	name     string // the key's decoded name, for keys with escapes
	drop     bool   // not forwarded: a client-only key, or a duplicate
}

type span struct{ start, end int }

func (s span) of(b []byte) []byte { return b[s.start:s.end] }

// clientOnly are request fields a client could use to redirect the
// proxy's upstream traffic or credentials, or that only the proxy reads;
// they are dropped before forwarding.
var clientOnly = map[string]bool{"api_base": true, "api_key": true, "base_url": true, "mock_response": true,
	"api_version": true, "organization": true}

// ErrNotObject is returned for a body that is valid JSON but not an object.
var ErrNotObject = errors.New("request body must be a JSON object")

// FieldError is a request field with the wrong type or value; Param names
// it for OpenAI's error envelope.
type FieldError struct {
	Param string
	Msg   string
}

func (e *FieldError) Error() string { return e.Param + ": " + e.Msg }

// ParseBody reads body. It fails on invalid JSON, on anything but an
// object, and on a "model" that is not a string or a "stream" that is not
// a boolean (a *FieldError). It keeps body, not a copy.
func ParseBody(body []byte) (*Body, error) {
	b := new(Body)
	if err := b.Reset(body); err != nil {
		return nil, err
	}
	return b, nil
}

// Reset parses body into b, reusing its memory; see ParseBody.
func (b *Body) Reset(body []byte) error {
	*b = Body{raw: body, fields: b.fields[:0], model: -1, stream: -1, messages: -1, input: -1, user: -1, metadata: -1}
	if !json.Valid(body) {
		return syntaxError(body)
	}
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return ErrNotObject
	}
	i = skipWS(body, i+1)
	for i < len(body) && body[i] != '}' {
		ks := i
		i = skipString(body, i)
		key := span{ks, i}
		i = skipWS(body, i)
		i = skipWS(body, i+1) // ':'
		vs := i
		i = skipValue(body, i)
		name := body[ks+1 : key.end-1]
		decoded := ""
		if bytes.IndexByte(name, '\\') >= 0 {
			decoded = unquote(key.of(body))
			name = []byte(decoded)
		}
		idx := len(b.fields)
		b.fields = append(b.fields, field{key: key, val: span{vs, i}, name: decoded})
		if err := b.note(name, idx); err != nil {
			return err
		}
		i = skipWS(body, i)
		if i < len(body) && body[i] == ',' {
			i = skipWS(body, i+1)
		}
	}
	return nil
}

// Clear drops the body's reference to the bytes it parsed, keeping its
// memory for the next Reset.
func (b *Body) Clear() {
	clear(b.fields)
	*b = Body{fields: b.fields[:0]}
}

// note records a field autorouter reads, marking earlier duplicates.
func (b *Body) note(name []byte, idx int) error {
	var p *int
	switch string(name) {
	case "model":
		p = &b.model
	case "stream":
		p = &b.stream
	case "messages":
		p = &b.messages
	case "input":
		p = &b.input
	case "user":
		p = &b.user
	case "metadata":
		p = &b.metadata
	default:
		if clientOnly[string(name)] {
			b.fields[idx].drop = true
		}
		return nil
	}
	if *p >= 0 {
		b.fields[*p].drop = true
	}
	*p = idx
	switch p {
	case &b.model:
		v := b.fields[idx].val.of(b.raw)
		if len(v) == 0 || v[0] != '"' {
			return &FieldError{Param: "model", Msg: "must be a string naming a model"}
		}
		b.Model = unquote(v)
	case &b.stream:
		switch string(b.fields[idx].val.of(b.raw)) {
		case "true":
			b.Stream = true
		case "false", "null":
			b.Stream = false
		default:
			return &FieldError{Param: "stream", Msg: "must be true or false"}
		}
	}
	return nil
}

// Raw is the body as parsed.
func (b *Body) Raw() []byte { return b.raw }

// Has reports whether the body had a "model" field.
func (b *Body) HasModel() bool { return b.model >= 0 }

// Field returns the raw JSON value of a top-level field autorouter reads
// ("messages", "input", "user", "metadata"), or nil when absent.
func (b *Body) Field(name string) []byte {
	var i int
	switch name {
	case "messages":
		i = b.messages
	case "input":
		i = b.input
	case "user":
		i = b.user
	case "metadata":
		i = b.metadata
	case "model":
		i = b.model
	case "stream":
		i = b.stream
	default:
		return nil
	}
	if i < 0 {
		return nil
	}
	return b.fields[i].val.of(b.raw)
}

// AppendBody appends the body to forward upstream to dst: "model" set to
// model, client-only keys and duplicate keys removed, every other value
// copied byte for byte.
func (b *Body) AppendBody(dst []byte, model string) []byte {
	dst = append(dst, `{"model":`...)
	dst = AppendString(dst, model)
	for i, f := range b.fields {
		if f.drop || i == b.model {
			continue
		}
		dst = append(dst, ',')
		dst = append(dst, f.key.of(b.raw)...)
		dst = append(dst, ':')
		dst = append(dst, f.val.of(b.raw)...)
	}
	return append(dst, '}')
}

// EachMessage calls f with the role and raw content of each element of
// "messages", in order, until f returns false. Elements that are not
// objects, and roles written with escapes, are passed with an empty role. It reports false when "messages"
// is absent or not an array.
func (b *Body) EachMessage(f func(role, content []byte) bool) bool {
	v := b.Field("messages")
	if len(v) == 0 || v[0] != '[' {
		return false
	}
	for el := range Elements(v) {
		var role, content []byte
		for key, val := range Members(el) {
			switch string(key) {
			case "role":
				role = rawString(val)
			case "content":
				content = val
			}
		}
		if !f(role, content) {
			break
		}
	}
	return true
}

// Messages yields the role and raw content of each element of "messages",
// as EachMessage does, for a range loop.
func (b *Body) Messages() iter.Seq2[[]byte, []byte] {
	return func(yield func(role, content []byte) bool) {
		b.EachMessage(yield)
	}
}

// Elements yields each element of the JSON array v (valid JSON).
func Elements(v []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		i := skipWS(v, 0)
		if i >= len(v) || v[i] != '[' {
			return
		}
		i = skipWS(v, i+1)
		for i < len(v) && v[i] != ']' {
			s := i
			i = skipValue(v, i)
			if !yield(v[s:i]) {
				return
			}
			i = skipWS(v, i)
			if i < len(v) && v[i] == ',' {
				i = skipWS(v, i+1)
			}
		}
	}
}

// Members yields each member of the JSON object v (valid JSON): its key,
// decoded when it has escapes, and its raw value.
func Members(v []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func(key, val []byte) bool) {
		i := skipWS(v, 0)
		if i >= len(v) || v[i] != '{' {
			return
		}
		i = skipWS(v, i+1)
		for i < len(v) && v[i] != '}' {
			ks := i
			i = skipString(v, i)
			key := v[ks+1 : i-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				key = []byte(unquote(v[ks:i]))
			}
			i = skipWS(v, i)
			i = skipWS(v, i+1)
			vs := i
			i = skipValue(v, i)
			if !yield(key, v[vs:i]) {
				return
			}
			i = skipWS(v, i)
			if i < len(v) && v[i] == ',' {
				i = skipWS(v, i+1)
			}
		}
	}
}

// unquote decodes a JSON string value; anything else gives "".
func unquote(v []byte) string {
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	var s string
	_ = json.Unmarshal(v, &s)
	return s
}

// rawString returns a JSON string's bytes without quotes when it has no
// escapes (role names never do), else nil.
func rawString(v []byte) []byte {
	if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return nil
	}
	return v[1 : len(v)-1]
}

// Unquote decodes a JSON string value; anything else gives "".
func Unquote(v []byte) string { return unquote(v) }

// The scanners below assume valid JSON (ParseBody checked it).

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		j := bytes.IndexAny(b[i:], `"\`)
		if j < 0 {
			return len(b)
		}
		i += j
		if b[i] == '\\' {
			i += 2
			continue
		}
		return i + 1
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
			i++
		}
		return i
	}
}

// syntaxError describes why body is not valid JSON, with the offset.
func syntaxError(body []byte) error {
	var v any
	err := json.Unmarshal(body, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	if err == nil {
		err = errors.New("unexpected data")
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// AppendString appends s as a JSON string.
func AppendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s) // rare: model names are plain ASCII
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
