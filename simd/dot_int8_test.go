package simd

import (
	"math/rand/v2"
	"testing"
)

// randInt8 returns n values uniform in [-127, 127], the quantiser's range.
func randInt8(r *rand.Rand, n int) []int8 {
	v := make([]int8, n)
	for i := range v {
		v[i] = int8(r.IntN(255) - 127)
	}
	return v
}

// namedKernel is one integer dot-product kernel under test.
type namedKernel struct {
	name string
	fn   func(dst []int32, m, q []int8)
}

// int8Kernels lists the kernels this CPU can run, the pure-Go one first.
func int8Kernels() []namedKernel {
	ks := []namedKernel{{"go", dotsInt8Go}, {"dispatch", dotsInt8}}
	return append(ks, archInt8Kernels()...)
}

func TestDotsInt8KernelsAgree(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	cols := []int{1, 2, 3, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 95, 96, 127, 128, 129, 191, 255, 256, 257, 383, 384, 385, 511, 1000, 4096}
	for _, c := range cols {
		for _, rows := range []int{1, 2, 3, 7, 64} {
			m, q := randInt8(r, rows*c), randInt8(r, c)
			want := make([]int32, rows)
			for i := range want {
				var s int32
				for j := 0; j < c; j++ {
					s += int32(m[i*c+j]) * int32(q[j])
				}
				want[i] = s
			}
			for _, k := range int8Kernels() {
				// A sentinel past the end catches writes beyond rows.
				got := make([]int32, rows+1)
				got[rows] = 12345
				k.fn(got[:rows], m, q)
				if got[rows] != 12345 {
					t.Fatalf("%s cols=%d rows=%d: wrote past dst", k.name, c, rows)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%s cols=%d rows=%d row %d: %d, want %d", k.name, c, rows, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// TestDotsInt8Extremes drives every product to ±127·127, the case where a
// careless VPMADDUBSW design saturates its int16 pair sums.
func TestDotsInt8Extremes(t *testing.T) {
	for _, c := range []int{1, 31, 64, 384, 385, maxInt8Cols} {
		for _, signs := range [][2]int8{{127, 127}, {-127, -127}, {127, -127}, {-127, 127}} {
			m, q := make([]int8, 2*c), make([]int8, c)
			for j := range q {
				q[j] = signs[1]
				m[j] = signs[0]
				m[c+j] = signs[0]
				if j%2 == 1 {
					m[c+j] = -signs[0] // alternating signs in the second row
				}
			}
			want := [2]int32{int32(signs[0]) * int32(signs[1]) * int32(c), 0}
			if c%2 == 1 {
				want[1] = int32(signs[0]) * int32(signs[1])
			}
			for _, k := range int8Kernels() {
				got := make([]int32, 2)
				k.fn(got, m, q)
				if got[0] != want[0] || got[1] != want[1] {
					t.Fatalf("%s cols=%d signs=%v: %v, want %v", k.name, c, signs, got, want)
				}
			}
		}
	}
}

func BenchmarkDotsInt8(b *testing.B) {
	r := rand.New(rand.NewPCG(13, 14))
	const cols = 384
	for _, rows := range []int{15000, 100000} {
		m, q := randInt8(r, rows*cols), randInt8(r, cols)
		dst := make([]int32, rows)
		for _, k := range int8Kernels() {
			if k.name == "go" && rows > 15000 {
				continue // slow, and the 15,000-row figure says enough
			}
			b.Run(itoa(rows)+"x384/"+k.name, func(b *testing.B) {
				b.SetBytes(int64(len(m)))
				for b.Loop() {
					k.fn(dst, m, q)
				}
			})
		}
	}
}
