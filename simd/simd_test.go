package simd

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

func TestDotMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3, 7, 8, 15, 16, 17, 31, 384, 385, 1000} {
		a, b := randVec(r, n), randVec(r, n)
		got, want := Dot(a, b), dotRef(a, b)
		if math.Abs(float64(got-want)) > 1e-4*math.Max(1, math.Abs(float64(want))) {
			t.Errorf("n=%d: Dot = %g, reference %g", n, got, want)
		}
	}
}

func TestMatVecMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct{ rows, cols int }{{1, 1}, {5, 3}, {100, 384}, {17, 33}} {
		m, v := randVec(r, tc.rows*tc.cols), randVec(r, tc.cols)
		got := MatVec_Into(make([]float32, tc.rows), m, v)
		want := matVecRef(make([]float32, tc.rows), m, v)
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > 1e-4 {
				t.Fatalf("%dx%d row %d: %g, reference %g", tc.rows, tc.cols, i, got[i], want[i])
			}
		}
	}
}

func TestNormalize(t *testing.T) {
	v := []float32{3, 4}
	if n := Normalize(v); n != 5 || v[0] != 0.6 || v[1] != 0.8 {
		t.Fatalf("Normalize = %g, %v", n, v)
	}
	z := []float32{0, 0}
	if n := Normalize(z); n != 0 || z[0] != 0 {
		t.Fatalf("zero vector: %g, %v", n, z)
	}
}

func TestTopK(t *testing.T) {
	for _, tc := range []struct {
		name   string
		scores []float32
		k      int
		want   []int32
	}{
		{"basic", []float32{0.1, 0.9, 0.5, 0.7}, 2, []int32{1, 3}},
		{"k larger than n", []float32{0.2, 0.1}, 5, []int32{0, 1}},
		{"ties keep lower index", []float32{0.5, 0.5, 0.5}, 2, []int32{0, 1}},
		{"empty", nil, 3, []int32{}},
		{"k zero", []float32{1}, 0, []int32{}},
		{"negative", []float32{-0.3, -0.1, -0.2}, 3, []int32{1, 2, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TopK_Into(make([]int32, 0, max(tc.k, 0)), tc.scores, tc.k)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestTopKMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 200; trial++ {
		n, k := 1+r.IntN(500), 1+r.IntN(20)
		scores := randVec(r, n)
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
		got := TopK_Into(make([]int32, 0, k), scores, k)
		for i := range got {
			if int(got[i]) != idx[i] {
				t.Fatalf("n=%d k=%d: got %v, sorted prefix %v", n, k, got, idx[:min(k, n)])
			}
		}
	}
}

func TestScoreZeroAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	m, v := randVec(r, 1000*384), randVec(r, 384)
	scores := make([]float32, 1000)
	top := make([]int32, 0, 5)
	if a := testing.AllocsPerRun(100, func() {
		scores = MatVec_Into(scores, m, v)
		top = TopK_Into(top, scores, 5)
	}); a != 0 {
		t.Fatalf("MatVec_Into + TopK_Into allocate %v times per query, want 0", a)
	}
}

func BenchmarkScore(b *testing.B) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, rows := range []int{100, 1000, 15000, 100000} {
		m, v := randVec(r, rows*384), randVec(r, 384)
		scores := make([]float32, rows)
		top := make([]int32, 0, 5)
		b.Run(itoa(rows)+"x384", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(m) * 4))
			for b.Loop() {
				scores = MatVec_Into(scores, m, v)
				top = TopK_Into(top, scores, 5)
			}
		})
		b.Run(itoa(rows)+"x384/reference", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				scores = matVecRef(scores, m, v)
			}
		})
	}
}

func itoa(n int) string {
	s := ""
	for {
		s = string(rune('0'+n%10)) + s
		n /= 10
		if n == 0 {
			return s
		}
	}
}
