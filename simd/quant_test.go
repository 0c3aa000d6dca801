package simd

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// unitVec returns a random direction: Gaussian coordinates, normalised.
func unitVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	Normalize(v)
	return v
}

// around returns normalize(c + sigma·z) for Gaussian z.
func around(r *rand.Rand, c []float32, sigma float64) []float32 {
	v := make([]float32, len(c))
	for i := range v {
		v[i] = c[i] + float32(sigma*r.NormFloat64())
	}
	Normalize(v)
	return v
}

// clusteredRows draws rows around nc random centres, sigma apart, as
// Normalize leaves them; dup of every 10 rows are exact copies of an
// earlier row, so equal scores (ties) occur.
func clusteredRows(r *rand.Rand, rows, cols, nc int, sigma float64, dup int) (m []float32, centres [][]float32) {
	for range nc {
		centres = append(centres, unitVec(r, cols))
	}
	m = make([]float32, 0, rows*cols)
	for i := range rows {
		if i > 0 && i%10 < dup {
			j := r.IntN(i)
			m = append(m, m[j*cols:(j+1)*cols]...)
			continue
		}
		m = append(m, around(r, centres[r.IntN(nc)], sigma)...)
	}
	return m, centres
}

// routeSet models a real route set: nc intents whose centres share a
// common direction (sentence embeddings are anisotropic: unrelated texts
// still have cosine ≈ 0.2), and utterances at cosine ≈ 0.75 to their
// intent's centre, ≈ 0.55 to each other.
func routeSet(r *rand.Rand, rows, cols, nc int) (m []float32, centres [][]float32) {
	common := unitVec(r, cols)
	for range nc {
		c := unitVec(r, cols)
		for j := range c {
			c[j] = 0.5*common[j] + c[j]
		}
		Normalize(c)
		centres = append(centres, c)
	}
	m = make([]float32, 0, rows*cols)
	for range rows {
		m = append(m, around(r, centres[r.IntN(nc)], 0.045)...)
	}
	return m, centres
}

// exactTopK is the fp32 path the fast one must reproduce.
func exactTopK(m, q []float32, k int) ([]int32, []float32) {
	all := MatVec_Into(make([]float32, len(m)/len(q)), m, q)
	idx := TopK_Into(make([]int32, 0, max(k, 0)), all, k)
	sc := make([]float32, len(idx))
	for i, r := range idx {
		sc[i] = all[r]
	}
	return idx, sc
}

// checkSame runs the fast path and fails unless it equals the fp32 path
// bit for bit; it returns how many rows were rescored.
func checkSame(t *testing.T, x *Int8Rows, s *TopKScratch, m, q []float32, k int, what string) int {
	t.Helper()
	wantIdx, wantSc := exactTopK(m, q, k)
	idx, sc, err := x.TopK_Into(make([]int32, 0, max(k, 0)), make([]float32, 0, max(k, 0)), s, q, k)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(idx) != len(wantIdx) || len(sc) != len(idx) {
		t.Fatalf("%s k=%d: got %v %v, want %v %v", what, k, idx, sc, wantIdx, wantSc)
	}
	for i := range idx {
		if idx[i] != wantIdx[i] || math.Float32bits(sc[i]) != math.Float32bits(wantSc[i]) {
			t.Fatalf("%s k=%d: position %d: got row %d score %v, want row %d score %v\ngot  %v %v\nwant %v %v",
				what, k, i, idx[i], sc[i], wantIdx[i], wantSc[i], idx, sc, wantIdx, wantSc)
		}
	}
	return s.Rescored
}

func TestInt8TopKMatchesFP32Random(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, tc := range []struct{ rows, cols int }{{1, 384}, {2, 384}, {5, 3}, {33, 7}, {300, 100}, {2000, 384}, {700, 385}} {
		m := make([]float32, 0, tc.rows*tc.cols)
		for range tc.rows {
			m = append(m, unitVec(r, tc.cols)...)
		}
		x, err := QuantizeRows(m, tc.cols)
		if err != nil {
			t.Fatal(err)
		}
		s := x.NewScratch(32)
		for qi := range 40 {
			q := unitVec(r, tc.cols)
			if qi%4 == 0 { // a query equal to a row: one score near 1
				row := r.IntN(tc.rows)
				copy(q, m[row*tc.cols:(row+1)*tc.cols])
			}
			for _, k := range []int{1, 5, 32} {
				checkSame(t, x, s, m, q, k, "random")
			}
		}
	}
}

// TestInt8TopKMatchesFP32Clustered uses many near-duplicate rows and exact
// duplicates: scores then differ by less than the bound (the worst case
// for pruning) and tie exactly (the case for tie-breaking).
func TestInt8TopKMatchesFP32Clustered(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	const cols = 384
	for _, tc := range []struct {
		rows, nc int
		sigma    float64
		dup      int
	}{
		{3000, 3, 1e-4, 3},  // near-duplicates: three tight balls
		{3000, 10, 1e-3, 2}, // tight clusters
		{3000, 150, 0.045, 1},
		{500, 1, 0, 0}, // every row identical: all scores tie
	} {
		m, centres := clusteredRows(r, tc.rows, cols, tc.nc, tc.sigma, tc.dup)
		x, err := QuantizeRows(m, cols)
		if err != nil {
			t.Fatal(err)
		}
		s := x.NewScratch(32)
		for qi := range 60 {
			var q []float32
			switch qi % 3 {
			case 0:
				q = around(r, centres[r.IntN(len(centres))], tc.sigma)
			case 1:
				row := r.IntN(tc.rows)
				q = append([]float32(nil), m[row*cols:(row+1)*cols]...)
			default:
				q = unitVec(r, cols)
			}
			for _, k := range []int{1, 5, 32} {
				checkSame(t, x, s, m, q, k, "clustered")
			}
		}
	}
}

// TestInt8TopKEdgeCases covers inputs that take the fallback or the
// degenerate branches: they must still equal the fp32 path.
func TestInt8TopKEdgeCases(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	const rows, cols = 200, 16
	m := make([]float32, 0, rows*cols)
	for i := range rows {
		if i%50 == 7 {
			m = append(m, make([]float32, cols)...) // zero rows
			continue
		}
		m = append(m, unitVec(r, cols)...)
	}
	x, err := QuantizeRows(m, cols)
	if err != nil {
		t.Fatal(err)
	}
	s := x.NewScratch(5)
	q := unitVec(r, cols)
	for _, k := range []int{0, -1, 1, 5, 64, rows - 1, rows, rows + 3} {
		checkSame(t, x, s, m, q, k, "k range")
	}
	tiny := make([]float32, cols)
	for i := range tiny {
		tiny[i] = q[i] * 1e-40 // subnormal: the scale underflows
	}
	for name, v := range map[string][]float32{
		"zero query":   make([]float32, cols),
		"tiny query":   tiny,
		"one nonzero":  append([]float32{0.5}, make([]float32, cols-1)...),
		"huge query":   scaled(q, 1e37),
		"large query":  scaled(q, 1e20),
		"small query":  scaled(q, 1e-20),
		"nan in query": withAt(q, 3, float32(math.NaN())),
		"inf in query": withAt(q, 0, float32(math.Inf(-1))),
	} {
		for _, k := range []int{1, 5} {
			checkSame(t, x, s, m, v, k, name)
		}
	}
	if _, _, err := x.TopK_Into(nil, nil, s, q[:cols-1], 5); !errors.Is(err, ErrQueryLength) {
		t.Fatalf("short query: err %v", err)
	}
	// A scratch made for a smaller matrix is grown, not overrun.
	small, _ := QuantizeRows(m[:3*cols], cols)
	checkSame(t, x, small.NewScratch(1), m, q, 5, "foreign scratch")
}

func scaled(v []float32, f float32) []float32 {
	out := make([]float32, len(v))
	for i := range v {
		out[i] = v[i] * f
	}
	return out
}

func withAt(v []float32, i int, x float32) []float32 {
	out := append([]float32(nil), v...)
	out[i] = x
	return out
}

func TestQuantizeRowsRejectsBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		m    []float32
		cols int
	}{
		"zero cols":     {[]float32{1}, 0},
		"negative cols": {[]float32{1}, -2},
		"too long":      {make([]float32, maxInt8Cols+1), maxInt8Cols + 1},
		"ragged":        {[]float32{1, 2, 3}, 2},
		"nan":           {[]float32{1, float32(math.NaN())}, 2},
		"inf":           {[]float32{float32(math.Inf(1)), 0}, 1},
	} {
		if _, err := QuantizeRows(tc.m, tc.cols); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
	x, err := QuantizeRows(nil, 4)
	if err != nil || x.Rows() != 0 {
		t.Fatalf("empty matrix: %v, %v", x, err)
	}
	idx, sc, err := x.TopK_Into(nil, nil, x.NewScratch(5), make([]float32, 4), 5)
	if err != nil || len(idx) != 0 || len(sc) != 0 {
		t.Fatalf("empty matrix: %v %v %v", idx, sc, err)
	}
}

// TestInt8BoundHolds checks the first-pass bound itself, row by row, on
// vectors built to make it tight: queries along a row's own quantisation
// residual, and rows and queries with one dominant coordinate (coarse
// scales, large residuals).
func TestInt8BoundHolds(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	const rows, cols = 400, 384
	m := make([]float32, 0, rows*cols)
	for i := range rows {
		v := unitVec(r, cols)
		if i%3 == 0 {
			v[r.IntN(cols)] += 3
			Normalize(v)
		}
		m = append(m, v...)
	}
	x, err := QuantizeRows(m, cols)
	if err != nil {
		t.Fatal(err)
	}
	s := x.NewScratch(1)
	worst := 0.0
	for qi := range 60 {
		var q []float32
		switch qi % 3 {
		case 0: // the residual of a row, plus a little of the row
			row := r.IntN(rows)
			u := m[row*cols : (row+1)*cols]
			q = make([]float32, cols)
			sc := x.meta[row].scale
			for j := range q {
				q[j] = u[j] - sc*float32(x.q8[row*cols+j]) + 0.01*u[j]
			}
			Normalize(q)
		case 1:
			q = unitVec(r, cols)
			q[r.IntN(cols)] -= 4
			Normalize(q)
		default:
			q = unitVec(r, cols)
		}
		sq, qn, rn, ok := quantizeQuery(s.q, q)
		if !ok {
			t.Fatal("finite query rejected")
		}
		dots := make([]int32, rows)
		dotsInt8Go(dots, x.q8, s.q)
		for i := range rows {
			mt := x.meta[i]
			a := float64(dots[i]) * float64(sq) * float64(mt.scale)
			e := qn*float64(mt.res) + rn*(float64(mt.norm)+float64(mt.res))
			exact := Dot(m[i*cols:(i+1)*cols], q)
			if err := math.Abs(float64(exact) - a); err > e {
				t.Fatalf("query %d row %d: |%g − %g| = %g exceeds bound %g", qi, i, exact, a, err, e)
			} else {
				worst = max(worst, err/e)
			}
		}
	}
	t.Logf("largest error / bound: %.3f", worst)
}

func TestInt8TopKZeroAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	m, _ := routeSet(r, 2000, 384, 150)
	x, err := QuantizeRows(m, 384)
	if err != nil {
		t.Fatal(err)
	}
	s := x.NewScratch(32)
	q := unitVec(r, 384)
	idx, sc := make([]int32, 0, 32), make([]float32, 0, 32)
	for _, k := range []int{1, 5, 32} {
		if a := testing.AllocsPerRun(50, func() {
			idx, sc, _ = x.TopK_Into(idx, sc, s, q, k)
		}); a != 0 {
			t.Fatalf("k=%d: TopK_Into allocates %v times per query, want 0", k, a)
		}
	}
}

// TestInt8Survivors reports how many rows the first pass leaves for fp32
// rescoring on a route-set-like matrix, and fails if pruning stops
// working (a regression in the bound would rescore everything).
func TestInt8Survivors(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	const rows, cols = 15000, 384
	m, centres := routeSet(r, rows, cols, 150)
	x, err := QuantizeRows(m, cols)
	if err != nil {
		t.Fatal(err)
	}
	s := x.NewScratch(32)
	for _, k := range []int{1, 5, 32} {
		total, most := 0, 0
		const queries = 60
		for qi := range queries {
			var q []float32
			if qi%4 == 3 {
				q = unitVec(r, cols) // out of scope
			} else {
				q = around(r, centres[r.IntN(len(centres))], 0.045)
			}
			n := checkSame(t, x, s, m, q, k, "route set")
			total += n
			most = max(most, n)
		}
		avg := float64(total) / queries
		t.Logf("k=%d: %.1f rows rescored on average, %d at most, of %d", k, avg, most, rows)
		if avg > rows/20 {
			t.Errorf("k=%d: %.0f of %d rows survive on average; the bound no longer prunes", k, avg, rows)
		}
	}
}

// BenchmarkTopK compares the fp32 path (MatVec_Into + TopK_Into) with the
// int8 first pass on the same route-set-like matrix and queries, k = 5.
func BenchmarkTopK(b *testing.B) {
	r := rand.New(rand.NewPCG(33, 34))
	const cols, k = 384, 5
	for _, rows := range []int{100, 1000, 15000, 100000} {
		m, centres := routeSet(r, rows, cols, 150)
		queries := make([][]float32, 16)
		for i := range queries {
			queries[i] = around(r, centres[r.IntN(len(centres))], 0.045)
		}
		name := itoa(rows) + "x384"
		b.Run(name+"/fp32", func(b *testing.B) {
			scores := make([]float32, rows)
			top := make([]int32, 0, k)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				scores = MatVec_Into(scores, m, queries[i%len(queries)])
				top = TopK_Into(top, scores, k)
				i++
			}
		})
		x, err := QuantizeRows(m, cols)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/int8-"+int8Kernel(), func(b *testing.B) {
			s := x.NewScratch(k)
			idx, sc := make([]int32, 0, k), make([]float32, 0, k)
			b.ReportAllocs()
			i, rescored := 0, 0
			for b.Loop() {
				idx, sc, _ = x.TopK_Into(idx, sc, s, queries[i%len(queries)], k)
				rescored += s.Rescored
				i++
			}
			b.ReportMetric(float64(rescored)/float64(i), "rescored/op")
		})
	}
}
