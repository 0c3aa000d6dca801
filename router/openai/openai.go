// Package openai holds the OpenAI-compatible wire types shared by the
// router, the upstream client and the proxy: chat messages, request and
// response envelopes, the error envelope, and a one-pass reader of request
// bodies (body.go). It has no behaviour beyond encoding.
package openai

import (
	"encoding/json"
	"errors"
	"strings"
)

// Message is one chat message. Content stays raw because OpenAI allows a
// string, an array of typed parts, or null; Text extracts its text, and
// TextMessage builds one from a string.
type Message struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content,omitempty"`
	Name       string          `json:"name,omitempty"`
	ToolCalls  []ToolCall      `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

// TextMessage returns a message whose content is the plain text s.
func TextMessage(role, s string) Message {
	b, _ := json.Marshal(s)
	return Message{Role: role, Content: b}
}

// UserMessage returns a user message with the plain text s.
func UserMessage(s string) Message { return TextMessage("user", s) }

// SystemMessage returns a system message with the plain text s.
func SystemMessage(s string) Message { return TextMessage("system", s) }

// Text returns the message's text: string content as it is, the "text"
// parts of list content joined with a space (images and other parts are
// skipped), "" for null or anything else.
func (m Message) Text() string { return ContentText(m.Content) }

// ContentText extracts text from an OpenAI content value; see Message.Text.
func ContentText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		return unquote(raw)
	case '[':
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if json.Unmarshal(raw, &parts) == nil {
			var texts []string
			for _, p := range parts {
				if p.Type == "text" || p.Type == "input_text" {
					texts = append(texts, p.Text)
				}
			}
			return strings.Join(texts, " ")
		}
	}
	return ""
}

// ToolCall is a function call an assistant message asks for.
type ToolCall struct {
	// Index is set in stream deltas only.
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names a function and its JSON arguments.
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// Tool is a function the model may call.
type Tool struct {
	Type     string      `json:"type"`
	Function FunctionDef `json:"function"`
}

// FunctionDef describes a callable function; Parameters is a JSON Schema.
type FunctionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ErrorBody is the inner object of OpenAI's error envelope.
type ErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// ErrorEnvelope is the body of every error response: {"error":{...}}.
type ErrorEnvelope struct {
	Error ErrorBody `json:"error"`
}

// ChatRequest is a chat completion request. The fields are OpenAI's most
// used ones; Extra carries any other top-level field as raw JSON, sent as
// it is.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Stop                json.RawMessage `json:"stop,omitempty"`
	N                   *int            `json:"n,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ResponseFormat      json.RawMessage `json:"response_format,omitempty"`
	User                string          `json:"user,omitempty"`
	Metadata            json.RawMessage `json:"metadata,omitempty"`
	// MockResponse is LiteLLM's per-request override for mock deployments.
	MockResponse *string `json:"mock_response,omitempty"`
	// Extra holds further top-level fields; a key here that a field above
	// also sets is an error when the request is encoded.
	Extra map[string]json.RawMessage `json:"-"`
}

// StreamOptions asks a stream for extras such as a final usage chunk.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage,omitempty"`
}

// MarshalJSON writes the typed fields and then Extra's.
func (r ChatRequest) MarshalJSON() ([]byte, error) {
	type plain ChatRequest
	b, err := json.Marshal(plain(r))
	if err != nil || len(r.Extra) == 0 {
		return b, err
	}
	var have map[string]json.RawMessage
	if err := json.Unmarshal(b, &have); err != nil {
		return nil, err
	}
	for k, v := range r.Extra {
		if _, dup := have[k]; dup {
			return nil, errors.New("openai: ChatRequest.Extra[" + k + "] duplicates a typed field")
		}
		have[k] = v
	}
	return json.Marshal(have)
}

// ChatCompletion is a non-streaming chat completion response.
type ChatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []ChatChoice `json:"choices"`
	Usage             *Usage       `json:"usage,omitempty"`
	SystemFingerprint string       `json:"system_fingerprint,omitempty"`
}

// Text returns the first choice's content, or "".
func (c *ChatCompletion) Text() string {
	if c == nil || len(c.Choices) == 0 {
		return ""
	}
	return c.Choices[0].Message.Content
}

// ChatChoice is one choice of a ChatCompletion.
type ChatChoice struct {
	Index        int          `json:"index"`
	Message      ReplyMessage `json:"message"`
	FinishReason string       `json:"finish_reason"`
	Logprobs     *struct{}    `json:"logprobs"`
}

// ReplyMessage is an assistant message in a response.
type ReplyMessage struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
	Refusal   *string    `json:"refusal,omitempty"`
}

// ChatChunk is one streamed chat completion event.
type ChatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

// Text returns the first choice's content delta, or "".
func (c *ChatChunk) Text() string {
	if c == nil || len(c.Choices) == 0 {
		return ""
	}
	return c.Choices[0].Delta.Content
}

// ChunkChoice is one choice of a ChatChunk.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// Delta is the incremental message of a ChunkChoice.
type Delta struct {
	Role      string     `json:"role,omitempty"`
	Content   string     `json:"content,omitempty"`
	ToolCalls []ToolCall `json:"tool_calls,omitempty"`
}

// TextCompletion is a /completions response (or one streamed event).
type TextCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []TextChoice `json:"choices"`
	Usage   *Usage       `json:"usage,omitempty"`
}

// TextChoice is one choice of a TextCompletion.
type TextChoice struct {
	Index        int    `json:"index"`
	Text         string `json:"text"`
	FinishReason string `json:"finish_reason,omitempty"`
}

// Usage counts tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// EmbeddingRequest is an embeddings request; Input is a string or an array
// of strings (token arrays are not supported).
type EmbeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format,omitempty"`
	Dimensions     int             `json:"dimensions,omitempty"`
	User           string          `json:"user,omitempty"`
}

// EmbeddingInputs decodes an embeddings input: one string or an array of
// strings.
func EmbeddingInputs(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil || len(many) == 0 {
		return nil, errors.New("input must be a string or a non-empty array of strings")
	}
	return many, nil
}

// EmbeddingResponse is the embeddings response. Embedding is a []float32,
// or a base64 string when encoding_format is "base64".
type EmbeddingResponse struct {
	Object string          `json:"object"`
	Data   []EmbeddingData `json:"data"`
	Model  string          `json:"model"`
	Usage  Usage           `json:"usage"`
}

// EmbeddingData is one embedding of an EmbeddingResponse.
type EmbeddingData struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding any    `json:"embedding"`
}

// ModelList is the /v1/models response.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// Model is one entry of a ModelList.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}
