// Package embed turns text into sentence-embedding vectors. Every encoder sits
// behind the one-method-plus-size Encoder interface; optional capabilities
// (closing, a stable model identity for caches, a preferred batch size) are
// discovered by type assertion.
package embed

import (
	"context"
	"fmt"
	"time"
)

// Encoder turns texts into L2-normalised embedding vectors.
//
// Implementations are safe for concurrent use.
type Encoder interface {
	// Embed writes one Dim()-length unit vector per text into dst, row-major:
	// the vector for texts[i] is dst[i*Dim() : (i+1)*Dim()]. len(dst) must be
	// len(texts)*Dim(). dst is owned by the caller; Embed keeps no reference
	// to it or to texts after it returns.
	Embed(ctx context.Context, texts []string, dst []float32) error
	// Dim is the length of every vector Embed writes.
	Dim() int
}

// Identifier is implemented by encoders that can name the exact model they
// run, for example by the sha256 of its weights. Caches key on it so that a
// changed model never serves stale vectors.
type Identifier interface {
	ModelID() string
}

// TokenCounter is implemented by encoders that can say how many tokens a
// text costs them (after their own truncation), so that callers can bound
// the work a request asks for before running it.
type TokenCounter interface {
	CountTokens(text string) int
}

// ProgressFunc is told, after each batch of a long embedding job, how many
// of total texts are done and the rate so far in texts per second.
type ProgressFunc func(done, total int, perSecond float64)

// progressBatch is how many texts a long job embeds between reports.
const progressBatch = 64

// EmbedProgress is enc.Embed in batches, reporting progress after each.
func EmbedProgress(ctx context.Context, enc Encoder, texts []string, dst []float32, progress ProgressFunc) error {
	dim := enc.Dim()
	if len(dst) != len(texts)*dim {
		return fmt.Errorf("embed: dst has %d floats, want %d", len(dst), len(texts)*dim)
	}
	start := time.Now()
	for b := 0; b < len(texts); b += progressBatch {
		e := min(b+progressBatch, len(texts))
		if err := enc.Embed(ctx, texts[b:e], dst[b*dim:e*dim]); err != nil {
			return err
		}
		if progress != nil {
			progress(e, len(texts), float64(e)/time.Since(start).Seconds())
		}
	}
	return nil
}
