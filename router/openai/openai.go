// Package openai holds the OpenAI-compatible wire types shared by the router
// and the proxy: chat messages, request and response envelopes, and the error
// envelope. It has no behaviour beyond encoding.
package openai

import "encoding/json"

// Message is one chat message. Content stays raw because OpenAI allows a
// string, an array of typed parts, or null; the router extracts text from it
// without the proxy having to re-encode the request.
type Message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content,omitempty"`
	Name    string          `json:"name,omitempty"`
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

// ChatRequest is the part of a chat completion request the proxy reads; the
// body itself is forwarded with only "model" rewritten.
type ChatRequest struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
	Stream   bool      `json:"stream"`
	// MockResponse is LiteLLM's per-request override for mock deployments.
	MockResponse *string `json:"mock_response,omitempty"`
}

// ChatCompletion is a non-streaming chat completion response.
type ChatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   Usage        `json:"usage"`
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
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatChunk is one streamed chat completion event.
type ChatChunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
}

// ChunkChoice is one choice of a ChatChunk.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// Delta is the incremental message of a ChunkChoice.
type Delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

// Usage counts tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// EmbeddingRequest is an embeddings request; Input is a string or an array
// of strings.
type EmbeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format,omitempty"`
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
