package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"strings"
	"time"

	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/openai"
)

// mock is a mock/ deployment: an in-process upstream that answers like
// OpenAI, streaming included, for tests and demos. It is configured by
// litellm_params.mock_response (LiteLLM's name) and by model_info:
//
//	mock_delay: 200ms      wait before answering (a tenth of it between stream events)
//	mock_status: 503       fail every request with this status
//
// A request may carry "mock_response" to override the reply, as in LiteLLM.
type mock struct {
	response string
	delay    time.Duration
	status   int
}

func newMock(p config.LiteLLMParams, info config.ModelInfo) *mock {
	m := &mock{response: "This is a mock response from " + p.Model + ".", delay: info.MockDelay.D(), status: info.MockStatus}
	if p.MockResponse != nil {
		m.response = *p.MockResponse
	}
	return m
}

// mockInput is what the mock reads from a request.
type mockInput struct {
	MockResponse *string          `json:"mock_response"`
	Messages     []openai.Message `json:"messages"`
	Tools        []openai.Tool    `json:"tools"`
	StreamOpts   *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Prompt     json.RawMessage `json:"prompt"`
	Input      json.RawMessage `json:"input"`
	Dimensions int             `json:"dimensions"`
}

// respond answers req as the mock deployment d.
func (m *mock) respond(ctx context.Context, d *Deployment, req *Request, maxEvent int) (*Response, error) {
	if err := sleep(ctx, m.delay); err != nil {
		return nil, err
	}
	if m.status != 0 {
		body, _ := json.Marshal(openai.ErrorEnvelope{Error: openai.ErrorBody{
			Message: fmt.Sprintf("mock deployment configured to fail with %d", m.status), Type: "mock_error"}})
		if retryable(m.status) {
			return nil, &statusError{deployment: d.ID, status: m.status, msg: "mock deployment configured to fail"}
		}
		return bytesResponse(m.status, body), nil
	}
	var in mockInput
	_ = json.Unmarshal(req.Raw, &in) // the caller checked the JSON
	text := m.response
	if in.MockResponse != nil {
		text = *in.MockResponse
	}
	prompt := 0
	for _, msg := range in.Messages {
		prompt += len(strings.Fields(msg.Text()))
	}
	prompt += len(strings.Fields(string(in.Prompt)))
	id := fmt.Sprintf("mock-%d", time.Now().UnixNano())
	created := time.Now().Unix()
	words := strings.Fields(text)
	usage := openai.Usage{PromptTokens: prompt, CompletionTokens: len(words), TotalTokens: prompt + len(words)}
	// With function tools offered and no tool result yet, the mock calls
	// the first tool, with arguments made from its schema, so that clients'
	// tool round trips can be tried with no model.
	var call *openai.ToolCall
	if len(in.Tools) > 0 && (len(in.Messages) == 0 || in.Messages[len(in.Messages)-1].Role != "tool") {
		f := in.Tools[0].Function
		call = &openai.ToolCall{ID: "call_" + id, Type: "function", Function: openai.FunctionCall{Name: f.Name, Arguments: string(mockArguments(f.Parameters))}}
	}
	switch req.API {
	case Chat:
		if call != nil {
			return m.toolCall(ctx, req, d, id, created, call, usage, maxEvent)
		}
		if !req.Stream {
			return jsonResponse(openai.ChatCompletion{ID: "chatcmpl-" + id, Object: "chat.completion", Created: created, Model: d.Model,
				Choices: []openai.ChatChoice{{Message: openai.ReplyMessage{Role: "assistant", Content: text}, FinishReason: "stop"}},
				Usage:   &usage})
		}
		var events [][]byte
		chunk := func(delta openai.Delta, finish *string) {
			events = appendData(events, openai.ChatChunk{ID: "chatcmpl-" + id, Object: "chat.completion.chunk", Created: created, Model: d.Model,
				Choices: []openai.ChunkChoice{{Delta: delta, FinishReason: finish}}})
		}
		chunk(openai.Delta{Role: "assistant"}, nil)
		for i, w := range words {
			if i > 0 {
				w = " " + w
			}
			chunk(openai.Delta{Content: w}, nil)
		}
		stop := "stop"
		chunk(openai.Delta{}, &stop)
		if in.StreamOpts != nil && in.StreamOpts.IncludeUsage {
			events = appendData(events, openai.ChatChunk{ID: "chatcmpl-" + id, Object: "chat.completion.chunk", Created: created, Model: d.Model,
				Choices: []openai.ChunkChoice{}, Usage: &usage})
		}
		return m.stream(ctx, req, append(events, []byte("data: [DONE]\n\n")), maxEvent)
	case Completions:
		if !req.Stream {
			return jsonResponse(openai.TextCompletion{ID: "cmpl-" + id, Object: "text_completion", Created: created, Model: d.Model,
				Choices: []openai.TextChoice{{Text: text, FinishReason: "stop"}}, Usage: &usage})
		}
		var events [][]byte
		for i, w := range words {
			if i > 0 {
				w = " " + w
			}
			events = appendData(events, openai.TextCompletion{ID: "cmpl-" + id, Object: "text_completion", Created: created, Model: d.Model,
				Choices: []openai.TextChoice{{Text: w}}})
		}
		return m.stream(ctx, req, append(events, []byte("data: [DONE]\n\n")), maxEvent)
	case Embeddings:
		inputs, err := openai.EmbeddingInputs(in.Input)
		if err != nil {
			body, _ := json.Marshal(openai.ErrorEnvelope{Error: openai.ErrorBody{Message: err.Error(), Type: "invalid_request_error"}})
			return bytesResponse(400, body), nil
		}
		dim := in.Dimensions
		if dim <= 0 || dim > 4096 {
			dim = 16
		}
		out := openai.EmbeddingResponse{Object: "list", Model: d.Model, Data: make([]openai.EmbeddingData, len(inputs))}
		for i, s := range inputs {
			out.Data[i] = openai.EmbeddingData{Object: "embedding", Index: i, Embedding: mockVector(s, dim)}
			out.Usage.PromptTokens += len(strings.Fields(s))
		}
		out.Usage.TotalTokens = out.Usage.PromptTokens
		return jsonResponse(out)
	}
	return nil, fmt.Errorf("deployment %s: the mock provider does not answer %s", d.ID, req.API.Path())
}

// toolCall answers with a call of a function tool.
func (m *mock) toolCall(ctx context.Context, req *Request, d *Deployment, id string, created int64, call *openai.ToolCall, usage openai.Usage, maxEvent int) (*Response, error) {
	finish := "tool_calls"
	if !req.Stream {
		return jsonResponse(openai.ChatCompletion{ID: "chatcmpl-" + id, Object: "chat.completion", Created: created, Model: d.Model,
			Choices: []openai.ChatChoice{{Message: openai.ReplyMessage{Role: "assistant", ToolCalls: []openai.ToolCall{*call}}, FinishReason: finish}},
			Usage:   &usage})
	}
	zero := 0
	var events [][]byte
	chunk := func(delta openai.Delta, finish *string) {
		events = appendData(events, openai.ChatChunk{ID: "chatcmpl-" + id, Object: "chat.completion.chunk", Created: created, Model: d.Model,
			Choices: []openai.ChunkChoice{{Delta: delta, FinishReason: finish}}})
	}
	chunk(openai.Delta{Role: "assistant", ToolCalls: []openai.ToolCall{{Index: &zero, ID: call.ID, Type: "function", Function: openai.FunctionCall{Name: call.Function.Name}}}}, nil)
	chunk(openai.Delta{ToolCalls: []openai.ToolCall{{Index: &zero, Function: openai.FunctionCall{Arguments: call.Function.Arguments}}}}, nil)
	chunk(openai.Delta{}, &finish)
	events = appendData(events, openai.ChatChunk{ID: "chatcmpl-" + id, Object: "chat.completion.chunk", Created: created, Model: d.Model,
		Choices: []openai.ChunkChoice{}, Usage: &usage})
	return m.stream(ctx, req, append(events, []byte("data: [DONE]\n\n")), maxEvent)
}

// mockArguments makes a JSON object that a tool's JSON Schema accepts:
// each property set to a value of its type.
func mockArguments(schema json.RawMessage) json.RawMessage {
	var s struct {
		Properties map[string]struct {
			Type any   `json:"type"`
			Enum []any `json:"enum"`
		} `json:"properties"`
	}
	if json.Unmarshal(schema, &s) != nil {
		return json.RawMessage(`{}`)
	}
	args := map[string]any{}
	for name, p := range s.Properties {
		if len(p.Enum) > 0 {
			args[name] = p.Enum[0]
			continue
		}
		t, _ := p.Type.(string)
		if ts, ok := p.Type.([]any); ok && len(ts) > 0 {
			t, _ = ts[0].(string)
		}
		switch t {
		case "number", "integer":
			args[name] = 1
		case "boolean":
			args[name] = true
		case "array":
			args[name] = []any{}
		case "object":
			args[name] = map[string]any{}
		case "null":
			args[name] = nil
		default:
			args[name] = "mock"
		}
	}
	b, _ := json.Marshal(args)
	return b
}

// mockVector is a deterministic unit vector for a text, so that the same
// input always embeds the same way.
func mockVector(s string, dim int) []float32 {
	v := make([]float32, dim)
	var norm float64
	for i := range v {
		h := fnv.New64a()
		fmt.Fprintf(h, "%d\x00%s", i, s)
		x := float64(h.Sum64()%2000)/1000 - 1
		v[i] = float32(x)
		norm += x * x
	}
	inv := float32(1 / math.Sqrt(norm+1e-12))
	for i := range v {
		v[i] *= inv
	}
	return v
}

func appendData(events [][]byte, v any) [][]byte {
	b, _ := json.Marshal(v)
	ev := make([]byte, 0, len(b)+8)
	ev = append(append(append(ev, "data: "...), b...), '\n', '\n')
	return append(events, ev)
}

func jsonResponse(v any) (*Response, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return bytesResponse(200, b), nil
}

func bytesResponse(status int, b []byte) *Response {
	return &Response{Status: status, Body: bytes.NewReader(b), ContentLength: int64(len(b)), headers: jsonHeaders{}}
}

// jsonHeaders are the mock's response headers.
type jsonHeaders struct{}

func (jsonHeaders) VisitHeaders(f func(k, v []byte)) {
	f([]byte("Content-Type"), []byte("application/json"))
}

type sseHeaders struct{}

func (sseHeaders) VisitHeaders(f func(k, v []byte)) {
	f([]byte("Content-Type"), []byte("text/event-stream"))
}

// stream serves pre-built events, a tenth of the delay apart.
func (m *mock) stream(ctx context.Context, req *Request, events [][]byte, maxEvent int) (*Response, error) {
	r := &eventSource{ctx: ctx, events: events, gap: m.delay / 10}
	ev := NewEvents(r, maxEvent, req.API.streamDone)
	if err := ev.Peek(); err != nil {
		return nil, err
	}
	return &Response{Status: 200, Events: ev, headers: sseHeaders{}}, nil
}

// eventSource yields pre-built SSE events one Read at a time, sleeping
// between them to imitate a model generating tokens. It ends early when
// ctx does.
type eventSource struct {
	ctx    context.Context
	events [][]byte
	cur    []byte
	gap    time.Duration
	begun  bool
}

func (r *eventSource) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if len(r.events) == 0 {
			return 0, io.EOF
		}
		if r.begun {
			if err := sleep(r.ctx, r.gap); err != nil {
				return 0, err
			}
		}
		r.begun = true
		r.cur, r.events = r.events[0], r.events[1:]
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}
