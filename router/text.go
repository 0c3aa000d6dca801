package router

import (
	"encoding/json"
	"strings"
	"unicode/utf8"

	"github.com/autorouter/autorouter/router/openai"
)

// DefaultMaxTextChars is how much of the prompt is embedded by default.
const DefaultMaxTextChars = 2000

// RoutingText returns the text to embed for msgs: the content of the last
// user message (window 1, LiteLLM's behaviour), or of the last window user
// messages joined by newlines, oldest first, cut to maxChars runes from the
// end, so the newest words are kept. ok is false when there is no user
// message at all.
func RoutingText(msgs []openai.Message, window, maxChars int) (text string, ok bool) {
	if window < 1 {
		window = 1
	}
	if maxChars <= 0 {
		maxChars = DefaultMaxTextChars
	}
	var parts []string
	for i := len(msgs) - 1; i >= 0 && len(parts) < window; i-- {
		if msgs[i].Role != "user" {
			continue
		}
		parts = append(parts, contentText(msgs[i].Content))
	}
	if len(parts) == 0 {
		return "", false
	}
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	text = strings.Join(parts, "\n")
	if window == 1 {
		return truncateRunes(text, maxChars, false), true
	}
	return truncateRunes(text, maxChars, true), true
}

// contentText extracts text from an OpenAI content value: a string as is;
// an array's "text" parts joined with a space (images and other parts are
// ignored); null or anything else gives "".
func contentText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '[':
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if json.Unmarshal(raw, &parts) == nil {
			var texts []string
			for _, p := range parts {
				if p.Type == "text" {
					texts = append(texts, p.Text)
				}
			}
			return strings.Join(texts, " ")
		}
	}
	return ""
}

// truncateRunes cuts s to n runes, keeping the start (LiteLLM's behaviour),
// or the end when keepEnd is set.
func truncateRunes(s string, n int, keepEnd bool) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if !keepEnd {
		i := 0
		for k := 0; k < n; k++ {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
		}
		return s[:i]
	}
	i := len(s)
	for k := 0; k < n; k++ {
		_, size := utf8.DecodeLastRuneInString(s[:i])
		i -= size
	}
	return s[i:]
}
