//go:build amd64

package simd

import "golang.org/x/sys/cpu"

// CPU features, read once at package init and never written again.
// x/sys/cpu reports AVX2 and AVX-512 only when the OS also saves the wider
// registers, so these are safe to act on.
var (
	// hasVNNI selects the AVX-512 VNNI kernel: VPDPBUSD on 64 bytes at a
	// time, with masked loads (AVX512BW) for the row tail.
	hasVNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI
	// hasAVX2 selects the AVX2 kernel: VPMADDUBSW on 32 bytes at a time.
	hasAVX2 = cpu.X86.HasAVX2
)

// int8Kernel names the integer kernel in use, for benchmarks and reports.
func int8Kernel() string {
	switch {
	case hasVNNI:
		return "avx512vnni"
	case hasAVX2:
		return "avx2"
	}
	return "go"
}

// dotsInt8AVX2 writes Σ_j m[r·cols+j]·q[j] to dst[r] for r < rows. Values
// must lie in [-127, 127]; see the saturation argument in the .s file.
//
//go:noescape
func dotsInt8AVX2(dst *int32, m *int8, q *int8, rows, cols int)

// dotsInt8VNNI is dotsInt8AVX2 on AVX-512 VNNI. bias must be 128·Σ_j q[j]:
// the kernel multiplies (m+128) as unsigned bytes by q and subtracts it.
//
//go:noescape
func dotsInt8VNNI(dst *int32, m *int8, q *int8, rows, cols int, bias int32)

// dotsInt8 writes the integer dot product of q with each of the first
// len(dst) rows of m (row length len(q)) into dst, with the fastest kernel
// the CPU has. Values must lie in [-127, 127] and len(q) ≤ maxInt8Cols.
func dotsInt8(dst []int32, m, q []int8) {
	switch {
	case hasVNNI:
		dotsInt8VNNIGo(dst, m, q)
	case hasAVX2:
		dotsInt8AVX2Go(dst, m, q)
	default:
		dotsInt8Go(dst, m, q)
	}
}

// dotsInt8AVX2Go checks the slice bounds the assembly relies on and calls
// it; the slicing panics only on a bug in this package, never on input.
func dotsInt8AVX2Go(dst []int32, m, q []int8) {
	rows, cols := len(dst), len(q)
	if rows == 0 || cols == 0 {
		clear(dst)
		return
	}
	m = m[:rows*cols]
	dotsInt8AVX2(&dst[0], &m[0], &q[0], rows, cols)
}

// dotsInt8VNNIGo is dotsInt8AVX2Go for the VNNI kernel.
func dotsInt8VNNIGo(dst []int32, m, q []int8) {
	rows, cols := len(dst), len(q)
	if rows == 0 || cols == 0 {
		clear(dst)
		return
	}
	m = m[:rows*cols]
	var sum int32
	for _, v := range q {
		sum += int32(v)
	}
	dotsInt8VNNI(&dst[0], &m[0], &q[0], rows, cols, 128*sum)
}
