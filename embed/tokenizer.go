package embed

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
	"golang.org/x/text/unicode/norm"
)

// Tokenizer turns text into BERT input ids: [CLS] pieces… [SEP], cut to a
// maximum length. It is safe for concurrent use.
//
// It wraps github.com/sugarme/tokenizer for WordPiece, but normalises text
// itself first, because sugarme v0.3.0 does not strip accents when
// tokenizer.json says strip_accents: null with lowercase: true, as Hugging Face
// tokenizers do ("café" must become "cafe", not [UNK]).
type Tokenizer struct {
	tk     *tokenizer.Tokenizer
	norm   bertNormalizer
	maxLen int
	cls    int64
	sep    int64
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
			Type  string           `json:"type"`
			Vocab map[string]int64 `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("%s: invalid tokenizer.json: %w", path, err)
	}
	if spec.Model.Type != "WordPiece" {
		return nil, fmt.Errorf("%s: tokenizer model %q is not supported; want a BERT WordPiece tokenizer", path, spec.Model.Type)
	}
	cls, okC := spec.Model.Vocab["[CLS]"]
	sep, okS := spec.Model.Vocab["[SEP]"]
	if !okC || !okS {
		return nil, fmt.Errorf("%s: vocabulary has no [CLS] or [SEP] token", path)
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
	tk, err := pretrained.FromFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: loading tokenizer: %w", path, err)
	}
	// This tokenizer.json pads and truncates everything to 128; we cut to
	// the model's own limit instead and pad per batch.
	tk.WithPadding(nil)
	tk.WithTruncation(nil)
	return &Tokenizer{tk: tk, norm: n, maxLen: maxLen, cls: cls, sep: sep}, nil
}

// MaxLen is the most ids EncodeInto returns for one text.
func (t *Tokenizer) MaxLen() int { return t.maxLen }

// EncodeInto appends the ids of text to dst and returns it: [CLS], the
// WordPiece ids of the normalised text (at most MaxLen()-2 of them), [SEP].
func (t *Tokenizer) EncodeInto(dst []int64, text string) ([]int64, error) {
	text = t.normalize(clipWords(text, t.maxLen))
	dst = append(dst, t.cls)
	if strings.TrimSpace(text) != "" {
		enc, err := t.tk.EncodeSingle(text, false)
		if err != nil {
			return dst, fmt.Errorf("tokenizing: %w", err)
		}
		ids := enc.Ids
		if len(ids) > t.maxLen-2 {
			ids = ids[:t.maxLen-2]
		}
		for _, id := range ids {
			dst = append(dst, int64(id))
		}
	}
	return append(dst, t.sep), nil
}

// clipWords cuts text at the whitespace after its first maxTokens words.
// Every whitespace-separated word yields at least one token and a word's
// pieces depend only on that word, so the first maxTokens tokens are
// unchanged, while a 10,000-word input costs no more than a short one.
func clipWords(text string, maxTokens int) string {
	words, inWord := 0, false
	for i, r := range text {
		if unicode.IsSpace(r) {
			if inWord && words >= maxTokens {
				return text[:i]
			}
			inWord = false
			continue
		}
		if !inWord {
			words++
			inWord = true
		}
	}
	return text
}

// normalize applies BertNormalizer as Hugging Face tokenizers do: clean
// control characters, space out CJK ideographs, strip accents, lowercase.
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
		case t.norm.cleanText && isWhitespace(r):
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

// isWhitespace matches HF's BERT definition: \t, \n, \r and Unicode Zs.
func isWhitespace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r)
}

// isControl matches HF's BERT definition: categories Cc and Cf, except the
// whitespace controls \t, \n and \r.
func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf)
}

// isCJK matches the CJK Unified Ideographs blocks BERT spaces out.
func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) || (r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}
