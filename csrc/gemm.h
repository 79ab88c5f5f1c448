/*
 * gemm.h: internals of the blocked matrix product shared by the C files
 * that call it (gemm.c, the dense, similarity and attention kernels) and by
 * the SIMD micro-kernels.
 *
 * A micro-kernel computes one MR x NR tile of a product from packed panels:
 * ab[i * NR + j] = sum over p < kc of a[p * MR + i] * b[p * NR + j]. It
 * overwrites ab and never reads C; storing, accumulating across K blocks and
 * the epilogue are done by the caller.
 */
#ifndef MLA_GEMM_H
#define MLA_GEMM_H

#include <stddef.h>

/* Largest tile any micro-kernel uses, for the caller's tile buffer. */
#define MLA_MAX_MR 8
#define MLA_MAX_NR 16

/*
 * Cache blocks: KC x NR panels of B stay in L1, MC x KC of A in L2. MLA_MC
 * must be a multiple of every micro-kernel's MR (4 and 6 here).
 */
#define MLA_KC 256
#define MLA_MC 96
#define MLA_NC 4096

/* AVX2 with FMA tiles (gemm_avx2.c). */
#define MLA_AVX2_MR 6
#define MLA_AVX2_NR_F64 8
#define MLA_AVX2_NR_F32 16

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define MLA_HAVE_X86_KERNELS 1
void mla_ukernel_avx2_f64(ptrdiff_t kc, const double *a, const double *b,
                          double *ab);
void mla_ukernel_avx2_f32(ptrdiff_t kc, const float *a, const float *b,
                          float *ab);
#endif

#endif /* MLA_GEMM_H */
