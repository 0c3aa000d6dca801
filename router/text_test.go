package router

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/autorouter/autorouter/router/openai"
)

func msg(role, content string) openai.Message {
	return openai.Message{Role: role, Content: json.RawMessage(content)}
}

func TestRoutingText(t *testing.T) {
	for _, tc := range []struct {
		name   string
		msgs   []openai.Message
		window int
		max    int
		want   string
		ok     bool
	}{
		{"last user string", []openai.Message{msg("user", `"first"`), msg("assistant", `"a"`), msg("user", `"second"`)}, 1, 0, "second", true},
		{"parts joined", []openai.Message{msg("user", `[{"type":"text","text":"look at"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"this"}]`)}, 1, 0, "look at this", true},
		{"image only", []openai.Message{msg("user", `[{"type":"image_url","image_url":{"url":"x"}}]`)}, 1, 0, "", true},
		{"null content", []openai.Message{msg("user", `null`)}, 1, 0, "", true},
		{"tool calls ignored", []openai.Message{msg("user", `"run it"`), {Role: "assistant"}, msg("tool", `"result"`)}, 1, 0, "run it", true},
		{"no user message", []openai.Message{msg("system", `"be nice"`)}, 1, 0, "", false},
		{"truncated", []openai.Message{msg("user", `"héllo wörld"`)}, 1, 4, "héll", true},
		{"window joins turns", []openai.Message{msg("user", `"write a python sort"`), msg("assistant", `"..."`), msg("user", `"now in rust"`)}, 2, 0, "write a python sort\nnow in rust", true},
		{"window keeps newest", []openai.Message{msg("user", `"aaaa"`), msg("user", `"bb"`)}, 2, 4, "a\nbb", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := RoutingText(tc.msgs, tc.window, tc.max)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("RoutingText = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	long, _ := RoutingText([]openai.Message{msg("user", `"`+strings.Repeat("x", 5000)+`"`)}, 1, 0)
	if len(long) != DefaultMaxTextChars {
		t.Fatalf("default cut = %d chars", len(long))
	}
}
