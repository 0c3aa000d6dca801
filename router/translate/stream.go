package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/sse"
)

// Translator turns a chat completions stream into another API's events.
type Translator interface {
	// Chunk appends the events of one chat chunk (its data JSON) to dst.
	Chunk(dst, data []byte) []byte
	// End appends the events that close the stream to dst.
	End(dst []byte) []byte
}

// EventSource yields server-sent events (upstream.Events does).
type EventSource interface {
	Next() ([]byte, error)
}

// Reader is a translated stream as SSE bytes: it reads chat events from
// src as they arrive and hands out the translation of each, so nothing
// waits for the whole stream. An error of src (a cut-off, a stall) is
// returned as it is, after the events translated before it.
type Reader struct {
	src   EventSource
	tr    Translator
	out   []byte
	data  []byte
	ended bool
	err   error
}

// NewReader translates src with tr.
func NewReader(src EventSource, tr Translator) *Reader { return &Reader{src: src, tr: tr} }

func (r *Reader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		ev, err := r.src.Next()
		if err != nil {
			if errors.Is(err, io.EOF) && !r.ended {
				r.out = r.tr.End(r.out[:0])
				r.ended = true
			}
			r.err = err
			continue
		}
		var ok bool
		r.data, ok = sse.Data(r.data[:0], ev)
		if !ok {
			continue
		}
		if bytes.Equal(bytes.TrimSpace(r.data), []byte("[DONE]")) {
			r.out = r.tr.End(r.out[:0])
			r.ended = true
			continue
		}
		r.out = r.tr.Chunk(r.out[:0], r.data)
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// chatChunk is the part of a chat stream chunk the translations read.
type chatChunk struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content   *string           `json:"content"`
			ToolCalls []openai.ToolCall `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *openai.Usage   `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// ResponsesStream translates a chat stream to Responses API events:
// response.created, then per output item output_item.added, its deltas
// (output_text.delta, function_call_arguments.delta) and its done events,
// and response.completed with the whole output and usage.
type ResponsesStream struct {
	echo    ResponsesEcho
	id      string
	model   string
	created int64
	seq     int
	started bool
	// text is the message item being streamed (index -1 before any text).
	textIdx int
	textID  string
	text    strings.Builder
	tools   map[int]*streamTool // by chat tool-call index
	nextOut int
	usage   *openai.Usage
	finish  string
	items   map[int]any // finished output items by output index
}

type streamTool struct {
	out              int
	id, callID, name string
	args             strings.Builder
}

// NewResponsesStream starts a translation; echo is the request's.
func NewResponsesStream(echo ResponsesEcho) *ResponsesStream {
	return &ResponsesStream{echo: echo, textIdx: -1, tools: map[int]*streamTool{}, items: map[int]any{}}
}

func (t *ResponsesStream) event(dst []byte, typ string, fields map[string]any) []byte {
	fields["type"] = typ
	fields["sequence_number"] = t.seq
	t.seq++
	b, _ := json.Marshal(fields)
	return sse.AppendEvent(dst, typ, b)
}

func (t *ResponsesStream) response(status string, output []any) map[string]any {
	return responseObject(t.id, t.created, t.model, status, output, t.usage, t.echo, nil)
}

func (t *ResponsesStream) start(dst []byte, c *chatChunk) []byte {
	if t.started {
		return dst
	}
	t.started = true
	t.id, t.model, t.created = c.ID, c.Model, c.Created
	if t.created == 0 {
		t.created = time.Now().Unix()
	}
	if t.id == "" {
		t.id = newID("chatcmpl")
	}
	r := t.response("in_progress", []any{})
	r["usage"] = nil
	dst = t.event(dst, "response.created", map[string]any{"response": r})
	return t.event(dst, "response.in_progress", map[string]any{"response": r})
}

// Chunk implements Translator.
func (t *ResponsesStream) Chunk(dst, data []byte) []byte {
	var c chatChunk
	if json.Unmarshal(data, &c) != nil {
		return dst
	}
	dst = t.start(dst, &c)
	if c.Usage != nil {
		t.usage = c.Usage
	}
	for _, ch := range c.Choices {
		if d := ch.Delta.Content; d != nil && *d != "" {
			if t.textIdx < 0 {
				t.textIdx, t.textID = t.nextOut, newID("msg")
				t.nextOut++
				dst = t.event(dst, "response.output_item.added", map[string]any{"output_index": t.textIdx, "item": messageItem(t.textID, "", "in_progress")})
				dst = t.event(dst, "response.content_part.added", map[string]any{"item_id": t.textID, "output_index": t.textIdx,
					"content_index": 0, "part": outputText("")})
			}
			t.text.WriteString(*d)
			dst = t.event(dst, "response.output_text.delta", map[string]any{"item_id": t.textID, "output_index": t.textIdx,
				"content_index": 0, "delta": *d, "logprobs": []any{}})
		}
		for _, tc := range ch.Delta.ToolCalls {
			idx := 0
			if tc.Index != nil {
				idx = *tc.Index
			}
			st := t.tools[idx]
			if st == nil {
				dst = t.closeText(dst)
				st = &streamTool{out: t.nextOut, id: newID("fc"), callID: tc.ID, name: tc.Function.Name}
				t.nextOut++
				t.tools[idx] = st
				dst = t.event(dst, "response.output_item.added", map[string]any{"output_index": st.out,
					"item": functionItem(st.id, st.callID, st.name, "", "in_progress")})
			}
			if a := tc.Function.Arguments; a != "" {
				st.args.WriteString(a)
				dst = t.event(dst, "response.function_call_arguments.delta", map[string]any{"item_id": st.id, "output_index": st.out, "delta": a})
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			t.finish = *ch.FinishReason
		}
	}
	return dst
}

// closeText finishes the message item, if one is open.
func (t *ResponsesStream) closeText(dst []byte) []byte {
	if t.textIdx < 0 || t.items[t.textIdx] != nil {
		return dst
	}
	text := t.text.String()
	dst = t.event(dst, "response.output_text.done", map[string]any{"item_id": t.textID, "output_index": t.textIdx, "content_index": 0, "text": text, "logprobs": []any{}})
	dst = t.event(dst, "response.content_part.done", map[string]any{"item_id": t.textID, "output_index": t.textIdx, "content_index": 0, "part": outputText(text)})
	item := messageItem(t.textID, text, "completed")
	t.items[t.textIdx] = item
	return t.event(dst, "response.output_item.done", map[string]any{"output_index": t.textIdx, "item": item})
}

// End implements Translator.
func (t *ResponsesStream) End(dst []byte) []byte {
	dst = t.start(dst, &chatChunk{})
	if t.textIdx < 0 && len(t.tools) == 0 {
		// An empty answer is still one (empty) message.
		t.textIdx, t.textID = t.nextOut, newID("msg")
		t.nextOut++
		dst = t.event(dst, "response.output_item.added", map[string]any{"output_index": t.textIdx, "item": messageItem(t.textID, "", "in_progress")})
		dst = t.event(dst, "response.content_part.added", map[string]any{"item_id": t.textID, "output_index": t.textIdx, "content_index": 0, "part": outputText("")})
	}
	dst = t.closeText(dst)
	idx := make([]int, 0, len(t.tools))
	for k := range t.tools {
		idx = append(idx, k)
	}
	sort.Ints(idx)
	for _, k := range idx {
		st := t.tools[k]
		args := st.args.String()
		dst = t.event(dst, "response.function_call_arguments.done", map[string]any{"item_id": st.id, "output_index": st.out, "arguments": args})
		item := functionItem(st.id, st.callID, st.name, args, "completed")
		t.items[st.out] = item
		dst = t.event(dst, "response.output_item.done", map[string]any{"output_index": st.out, "item": item})
	}
	output := make([]any, t.nextOut)
	for i := range output {
		output[i] = t.items[i]
	}
	status := "completed"
	final := t.response(status, output)
	if t.finish == "length" {
		final["status"], final["incomplete_details"] = "incomplete", map[string]string{"reason": "max_output_tokens"}
		return t.event(dst, "response.incomplete", map[string]any{"response": final})
	}
	return t.event(dst, "response.completed", map[string]any{"response": final})
}
