// Package embed turns text into sentence-embedding vectors. Every encoder sits
// behind the one-method-plus-size Encoder interface; optional capabilities
// (closing, a stable model identity for caches, a preferred batch size) are
// discovered by type assertion.
package embed

import "context"

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
