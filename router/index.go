package router

import (
	"fmt"
	"sync"

	"github.com/autorouter/autorouter/simd"
)

// Aggregation combines the scores of one route's utterances among the top k.
type Aggregation int

// Aggregations. AggMean is semantic-router's and LiteLLM's default.
const (
	AggMean Aggregation = iota
	AggMax
	AggSum
)

var aggNames = [...]string{"mean", "max", "sum"}

// ParseAggregation parses "mean", "max" or "sum"; "" means mean.
func ParseAggregation(s string) (Aggregation, error) {
	if s == "" {
		return AggMean, nil
	}
	for i, n := range aggNames {
		if s == n {
			return Aggregation(i), nil
		}
	}
	return 0, fmt.Errorf("aggregation %q: want \"mean\", \"max\" or \"sum\"", s)
}

func (a Aggregation) String() string { return aggNames[a] }

// MarshalText encodes the aggregation by name.
func (a Aggregation) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText decodes an aggregation name.
func (a *Aggregation) UnmarshalText(b []byte) error {
	v, err := ParseAggregation(string(b))
	*a = v
	return err
}

// IndexRoute is one route of an index: where to send a match, and the score
// a match must reach.
type IndexRoute struct {
	Name      string
	Threshold float32
}

// IndexOptions tunes scoring. Zero values mean LiteLLM's behaviour.
type IndexOptions struct {
	// TopK is how many utterances, over all routes, are kept per query.
	// Default 5.
	TopK        int
	Aggregation Aggregation
	// Classifier, when set, scores routes by its softmax probabilities
	// instead of utterance similarity ("scoring": "classifier"); the TopK
	// most probable routes are the candidates.
	Classifier *Classifier
}

// Index holds every utterance vector of one router in one contiguous,
// row-normalised matrix. It is immutable once built and safe for
// concurrent use.
type Index struct {
	dim      int
	routes   []IndexRoute
	matrix   []float32
	rowRoute []int32
	topK     int
	agg      Aggregation
	clf      *Classifier
	// q8 is an int8 copy of matrix for an exact two-pass top-k (see
	// simd.Int8Rows); nil where the CPU has no int8 kernel or the matrix
	// could not be quantised, and then every query scans matrix in fp32.
	q8 *simd.Int8Rows

	// scratch holds *indexScratch, the per-query buffers.
	scratch sync.Pool
}

// indexScratch is one query's working memory; it goes back to the pool
// when Score_Into returns.
type indexScratch struct {
	scores []float32 // fp32 score of every row; only without q8
	k8     *simd.TopKScratch
	topSc  []float32 // scores of the rows in top
	probs  []float32
	top    []int32
	sum    []float32
	max    []float32
	count  []int32
	seen   []int32
}

// NewIndex copies vecs (len(rowRoute) rows of dim floats, row-major) into
// one matrix, normalising each row to unit length once, so that scoring is
// a plain dot product. rowRoute[i] is the index in routes of row i.
func NewIndex(dim int, routes []IndexRoute, vecs []float32, rowRoute []int32, opts IndexOptions) (*Index, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("index: dimension %d must be positive", dim)
	}
	if len(vecs) != len(rowRoute)*dim {
		return nil, fmt.Errorf("index: %d floats for %d utterances of dimension %d", len(vecs), len(rowRoute), dim)
	}
	counts := make([]int, len(routes))
	for i, r := range rowRoute {
		if r < 0 || int(r) >= len(routes) {
			return nil, fmt.Errorf("index: utterance %d belongs to route %d of %d", i, r, len(routes))
		}
		counts[r]++
	}
	for i, rt := range routes {
		if counts[i] == 0 {
			return nil, fmt.Errorf("index: route %q has no utterances", rt.Name)
		}
		if rt.Threshold < 0 || rt.Threshold > 1 {
			return nil, fmt.Errorf("index: route %q: threshold %g outside [0,1]", rt.Name, rt.Threshold)
		}
	}
	if opts.TopK <= 0 {
		opts.TopK = 5
	}
	ix := &Index{
		dim:      dim,
		routes:   append([]IndexRoute(nil), routes...),
		matrix:   append([]float32(nil), vecs...),
		rowRoute: append([]int32(nil), rowRoute...),
		topK:     opts.TopK,
		agg:      opts.Aggregation,
		clf:      opts.Classifier,
	}
	if c := opts.Classifier; c != nil && (c.dim != dim || c.routes != len(routes)) {
		return nil, fmt.Errorf("index: classifier is %d routes × %d dims, index is %d × %d", c.routes, c.dim, len(routes), dim)
	}
	for i := range rowRoute {
		simd.Normalize(ix.matrix[i*dim : (i+1)*dim])
	}
	if opts.Classifier == nil && simd.FastInt8() {
		// The int8 pass returns the same top k as the fp32 scan, bit for
		// bit, so this changes speed, never a decision. It fails only on
		// NaN or infinite vectors, which then score the plain way.
		ix.q8, _ = simd.QuantizeRows(ix.matrix, dim)
	}
	n, nr := len(rowRoute), len(routes)
	ix.scratch.New = func() any {
		s := &indexScratch{
			topSc: make([]float32, 0, opts.TopK),
			probs: make([]float32, nr),
			top:   make([]int32, 0, opts.TopK),
			sum:   make([]float32, nr),
			max:   make([]float32, nr),
			count: make([]int32, nr),
			seen:  make([]int32, 0, opts.TopK),
		}
		if ix.q8 != nil {
			s.k8 = ix.q8.NewScratch(opts.TopK)
		} else {
			s.scores = make([]float32, n)
		}
		return s
	}
	return ix, nil
}

// Dim is the vector length the index expects.
func (ix *Index) Dim() int { return ix.dim }

// Routes returns the index's routes; the caller must not modify them.
func (ix *Index) Routes() []IndexRoute { return ix.routes }

// Len is the number of utterances.
func (ix *Index) Len() int { return len(ix.rowRoute) }

// Score_Into appends one RouteScore per route present among the query's top
// k utterances to dst, highest score first, and returns it; a query of the wrong length adds none. This is
// semantic-router's scoring, which LiteLLM uses: cosine against every
// utterance, keep the global top k, group them by route, aggregate each
// group (mean, max or sum), and mark each route Passed when its aggregate
// reaches its own threshold. query must be unit length and Dim() long. It
// allocates nothing when dst has room for k entries.
func (ix *Index) Score_Into(dst []RouteScore, query []float32) []RouteScore {
	if len(query) != ix.dim {
		return dst // no candidates: the caller falls back to the default
	}
	s := ix.scratch.Get().(*indexScratch)
	defer ix.scratch.Put(s)
	if ix.clf != nil {
		ix.clf.ProbsInto(s.probs, query)
		for _, r := range simd.TopK_Into(s.top, s.probs, ix.topK) {
			rt := ix.routes[r]
			p := s.probs[r]
			dst = append(dst, RouteScore{Route: rt.Name, Score: p, Threshold: rt.Threshold, Passed: p >= rt.Threshold})
		}
		return dst
	}
	ix.topRows(s, query)
	s.seen = s.seen[:0]
	for i, row := range s.top {
		r := ix.rowRoute[row]
		sc := s.topSc[i]
		if s.count[r] == 0 {
			s.seen = append(s.seen, r)
			s.sum[r], s.max[r] = 0, sc
		}
		s.count[r]++
		s.sum[r] += sc
		s.max[r] = max(s.max[r], sc)
	}
	start := len(dst)
	for _, r := range s.seen {
		var score float32
		switch ix.agg {
		case AggMax:
			score = s.max[r]
		case AggSum:
			score = s.sum[r]
		default:
			score = s.sum[r] / float32(s.count[r])
		}
		s.count[r] = 0
		rt := ix.routes[r]
		dst = append(dst, RouteScore{Route: rt.Name, Score: score, Threshold: rt.Threshold, Passed: score >= rt.Threshold})
	}
	sortScores(dst[start:])
	return dst
}

// topRows sets s.top to the k utterances most similar to query, highest
// first, and s.topSc to their cosine scores.
func (ix *Index) topRows(s *indexScratch, query []float32) {
	if ix.q8 != nil {
		// Score_Into has checked the query's length, the only error.
		s.top, s.topSc, _ = ix.q8.TopK_Into(s.top, s.topSc, s.k8, query, ix.topK)
		return
	}
	s.scores = simd.MatVec_Into(s.scores, ix.matrix, query)
	s.top = simd.TopK_Into(s.top, s.scores, ix.topK)
	s.topSc = s.topSc[:0]
	for _, row := range s.top {
		s.topSc = append(s.topSc, s.scores[row])
	}
}

// NearestRows returns the k utterance rows most similar to query (at most
// Len()), highest first, with their cosines; nil for a query of the wrong
// length. It scans in fp32 and allocates: it explains a decision (the
// /route dry run), it is not on the routing path.
func (ix *Index) NearestRows(query []float32, k int) (rows []int32, scores []float32) {
	if len(query) != ix.dim || k <= 0 {
		return nil, nil
	}
	all := simd.MatVec_Into(make([]float32, len(ix.rowRoute)), ix.matrix, query)
	rows = simd.TopK_Into(make([]int32, 0, min(k, len(all))), all, k)
	scores = make([]float32, len(rows))
	for i, r := range rows {
		scores[i] = all[r]
	}
	return rows, scores
}

// RouteOf is the index in Routes() of the route row belongs to.
func (ix *Index) RouteOf(row int32) int { return int(ix.rowRoute[row]) }

// sortScores orders scores highest first; it is an insertion sort because
// there are at most k entries and sort.Slice would allocate.
func sortScores(s []RouteScore) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Score > s[j-1].Score; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Winner returns the first route in scores (highest first) that passed its
// threshold. A lower-scored route wins when every higher one missed a
// stricter threshold of its own.
func Winner(scores []RouteScore) (RouteScore, bool) {
	for _, s := range scores {
		if s.Passed {
			return s, true
		}
	}
	return RouteScore{}, false
}
