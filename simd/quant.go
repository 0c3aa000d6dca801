package simd

import (
	"errors"
	"fmt"
	"math"
)

// Exact top-k with an int8 first pass.
//
// Scoring one query against every row in fp32 reads 4 bytes per weight and
// is bound by memory bandwidth. Int8Rows keeps a second, int8 copy of the
// matrix (one byte per weight) and answers top-k queries in two passes:
//
//  1. An integer dot product of the quantised query with every quantised
//     row gives an approximate score a_i and a rigorous error bound e_i,
//     so the fp32 score x_i lies in [a_i−e_i, a_i+e_i].
//  2. Let L be the k-th largest lower bound a_j−e_j. At least k rows score
//     ≥ L, so a row with a_i+e_i < L is beaten strictly by k rows and
//     cannot be in the top k, whatever the tie-breaking. Only the other
//     rows, the survivors, are rescored with exactly the fp32 dot product
//     MatVec_Into uses, and TopK_Into picks among them.
//
// The true top k are therefore always among the survivors, their fp32
// scores are bit-identical to MatVec_Into's, and survivors are kept in row
// order so TopK_Into's tie-break (lower index first) also agrees: the
// result equals TopK_Into(MatVec_Into(m, q)) exactly, indices and scores.
//
// The bound. Row u is stored as s_u·U + τ with U ∈ [-127,127]^d integer,
// s_u = max|u|/127 and τ the rounding residual; the query likewise as
// q = s_q·Q + ρ. Then, exactly,
//
//	q·u = (s_q·Q + ρ)·u = s_q·Q·(s_u·U + τ) + ρ·u
//	    = s_q·s_u·(Q·U) + s_q·Q·τ + ρ·u
//	    = a + q·τ − ρ·τ + ρ·u,            using s_q·Q = q − ρ
//	    = a + q·τ + ρ·(s_u·U)
//
// so by Cauchy–Schwarz |q·u − a| ≤ ‖q‖·‖τ‖ + ‖ρ‖·‖s_u·U‖. ‖τ‖ is stored per
// row at build, ‖ρ‖ and ‖q‖ are measured per query, and ‖s_u·U‖ ≤ ‖u‖+‖τ‖.
// This uses the actual residuals rather than the worst case ‖τ‖ ≤ s_u·√d/2,
// so it needs no assumption about how the rounding was done, and it is
// about a third tighter than the L1 form s_u/2·‖q‖₁ + s_q/2·‖u‖₁ on
// typical vectors. Note Q·U is computed exactly in integers.
//
// Float rounding. The fp32 score is not q·u but vek32.Dot's rounded sum
// of d products; any summation order with or without FMA is within
// γ_d·Σ|q_j·u_j| ≤ γ_d·‖q‖·‖u‖ of the real value, γ_d = d·2⁻²⁴/(1−d·2⁻²⁴)
// < 2·d·2⁻²⁴ for d ≤ 2²², plus at most d·2⁻¹⁴⁹ per operation from
// gradual underflow. The bounds themselves are evaluated in float64 from
// exactly representable inputs (s_q·s_u has 48 significant bits, Q·U fits
// in 31 bits); the few float64 roundings are each below 2⁻⁵² of a value at
// most (‖q‖+‖ρ‖)·(‖u‖+‖τ‖), and a term 2⁻⁴⁰ times that absorbs them with a
// wide margin. Stored norms are computed in float64 (relative error below
// d·2⁻⁵³ ≤ 2⁻³⁷), inflated by 2⁻³⁰ and rounded up to float32.
type Int8Rows struct {
	rows, cols int
	// m is the caller's fp32 matrix, used to rescore survivors.
	m []float32
	// q8 holds the rows quantised to [-127, 127], row-major.
	q8 []int8
	// meta is per row: its scale and upper bounds on ‖τ‖ and ‖u‖.
	meta []rowMeta
	// maxNorm is the largest row norm, to rule out float32 overflow.
	maxNorm float64
}

// rowMeta is what the first pass needs of one row besides its int8 values;
// keeping it in one 12-byte struct means one cache line serves five rows.
type rowMeta struct {
	scale float32 // s_u: the row is ≈ scale·U
	res   float32 // ≥ ‖τ‖ = ‖u − scale·U‖
	norm  float32 // ≥ ‖u‖
}

// Limits of the fast path: rows longer than maxInt8Cols could overflow the
// int32 kernels, and a query whose norm times the longest row exceeds
// maxScoreMagnitude could overflow float32 in the rescoring, where the
// rounding analysis stops holding. Such queries fall back to a full fp32
// scan, which is exact by definition.
const maxScoreMagnitude = 0x1p100

// blockRows is how many rows one kernel call scores; 256 int32 results
// stay in L1 while the first pass reads them back.
const blockRows = 256

// ErrQueryLength is returned when a query's length differs from the rows'.
var ErrQueryLength = errors.New("simd: query length differs from the row length")

// QuantizeRows builds the int8 copy of m, a row-major matrix of
// len(m)/cols rows. Int8Rows keeps a reference to m to rescore survivors,
// so the caller must not modify m while the Int8Rows is in use. It
// returns an error when cols is not positive or too large, when len(m) is
// not a multiple of cols, or when m holds a NaN or an infinity (the top k
// of such scores depends on the order of comparisons, which a pruned
// search cannot reproduce).
func QuantizeRows(m []float32, cols int) (*Int8Rows, error) {
	if cols <= 0 || cols > maxInt8Cols {
		return nil, fmt.Errorf("simd: row length %d outside [1, %d]", cols, maxInt8Cols)
	}
	if len(m)%cols != 0 {
		return nil, fmt.Errorf("simd: %d values do not split into rows of %d", len(m), cols)
	}
	rows := len(m) / cols
	x := &Int8Rows{
		rows: rows,
		cols: cols,
		m:    m,
		q8:   make([]int8, len(m)),
		meta: make([]rowMeta, rows),
	}
	for r := 0; r < rows; r++ {
		row := m[r*cols : (r+1)*cols]
		scale, res2, ok := quantize(x.q8[r*cols:(r+1)*cols], row)
		if !ok {
			return nil, fmt.Errorf("simd: row %d holds a NaN or an infinity", r)
		}
		var n2 float64
		for _, v := range row {
			n2 += float64(v) * float64(v)
		}
		norm := roundUp32(inflate(math.Sqrt(n2)))
		x.meta[r] = rowMeta{scale: scale, res: roundUp32(inflate(math.Sqrt(res2))), norm: norm}
		x.maxNorm = max(x.maxNorm, float64(norm))
	}
	return x, nil
}

// quantize writes v rounded to dst = round(v/s) with s = max|v|/127 and
// returns s, the squared norm of the residual v − s·dst, and whether v was
// finite. The residual is exact in float64: s·dst[j] has at most 24+7
// significant bits, and where dst[j] ≠ 0, v[j] is within a factor 256 of
// it, so their difference fits in 53 bits.
func quantize(dst []int8, v []float32) (scale float32, res2 float64, ok bool) {
	var maxAbs float32
	for _, x := range v {
		a := float32(math.Abs(float64(x)))
		if !(a <= math.MaxFloat32) { // NaN or ±Inf
			return 0, 0, false
		}
		maxAbs = max(maxAbs, a)
	}
	scale = maxAbs / 127
	if scale == 0 {
		// Zero or so tiny that the scale underflows: all codes 0, the
		// whole vector is residual.
		clear(dst)
		for _, x := range v {
			res2 += float64(x) * float64(x)
		}
		return 0, res2, true
	}
	inv := 1 / float64(scale)
	s := float64(scale)
	for j, x := range v {
		c := math.RoundToEven(float64(x) * inv)
		c = min(max(c, -127), 127) // never -128: the kernels rely on it
		dst[j] = int8(c)
		d := float64(x) - s*c
		res2 += d * d
	}
	return scale, res2, true
}

// inflate scales a float64 norm up by 2⁻³⁰, more than its rounding error.
func inflate(x float64) float64 { return x * (1 + 0x1p-30) }

// roundUp32 converts x ≥ 0 to the nearest float32 not below it.
func roundUp32(x float64) float32 {
	f := float32(x)
	if float64(f) < x {
		f = math.Nextafter32(f, float32(math.Inf(1)))
	}
	return f
}

// Rows is the number of rows.
func (x *Int8Rows) Rows() int { return x.rows }

// Cols is the row length.
func (x *Int8Rows) Cols() int { return x.cols }

// TopKScratch is the working memory of one Int8Rows.TopK_Into call. It may
// be reused for any number of calls on the Int8Rows that made it, but not
// concurrently; its contents do not outlive a call except Rescored.
type TopKScratch struct {
	q     []int8    // the quantised query
	dots  []int32   // one block of integer dot products
	heap  []float64 // min-heap of the k largest lower bounds so far
	cand  []int32   // rows not yet ruled out, in row order
	candH []float64 // their upper bounds
	surv  []float32 // fp32 scores of the survivors, in row order
	// Rescored is how many rows the last call rescored in fp32: the
	// survivors of the first pass, or every row on a fallback.
	Rescored int
}

// NewScratch returns buffers for TopK_Into calls with k up to maxK; a
// larger k still works but allocates on each call that needs more room.
func (x *Int8Rows) NewScratch(maxK int) *TopKScratch {
	maxK = max(maxK, 1)
	return &TopKScratch{
		q:     make([]int8, x.cols),
		dots:  make([]int32, blockRows),
		heap:  make([]float64, 0, maxK),
		cand:  make([]int32, 0, x.rows),
		candH: make([]float64, 0, x.rows),
		surv:  make([]float32, 0, x.rows),
	}
}

// fit reallocates buffers too small for x, which happens only when s was
// made by another Int8Rows; NewScratch's buffers always fit.
func (s *TopKScratch) fit(x *Int8Rows) {
	if len(s.q) != x.cols || cap(s.surv) < x.rows || len(s.dots) < blockRows {
		*s = *x.NewScratch(cap(s.heap))
	}
}

// TopK_Into finds the k rows with the largest fp32 dot product with q and
// returns their indices in dst, highest first (ties: lower index first),
// and their scores in scores, both resliced from the arguments. The result
// is identical, bit for bit, to
//
//	s := MatVec_Into(buf, m, q)
//	idx := TopK_Into(dst, s, k) // scores: s[idx[i]]
//
// on the matrix given to QuantizeRows. It allocates nothing when dst and
// scores have capacity k and s was made by NewScratch(k') with k' ≥ k. dst
// and scores are owned by the caller and are only written; s is scratch.
// It returns ErrQueryLength when len(q) ≠ Cols().
func (x *Int8Rows) TopK_Into(dst []int32, scores []float32, s *TopKScratch, q []float32, k int) ([]int32, []float32, error) {
	dst, scores = dst[:0], scores[:0]
	if len(q) != x.cols {
		return dst, scores, ErrQueryLength
	}
	k = min(k, x.rows)
	s.fit(x)
	s.Rescored = 0
	if k <= 0 {
		return dst, scores, nil
	}
	sq, qn, rn, ok := quantizeQuery(s.q, q)
	if !ok || !(qn*x.maxNorm <= maxScoreMagnitude) || k == x.rows {
		// Non-finite or huge queries are scored the plain way; so is
		// k = every row, where there is nothing to prune.
		return x.rescoreAll(dst, scores, s, q, k)
	}

	// Coefficients of the per-row bound e = cT·‖τ‖ + cN·‖u‖ + eAbs (see the
	// Int8Rows comment): ‖q‖·‖τ‖ + ‖ρ‖·(‖u‖+‖τ‖) for the quantisation,
	// γ_d·‖q‖·‖u‖ for the fp32 rounding, 2⁻⁴⁰·(‖q‖+‖ρ‖)·(‖u‖+‖τ‖) for the
	// float64 evaluation, and eAbs for underflow.
	slack := 0x1p-40 * (qn + rn)
	gamma := float64(2*x.cols+2) * 0x1p-24
	cT := qn + rn + slack
	cN := rn + gamma*qn + slack
	const eAbs = 0x1p-100
	sq64 := float64(sq)

	// One pass over the rows keeps the k largest lower bounds in a
	// min-heap; its root thr only rises, so a row whose upper bound is
	// below the current thr is below the final L too and is dropped at
	// once. The others are candidates, checked against the final L below.
	h := s.heap[:0]
	thr := math.Inf(-1)
	cand, candH := s.cand[:0], s.candH[:0]
	for r0 := 0; r0 < x.rows; r0 += blockRows {
		n := min(blockRows, x.rows-r0)
		dots := s.dots[:n]
		dotsInt8(dots, x.q8[r0*x.cols:(r0+n)*x.cols], s.q)
		meta := x.meta[r0 : r0+n]
		for i, d := range dots {
			mt := meta[i]
			a := float64(d) * (sq64 * float64(mt.scale))
			e := cT*float64(mt.res) + cN*float64(mt.norm) + eAbs
			hi := a + e
			if hi < thr {
				continue
			}
			cand = append(cand, int32(r0+i))
			candH = append(candH, hi)
			lo := a - e
			if len(h) < k {
				h = heapPush(h, lo)
				if len(h) == k {
					thr = h[0]
				}
			} else if lo > h[0] {
				h[0] = lo
				heapDown(h)
				thr = h[0]
			}
		}
	}
	s.heap = h[:0] // keep any growth for the next call

	// Rescore the survivors in row order, so TopK_Into's tie-break by
	// position is a tie-break by row index.
	surv := s.surv[:0]
	n := 0
	for j, r := range cand {
		if candH[j] < thr {
			continue
		}
		cand[n] = r
		n++
		surv = append(surv, Dot(x.m[int(r)*x.cols:(int(r)+1)*x.cols], q))
	}
	s.cand, s.candH, s.surv = cand[:0], candH[:0], surv[:0]
	s.Rescored = n
	dst = TopK_Into(dst, surv, k)
	for i, p := range dst {
		scores = append(scores, surv[p])
		dst[i] = cand[p]
	}
	return dst, scores, nil
}

// rescoreAll is the plain fp32 path: every row scored, TopK_Into over all.
func (x *Int8Rows) rescoreAll(dst []int32, scores []float32, s *TopKScratch, q []float32, k int) ([]int32, []float32, error) {
	all := MatVec_Into(s.surv[:x.rows], x.m, q)
	s.Rescored = x.rows
	dst = TopK_Into(dst, all, k)
	for _, r := range dst {
		scores = append(scores, all[r])
	}
	return dst, scores, nil
}

// quantizeQuery quantises q into dst like a row and returns its scale,
// upper bounds on ‖q‖ and on the residual norm ‖ρ‖, and whether q was
// finite.
func quantizeQuery(dst []int8, q []float32) (scale float32, qNorm, resNorm float64, ok bool) {
	scale, res2, ok := quantize(dst, q)
	if !ok {
		return 0, 0, 0, false
	}
	var n2 float64
	for _, v := range q {
		n2 += float64(v) * float64(v)
	}
	return scale, inflate(math.Sqrt(n2)), inflate(math.Sqrt(res2)), true
}

// heapPush adds v to the float64 min-heap h.
func heapPush(h []float64, v float64) []float64 {
	h = append(h, v)
	for j := len(h) - 1; j > 0; {
		p := (j - 1) / 2
		if h[p] <= h[j] {
			break
		}
		h[j], h[p] = h[p], h[j]
		j = p
	}
	return h
}

// heapDown restores the min-heap h after its root grew.
func heapDown(h []float64) {
	i := 0
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && h[r] < h[c] {
			c = r
		}
		if h[i] <= h[c] {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
