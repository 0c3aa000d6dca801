package router

import (
	"strings"
	"unicode/utf8"

	"github.com/autorouter/autorouter/router/config"
	"github.com/autorouter/autorouter/router/openai"
)

// DefaultMaxTextChars is how much of the prompt is embedded by default.
const DefaultMaxTextChars = config.DefaultMaxTextChars

// RoutingText returns the text to embed for msgs: the content of the last
// user message (window 1, LiteLLM's behaviour), or of the last window user
// messages joined by newlines, oldest first, cut to maxChars runes (0: the
// default) from the start for one message, as LiteLLM does, and from the
// end for several, so the newest words are kept. ok is false when there is
// no user message at all.
func RoutingText(msgs []openai.Message, window, maxChars int) (text string, ok bool) {
	var u userTurns
	u.init(window)
	for i := range msgs {
		if msgs[i].Role == "user" {
			u.add(msgs[i].Content)
		}
	}
	return u.text(maxChars)
}

// bodyRoutingText is RoutingText on a raw request body's "messages".
func bodyRoutingText(b *openai.Body, window, maxChars int) (string, bool) {
	var u userTurns
	u.init(window)
	for role, content := range b.Messages() {
		if string(role) == "user" {
			u.add(content)
		}
	}
	return u.text(maxChars)
}

// userTurns keeps the raw contents of the last window user messages seen.
type userTurns struct {
	window int
	ring   [][]byte
	one    [1][]byte
	seen   int
}

func (u *userTurns) init(window int) {
	u.window = max(window, 1)
	if u.window == 1 {
		u.ring = u.one[:]
	} else {
		u.ring = make([][]byte, u.window)
	}
}

func (u *userTurns) add(content []byte) {
	u.ring[u.seen%u.window] = content
	u.seen++
}

func (u *userTurns) text(maxChars int) (string, bool) {
	if u.seen == 0 {
		return "", false
	}
	if maxChars <= 0 {
		maxChars = DefaultMaxTextChars
	}
	if u.window == 1 {
		return truncateRunes(openai.ContentText(u.ring[0]), maxChars, false), true
	}
	n := min(u.seen, u.window)
	parts := make([]string, 0, n)
	for i := u.seen - n; i < u.seen; i++ {
		parts = append(parts, openai.ContentText(u.ring[i%u.window]))
	}
	return truncateRunes(strings.Join(parts, "\n"), maxChars, true), true
}

// truncateRunes cuts s to n runes, keeping the start (LiteLLM's behaviour),
// or the end when keepEnd is set.
func truncateRunes(s string, n int, keepEnd bool) string {
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
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
