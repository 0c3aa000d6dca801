//go:build amd64

#include "textflag.h"

// Integer dot products of one int8 query with every row of an int8 matrix.
// Both kernels require every value in [-127, 127] (the quantiser never
// produces -128) and cols ≤ maxInt8Cols; they compute the exact int32 sum.

// func dotsInt8AVX2(dst *int32, m *int8, q *int8, rows, cols int)
//
// Per 32 bytes: VPMADDUBSW multiplies unsigned by signed bytes and adds
// adjacent pairs into int16 with signed saturation. The row and the query
// are both signed, so the kernel feeds it |u| (VPABSB) as the unsigned side
// and q·sign(u) (VPSIGNB) as the signed side; each product |u|·(q·sign(u))
// equals u·q. Saturation cannot occur: |u| ≤ 127 and |q·sign(u)| ≤ 127
// (q ≠ -128, so negating it cannot wrap), so a pair sum lies within
// ±2·127·127 = ±32,258, inside int16's [-32,768, 32,767]. VPMADDWD by ones
// then widens pairs of int16 into int32 exactly (|sum| ≤ 64,516), and
// VPADDD accumulates in int32, exact by the cols bound.
TEXT ·dotsInt8AVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ m+8(FP), SI
	MOVQ q+16(FP), DX
	MOVQ rows+24(FP), CX
	MOVQ cols+32(FP), R8
	MOVQ R8, R9
	ANDQ $-64, R9             // R9: bytes covered by the 64-byte loop
	MOVQ R8, R12
	ANDQ $-32, R12            // R12: bytes covered by 32-byte chunks
	TESTQ CX, CX
	JEQ  avx2done

	// Y7: sixteen int16 ones, the VPMADDWD multiplier.
	MOVL $0x00010001, AX
	MOVQ AX, X7
	VPBROADCASTD X7, Y7

avx2row:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	XORQ  R10, R10            // R10: byte offset j within the row
	CMPQ  R9, $0
	JEQ   avx2one

avx2loop64:
	VMOVDQU    (SI)(R10*1), Y2
	VMOVDQU    32(SI)(R10*1), Y3
	VMOVDQU    (DX)(R10*1), Y4
	VMOVDQU    32(DX)(R10*1), Y5
	VPSIGNB    Y2, Y4, Y4     // q·sign(u)
	VPSIGNB    Y3, Y5, Y5
	VPABSB     Y2, Y2         // |u|
	VPABSB     Y3, Y3
	VPMADDUBSW Y4, Y2, Y2     // int16 pairs of |u|·q·sign(u)
	VPMADDUBSW Y5, Y3, Y3
	VPMADDWD   Y7, Y2, Y2     // int32 quads
	VPMADDWD   Y7, Y3, Y3
	VPADDD     Y2, Y0, Y0
	VPADDD     Y3, Y1, Y1
	ADDQ       $64, R10
	CMPQ       R10, R9
	JB         avx2loop64

avx2one:
	CMPQ R10, R12
	JAE  avx2reduce
	VMOVDQU    (SI)(R10*1), Y2
	VMOVDQU    (DX)(R10*1), Y4
	VPSIGNB    Y2, Y4, Y4
	VPABSB     Y2, Y2
	VPMADDUBSW Y4, Y2, Y2
	VPMADDWD   Y7, Y2, Y2
	VPADDD     Y2, Y0, Y0
	ADDQ       $32, R10

avx2reduce:
	VPADDD       Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0x4e, X0, X1
	VPADDD       X1, X0, X0
	VPSHUFD      $0xb1, X0, X1
	VPADDD       X1, X0, X0
	MOVQ         X0, AX       // low dword is the sum; upper bits ignored by MOVL below

	// The last cols mod 32 bytes, one at a time.
	CMPQ R10, R8
	JAE  avx2store

avx2tail:
	MOVBQSX (SI)(R10*1), R11
	MOVBQSX (DX)(R10*1), BX
	IMULQ   BX, R11
	ADDL    R11, AX
	INCQ    R10
	CMPQ    R10, R8
	JB      avx2tail

avx2store:
	MOVL AX, (DI)
	ADDQ $4, DI
	ADDQ R8, SI
	DECQ CX
	JNZ  avx2row
	VZEROUPPER

avx2done:
	RET

// func dotsInt8VNNI(dst *int32, m *int8, q *int8, rows, cols int, bias int32)
//
// VPDPBUSD multiplies unsigned bytes by signed bytes and adds each group of
// four products into an int32 lane, without intermediate saturation. The
// row byte u is made unsigned by flipping its top bit (u XOR 0x80 = u+128
// as uint8, in [1, 255]) and q stays signed, so a lane gains
// Σ (u+128)·q = Σ u·q + 128·Σ q; bias = 128·Σ q is subtracted per row. All
// additions wrap modulo 2³², and the true result Σ u·q fits in int32 by the
// cols bound, so the result is exact. The last cols mod 64 bytes are loaded
// with a zeroing byte mask, which also keeps the loads inside the slices;
// the zeroed query bytes make the flipped (128) row bytes contribute 0.
TEXT ·dotsInt8VNNI(SB), NOSPLIT, $0-44
	// K1: one bit per byte of the row tail, cols mod 64 of them.
	MOVQ  cols+32(FP), CX
	ANDQ  $63, CX
	MOVQ  $1, AX
	SHLQ  CX, AX
	DECQ  AX
	KMOVQ AX, K1

	MOVQ dst+0(FP), DI
	MOVQ m+8(FP), SI
	MOVQ q+16(FP), DX
	MOVQ rows+24(FP), CX
	MOVQ cols+32(FP), R8
	MOVL bias+40(FP), R11
	MOVQ R8, R9
	ANDQ $-128, R9            // R9: bytes covered by the 128-byte loop
	MOVQ R8, R12
	ANDQ $-64, R12            // R12: bytes covered by 64-byte chunks
	TESTQ CX, CX
	JEQ  vnnidone

	// Z6: sixty-four 0x80 bytes, the sign flip.
	MOVL         $0x80808080, AX
	MOVQ         AX, X6
	VPBROADCASTD X6, Z6

vnnirow:
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	XORQ   R10, R10
	CMPQ   R9, $0
	JEQ    vnnione

vnniloop128:
	VPXORD   (SI)(R10*1), Z6, Z2      // u+128 as unsigned bytes
	VPXORD   64(SI)(R10*1), Z6, Z3
	VPDPBUSD (DX)(R10*1), Z2, Z0      // Z0 += Σ (u+128)·q, q signed
	VPDPBUSD 64(DX)(R10*1), Z3, Z1
	ADDQ     $128, R10
	CMPQ     R10, R9
	JB       vnniloop128

vnnione:
	CMPQ R10, R12
	JAE  vnnitail
	VPXORD   (SI)(R10*1), Z6, Z2
	VPDPBUSD (DX)(R10*1), Z2, Z0
	ADDQ     $64, R10

vnnitail:
	KORTESTQ K1, K1
	JEQ      vnnireduce
	VMOVDQU8.Z (SI)(R10*1), K1, Z2
	VMOVDQU8.Z (DX)(R10*1), K1, Z3
	VPXORD     Z6, Z2, Z2
	VPDPBUSD   Z3, Z2, Z0

vnnireduce:
	VPADDD        Z1, Z0, Z0
	VEXTRACTI64X4 $1, Z0, Y1
	VPADDD        Y1, Y0, Y0
	VEXTRACTI128  $1, Y0, X1
	VPADDD        X1, X0, X0
	VPSHUFD       $0x4e, X0, X1
	VPADDD        X1, X0, X0
	VPSHUFD       $0xb1, X0, X1
	VPADDD        X1, X0, X0
	MOVQ          X0, AX
	SUBL          R11, AX
	MOVL          AX, (DI)
	ADDQ          $4, DI
	ADDQ          R8, SI
	DECQ          CX
	JNZ           vnnirow
	VZEROUPPER

vnnidone:
	RET
