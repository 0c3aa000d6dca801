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
