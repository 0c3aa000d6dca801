package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/autorouter/autorouter/router/internal/testenv"
	"github.com/autorouter/autorouter/simd"
)

// unit returns a 2-D unit vector at the given cosine to (1,0).
func vec2(cos float32) []float32 {
	return []float32{cos, float32(sqrt(1 - float64(cos)*float64(cos)))}
}

func sqrt(x float64) float64 {
	z := x
	for i := 0; i < 30 && z > 0; i++ {
		z = (z + x/z) / 2
	}
	return z
}

func TestIndexSemantics(t *testing.T) {
	q := []float32{1, 0}
	// Route a: utterances at cosine 0.9, 0.5; route b: 0.8, 0.8, 0.7.
	build := func(ta, tb float32, agg Aggregation, k int) *Index {
		var vecs []float32
		for _, c := range []float32{0.9, 0.5, 0.8, 0.8, 0.7} {
			vecs = append(vecs, vec2(c)...)
		}
		ix, err := NewIndex(2, []IndexRoute{{"a", ta}, {"b", tb}}, vecs, []int32{0, 0, 1, 1, 1}, IndexOptions{TopK: k, Aggregation: agg})
		if err != nil {
			t.Fatal(err)
		}
		return ix
	}
	for _, tc := range []struct {
		name       string
		ta, tb     float32
		agg        Aggregation
		k          int
		wantOrder  []string
		wantWinner string
	}{
		// top 5 = all; mean a=0.7, b=0.7667 → b first.
		{"mean picks b", 0.5, 0.5, AggMean, 5, []string{"b", "a"}, "b"},
		{"max picks a", 0.5, 0.5, AggMax, 5, []string{"a", "b"}, "a"},
		{"sum picks b", 0.5, 0.5, AggSum, 5, []string{"b", "a"}, "b"},
		// b misses its stricter threshold, so lower-scored a wins.
		{"stricter threshold lets lower route win", 0.6, 0.9, AggMean, 5, []string{"b", "a"}, "a"},
		{"none passes", 0.95, 0.95, AggMean, 5, []string{"b", "a"}, ""},
		// top 2 = a(0.9), b(0.8) only.
		{"top k limits candidates", 0.5, 0.5, AggMean, 2, []string{"a", "b"}, "a"},
		{"top k 1", 0.5, 0.5, AggMean, 1, []string{"a"}, "a"},
		{"top k larger than rows", 0.5, 0.5, AggMean, 50, []string{"b", "a"}, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scores := build(tc.ta, tc.tb, tc.agg, tc.k).Score_Into(nil, q)
			if len(scores) != len(tc.wantOrder) {
				t.Fatalf("scores %+v, want routes %v", scores, tc.wantOrder)
			}
			for i, r := range tc.wantOrder {
				if scores[i].Route != r {
					t.Fatalf("scores %+v, want order %v", scores, tc.wantOrder)
				}
			}
			w, ok := Winner(scores)
			if (tc.wantWinner == "") == ok || w.Route != tc.wantWinner {
				t.Fatalf("winner %+v (%v), want %q; scores %+v", w, ok, tc.wantWinner, scores)
			}
		})
	}
}

func TestIndexNearestRows(t *testing.T) {
	var vecs []float32
	for _, c := range []float32{0.5, 0.9, 0.7, 0.8} {
		vecs = append(vecs, vec2(c)...)
	}
	ix, err := NewIndex(2, []IndexRoute{{"a", 0.5}, {"b", 0.5}}, vecs, []int32{0, 0, 1, 1}, IndexOptions{TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	rows, scores := ix.NearestRows([]float32{1, 0}, 3)
	if !slices.Equal(rows, []int32{1, 3, 2}) || ix.RouteOf(rows[0]) != 0 || ix.RouteOf(rows[1]) != 1 {
		t.Fatalf("rows %v: want 1, 3, 2 (cosines 0.9, 0.8, 0.7), not limited by TopK", rows)
	}
	if d := scores[0] - 0.9; d > 1e-6 || d < -1e-6 {
		t.Errorf("scores %v: want the cosines", scores)
	}
	if rows, _ := ix.NearestRows([]float32{1, 0}, 10); len(rows) != 4 {
		t.Errorf("k over Len: %d rows", len(rows))
	}
	if rows, _ := ix.NearestRows([]float32{1, 0, 0}, 3); rows != nil {
		t.Errorf("wrong length query: %v", rows)
	}
}

func TestIndexRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name     string
		dim      int
		routes   []IndexRoute
		vecs     []float32
		rowRoute []int32
	}{
		{"dim mismatch", 3, []IndexRoute{{"a", 0.5}}, []float32{1, 0}, []int32{0}},
		{"route without utterances", 2, []IndexRoute{{"a", 0.5}, {"b", 0.5}}, []float32{1, 0}, []int32{0}},
		{"threshold out of range", 2, []IndexRoute{{"a", 1.5}}, []float32{1, 0}, []int32{0}},
		{"row points nowhere", 2, []IndexRoute{{"a", 0.5}}, []float32{1, 0}, []int32{3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewIndex(tc.dim, tc.routes, tc.vecs, tc.rowRoute, IndexOptions{}); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestIndexNormalisesRowsAndZeroAlloc(t *testing.T) {
	ix, err := NewIndex(2, []IndexRoute{{"a", 0.5}}, []float32{10, 0, 0, 0}, []int32{0, 0}, IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q := []float32{1, 0}
	s := ix.Score_Into(nil, q)
	// Rows: (1,0) after normalising, and a zero vector scoring 0: mean 0.5.
	if len(s) != 1 || s[0].Score != 0.5 || !s[0].Passed {
		t.Fatalf("scores %+v", s)
	}
	if testenv.Race {
		return // see testenv.Race
	}
	dst := make([]RouteScore, 0, 8)
	if a := testing.AllocsPerRun(100, func() { dst = ix.Score_Into(dst[:0], q) }); a != 0 {
		t.Fatalf("Score_Into allocates %v times per query", a)
	}
}

// TestIndexInt8PassMatchesFP32 checks that the int8 first pass changes
// nothing: on clustered vectors, where many utterances score close to the
// query, every query gets the same scores as a plain fp32 scan.
func TestIndexInt8PassMatchesFP32(t *testing.T) {
	if !simd.FastInt8() {
		t.Skip("no int8 kernel on this CPU; the index scans in fp32 only")
	}
	const dim, nRoutes, perRoute = 384, 60, 40
	rng := rand.New(rand.NewPCG(3, 4))
	routes := make([]IndexRoute, nRoutes)
	var vecs []float32
	var rowRoute []int32
	for r := range routes {
		routes[r] = IndexRoute{Name: fmt.Sprintf("r%d", r), Threshold: 0.5}
		centre := make([]float32, dim)
		for j := range centre {
			centre[j] = float32(rng.NormFloat64())
		}
		for range perRoute {
			for j := range dim {
				vecs = append(vecs, centre[j]+0.6*float32(rng.NormFloat64()))
			}
			rowRoute = append(rowRoute, int32(r))
		}
	}
	for _, agg := range []Aggregation{AggMean, AggMax, AggSum} {
		fast, err := NewIndex(dim, routes, vecs, rowRoute, IndexOptions{Aggregation: agg})
		if err != nil {
			t.Fatal(err)
		}
		if fast.q8 == nil {
			t.Fatal("index built no int8 copy")
		}
		plain, _ := NewIndex(dim, routes, vecs, rowRoute, IndexOptions{Aggregation: agg})
		plain.q8 = nil
		plain.scratch.New = func() any {
			return &indexScratch{
				scores: make([]float32, plain.Len()), topSc: make([]float32, 0, 5), probs: make([]float32, nRoutes),
				top: make([]int32, 0, 5), sum: make([]float32, nRoutes), max: make([]float32, nRoutes),
				count: make([]int32, nRoutes), seen: make([]int32, 0, 5),
			}
		}
		for i := range 300 {
			// Queries near a stored row, as real prompts are near their
			// route's utterances, and a few unrelated ones.
			row := rng.IntN(len(rowRoute))
			q := slices.Clone(fast.matrix[row*dim : (row+1)*dim])
			noise := float32(i%3) * 0.05
			if i%10 == 0 {
				noise = 10
			}
			for j := range q {
				q[j] += noise * float32(rng.NormFloat64())
			}
			simd.Normalize(q)
			got, want := fast.Score_Into(nil, q), plain.Score_Into(nil, q)
			if !slices.Equal(got, want) {
				t.Fatalf("agg %v query %d: int8 pass gives %+v, fp32 scan %+v", agg, i, got, want)
			}
		}
	}
}

func TestIndexWrongQueryLength(t *testing.T) {
	ix, err := NewIndex(2, []IndexRoute{{"a", 0.5}}, []float32{1, 0}, []int32{0}, IndexOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s := ix.Score_Into(nil, []float32{1, 0, 0}); len(s) != 0 {
		t.Fatalf("a 3-dim query against a 2-dim index scored %+v, want nothing", s)
	}
}
