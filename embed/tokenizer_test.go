package embed

import (
	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func loadTestTokenizer(t testing.TB, maxLen int) *Tokenizer {
	t.Helper()
	tk, err := LoadTokenizer(filepath.Join(modelDir(t), "tokenizer.json"), maxLen)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestTokenizerMatchesHF checks ids against what Hugging Face tokenizers
// produce for all-MiniLM-L6-v2's tokenizer.json (BertNormalizer with
// lowercase and strip_accents null, BertPreTokenizer, WordPiece).
func TestTokenizerMatchesHF(t *testing.T) {
	tk := loadTestTokenizer(t, 256)
	for _, tc := range []struct {
		name, text string
		want       []int64
	}{
		// [CLS] hello world — naive cafe 東 京 [UNK] [SEP]
		{"accents cjk emoji", "Héllo wörld — naïve café 東京 🙂", []int64{101, 7592, 2088, 1517, 15743, 7668, 1879, 1755, 100, 102}},
		{"empty", "", []int64{101, 102}},
		{"whitespace only", " \t\n ", []int64{101, 102}},
		// [CLS] hello , world ! ! [SEP]
		{"punctuation", "Hello, World!!", []int64{101, 7592, 1010, 2088, 999, 999, 102}},
		// Whitespace runs, tabs, newlines and NBSP all separate words.
		{"whitespace runs", "hello   \t\n world\u00a0hello", []int64{101, 7592, 2088, 7592, 102}},
		// NUL and other control characters vanish without splitting the word.
		{"control chars", "hel\x00lo\u200b world\x07", []int64{101, 7592, 2088, 102}},
		// [CLS] una ##ffa ##ble [SEP]
		{"wordpiece", "unaffable", []int64{101, 14477, 20961, 3468, 102}},
		{"uppercase accents", "CAFÉ ÉCOLE", []int64{101, 7668, 12431, 102}},
		{"long word is unknown", strings.Repeat("x", 101), []int64{101, 100, 102}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tk.EncodeInto(nil, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if !equalIDs(got, tc.want) {
				t.Fatalf("EncodeInto(%q) = %v, want %v", tc.text, got, tc.want)
			}
		})
	}
}

func equalIDs(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTokenizerTruncates(t *testing.T) {
	tk := loadTestTokenizer(t, 16)
	short, err := tk.EncodeInto(nil, strings.Repeat("hello world ", 7))
	if err != nil {
		t.Fatal(err)
	}
	long, err := tk.EncodeInto(nil, strings.Repeat("hello world ", 10000))
	if err != nil {
		t.Fatal(err)
	}
	if len(long) != 16 || long[0] != 101 || long[15] != 102 {
		t.Fatalf("long text gave %d ids %v, want 16 framed by [CLS]/[SEP]", len(long), long)
	}
	// Clipping the text early must not change the first tokens.
	if !equalIDs(long[:15], short[:15]) {
		t.Fatalf("truncated prefix %v differs from %v", long[:15], short[:15])
	}
}

func TestLoadTokenizerErrors(t *testing.T) {
	if _, err := LoadTokenizer(filepath.Join(t.TempDir(), "tokenizer.json"), 256); err == nil || !strings.Contains(err.Error(), "setup.sh") {
		t.Fatalf("missing file: err = %v, want a hint to run setup.sh", err)
	}
	if _, err := LoadTokenizer(filepath.Join(modelDir(t), "tokenizer.json"), 1); err == nil {
		t.Fatal("maxLen 1: want an error")
	}
}

// sugarmeReference loads github.com/sugarme/tokenizer on the same
// tokenizer.json, with its padding and truncation to 128 turned off: the
// reference our pre-tokenizer and WordPiece are checked against.
func sugarmeReference(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	tk, err := pretrained.FromFile(filepath.Join(modelDir(t), "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	tk.WithPadding(nil)
	tk.WithTruncation(nil)
	return tk
}

// referenceIDs tokenizes with sugarme. It gets our normalised text: sugarme
// v0.3.0 does not strip accents as HF does, which TestTokenizerMatchesHF
// covers; here only pre-tokenization and WordPiece are compared.
func referenceIDs(t testing.TB, ref *tokenizer.Tokenizer, tk *Tokenizer, text string) []int64 {
	t.Helper()
	norm := tk.normalize(text)
	out := []int64{101}
	if strings.TrimSpace(norm) != "" {
		enc, err := ref.EncodeSingle(norm, false)
		if err != nil {
			t.Fatalf("sugarme on %q: %v", norm, err)
		}
		for _, id := range enc.Ids {
			out = append(out, int64(id))
		}
	}
	if len(out) > tk.MaxLen()-1 {
		out = out[:tk.MaxLen()-1]
	}
	return append(out, 102)
}

func TestTokenizerMatchesSugarme(t *testing.T) {
	tk := loadTestTokenizer(t, 256)
	ref := sugarmeReference(t)
	texts := append(readSentences(t), referenceSentences...)
	texts = append(texts, "Héllo wörld — naïve café 東京 🙂", "e-mail: a.b@c.com, cost $5.99 (approx.)!", "don't won't y'all",
		"unaffable antidisestablishmentarianism", "ÀÉÎÕÜ ñ ç ß", "tab\tnew\nline\r\n", "a\u2028b\u00a0c", "１２３ ｆｕｌｌ",
		"«quotes» „here“ ‹x›", "...---...", "x"+strings.Repeat("y", 150), "Ångström über façade")
	for _, text := range texts {
		got, err := tk.EncodeInto(nil, text)
		if err != nil {
			t.Fatal(err)
		}
		if want := referenceIDs(t, ref, tk, text); !equalIDs(got, want) {
			t.Errorf("%q: got %v, sugarme %v", text, got, want)
		}
	}
}

func FuzzEncode(f *testing.F) {
	tk := loadTestTokenizer(f, 32)
	ref := sugarmeReference(f)
	for _, s := range []string{"", "Héllo wörld", "東京 🙂", "\x00\xff", strings.Repeat("ab ", 50), "a,b.c!d", "x##y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := tk.EncodeInto(nil, s)
		if err != nil {
			t.Fatalf("EncodeInto(%q): %v", s, err)
		}
		if len(ids) < 2 || len(ids) > 32 || ids[0] != 101 || ids[len(ids)-1] != 102 {
			t.Fatalf("EncodeInto(%q) = %v: want 2..32 ids framed by [CLS]/[SEP]", s, ids)
		}
		if !utf8.ValidString(s) {
			return
		}
		if want := referenceIDs(t, ref, tk, s); !equalIDs(ids, want) {
			t.Fatalf("EncodeInto(%q) = %v, sugarme %v", s, ids, want)
		}
	})
}

func TestEncodeAllocs(t *testing.T) {
	tk := loadTestTokenizer(t, 256)
	buf := make([]int64, 0, 64)
	text := "the quick brown fox jumps over the lazy dog, twice!"
	if a := testing.AllocsPerRun(100, func() { buf, _ = tk.EncodeInto(buf[:0], text) }); a > 3 {
		t.Fatalf("EncodeInto allocates %v times per call, want at most 3 (normalised string copies)", a)
	}
}

// TestEncodeIgnoresVanishingWords: words that normalise to nothing (zero
// width spaces, lone combining marks, invalid UTF-8) and removed control
// separators must not use up the length budget, or a prompt prefixed with
// enough of them embeds as [CLS] [SEP] and dodges routing.
func TestEncodeIgnoresVanishingWords(t *testing.T) {
	tk := loadTestTokenizer(t, 32)
	prompt := "write a python function that reverses a linked list"
	want, _ := tk.EncodeInto(nil, prompt)
	for name, pad := range map[string]string{
		"zero-width spaces": "\u200b ",
		"combining marks":   "\u0301 ",
		"invalid UTF-8":     "\xff ",
		"replacement char":  "\ufffd ",
		"vertical tabs":     "\v",
	} {
		got, _ := tk.EncodeInto(nil, strings.Repeat(pad, 500)+prompt)
		if !equalIDs(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

func TestClip(t *testing.T) {
	tk := loadTestTokenizer(t, 256)
	text := "one two three four five six seven eight nine ten"
	if got := tk.Clip(text, 64, false); got != text {
		t.Fatalf("a short text changed: %q", got)
	}
	if got := tk.Clip(text, 5, false); got != "one two three" {
		t.Fatalf("head: %q", got)
	}
	if got := tk.Clip(text, 6, true); got != "one two nine ten" {
		t.Fatalf("head and tail: %q", got)
	}
	long := strings.Repeat("routing decisions ", 300)
	ids, _ := tk.EncodeInto(nil, tk.Clip(long, 40, true))
	if len(ids) > 40 {
		t.Fatalf("clipped to %d tokens, want at most 40", len(ids))
	}
}
