// Package simd holds the vector math of routing: dot products, L2
// normalisation, matrix-vector scores and top-k selection. It uses vek's
// AVX2 kernels where the CPU has them, and keeps a pure-Go reference for each
// so tests can check the two agree.
//
// Callers check lengths once, when they build their data; these functions
// assume matching lengths and do not re-check them on every call.
package simd

import (
	"math"

	"github.com/viterin/vek/vek32"
)

// Dot returns a·b. a and b must have the same length.
func Dot(a, b []float32) float32 {
	if len(a) == 0 {
		return 0
	}
	return vek32.Dot(a, b)
}

// dotRef is the pure-Go reference for Dot.
func dotRef(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// Normalize scales v in place to unit L2 length and returns its original
// length. A zero vector is left unchanged and 0 is returned.
func Normalize(v []float32) float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return 0
	}
	n := math.Sqrt(s)
	inv := float32(1 / n)
	for i := range v {
		v[i] *= inv
	}
	return float32(n)
}

// MatVec_Into writes m·v into dst and returns it, where m is a row-major
// matrix of len(m)/len(v) rows. dst must have room for one score per row;
// it is resliced to that length, so it can be reused across calls.
func MatVec_Into(dst, m, v []float32) []float32 {
	cols := len(v)
	if cols == 0 {
		return dst[:0]
	}
	rows := len(m) / cols
	dst = dst[:rows]
	for r := 0; r < rows; r++ {
		dst[r] = vek32.Dot(m[r*cols:(r+1)*cols], v)
	}
	return dst
}

// matVecRef is the pure-Go reference for MatVec_Into.
func matVecRef(dst, m, v []float32) []float32 {
	cols := len(v)
	rows := len(m) / cols
	dst = dst[:rows]
	for r := 0; r < rows; r++ {
		dst[r] = dotRef(m[r*cols:(r+1)*cols], v)
	}
	return dst
}

// TopK_Into writes the indices of the k largest scores into dst, highest
// first (ties: lower index first), and returns it. It keeps a k-element
// min-heap instead of sorting every score: O(n log k). dst must have
// capacity k; fewer than k indices are returned when scores is shorter.
func TopK_Into(dst []int32, scores []float32, k int) []int32 {
	k = min(k, len(scores))
	if k <= 0 {
		return dst[:0]
	}
	h := dst[:0]
	// less orders the heap so that its root is the entry to evict first:
	// the lowest score, and among equal scores the highest index.
	less := func(a, b int32) bool {
		if scores[a] != scores[b] {
			return scores[a] < scores[b]
		}
		return a > b
	}
	// down sifts entry i of the heap h[:n] into place.
	down := func(i, n int) {
		for {
			l := 2*i + 1
			if l >= n {
				return
			}
			c := l
			if r := l + 1; r < n && less(h[r], h[l]) {
				c = r
			}
			if !less(h[c], h[i]) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := 0; i < len(scores); i++ {
		idx := int32(i)
		if len(h) < k {
			h = append(h, idx)
			for j := len(h) - 1; j > 0; {
				p := (j - 1) / 2
				if !less(h[j], h[p]) {
					break
				}
				h[j], h[p] = h[p], h[j]
				j = p
			}
			continue
		}
		if less(h[0], idx) {
			h[0] = idx
			down(0, k)
		}
	}
	// Pop the heap from the back: repeatedly move the minimum to the end,
	// which leaves the slice sorted highest first.
	for end := len(h) - 1; end > 0; end-- {
		h[0], h[end] = h[end], h[0]
		down(0, end)
	}
	return h
}
