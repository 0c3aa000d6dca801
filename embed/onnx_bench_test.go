package embed

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// textOfTokens returns a text that tokenizes to n ids, [CLS] and [SEP] included.
func textOfTokens(tb testing.TB, tk *Tokenizer, n int) string {
	words := strings.Fields(strings.Repeat("the quick brown fox jumps over the lazy dog ", n))
	text := strings.Join(words[:n-2], " ")
	ids, _ := tk.EncodeInto(nil, text)
	if len(ids) != n {
		tb.Fatalf("text has %d tokens, want %d", len(ids), n)
	}
	return text
}

func BenchmarkEmbed(b *testing.B) {
	for _, file := range []string{"model.onnx", "model_int8.onnx"} {
		e := newTestONNX(b, file)
		for _, n := range []int{8, 32, 128} {
			texts := []string{textOfTokens(b, e.tok, n)}
			dst := make([]float32, e.Dim())
			b.Run(file+"/tokens="+strconv.Itoa(n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := e.Embed(context.Background(), texts, dst); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		batch := make([]string, 32)
		for i := range batch {
			batch[i] = textOfTokens(b, e.tok, 32)
		}
		dst := make([]float32, 32*e.Dim())
		b.Run(file+"/batch=32x32", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := e.Embed(context.Background(), batch, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOverhead puts raw session runs on pre-tokenized input next to the
// full Embed of the same 32-token text, so tokenize + pool + normalise show
// as the difference.
func BenchmarkOverhead(b *testing.B) {
	for _, file := range []string{"model.onnx", "model_int8.onnx"} {
		e := newTestONNX(b, file)
		text := textOfTokens(b, e.tok, 32)
		ids, _ := e.tok.EncodeInto(nil, text)
		mask := make([]int64, len(ids))
		for i := range mask {
			mask[i] = 1
		}
		types := make([]int64, len(ids))
		out := make([]float32, len(ids)*e.Dim())
		b.Run(file+"/run", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := e.run(ids, mask, types, 1, len(ids), out); err != nil {
					b.Fatal(err)
				}
			}
		})
		dst := make([]float32, e.Dim())
		b.Run(file+"/embed", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := e.Embed(context.Background(), []string{text}, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(file+"/tokenize", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]int64, 0, 64)
			for b.Loop() {
				buf, _ = e.tok.EncodeInto(buf[:0], text)
			}
		})
	}
}
