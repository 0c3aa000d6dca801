package translate

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/autorouter/autorouter/router/openai"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// ids matches the generated ids and times, which vary between runs.
var ids = regexp.MustCompile(`"(resp|msg|fc|chatcmpl)_[0-9a-f]+"|"created_at":\d+`)

func normalise(b []byte) []byte { return ids.ReplaceAll(b, []byte(`"<id>"`)) }

// pretty indents JSON (and each data line of an SSE stream) for readable
// golden files.
func pretty(t *testing.T, b []byte) []byte {
	t.Helper()
	if bytes.HasPrefix(b, []byte("event:")) || bytes.HasPrefix(b, []byte("data:")) {
		return normalise(b)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	buf.WriteByte('\n')
	return normalise(buf.Bytes())
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	got = pretty(t, got)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n got: %s\nwant: %s", name, got, want)
	}
}

func read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRequestsToChat(t *testing.T) {
	out, err := ResponsesToChat(read(t, "responses_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "responses_request.chat.golden", out)
	out, err = MessagesToChat(read(t, "messages_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "messages_request.chat.golden", out)
	// The translated bodies are chat requests the proxy can read.
	if _, err := openai.ParseBody(out); err != nil {
		t.Fatal(err)
	}
}

func TestAnswersFromChat(t *testing.T) {
	echo := EchoOf(read(t, "responses_request.json"))
	for _, name := range []string{"chat_answer_text", "chat_answer_tools"} {
		chat := read(t, name+".json")
		out, err := ChatToResponses(chat, echo)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name+".responses.golden", out)
		out, err = ChatToMessages(chat, "auto")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, name+".messages.golden", out)
	}
}

// sseSource yields the events of an SSE text, then err (io.EOF for a
// complete stream).
type sseSource struct {
	events []string
	err    error
}

func (s *sseSource) Next() ([]byte, error) {
	if len(s.events) == 0 {
		return nil, s.err
	}
	ev := s.events[0]
	s.events = s.events[1:]
	return []byte(ev + "\n\n"), nil
}

func sourceOf(t *testing.T, name string, err error) *sseSource {
	t.Helper()
	var evs []string
	for _, ev := range strings.Split(strings.TrimSpace(string(read(t, name))), "\n\n") {
		evs = append(evs, ev)
	}
	return &sseSource{events: evs, err: err}
}

func TestStreamsFromChat(t *testing.T) {
	for name, tr := range map[string]Translator{
		"responses": NewResponsesStream(EchoOf(read(t, "responses_request.json"))),
		"messages":  NewMessagesStream("auto"),
	} {
		out, err := io.ReadAll(NewReader(sourceOf(t, "chat_stream.sse", io.EOF), tr))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "chat_stream."+name+".golden", out)
	}
}

// TestStreamCutOff: a chat stream cut before [DONE] yields the events
// translated so far, then the cause, never a closing event that would
// pass the stream off as complete.
func TestStreamCutOff(t *testing.T) {
	cut := errors.New("cut off")
	src := sourceOf(t, "chat_stream.sse", cut)
	src.events = src.events[:3]
	for name, tr := range map[string]Translator{"responses": NewResponsesStream(ResponsesEcho{}), "messages": NewMessagesStream("auto")} {
		s := *src
		out, err := io.ReadAll(NewReader(&s, tr))
		if !errors.Is(err, cut) {
			t.Fatalf("%s: err = %v", name, err)
		}
		if !bytes.Contains(out, []byte("Hel")) || bytes.Contains(out, []byte("response.completed")) || bytes.Contains(out, []byte("message_stop")) {
			t.Fatalf("%s: %s", name, out)
		}
	}
}

func TestUntranslatable(t *testing.T) {
	for _, tc := range []struct {
		name, body, param string
		fn                func([]byte) ([]byte, error)
	}{
		{"responses built-in tool", `{"model":"m","input":"x","tools":[{"type":"web_search"}]}`, "tools[0].type", ResponsesToChat},
		{"responses stored state", `{"model":"m","input":"x","previous_response_id":"resp_1"}`, "previous_response_id", ResponsesToChat},
		{"responses no input", `{"model":"m"}`, "input", ResponsesToChat},
		{"responses bad role", `{"model":"m","input":[{"role":"robot","content":"x"}]}`, "input[0].role", ResponsesToChat},
		{"responses file part", `{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`, "input[0].content[0].type", ResponsesToChat},
		{"messages no max_tokens", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, "max_tokens", MessagesToChat},
		{"messages bad role", `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"x"}]}`, "messages[0].role", MessagesToChat},
		{"messages document block", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document"}]}]}`, "messages[0].content[0].type", MessagesToChat},
		{"messages server tool", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`, "tools[0].type", MessagesToChat},
		{"messages not JSON", `{"model":`, "", MessagesToChat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.fn([]byte(tc.body))
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Param != tc.param {
				t.Fatalf("err = %v; want a FieldError naming %q", err, tc.param)
			}
		})
	}
}

func TestRoutingText(t *testing.T) {
	if s, ok := ResponsesRoutingText([]byte(`"plain"`)); !ok || s != "plain" {
		t.Fatal(s)
	}
	if s, ok := ResponsesRoutingText([]byte(`[{"role":"user","content":"first"},{"role":"assistant","content":"a"},{"role":"user","content":[{"type":"input_text","text":"second"},{"type":"input_text","text":"part"}]},{"type":"function_call_output","call_id":"c","output":"o"}]`)); !ok || s != "second part" {
		t.Fatalf("%q", s)
	}
	msgs := `[{"role":"user","content":"fix my code"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"read","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"file"}]}]`
	if s, ok := MessagesRoutingText([]byte(msgs)); !ok || s != "fix my code" {
		t.Fatalf("an agent's tool-result turn must not replace the user's request: %q", s)
	}
}

func FuzzTranslateRequests(f *testing.F) {
	f.Add(read(f, "responses_request.json"))
	f.Add(read(f, "messages_request.json"))
	f.Add([]byte(`{"input":[{"type":"function_call_output","output":[1]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fn := range []func([]byte) ([]byte, error){ResponsesToChat, MessagesToChat} {
			out, err := fn(b)
			if err == nil && !json.Valid(out) {
				t.Fatalf("invalid JSON out of %q", b)
			}
		}
	})
}
