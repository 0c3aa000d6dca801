package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/autorouter/autorouter/router/openai"
	"github.com/autorouter/autorouter/router/sse"
)

// messagesRequest is the part of an Anthropic Messages request the
// translation reads.
type messagesRequest struct {
	Model         string            `json:"model"`
	MaxTokens     *int              `json:"max_tokens"`
	System        json.RawMessage   `json:"system"`
	Messages      []messagesMessage `json:"messages"`
	StopSequences []string          `json:"stop_sequences"`
	Stream        bool              `json:"stream"`
	Temperature   *float64          `json:"temperature"`
	TopP          *float64          `json:"top_p"`
	Tools         []struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		InputSchema json.RawMessage `json:"input_schema"`
		Type        string          `json:"type"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tool_choice"`
	Metadata *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
}

type messagesMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// messagesBlock is one content block.
type messagesBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	Source    *imageSource    `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

type imageSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
	URL       string `json:"url"`
}

func blocksOf(raw json.RawMessage, where string) ([]messagesBlock, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		return []messagesBlock{{Type: "text", Text: s}}, nil
	}
	var blocks []messagesBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, fieldErr(where, "content must be a string or a list of content blocks: %v", err)
	}
	return blocks, nil
}

// MessagesToChat translates an Anthropic Messages request body to a chat
// completions body.
func MessagesToChat(body []byte) ([]byte, error) {
	var r messagesRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fieldErr("", "request body is not a valid Messages request: %v", err)
	}
	if r.MaxTokens == nil {
		return nil, fieldErr("max_tokens", "missing required field: max_tokens")
	}
	if len(r.Messages) == 0 {
		return nil, fieldErr("messages", "missing required field: messages (a non-empty array)")
	}
	var msgs []openai.Message
	if len(r.System) > 0 && string(r.System) != "null" {
		blocks, err := blocksOf(r.System, "system")
		if err != nil {
			return nil, err
		}
		var parts []string
		for _, b := range blocks {
			if b.Type == "text" {
				parts = append(parts, b.Text)
			}
		}
		if len(parts) > 0 {
			msgs = append(msgs, openai.SystemMessage(strings.Join(parts, "\n")))
		}
	}
	for i, m := range r.Messages {
		where := fmt.Sprintf("messages[%d].content", i)
		blocks, err := blocksOf(m.Content, where)
		if err != nil {
			return nil, err
		}
		switch m.Role {
		case "user":
			var parts []map[string]any
			for j, b := range blocks {
				switch b.Type {
				case "text":
					parts = append(parts, map[string]any{"type": "text", "text": b.Text})
				case "image":
					url, err := imageURL(b.Source, fmt.Sprintf("%s[%d].source", where, j))
					if err != nil {
						return nil, err
					}
					parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]string{"url": url}})
				case "tool_result":
					// Tool results are chat's tool messages, before the
					// user's own words of the same turn.
					var text string
					if tb, err := blocksOf(b.Content, fmt.Sprintf("%s[%d].content", where, j)); err == nil {
						var ts []string
						for _, x := range tb {
							if x.Type == "text" {
								ts = append(ts, x.Text)
							}
						}
						text = strings.Join(ts, "\n")
					}
					if b.IsError {
						text = "Error: " + text
					}
					c, _ := json.Marshal(text)
					msgs = append(msgs, openai.Message{Role: "tool", ToolCallID: b.ToolUseID, Content: c})
				default:
					return nil, fieldErr(fmt.Sprintf("%s[%d].type", where, j), "content block %q cannot be served by an upstream that speaks only chat completions", b.Type)
				}
			}
			if len(parts) > 0 {
				c, _ := json.Marshal(parts)
				if len(parts) == 1 && parts[0]["type"] == "text" {
					c, _ = json.Marshal(parts[0]["text"])
				}
				msgs = append(msgs, openai.Message{Role: "user", Content: c})
			}
		case "assistant":
			am := openai.Message{Role: "assistant"}
			var text []string
			for j, b := range blocks {
				switch b.Type {
				case "text":
					text = append(text, b.Text)
				case "tool_use":
					args := string(b.Input)
					if args == "" {
						args = "{}"
					}
					am.ToolCalls = append(am.ToolCalls, openai.ToolCall{ID: b.ID, Type: "function", Function: openai.FunctionCall{Name: b.Name, Arguments: args}})
				case "thinking", "redacted_thinking":
				default:
					return nil, fieldErr(fmt.Sprintf("%s[%d].type", where, j), "content block %q cannot be served by an upstream that speaks only chat completions", b.Type)
				}
			}
			if len(text) > 0 {
				am.Content, _ = json.Marshal(strings.Join(text, ""))
			}
			msgs = append(msgs, am)
		default:
			return nil, fieldErr(fmt.Sprintf("messages[%d].role", i), "role %q: want user or assistant (the system prompt goes in system)", m.Role)
		}
	}
	out := openai.ChatRequest{Model: r.Model, Messages: msgs, Stream: r.Stream, Temperature: r.Temperature, TopP: r.TopP, MaxTokens: r.MaxTokens}
	if r.Stream {
		out.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	}
	if len(r.StopSequences) > 0 {
		out.Stop, _ = json.Marshal(r.StopSequences)
	}
	if r.Metadata != nil && r.Metadata.UserID != "" {
		out.User = r.Metadata.UserID
	}
	for i, t := range r.Tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, fieldErr(fmt.Sprintf("tools[%d].type", i), "server tool %q cannot be served by an upstream that speaks only chat completions; use client tools with an input_schema", t.Type)
		}
		params := t.InputSchema
		if len(params) == 0 {
			params = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, openai.Tool{Type: "function", Function: openai.FunctionDef{Name: t.Name, Description: t.Description, Parameters: params}})
	}
	if tc := r.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			out.ToolChoice = json.RawMessage(`"auto"`)
		case "any":
			out.ToolChoice = json.RawMessage(`"required"`)
		case "none":
			out.ToolChoice = json.RawMessage(`"none"`)
		case "tool":
			out.ToolChoice, _ = json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
		default:
			return nil, fieldErr("tool_choice.type", "tool_choice %q: want auto, any, none or tool", tc.Type)
		}
	}
	return json.Marshal(out)
}

func imageURL(s *imageSource, where string) (string, error) {
	switch {
	case s == nil:
		return "", fieldErr(where, "an image block needs a source")
	case s.Type == "base64" && s.Data != "":
		return "data:" + s.MediaType + ";base64," + s.Data, nil
	case s.Type == "url" && s.URL != "":
		return s.URL, nil
	}
	return "", fieldErr(where, "image source %q: want base64 with data, or url", s.Type)
}

// MessagesRoutingText is the text a Messages request is routed on: the
// text blocks of the last user turn that has any (a turn of tool results
// only is the agent's loop, not the user's request). ok is false when no
// user turn has text.
func MessagesRoutingText(messages []byte) (string, bool) {
	var msgs []messagesMessage
	if json.Unmarshal(messages, &msgs) != nil {
		return "", false
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role != "user" {
			continue
		}
		blocks, err := blocksOf(msgs[i].Content, "")
		if err != nil {
			continue
		}
		var texts []string
		for _, b := range blocks {
			if b.Type == "text" && b.Text != "" {
				texts = append(texts, b.Text)
			}
		}
		if len(texts) > 0 {
			return strings.Join(texts, " "), true
		}
	}
	return "", false
}

// stopReason maps a chat finish_reason to Anthropic's stop_reason.
func stopReason(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "stop_sequence":
		return "stop_sequence"
	}
	return "end_turn"
}

func messagesUsage(u *openai.Usage) map[string]int {
	if u == nil {
		return map[string]int{"input_tokens": 0, "output_tokens": 0}
	}
	return map[string]int{"input_tokens": u.PromptTokens, "output_tokens": u.CompletionTokens}
}

// toolInput is a tool call's arguments as an input object.
func toolInput(args string) json.RawMessage {
	if json.Valid([]byte(args)) && strings.HasPrefix(strings.TrimSpace(args), "{") {
		return json.RawMessage(args)
	}
	return json.RawMessage(`{}`)
}

func messageID(chatID string) string {
	if chatID == "" {
		return newID("msg")
	}
	return "msg_" + strings.TrimPrefix(strings.TrimPrefix(chatID, "chatcmpl-"), "chatcmpl_")
}

// ChatToMessages translates a chat completion answer to an Anthropic
// Messages response.
func ChatToMessages(chat []byte, model string) ([]byte, error) {
	var a chatAnswer
	if err := json.Unmarshal(chat, &a); err != nil {
		return nil, fmt.Errorf("translating the upstream's chat answer: %w", err)
	}
	content := []any{}
	finish := ""
	if len(a.Choices) > 0 {
		c := a.Choices[0]
		finish = c.FinishReason
		if c.Message.Content != nil && *c.Message.Content != "" {
			content = append(content, map[string]any{"type": "text", "text": *c.Message.Content})
		}
		for _, tc := range c.Message.ToolCalls {
			content = append(content, map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Function.Name, "input": toolInput(tc.Function.Arguments)})
		}
	}
	if model == "" {
		model = a.Model
	}
	return json.Marshal(map[string]any{"id": messageID(a.ID), "type": "message", "role": "assistant", "model": model,
		"content": content, "stop_reason": stopReason(finish), "stop_sequence": nil, "usage": messagesUsage(a.Usage)})
}

// MessagesStream translates a chat stream to Anthropic's stream events:
// message_start, then per content block content_block_start, its deltas
// (text_delta, input_json_delta) and content_block_stop, then
// message_delta with the stop reason and usage, and message_stop.
type MessagesStream struct {
	model   string
	started bool
	block   int  // index of the open block, -1 for none
	isText  bool // the open block is text
	next    int
	tools   map[int]int // chat tool-call index -> block index
	usage   *openai.Usage
	finish  string
}

// NewMessagesStream starts a translation; model is the one the client asked for.
func NewMessagesStream(model string) *MessagesStream {
	return &MessagesStream{model: model, block: -1, tools: map[int]int{}}
}

func (t *MessagesStream) event(dst []byte, typ string, v map[string]any) []byte {
	v["type"] = typ
	b, _ := json.Marshal(v)
	return sse.AppendEvent(dst, typ, b)
}

func (t *MessagesStream) start(dst []byte, c *chatChunk) []byte {
	if t.started {
		return dst
	}
	t.started = true
	model := t.model
	if model == "" {
		model = c.Model
	}
	dst = t.event(dst, "message_start", map[string]any{"message": map[string]any{"id": messageID(c.ID), "type": "message", "role": "assistant",
		"model": model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": map[string]int{"input_tokens": 0, "output_tokens": 0}}})
	return t.event(dst, "ping", map[string]any{})
}

func (t *MessagesStream) closeBlock(dst []byte) []byte {
	if t.block < 0 {
		return dst
	}
	dst = t.event(dst, "content_block_stop", map[string]any{"index": t.block})
	t.block = -1
	return dst
}

// Chunk implements Translator.
func (t *MessagesStream) Chunk(dst, data []byte) []byte {
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
			if t.block < 0 || !t.isText {
				dst = t.closeBlock(dst)
				t.block, t.isText = t.next, true
				t.next++
				dst = t.event(dst, "content_block_start", map[string]any{"index": t.block, "content_block": map[string]string{"type": "text", "text": ""}})
			}
			dst = t.event(dst, "content_block_delta", map[string]any{"index": t.block, "delta": map[string]string{"type": "text_delta", "text": *d}})
		}
		for _, tc := range ch.Delta.ToolCalls {
			idx := 0
			if tc.Index != nil {
				idx = *tc.Index
			}
			b, ok := t.tools[idx]
			if !ok {
				dst = t.closeBlock(dst)
				b = t.next
				t.next++
				t.tools[idx] = b
				t.block, t.isText = b, false
				dst = t.event(dst, "content_block_start", map[string]any{"index": b,
					"content_block": map[string]any{"type": "tool_use", "id": tc.ID, "name": tc.Function.Name, "input": map[string]any{}}})
			}
			if a := tc.Function.Arguments; a != "" && b == t.block {
				dst = t.event(dst, "content_block_delta", map[string]any{"index": b, "delta": map[string]string{"type": "input_json_delta", "partial_json": a}})
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			t.finish = *ch.FinishReason
		}
	}
	return dst
}

// End implements Translator.
func (t *MessagesStream) End(dst []byte) []byte {
	dst = t.start(dst, &chatChunk{})
	dst = t.closeBlock(dst)
	out := 0
	if t.usage != nil {
		out = t.usage.CompletionTokens
	}
	dst = t.event(dst, "message_delta", map[string]any{"delta": map[string]any{"stop_reason": stopReason(t.finish), "stop_sequence": nil},
		"usage": map[string]int{"output_tokens": out}})
	return t.event(dst, "message_stop", map[string]any{})
}
