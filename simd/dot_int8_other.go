//go:build !amd64

package simd

// int8Kernel names the integer kernel in use, for benchmarks and reports.
func int8Kernel() string { return "go" }

// dotsInt8 writes the integer dot product of q with each of the first
// len(dst) rows of m (row length len(q)) into dst. Architectures other than
// amd64 use the pure-Go loop.
func dotsInt8(dst []int32, m, q []int8) {
	dotsInt8Go(dst, m, q)
}
