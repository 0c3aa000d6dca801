package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/autorouter/autorouter/router"
	"github.com/autorouter/autorouter/router/openai"
)

// mockConfig is a mock/ deployment: an in-process upstream that answers like
// OpenAI, for tests and demos. It is configured by litellm_params.mock_response
// (LiteLLM's name) and by model_info:
//
//	mock_delay: 200ms      wait before answering (and between stream chunks)
//	mock_status: 503       fail every request with this status
//
// A request may also carry "mock_response" to override the reply, as in LiteLLM.
type mockConfig struct {
	response string
	delay    time.Duration
	status   int
}

func newMockConfig(p router.LiteLLMParams, info map[string]any) *mockConfig {
	m := &mockConfig{response: "This is a mock response from " + p.Model + "."}
	if p.MockResponse != nil {
		m.response = *p.MockResponse
	}
	if s, ok := info["mock_delay"].(string); ok {
		if d, err := router.ParseDuration(s); err == nil {
			m.delay = d.D()
		}
	}
	switch v := info["mock_status"].(type) {
	case int:
		m.status = v
	case float64:
		m.status = int(v)
	}
	return m
}

// respond produces the mock's answer for a request: a status and a JSON body,
// or an SSE stream.
func (m *mockConfig) respond(model string, req *openai.ChatRequest, stream bool) attempt {
	if m.delay > 0 {
		time.Sleep(m.delay)
	}
	if m.status != 0 {
		body, _ := json.Marshal(openai.ErrorEnvelope{Error: openai.ErrorBody{
			Message: fmt.Sprintf("mock deployment configured to fail with %d", m.status), Type: "mock_error"}})
		return attempt{status: m.status, body: body}
	}
	text := m.response
	if req != nil && req.MockResponse != nil {
		text = *req.MockResponse
	}
	id := fmt.Sprintf("chatcmpl-mock-%d", time.Now().UnixNano())
	created := time.Now().Unix()
	promptTokens := 0
	if req != nil {
		for _, msg := range req.Messages {
			promptTokens += len(strings.Fields(string(msg.Content)))
		}
	}
	words := strings.Fields(text)
	if !stream {
		body, _ := json.Marshal(openai.ChatCompletion{ID: id, Object: "chat.completion", Created: created, Model: model,
			Choices: []openai.ChatChoice{{Message: openai.ReplyMessage{Role: "assistant", Content: text}, FinishReason: "stop"}},
			Usage:   openai.Usage{PromptTokens: promptTokens, CompletionTokens: len(words), TotalTokens: promptTokens + len(words)}})
		return attempt{status: 200, body: body}
	}
	var events [][]byte
	chunk := func(d openai.Delta, finish *string) {
		b, _ := json.Marshal(openai.ChatChunk{ID: id, Object: "chat.completion.chunk", Created: created, Model: model,
			Choices: []openai.ChunkChoice{{Delta: d, FinishReason: finish}}})
		events = append(events, append(append([]byte("data: "), b...), '\n', '\n'))
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
	events = append(events, []byte("data: [DONE]\n\n"))
	return attempt{status: 200, stream: &eventReader{events: events, delay: m.delay}}
}

// eventReader yields pre-built SSE events one Read at a time, sleeping
// between them to imitate a model generating tokens.
type eventReader struct {
	events [][]byte
	cur    *bytes.Reader
	delay  time.Duration
}

func (r *eventReader) Read(p []byte) (int, error) {
	for r.cur == nil || r.cur.Len() == 0 {
		if len(r.events) == 0 {
			return 0, io.EOF
		}
		if r.cur != nil && r.delay > 0 {
			time.Sleep(r.delay / 10)
		}
		r.cur = bytes.NewReader(r.events[0])
		r.events = r.events[1:]
	}
	return r.cur.Read(p)
}
