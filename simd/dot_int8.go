package simd

// maxInt8Cols is the longest row the int8 kernels accept. Every kernel
// computes Σ q[j]·u[j] with |q[j]|, |u[j]| ≤ 127 and 32-bit wrap-around
// additions, so the result is exact whenever the true sum fits in an int32:
// 127·127·cols < 2³¹ holds up to cols = 133,143. The VNNI kernel's biased
// partial sums Σ (u[j]+128)·q[j] may wrap on the way, which is harmless
// because two's-complement addition is exact modulo 2³² and the final value
// is in range. 65,536 keeps a wide margin and is far above any embedding.
const maxInt8Cols = 1 << 16

// dotsInt8Go is the pure-Go reference and fallback for dotsInt8: dst[r] =
// Σ_j m[r·cols+j]·q[j] for every row r < len(dst), cols = len(q). Values
// must lie in [-127, 127].
func dotsInt8Go(dst []int32, m, q []int8) {
	cols := len(q)
	for r := range dst {
		row := m[r*cols : (r+1)*cols]
		row = row[:len(q)] // lets the compiler drop bounds checks below
		// Four independent sums shorten the dependency chain.
		var s0, s1, s2, s3 int32
		j := 0
		for ; j+4 <= len(q); j += 4 {
			s0 += int32(row[j]) * int32(q[j])
			s1 += int32(row[j+1]) * int32(q[j+1])
			s2 += int32(row[j+2]) * int32(q[j+2])
			s3 += int32(row[j+3]) * int32(q[j+3])
		}
		for ; j < len(q); j++ {
			s0 += int32(row[j]) * int32(q[j])
		}
		dst[r] = s0 + s1 + s2 + s3
	}
}

// FastInt8 reports whether an assembly int8 kernel serves this CPU.
// Without one, Int8Rows' first pass runs the pure-Go loop and is slower
// than a plain fp32 scan with MatVec_Into, so callers should use that.
func FastInt8() bool { return int8Kernel() != "go" }
