package embed

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Tokenizer turns text into BERT input ids: [CLS] pieces… [SEP], cut to a
// maximum length. It is safe for concurrent use.
//
// It implements Hugging Face's BertNormalizer, BertPreTokenizer and WordPiece
// over the vocabulary in tokenizer.json. github.com/sugarme/tokenizer is the
// reference it is tested against id for id (tokenizer_test.go, FuzzEncode);
// it is not on the hot path because it costs ~200 µs and ~3,800 allocations
// per 32-token text, 14% of an int8 inference, and because v0.3.0 does not
// strip accents when tokenizer.json says strip_accents: null with
// lowercase: true ("café" must become "cafe", not [UNK]).
type Tokenizer struct {
	vocab    map[string]int64
	norm     bertNormalizer
	maxLen   int
	maxChars int // WordPiece max_input_chars_per_word
	prefix   string
	cls      int64
	sep      int64
	unk      int64
	// pool holds *[]byte scratch for "##piece" lookups.
	pool sync.Pool
}

// bertNormalizer holds the flags of a tokenizer.json BertNormalizer.
type bertNormalizer struct {
	cleanText, chineseChars, stripAccents, lowercase bool
}

// LoadTokenizer reads a Hugging Face tokenizer.json. maxLen bounds the ids
// EncodeInto returns, [CLS] and [SEP] included; it must be at least 2.
func LoadTokenizer(path string, maxLen int) (*Tokenizer, error) {
	if maxLen < 2 {
		return nil, fmt.Errorf("tokenizer max length %d: must be at least 2 ([CLS] and [SEP])", maxLen)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading tokenizer: %w (run scripts/setup.sh, or point model_path at a directory with tokenizer.json)", err)
	}
	var spec struct {
		Normalizer *struct {
			Type         string `json:"type"`
			CleanText    *bool  `json:"clean_text"`
			ChineseChars *bool  `json:"handle_chinese_chars"`
			StripAccents *bool  `json:"strip_accents"`
			Lowercase    *bool  `json:"lowercase"`
		} `json:"normalizer"`
		Model struct {
			Type     string           `json:"type"`
			Vocab    map[string]int64 `json:"vocab"`
			UNK      string           `json:"unk_token"`
			Prefix   *string          `json:"continuing_subword_prefix"`
			MaxChars int              `json:"max_input_chars_per_word"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s: invalid tokenizer.json: %w", path, err)
	}
	if spec.Model.Type != "WordPiece" {
		return nil, fmt.Errorf("%s: tokenizer model %q is not supported; want a BERT WordPiece tokenizer", path, spec.Model.Type)
	}
	if spec.Model.UNK == "" {
		spec.Model.UNK = "[UNK]"
	}
	cls, okC := spec.Model.Vocab["[CLS]"]
	sep, okS := spec.Model.Vocab["[SEP]"]
	unk, okU := spec.Model.Vocab[spec.Model.UNK]
	if !okC || !okS || !okU {
		return nil, fmt.Errorf("%s: vocabulary lacks [CLS], [SEP] or %s", path, spec.Model.UNK)
	}
	n := bertNormalizer{cleanText: true, chineseChars: true, lowercase: true}
	if s := spec.Normalizer; s != nil && s.Type == "BertNormalizer" {
		n.cleanText = s.CleanText == nil || *s.CleanText
		n.chineseChars = s.ChineseChars == nil || *s.ChineseChars
		n.lowercase = s.Lowercase == nil || *s.Lowercase
	}
	// HF: strip_accents null means "follow lowercase".
	n.stripAccents = n.lowercase
	if s := spec.Normalizer; s != nil && s.StripAccents != nil {
		n.stripAccents = *s.StripAccents
	}
	t := &Tokenizer{vocab: spec.Model.Vocab, norm: n, maxLen: maxLen, maxChars: spec.Model.MaxChars,
		prefix: "##", cls: cls, sep: sep, unk: unk}
	if spec.Model.Prefix != nil {
		t.prefix = *spec.Model.Prefix
	}
	if t.maxChars <= 0 {
		t.maxChars = 100
	}
	t.pool.New = func() any { b := make([]byte, 0, 64); return &b }
	return t, nil
}

// MaxLen is the most ids EncodeInto returns for one text.
func (t *Tokenizer) MaxLen() int { return t.maxLen }

// EncodeInto appends the ids of text to dst and returns it: [CLS], the
// WordPiece ids of the normalised text (at most MaxLen()-2 of them), [SEP].
func (t *Tokenizer) EncodeInto(dst []int64, text string) ([]int64, error) {
	text = t.normalize(t.clipWords(text, t.maxLen))
	dst = append(dst, t.cls)
	limit := len(dst) + t.maxLen - 2
	bp := t.pool.Get().(*[]byte)
	defer t.pool.Put(bp)
	start := -1
	for i, r := range text {
		switch {
		case r == ' ':
			if start >= 0 {
				dst = t.wordPiece(dst, text[start:i], bp)
				start = -1
			}
		case isPunct(r):
			if start >= 0 {
				dst = t.wordPiece(dst, text[start:i], bp)
				start = -1
			}
			dst = t.wordPiece(dst, string(text[i:i+utf8.RuneLen(r)]), bp)
		default:
			if start < 0 {
				start = i
			}
		}
		if len(dst) >= limit {
			break
		}
	}
	if start >= 0 && len(dst) < limit {
		dst = t.wordPiece(dst, text[start:], bp)
	}
	if len(dst) > limit {
		dst = dst[:limit]
	}
	return append(dst, t.sep), nil
}

// wordPiece appends the ids of one pre-tokenized word: greedy longest match
// first, continuation pieces prefixed with "##"; a word with an unmatchable
// position, or longer than max_input_chars_per_word, is one [UNK].
func (t *Tokenizer) wordPiece(dst []int64, word string, bp *[]byte) []int64 {
	if utf8.RuneCountInString(word) > t.maxChars {
		return append(dst, t.unk)
	}
	mark := len(dst)
	for start := 0; start < len(word); {
		end := len(word)
		found := false
		for end > start {
			buf := (*bp)[:0]
			if start > 0 {
				buf = append(buf, t.prefix...)
			}
			buf = append(buf, word[start:end]...)
			*bp = buf
			if id, ok := t.vocab[string(buf)]; ok {
				dst = append(dst, id)
				found = true
				break
			}
			_, size := utf8.DecodeLastRuneInString(word[start:end])
			end -= size
		}
		if !found {
			return append(dst[:mark], t.unk)
		}
		start = end
	}
	return dst
}

// isPunct matches BERT's punctuation: ASCII symbol ranges and Unicode P*.
func isPunct(r rune) bool {
	if (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126) {
		return true
	}
	return unicode.IsPunct(r)
}

// clipWords cuts text at the whitespace after its first maxTokens words,
// so that a 10,000-word input costs no more than a short one. Only words
// that keep a rune through normalisation count: each of those yields at
// least one token and a word's pieces depend only on that word, so the
// first maxTokens tokens are unchanged. A word of runes that normalise to
// nothing (zero-width spaces, lone combining marks, invalid UTF-8) yields
// no token, and counting it would let a prompt padded with them embed as
// [CLS] [SEP] and dodge routing. Separators are judged as normalize does:
// control characters such as \v are removed there, not split on.
func (t *Tokenizer) clipWords(text string, maxTokens int) string {
	words, inWord, counted := 0, false, false
	for i, r := range text {
		if t.norm.cleanText && (r == 0 || r == utf8.RuneError || isControl(r)) {
			continue // removed: neither a separator nor a token
		}
		if isWhitespace(r) {
			if inWord && counted && words >= maxTokens {
				return text[:i]
			}
			inWord, counted = false, false
			continue
		}
		inWord = true
		if !counted && !(t.norm.stripAccents && unicode.Is(unicode.Mn, r)) {
			counted = true
			words++
		}
	}
	return text
}

// normalize applies BertNormalizer as Hugging Face tokenizers do: clean
// control characters, space out CJK ideographs, strip accents, lowercase.
// Every whitespace rune comes out as ' ', which EncodeInto splits on.
func (t *Tokenizer) normalize(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		switch {
		case t.norm.cleanText && (r == 0 || r == utf8.RuneError || isControl(r)):
			continue
		case isWhitespace(r):
			b.WriteByte(' ')
		case t.norm.chineseChars && isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	s = b.String()
	if t.norm.stripAccents {
		s = stripMarks(s)
	}
	if t.norm.lowercase {
		s = strings.ToLower(s)
	}
	return s
}

// stripMarks decomposes to NFD and drops nonspacing marks (Mn), which is
// what HF's strip_accents does.
func stripMarks(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isWhitespace matches HF's BERT definition: Unicode White_Space. Control
// characters among them (\v, \f, U+0085) are removed before this is asked.
func isWhitespace(r rune) bool { return unicode.IsSpace(r) }

// isControl matches HF's BERT definition: "other" categories (Cc, Cf, Co;
// Cs cannot occur in valid UTF-8), except the whitespace controls \t, \n
// and \r.
func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co)
}

// isCJK matches the CJK Unified Ideographs blocks BERT spaces out.
func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) || (r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

// Clip cuts text to at most maxTokens tokens ([CLS] and [SEP] included) at
// word boundaries: its first words, or with headTail its first and last
// words, half the budget each, joined by a space. A text within the
// budget comes back unchanged. It lets a router embed a long prompt's
// opening (and ending) instead of paying for all of it.
func (t *Tokenizer) Clip(text string, maxTokens int, headTail bool) string {
	budget := maxTokens - 2
	if budget <= 0 {
		return ""
	}
	type word struct{ start, end, tokens int }
	var words []word
	total := 0
	var ids []int64
	start := -1
	flush := func(end int) {
		if start < 0 {
			return
		}
		ids, _ = t.EncodeInto(ids[:0], text[start:end])
		n := len(ids) - 2
		words = append(words, word{start, end, n})
		total += n
		start = -1
	}
	for i, r := range text {
		if isWhitespace(r) && !(t.norm.cleanText && isControl(r)) {
			flush(i)
			continue
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(text))
	if total <= budget {
		return text
	}
	headBudget := budget
	if headTail {
		headBudget = budget / 2
	}
	used, h := 0, 0
	for h < len(words) && used+words[h].tokens <= headBudget {
		used += words[h].tokens
		h++
	}
	head := ""
	if h > 0 {
		head = text[words[0].start:words[h-1].end]
	}
	if !headTail {
		return head
	}
	tailBudget := budget - used
	used, k := 0, len(words)
	for k > h && used+words[k-1].tokens <= tailBudget {
		used += words[k-1].tokens
		k--
	}
	if k == len(words) {
		return head
	}
	tail := text[words[k].start:words[len(words)-1].end]
	if head == "" {
		return tail
	}
	return head + " " + tail
}

// Clipper is implemented by encoders that can cut a text to a token
// budget the way they tokenize it.
type Clipper interface {
	Clip(text string, maxTokens int, headTail bool) string
}
