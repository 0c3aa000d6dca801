// Package translate converts between the OpenAI Responses API, Anthropic's
// Messages API and OpenAI's chat completions, so that an upstream that
// speaks only chat completions can serve clients of the other two:
// requests are translated to chat, answers and their streams back, event
// by event (a stream is never buffered whole). What cannot be translated
// (built-in tools, stored conversation state) is a *FieldError naming the
// field, never a silent drop.
package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/autorouter/autorouter/router/openai"
)

// FieldError is a request the translation cannot carry; Param names the
// field (a 400 at the proxy).
type FieldError = openai.FieldError

func fieldErr(param, format string, args ...any) error {
	return &openai.FieldError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// responsesRequest is the part of a Responses request the translation reads.
type responsesRequest struct {
	Model              string            `json:"model"`
	Input              json.RawMessage   `json:"input"`
	Instructions       *string           `json:"instructions"`
	Tools              []json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	MaxOutputTokens    *int              `json:"max_output_tokens"`
	Temperature        *float64          `json:"temperature"`
	TopP               *float64          `json:"top_p"`
	Stream             bool              `json:"stream"`
	PreviousResponseID *string           `json:"previous_response_id"`
	ParallelToolCalls  *bool             `json:"parallel_tool_calls"`
	User               string            `json:"user"`
	Metadata           json.RawMessage   `json:"metadata"`
	Text               *struct {
		Format json.RawMessage `json:"format"`
	} `json:"text"`
}

// responsesItem is one input item.
type responsesItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

// ResponsesToChat translates a Responses request body to a chat
// completions body for the same model.
func ResponsesToChat(body []byte) ([]byte, error) {
	var r responsesRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fieldErr("", "request body is not a valid Responses request: %v", err)
	}
	if r.PreviousResponseID != nil && *r.PreviousResponseID != "" {
		return nil, fieldErr("previous_response_id", "previous_response_id needs responses stored by the server, and this upstream speaks only chat completions; send the whole conversation in input instead")
	}
	var msgs []openai.Message
	if r.Instructions != nil && *r.Instructions != "" {
		msgs = append(msgs, openai.SystemMessage(*r.Instructions))
	}
	items, err := responsesItems(r.Input)
	if err != nil {
		return nil, err
	}
	for i, it := range items {
		m, err := itemToChat(it, i)
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue
		}
		// Consecutive function calls make one assistant message, as chat
		// completions expect.
		if m.Role == "assistant" && len(m.ToolCalls) > 0 && len(msgs) > 0 {
			last := &msgs[len(msgs)-1]
			if last.Role == "assistant" && len(last.ToolCalls) > 0 && len(last.Content) == 0 {
				last.ToolCalls = append(last.ToolCalls, m.ToolCalls...)
				continue
			}
		}
		msgs = append(msgs, *m)
	}
	if len(msgs) == 0 {
		return nil, fieldErr("input", "input is empty: send a string or a list of input items")
	}
	out := openai.ChatRequest{Model: r.Model, Messages: msgs, Stream: r.Stream, Temperature: r.Temperature, TopP: r.TopP,
		MaxCompletionTokens: r.MaxOutputTokens, User: r.User, Metadata: r.Metadata}
	if r.Stream {
		out.StreamOptions = &openai.StreamOptions{IncludeUsage: true}
	}
	for i, raw := range r.Tools {
		var t struct {
			Type        string          `json:"type"`
			Name        string          `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
			Strict      *bool           `json:"strict"`
		}
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, fieldErr(fmt.Sprintf("tools[%d]", i), "not a valid tool: %v", err)
		}
		if t.Type != "function" {
			return nil, fieldErr(fmt.Sprintf("tools[%d].type", i), "built-in tool %q cannot be served by an upstream that speaks only chat completions; use function tools, or route this request to a model that speaks the Responses API", t.Type)
		}
		out.Tools = append(out.Tools, openai.Tool{Type: "function", Function: openai.FunctionDef{Name: t.Name, Description: t.Description, Parameters: t.Parameters, Strict: t.Strict}})
	}
	if len(r.ToolChoice) > 0 && string(r.ToolChoice) != "null" {
		tc, err := responsesToolChoice(r.ToolChoice)
		if err != nil {
			return nil, err
		}
		out.ToolChoice = tc
	}
	if r.Text != nil && len(r.Text.Format) > 0 {
		rf, err := responsesFormat(r.Text.Format)
		if err != nil {
			return nil, err
		}
		out.ResponseFormat = rf
	}
	if r.ParallelToolCalls != nil && len(out.Tools) > 0 {
		b, _ := json.Marshal(*r.ParallelToolCalls)
		out.Extra = map[string]json.RawMessage{"parallel_tool_calls": b}
	}
	return json.Marshal(out)
}

// responsesItems decodes input: a string (one user message) or items.
func responsesItems(raw json.RawMessage) ([]responsesItem, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fieldErr("input", "missing required field: input")
	}
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		return []responsesItem{{Type: "message", Role: "user", Content: raw}}, nil
	}
	var items []responsesItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fieldErr("input", "input must be a string or a list of input items: %v", err)
	}
	return items, nil
}

func itemToChat(it responsesItem, i int) (*openai.Message, error) {
	switch it.Type {
	case "", "message":
		role := it.Role
		switch role {
		case "developer":
			role = "system"
		case "user", "assistant", "system":
		default:
			return nil, fieldErr(fmt.Sprintf("input[%d].role", i), "role %q: want user, assistant, system or developer", it.Role)
		}
		content, err := responsesContent(it.Content, i)
		if err != nil {
			return nil, err
		}
		return &openai.Message{Role: role, Content: content}, nil
	case "function_call":
		return &openai.Message{Role: "assistant", ToolCalls: []openai.ToolCall{{ID: it.CallID, Type: "function",
			Function: openai.FunctionCall{Name: it.Name, Arguments: it.Arguments}}}}, nil
	case "function_call_output":
		out := it.Output
		if len(out) > 0 && out[0] != '"' {
			// A list of output parts: keep their text.
			out, _ = json.Marshal(openai.ContentText(out))
		}
		return &openai.Message{Role: "tool", ToolCallID: it.CallID, Content: out}, nil
	case "reasoning":
		return nil, nil // the model's own scratch work is not sent back
	}
	return nil, fieldErr(fmt.Sprintf("input[%d].type", i), "input item type %q cannot be served by an upstream that speaks only chat completions", it.Type)
}

// responsesContent turns message content (a string, or input_text /
// output_text / input_image parts) into chat content.
func responsesContent(raw json.RawMessage, i int) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == '"' {
		return raw, nil
	}
	var parts []struct {
		Type     string          `json:"type"`
		Text     string          `json:"text"`
		ImageURL json.RawMessage `json:"image_url"`
		Detail   string          `json:"detail"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, fieldErr(fmt.Sprintf("input[%d].content", i), "content must be a string or a list of parts: %v", err)
	}
	var out []map[string]any
	for j, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "text":
			out = append(out, map[string]any{"type": "text", "text": p.Text})
		case "input_image":
			var url string
			if json.Unmarshal(p.ImageURL, &url) != nil || url == "" {
				return nil, fieldErr(fmt.Sprintf("input[%d].content[%d].image_url", i, j), "input_image needs an image_url (file ids need the Files API)")
			}
			img := map[string]any{"url": url}
			if p.Detail != "" {
				img["detail"] = p.Detail
			}
			out = append(out, map[string]any{"type": "image_url", "image_url": img})
		default:
			return nil, fieldErr(fmt.Sprintf("input[%d].content[%d].type", i, j), "content part %q cannot be served by an upstream that speaks only chat completions", p.Type)
		}
	}
	return json.Marshal(out)
}

func responsesToolChoice(raw json.RawMessage) (json.RawMessage, error) {
	if raw[0] == '"' {
		return raw, nil // "auto", "none", "required" mean the same in chat
	}
	var tc struct {
		Type string `json:"type"`
		Name string `json:"name"`
	}
	if json.Unmarshal(raw, &tc) != nil || tc.Type != "function" || tc.Name == "" {
		return nil, fieldErr("tool_choice", "tool_choice must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"name\": ...} for this upstream")
	}
	return json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
}

func responsesFormat(raw json.RawMessage) (json.RawMessage, error) {
	var f struct {
		Type   string          `json:"type"`
		Name   string          `json:"name"`
		Schema json.RawMessage `json:"schema"`
		Strict *bool           `json:"strict"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fieldErr("text.format", "not a valid format: %v", err)
	}
	switch f.Type {
	case "", "text":
		return nil, nil
	case "json_object":
		return json.RawMessage(`{"type":"json_object"}`), nil
	case "json_schema":
		return json.Marshal(map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": f.Name, "schema": f.Schema, "strict": f.Strict}})
	}
	return nil, fieldErr("text.format.type", "format %q: want text, json_object or json_schema", f.Type)
}

// ResponsesRoutingText is the text a Responses request is routed on: the
// newest user input (a string input as it is, else the last user item's
// text parts joined), as LiteLLM does; instructions are not the user's
// request. ok is false when there is no user input.
func ResponsesRoutingText(input []byte) (string, bool) {
	items, err := responsesItems(input)
	if err != nil {
		return "", false
	}
	for i := len(items) - 1; i >= 0; i-- {
		it := items[i]
		if (it.Type == "" || it.Type == "message") && it.Role == "user" {
			return openai.ContentText(it.Content), true
		}
	}
	return "", false
}

// chatAnswer is the part of a chat completion the translations read.
type chatAnswer struct {
	ID      string `json:"id"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content   *string           `json:"content"`
			Refusal   *string           `json:"refusal"`
			ToolCalls []openai.ToolCall `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *openai.Usage `json:"usage"`
}

// ResponsesEcho is what of the request a Responses object repeats.
type ResponsesEcho struct {
	Instructions    *string         `json:"instructions"`
	MaxOutputTokens *int            `json:"max_output_tokens"`
	Temperature     *float64        `json:"temperature"`
	TopP            *float64        `json:"top_p"`
	Tools           json.RawMessage `json:"tools"`
	ToolChoice      json.RawMessage `json:"tool_choice"`
	Metadata        json.RawMessage `json:"metadata"`
}

// EchoOf reads the echoed fields of a Responses request.
func EchoOf(body []byte) ResponsesEcho {
	var e ResponsesEcho
	_ = json.Unmarshal(body, &e)
	return e
}

// newID makes an id with prefix, unique enough for one process.
func newID(prefix string) string {
	return fmt.Sprintf("%s_%x", prefix, time.Now().UnixNano())
}

// ChatToResponses translates a chat completion answer to a Responses
// object.
func ChatToResponses(chat []byte, echo ResponsesEcho) ([]byte, error) {
	var a chatAnswer
	if err := json.Unmarshal(chat, &a); err != nil {
		return nil, fmt.Errorf("translating the upstream's chat answer: %w", err)
	}
	var output []any
	status, incomplete := "completed", any(nil)
	if len(a.Choices) > 0 {
		c := a.Choices[0]
		text := ""
		if c.Message.Content != nil {
			text = *c.Message.Content
		}
		if text != "" || len(c.Message.ToolCalls) == 0 {
			output = append(output, messageItem(newID("msg"), text, "completed"))
		}
		for _, tc := range c.Message.ToolCalls {
			output = append(output, functionItem(newID("fc"), tc.ID, tc.Function.Name, tc.Function.Arguments, "completed"))
		}
		if c.FinishReason == "length" {
			status, incomplete = "incomplete", map[string]string{"reason": "max_output_tokens"}
		}
	}
	if output == nil {
		output = []any{}
	}
	return json.Marshal(responseObject(a.ID, a.Created, a.Model, status, output, a.Usage, echo, incomplete))
}

func messageItem(id, text, status string) map[string]any {
	content := []any{}
	if status == "completed" {
		content = append(content, outputText(text))
	}
	return map[string]any{"type": "message", "id": id, "status": status, "role": "assistant", "content": content}
}

func outputText(text string) map[string]any {
	return map[string]any{"type": "output_text", "text": text, "annotations": []any{}}
}

func functionItem(id, callID, name, args, status string) map[string]any {
	return map[string]any{"type": "function_call", "id": id, "call_id": callID, "name": name, "arguments": args, "status": status}
}

// responseObject is a Responses API response object.
func responseObject(chatID string, created int64, model, status string, output []any, u *openai.Usage, echo ResponsesEcho, incomplete any) map[string]any {
	if created == 0 {
		created = time.Now().Unix()
	}
	id := "resp_" + strings.TrimPrefix(strings.TrimPrefix(chatID, "chatcmpl-"), "chatcmpl_")
	if chatID == "" {
		id = newID("resp")
	}
	tools := any([]any{})
	if len(echo.Tools) > 0 {
		tools = echo.Tools
	}
	toolChoice := any("auto")
	if len(echo.ToolChoice) > 0 {
		toolChoice = echo.ToolChoice
	}
	metadata := any(map[string]any{})
	if len(echo.Metadata) > 0 && string(echo.Metadata) != "null" {
		metadata = echo.Metadata
	}
	obj := map[string]any{
		"id": id, "object": "response", "created_at": created, "status": status, "model": model,
		"output": output, "error": nil, "incomplete_details": incomplete,
		"instructions": echo.Instructions, "max_output_tokens": echo.MaxOutputTokens,
		"temperature": echo.Temperature, "top_p": echo.TopP, "tools": tools, "tool_choice": toolChoice,
		"parallel_tool_calls": true, "metadata": metadata, "text": map[string]any{"format": map[string]string{"type": "text"}},
		"previous_response_id": nil, "reasoning": map[string]any{"effort": nil, "summary": nil}, "store": false, "truncation": "disabled",
		"usage": responsesUsage(u),
	}
	return obj
}

func responsesUsage(u *openai.Usage) any {
	if u == nil {
		return nil
	}
	return map[string]any{"input_tokens": u.PromptTokens, "output_tokens": u.CompletionTokens, "total_tokens": u.TotalTokens,
		"input_tokens_details": map[string]int{"cached_tokens": 0}, "output_tokens_details": map[string]int{"reasoning_tokens": 0}}
}
