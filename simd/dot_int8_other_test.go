//go:build !amd64

package simd

// archInt8Kernels lists the assembly kernels; there are none here.
func archInt8Kernels() []namedKernel { return nil }
