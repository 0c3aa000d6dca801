//go:build amd64

package simd

// archInt8Kernels lists the assembly kernels this CPU supports.
func archInt8Kernels() []namedKernel {
	var ks []namedKernel
	if hasAVX2 {
		ks = append(ks, namedKernel{"avx2", dotsInt8AVX2Go})
	}
	if hasVNNI {
		ks = append(ks, namedKernel{"avx512vnni", dotsInt8VNNIGo})
	}
	return ks
}
