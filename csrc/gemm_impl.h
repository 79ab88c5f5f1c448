/*
 * gemm_impl.h: the blocked matrix product
 * C = act(alpha * A B + beta * C + bias), its lower-triangle variant
 * (SYRK), the batched product and the textbook triple loop, instantiated
 * per element type by gemm.c.
 *
 * The structure is Goto and van de Geijn's, as BLIS lays it out. For each
 * NC-wide column block of B and each KC-deep slice of the inner dimension,
 * B is packed once into KC x NR panels. Each MC-tall row block of A is then
 * packed into MR x KC panels, and the micro-kernel sweeps the block tile by
 * tile: the B panel stays in L1 while the A block streams from L2. Packing
 * reads A and B through any pair of strides, so transposed or reversed
 * views cost no copy. It pads the last panel with zeros, so the
 * micro-kernel always computes full tiles. Tiles that stick out of C, or
 * whose columns are not contiguous, are computed in a small buffer and
 * copied. Small products skip packing (gemm_direct).
 *
 * Threads share the packing of B and the tiles of C, cut into units of
 * rows and columns but never of the inner dimension. Every element of C is
 * thus computed by the same sequence of operations whatever the thread
 * count, and results are bitwise identical for any number of threads.
 */

typedef struct {
    ptrdiff_t mr, nr;     /* register tile */
    ptrdiff_t mc, kc, nc; /* cache blocks: mc a multiple of mr, nc of nr */
    FN(mla_ukernel) kernel;
    FN(mla_ukernel_strided) strided;
    FN(mla_gemv_dot) gemv_dot;
    FN(mla_gemv_axpy) gemv_axpy;
} FN(ukernel_desc);

/* Pack units of B that a barrier-free product can track (gemm_claims). */
#define GEMM_CLAIM_UNITS 256

/*
 * Shared state of a product whose threads meet no barrier before the end
 * of their parallel region. Each pack unit of B is packed by the first
 * thread that claims it, and the units of C are handed out by a counter.
 */
struct FN(gemm_claims) {
    atomic_int state[GEMM_CLAIM_UNITS]; /* 0 to pack, 1 packing, 2 packed */
    atomic_long next_unit;              /* next unit of C to hand out */
};

/*
 * One product and its scratch, shared by the threads that compute it. With
 * lower set, only the elements with row >= column are written (SYRK).
 */
typedef struct {
    T *c;
    ptrdiff_t rs_c, cs_c;
    const T *a;
    ptrdiff_t rs_a, cs_a;
    const T *b;
    ptrdiff_t rs_b, cs_b;
    ptrdiff_t m, n, k;
    T alpha, beta;
    const T *bias;
    ptrdiff_t bias_rs, bias_cs;
    mla_activation activation;
    int lower;
    const FN(ukernel_desc) *kd;
    T *bpack;
    T *apack;
    size_t apack_size; /* elements of apack owned by each thread */
    int nthreads;
    ptrdiff_t kc;  /* depth of the K slices: at most KC, all but the last equal */
    int whole_k; /* bpack holds every K slice of a column block */
    struct FN(gemm_claims) *claims; /* barrier-free work sharing, or NULL */
    ptrdiff_t pack_panels; /* B panels per pack unit */
} FN(gemm_plan);

/*
 * How one column block of C is cut into units of work for the threads:
 * row_units x col_units rectangles. The row_panels MR-row panels of C are
 * shared out as evenly as possible among the row units, and the
 * col_panels NR-column panels among the column units. Each unit packs its
 * rows of A and sweeps them against its columns of the packed B block.
 */
typedef struct {
    ptrdiff_t row_panels, col_panels;
    ptrdiff_t row_units, col_units;
} FN(gemm_grid);

#define GENERIC_MR 4
#define GENERIC_NR 8

/*
 * Portable micro-kernel, a 4 x 8 tile in plain C that the compiler can
 * vectorize, strided like the SIMD kernels' twins. Same contract as the
 * SIMD kernels (gemm.h), but without fused multiply-adds, so it rounds
 * differently from them.
 */
static void
FN(ukernel_generic_strided)(ptrdiff_t kc, const T *a, ptrdiff_t rs_a,
                            ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b, T *c,
                            ptrdiff_t rs_c, T alpha, T beta)
{
    T acc[GENERIC_MR][GENERIC_NR] = {{0}};

    for (ptrdiff_t p = 0; p < kc; p++) {
        for (int i = 0; i < GENERIC_MR; i++) {
            T ai = a[i * rs_a];
            for (int j = 0; j < GENERIC_NR; j++) {
                T prod = ai * b[j];
                acc[i][j] += prod;
            }
        }
        a += cs_a;
        b += rs_b;
    }
    for (int i = 0; i < GENERIC_MR; i++) {
        T *crow = c + i * rs_c;
        for (int j = 0; j < GENERIC_NR; j++) {
            T v = acc[i][j];
            if (alpha != 1) {
                v = alpha * v;
            }
            if (beta == 1) {
                v = crow[j] + v;
            }
            else if (beta != 0) {
                T scaled = beta * crow[j];
                v = scaled + v;
            }
            crow[j] = v;
        }
    }
}

static void
FN(ukernel_generic)(ptrdiff_t kc, const T *a, const T *b, T *c, ptrdiff_t rs_c,
                    T alpha, T beta)
{
    FN(ukernel_generic_strided)(kc, a, 1, GENERIC_MR, b, GENERIC_NR, c, rs_c,
                                alpha, beta);
}

static inline ptrdiff_t
FN(min_diff)(ptrdiff_t x, ptrdiff_t y)
{
    return x < y ? x : y;
}

static inline ptrdiff_t
FN(round_up)(ptrdiff_t x, ptrdiff_t multiple)
{
    return (x + multiple - 1) / multiple * multiple;
}

/* Set y = alpha * sum + beta * y, as the SIMD matrix-vector products do. */
static inline void
FN(finish_y)(T *y, T sum, T alpha, T beta)
{
    if (alpha != 1) {
        sum = alpha * sum;
    }
    if (beta == 1) {
        sum = *y + sum;
    }
    else if (beta != 0) {
        T scaled = beta * *y;
        sum = scaled + sum;
    }
    *y = sum;
}

/*
 * Portable matrix-vector product over rows of A (the contract of the SIMD
 * dot forms, gemm.h): each row in eight partial sums, combined pairwise.
 */
static void
FN(gemv_dot_generic)(ptrdiff_t m, ptrdiff_t k, const T *a, ptrdiff_t rs_a,
                     const T *x, T *y, ptrdiff_t incy, T alpha, T beta)
{
    for (ptrdiff_t i = 0; i < m; i++) {
        const T *row = a + i * rs_a;
        T lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        ptrdiff_t p = 0;
        for (; p + 8 <= k; p += 8) {
            for (int l = 0; l < 8; l++) {
                T prod = row[p + l] * x[p + l];
                lanes[l] += prod;
            }
        }
        T sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) +
                ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
        for (; p < k; p++) {
            T prod = row[p] * x[p];
            sum += prod;
        }
        FN(finish_y)(y + i * incy, sum, alpha, beta);
    }
}

/*
 * Portable matrix-vector product over columns of A (the contract of the
 * SIMD column forms, gemm.h): chunks of 1024 rows, whose sums stay in
 * cache while x[p] times column p is added for each p in turn.
 */
static void
FN(gemv_axpy_generic)(ptrdiff_t m, ptrdiff_t k, const T *a, ptrdiff_t cs_a,
                      const T *x, ptrdiff_t incx, T *y, ptrdiff_t incy,
                      T alpha, T beta)
{
    T acc[1024];
    for (ptrdiff_t i0 = 0; i0 < m; i0 += 1024) {
        ptrdiff_t rows = FN(min_diff)(m - i0, 1024);
        for (ptrdiff_t r = 0; r < rows; r++) {
            acc[r] = 0;
        }
        for (ptrdiff_t p = 0; p < k; p++) {
            const T *restrict col = a + i0 + p * cs_a;
            T xp = x[p * incx];
            for (ptrdiff_t r = 0; r < rows; r++) {
                T prod = col[r] * xp;
                acc[r] += prod;
            }
        }
        for (ptrdiff_t r = 0; r < rows; r++) {
            FN(finish_y)(y + (i0 + r) * incy, acc[r], alpha, beta);
        }
    }
}

/*
 * Set by a test hook: run the AVX-512 tiles through their AVX2 emulation.
 * Defined once in gemm.c.
 */
extern int mla_gemm_avx512_on_avx2;

/*
 * Return the micro-kernel of the selected SIMD level and its cache blocks
 * for products with n columns (0: any width). A product at most as wide
 * as an AVX2 tile runs the AVX2 kernel on an AVX-512 CPU too, because the
 * wider tile would spend half its multiply-adds or more on padding. The
 * choice depends on n alone, so the thread count still never changes the
 * bits.
 *
 * The blocks keep a KC x NR panel of B (16 KiB for AVX2) within a 32 KiB
 * L1 data cache and an MC x KC block of A (192 KiB for float64) within L2.
 * Those are the cache sizes of AMD Zen 3 and Intel Skylake cores. NC only
 * bounds the packed B block (KC x NC, 8 MiB at most), which lives in L3.
 */
/* The descriptor of the kernels of one SIMD level and element type. */
#undef UKERNEL_DESC
#define UKERNEL_DESC(level, S, mr, nr, mc, kc, nc)                           \
    {mr,                                                                      \
     nr,                                                                      \
     mc,                                                                      \
     kc,                                                                      \
     nc,                                                                      \
     mla_ukernel_##level##_##S,                                               \
     mla_ukernel_##level##_strided_##S,                                       \
     mla_gemv_dot_##level##_##S,                                              \
     mla_gemv_axpy_##level##_##S}

static FN(ukernel_desc)
FN(select_ukernel)(ptrdiff_t n)
{
    FN(ukernel_desc) desc = {GENERIC_MR,
                             GENERIC_NR,
                             96,
                             256,
                             4096,
                             FN(ukernel_generic),
                             FN(ukernel_generic_strided),
                             FN(gemv_dot_generic),
                             FN(gemv_axpy_generic)};
#ifdef MLA_HAVE_X86_KERNELS
    /*
     * The AVX-512 tiles are 8 rows tall, which divides the power-of-two
     * sizes of most layers: with 12 rows, a 256-row product computed 264.
     * On AMD Zen 4 (1 MiB L2) that took (256 x 784) @ (784 x 256) from
     * 1164 to 1060 us and n = 64 float64 from 0.85x to 1.04x np.matmul.
     * float64 takes KC = 384: on two threads a 2048 x 2048 product then
     * passes over C 6 times instead of 8, and reached 0.94x to 0.97x
     * np.matmul instead of 0.89x to 0.90x. On one thread the MC and KC
     * tried within a factor of two measured alike.
     */
#if MLA_DTYPE == 32
    FN(ukernel_desc) avx2 =
        UKERNEL_DESC(avx2, f32, MLA_AVX2_MR, MLA_AVX2_NR_F32, 96, 256, 4096);
    FN(ukernel_desc) avx512 = UKERNEL_DESC(avx512, f32, MLA_AVX512_MR,
                                           MLA_AVX512_NR_F32, 144, 256, 4096);
    FN(ukernel_desc) emulated =
        UKERNEL_DESC(avx512_on_avx2, f32, MLA_AVX512_MR, MLA_AVX512_NR_F32,
                     144, 256, 4096);
#else
    FN(ukernel_desc) avx2 =
        UKERNEL_DESC(avx2, f64, MLA_AVX2_MR, MLA_AVX2_NR_F64, 96, 256, 4096);
    FN(ukernel_desc) avx512 = UKERNEL_DESC(avx512, f64, MLA_AVX512_MR,
                                           MLA_AVX512_NR_F64, 192, 384, 4096);
    FN(ukernel_desc) emulated =
        UKERNEL_DESC(avx512_on_avx2, f64, MLA_AVX512_MR, MLA_AVX512_NR_F64,
                     192, 384, 4096);
#endif
    mla_level level = mla_get_level();
    if (level >= MLA_LEVEL_AVX512) {
        desc = n > 1 && n <= avx2.nr ? avx2 : avx512;
    }
    else if (level >= MLA_LEVEL_AVX2) {
        desc = mla_gemm_avx512_on_avx2 ? emulated : avx2;
    }
#else
    (void)n;
#endif
    return desc;
}

/*
 * Pack one panel of rows x kc elements of A (strides rs, cs) into dst as
 * dst[p * MR + i] = a[i, p], padding rows past the edge with zeros. MR is
 * a constant in every caller, so each copy loop is specialized.
 */
static inline void
FN(pack_a_panel)(T *restrict dst, const T *restrict a, ptrdiff_t rs,
                 ptrdiff_t cs, ptrdiff_t rows, ptrdiff_t kc, const int MR)
{
    if (rows == MR && cs == 1) {
        for (ptrdiff_t p = 0; p < kc; p++) {
            for (int i = 0; i < MR; i++) {
                dst[p * MR + i] = a[i * rs + p];
            }
        }
    }
    else if (rows == MR && rs == 1) {
        for (ptrdiff_t p = 0; p < kc; p++) {
            for (int i = 0; i < MR; i++) {
                dst[p * MR + i] = a[p * cs + i];
            }
        }
    }
    else {
        for (ptrdiff_t p = 0; p < kc; p++) {
            int i = 0;
            for (; i < rows; i++) {
                dst[p * MR + i] = a[i * rs + p * cs];
            }
            for (; i < MR; i++) {
                dst[p * MR + i] = 0;
            }
        }
    }
}

/* Pack the mc x kc block a into consecutive MR-row panels of dst. */
static inline void
FN(pack_a_block)(T *dst, const T *a, ptrdiff_t rs, ptrdiff_t cs, ptrdiff_t mc,
                 ptrdiff_t kc, const int MR)
{
    for (ptrdiff_t ir = 0; ir < mc; ir += MR) {
        FN(pack_a_panel)(dst + ir * kc, a + ir * rs, rs, cs,
                         FN(min_diff)(mc - ir, MR), kc, MR);
    }
}

static void
FN(pack_a)(T *dst, const T *a, ptrdiff_t rs, ptrdiff_t cs, ptrdiff_t mc,
           ptrdiff_t kc, ptrdiff_t mr)
{
    switch (mr) {
    case 6:
#ifdef MLA_HAVE_X86_KERNELS
        /* Only the AVX2 kernels have 6-row tiles, so AVX2 is present. */
        if (cs == 1) {
            ptrdiff_t full = mc / 6 * 6;
            for (ptrdiff_t ir = 0; ir < full; ir += 6) {
                FN(mla_pack_a6_avx2)(dst + ir * kc, a + ir * rs, rs, kc);
            }
            FN(pack_a_block)(dst + full * kc, a + full * rs, rs, cs, mc - full,
                             kc, 6);
            break;
        }
#endif
        FN(pack_a_block)(dst, a, rs, cs, mc, kc, 6);
        break;
    case 8:
        FN(pack_a_block)(dst, a, rs, cs, mc, kc, 8);
        break;
    default:
        FN(pack_a_block)(dst, a, rs, cs, mc, kc, GENERIC_MR);
        break;
    }
}

/*
 * Pack one panel of kc x cols elements of B (strides rs, cs) into dst as
 * dst[p * NR + j] = b[p, j], padding columns past the edge with zeros.
 */
static inline void
FN(pack_b_panel)(T *restrict dst, const T *restrict b, ptrdiff_t rs,
                 ptrdiff_t cs, ptrdiff_t kc, ptrdiff_t cols, const int NR)
{
    if (cols == NR && cs == 1) {
        for (ptrdiff_t p = 0; p < kc; p++) {
            for (int j = 0; j < NR; j++) {
                dst[p * NR + j] = b[p * rs + j];
            }
        }
    }
    else if (cols == NR && rs == 1) {
#ifdef MLA_HAVE_X86_KERNELS
        if (NR % 4 == 0 && mla_get_level() >= MLA_LEVEL_AVX2) {
            FN(mla_pack_bt_avx2)(dst, b, cs, kc, NR);
            return;
        }
#endif
        for (ptrdiff_t p = 0; p < kc; p++) {
            for (int j = 0; j < NR; j++) {
                dst[p * NR + j] = b[j * cs + p];
            }
        }
    }
    else {
        for (ptrdiff_t p = 0; p < kc; p++) {
            int j = 0;
            for (; j < cols; j++) {
                dst[p * NR + j] = b[p * rs + j * cs];
            }
            for (; j < NR; j++) {
                dst[p * NR + j] = 0;
            }
        }
    }
}

/*
 * Pack the kc x nc block b into consecutive NR-column panels of dst. With
 * contiguous rows, the full panels are filled row by row, so that B is
 * read in long runs, as the hardware prefetchers read best.
 */
static inline void
FN(pack_b_block)(T *dst, const T *b, ptrdiff_t rs, ptrdiff_t cs, ptrdiff_t kc,
                 ptrdiff_t nc, const int NR)
{
    ptrdiff_t full = cs == 1 ? nc / NR * NR : 0;
    for (ptrdiff_t p = 0; p < kc; p++) {
        const T *row = b + p * rs;
        for (ptrdiff_t jr = 0; jr < full; jr += NR) {
            memcpy(dst + jr * kc + p * NR, row + jr, NR * sizeof(T));
        }
    }
    for (ptrdiff_t jr = full; jr < nc; jr += NR) {
        FN(pack_b_panel)(dst + jr * kc, b + jr * cs, rs, cs, kc,
                         FN(min_diff)(nc - jr, NR), NR);
    }
}

static void
FN(pack_b)(T *dst, const T *b, ptrdiff_t rs, ptrdiff_t cs, ptrdiff_t kc,
           ptrdiff_t nc, ptrdiff_t nr)
{
    switch (nr) {
    case 16:
        FN(pack_b_block)(dst, b, rs, cs, kc, nc, 16);
        break;
    case 32:
        FN(pack_b_block)(dst, b, rs, cs, kc, nc, 32);
        break;
    default:
        FN(pack_b_block)(dst, b, rs, cs, kc, nc, GENERIC_NR);
        break;
    }
}

/*
 * Apply bias and activation to the rows x cols tile of C at (i0, j0), the
 * last step of an element once all of its K slices are summed. With lower,
 * only elements with row >= column change.
 */
static void
FN(apply_epilogue)(const FN(gemm_plan) *plan, T *c, ptrdiff_t rows,
                   ptrdiff_t cols, ptrdiff_t i0, ptrdiff_t j0)
{
    ptrdiff_t rs_c = plan->rs_c, cs_c = plan->cs_c;
    for (ptrdiff_t i = 0; i < rows; i++) {
        T *crow = c + i * rs_c;
        ptrdiff_t end = cols;
        if (plan->lower) {
            end = FN(min_diff)(cols, i0 + i - j0 + 1);
        }
        if (plan->bias != NULL) {
            const T *brow = plan->bias + (i0 + i) * plan->bias_rs +
                            j0 * plan->bias_cs;
            for (ptrdiff_t j = 0; j < end; j++) {
                crow[j * cs_c] += brow[j * plan->bias_cs];
            }
        }
        switch (plan->activation) {
        case MLA_ACT_RELU:
            for (ptrdiff_t j = 0; j < end; j++) {
                crow[j * cs_c] = FN(relu_one)(crow[j * cs_c]);
            }
            break;
        case MLA_ACT_SIGMOID:
            for (ptrdiff_t j = 0; j < end; j++) {
                crow[j * cs_c] = FN(sigmoid_one)(crow[j * cs_c]);
            }
            break;
        case MLA_ACT_TANH:
            for (ptrdiff_t j = 0; j < end; j++) {
                crow[j * cs_c] = TANH(crow[j * cs_c]);
            }
            break;
        default:
            break;
        }
    }
}

/*
 * Run the micro-kernel on a tile that it cannot write in place: one that
 * sticks out of C, has non-contiguous columns, or straddles the diagonal
 * of a lower-triangle product. The tile is copied into a buffer, updated
 * there by the strided twin of the kernel that computes every other tile,
 * and copied back, so it rounds exactly like a full tile. A and B are read
 * as the strided kernel reads them.
 */
static void
FN(edge_tile)(const FN(gemm_plan) *plan, T *c, const T *a, ptrdiff_t rs_a,
              ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b, ptrdiff_t kc,
              ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t i0, ptrdiff_t j0,
              T beta)
{
    const FN(ukernel_desc) *kd = plan->kd;
    ptrdiff_t rs_c = plan->rs_c, cs_c = plan->cs_c, nr = kd->nr;
    _Alignas(64) T tile[MLA_MAX_MR * MLA_MAX_NR];

    if (beta != 0) {
        for (ptrdiff_t i = 0; i < kd->mr; i++) {
            for (ptrdiff_t j = 0; j < nr; j++) {
                tile[i * nr + j] =
                    i < rows && j < cols ? c[i * rs_c + j * cs_c] : 0;
            }
        }
    }
    kd->strided(kc, a, rs_a, cs_a, b, rs_b, tile, nr, plan->alpha, beta);
    for (ptrdiff_t i = 0; i < rows; i++) {
        ptrdiff_t end = cols;
        if (plan->lower) {
            end = FN(min_diff)(cols, i0 + i - j0 + 1);
        }
        for (ptrdiff_t j = 0; j < end; j++) {
            c[i * rs_c + j * cs_c] = tile[i * nr + j];
        }
    }
}

/*
 * Update the rows x cols tile of C at (i0, j0) (c points at it) for one K
 * slice, reading A as a[i * rs_a + p * cs_a] and B as b[p * rs_b + j].
 * With packed set, A and B are packed panels. last marks the final slice,
 * after which the epilogue runs while the tile is still in cache.
 */
static inline void
FN(update_tile)(const FN(gemm_plan) *plan, T *c, const T *a, ptrdiff_t rs_a,
                ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b, ptrdiff_t kc,
                ptrdiff_t rows, ptrdiff_t cols, ptrdiff_t i0, ptrdiff_t j0,
                T beta, int last, int packed)
{
    const FN(ukernel_desc) *kd = plan->kd;

    /* A lower-triangle product skips tiles above the diagonal. */
    if (plan->lower && j0 > i0 + rows - 1) {
        return;
    }
    int straddles = plan->lower && j0 + cols - 1 > i0;
    if (rows == kd->mr && cols == kd->nr && plan->cs_c == 1 && !straddles) {
        if (packed) {
            kd->kernel(kc, a, b, c, plan->rs_c, plan->alpha, beta);
        }
        else {
            kd->strided(kc, a, rs_a, cs_a, b, rs_b, c, plan->rs_c,
                        plan->alpha, beta);
        }
    }
    else {
        FN(edge_tile)(plan, c, a, rs_a, cs_a, b, rs_b, kc, rows, cols, i0, j0,
                      beta);
    }
    if (last && (plan->bias != NULL || plan->activation != MLA_ACT_LINEAR)) {
        FN(apply_epilogue)(plan, c, rows, cols, i0, j0);
    }
}

/*
 * Update the mc x nc block of C at (i0, j0) (c points at it) from the
 * packed A block and the packed B columns of the current K slice: for each
 * NR-wide B panel, every MR-tall A panel.
 */
static void
FN(macro_kernel)(const FN(gemm_plan) *plan, T *c, const T *apack,
                 const T *bpack, ptrdiff_t mc, ptrdiff_t nc, ptrdiff_t kc,
                 ptrdiff_t i0, ptrdiff_t j0, T beta, int last)
{
    const FN(ukernel_desc) *kd = plan->kd;
    ptrdiff_t mr = kd->mr, nr = kd->nr;

    for (ptrdiff_t jr = 0; jr < nc; jr += nr) {
        ptrdiff_t cols = FN(min_diff)(nc - jr, nr);
        for (ptrdiff_t ir = 0; ir < mc; ir += mr) {
            ptrdiff_t rows = FN(min_diff)(mc - ir, mr);
            FN(update_tile)(plan, c + ir * plan->rs_c + jr * plan->cs_c,
                            apack + ir * kc, 1, mr, bpack + jr * kc, nr, kc,
                            rows, cols, i0 + ir, j0 + jr, beta, last, 1);
        }
    }
}

/*
 * Return the depth of the K slices of an inner dimension k: the fewest
 * slices of at most KC, made as equal as possible, so that no thin last
 * slice pays a kernel call per tile for a few terms (784 = 196 * 4, not
 * 256 * 3 + 16). It depends on k alone, so every path and every thread
 * count slices alike.
 */
static ptrdiff_t
FN(slice_depth)(const FN(ukernel_desc) *kd, ptrdiff_t k)
{
    ptrdiff_t slices = (k + kd->kc - 1) / kd->kc;
    return (k + slices - 1) / slices;
}

/*
 * Compute a small product on one thread without packing: the strided
 * kernel reads A and B where they are. Only what a full tile cannot read
 * in place is packed into work (mr x kc for the last rows of A, kc x nr for
 * a B panel with an edge or without contiguous rows). The K slices are
 * the packed path's, so both paths give the same bits.
 */
static void
FN(gemm_direct)(const FN(gemm_plan) *plan, T *work)
{
    const FN(ukernel_desc) *kd = plan->kd;
    ptrdiff_t mr = kd->mr, nr = kd->nr;
    ptrdiff_t m = plan->m, n = plan->n, k = plan->k;
    ptrdiff_t m_full = m / mr * mr;
    T *bpanel = work;
    T *apanel = work + plan->kc * nr;

    for (ptrdiff_t pc = 0; pc < k; pc += plan->kc) {
        ptrdiff_t kc = FN(min_diff)(k - pc, plan->kc);
        T beta = pc == 0 ? plan->beta : 1;
        int last = pc + kc == k;
        const T *a = plan->a + pc * plan->cs_a;

        if (m_full < m) {
            FN(pack_a)(apanel, a + m_full * plan->rs_a, plan->rs_a, plan->cs_a,
                       m - m_full, kc, mr);
        }
        for (ptrdiff_t jr = 0; jr < n; jr += nr) {
            ptrdiff_t cols = FN(min_diff)(n - jr, nr);
            const T *bp = plan->b + pc * plan->rs_b + jr * plan->cs_b;
            ptrdiff_t rs_bp = plan->rs_b;
            if (cols < nr || plan->cs_b != 1) {
                FN(pack_b)(bpanel, bp, plan->rs_b, plan->cs_b, kc, cols, nr);
                bp = bpanel;
                rs_bp = nr;
            }
            for (ptrdiff_t ir = 0; ir < m; ir += mr) {
                T *ct = plan->c + ir * plan->rs_c + jr * plan->cs_c;
                if (ir < m_full) {
                    FN(update_tile)(plan, ct, a + ir * plan->rs_a, plan->rs_a,
                                    plan->cs_a, bp, rs_bp, kc, mr, cols, ir,
                                    jr, beta, last, 0);
                }
                else {
                    FN(update_tile)(plan, ct, apanel, 1, mr, bp, rs_bp, kc,
                                    m - ir, cols, ir, jr, beta, last, 0);
                }
            }
        }
    }
}

/*
 * B panels that one unit of the packing covers at most. A product on
 * several threads cuts B finer, into at least two units per thread, so
 * that no thread waits while another packs a B of a few panels alone.
 */
#define GEMM_PACK_PANELS 8

static ptrdiff_t
FN(pack_panels)(const FN(ukernel_desc) *kd, ptrdiff_t n, int nthreads)
{
    ptrdiff_t col_panels = (FN(min_diff)(n, kd->nc) + kd->nr - 1) / kd->nr;
    ptrdiff_t panels = col_panels / (2 * (ptrdiff_t)nthreads);
    panels = panels < 1 ? 1 : panels;
    return panels > GEMM_PACK_PANELS ? GEMM_PACK_PANELS : panels;
}

/*
 * Cut the m x nc column block into units: at least four per thread when
 * the product allows it, so that a thread slowed down by another process
 * leaves its share to the others. Units keep whole MR panels, at most MC
 * rows, and at least 4 MR rows where there are that many: the packed B
 * block is read once per row unit, so taller units read it less often.
 */
static FN(gemm_grid)
FN(make_grid)(const FN(gemm_plan) *plan, ptrdiff_t nc)
{
    const FN(ukernel_desc) *kd = plan->kd;
    ptrdiff_t max_panels = kd->mc / kd->mr;
    ptrdiff_t target = plan->nthreads > 1 ? 4 * (ptrdiff_t)plan->nthreads : 1;
    FN(gemm_grid) grid;

    grid.row_panels = (plan->m + kd->mr - 1) / kd->mr;
    grid.col_panels = (nc + kd->nr - 1) / kd->nr;
    ptrdiff_t panels = (grid.row_panels + target - 1) / target;
    panels = panels < 4 ? 4 : panels;
    panels = panels > max_panels ? max_panels : panels;
    grid.row_units = (grid.row_panels + panels - 1) / panels;
    if (grid.row_units > plan->nthreads) {
        /*
         * Give each thread the same number of units, which part_start
         * makes equal to within a panel. With 11 units of up to 24 panels,
         * one of two threads computed 6 units, 12% more than half the work.
         */
        grid.row_units = FN(round_up)(grid.row_units, plan->nthreads);
        grid.row_units = grid.row_units < grid.row_panels ? grid.row_units
                                                          : grid.row_panels;
    }

    /* Too few row units: cut the columns too. */
    ptrdiff_t col_units = (target + grid.row_units - 1) / grid.row_units;
    grid.col_units = col_units > grid.col_panels ? grid.col_panels : col_units;
    return grid;
}

/* Return the first panel of part `part` of `total` panels cut in `parts`. */
static inline ptrdiff_t
FN(part_start)(ptrdiff_t total, ptrdiff_t parts, ptrdiff_t part)
{
    return total * part / parts;
}

/*
 * Return where the packed kc x nc block of B of the K slice at pc starts:
 * at the start of bpack, or after the earlier slices when it holds them
 * all.
 */
static inline T *
FN(bpack_slice)(const FN(gemm_plan) *plan, ptrdiff_t nc, ptrdiff_t pc)
{
    if (!plan->whole_k) {
        return plan->bpack;
    }
    return plan->bpack + pc * FN(round_up)(nc, plan->kd->nr);
}

/*
 * Pack unit u of the kc x nc block of B at (pc, jc): the pack_panels
 * panels starting at panel u * pack_panels.
 */
static void
FN(pack_b_unit)(const FN(gemm_plan) *plan, ptrdiff_t u, ptrdiff_t jc,
                ptrdiff_t nc, ptrdiff_t pc, ptrdiff_t kc)
{
    ptrdiff_t nr = plan->kd->nr;
    ptrdiff_t start = u * plan->pack_panels * nr;
    ptrdiff_t cols = FN(min_diff)(nc - start, plan->pack_panels * nr);
    FN(pack_b)(FN(bpack_slice)(plan, nc, pc) + start * kc,
               plan->b + pc * plan->rs_b + (jc + start) * plan->cs_b,
               plan->rs_b, plan->cs_b, kc, cols, nr);
}

/*
 * Compute unit u of the grid for the K slice at pc: pack its rows of A
 * into apack and update its rectangle of C against the packed B block of
 * the column block at jc.
 */
static void
FN(gemm_unit)(const FN(gemm_plan) *plan, const FN(gemm_grid) *grid,
              T *apack, ptrdiff_t u, ptrdiff_t jc, ptrdiff_t nc,
              ptrdiff_t pc)
{
    ptrdiff_t kc = FN(min_diff)(plan->k - pc, plan->kc);
    T beta = pc == 0 ? plan->beta : 1;
    int last = pc + kc == plan->k;
    ptrdiff_t mr = plan->kd->mr, nr = plan->kd->nr;
    ptrdiff_t row_unit = u / grid->col_units, col_unit = u % grid->col_units;
    ptrdiff_t ic = mr * FN(part_start)(grid->row_panels, grid->row_units,
                                       row_unit);
    ptrdiff_t row_end = mr * FN(part_start)(grid->row_panels, grid->row_units,
                                            row_unit + 1);
    ptrdiff_t mc = FN(min_diff)(plan->m, row_end) - ic;
    ptrdiff_t col_start = nr * FN(part_start)(grid->col_panels, grid->col_units,
                                              col_unit);
    ptrdiff_t col_end = FN(min_diff)(
        nc, nr * FN(part_start)(grid->col_panels, grid->col_units, col_unit + 1));

    if (plan->lower) {
        /* Columns right of the unit's last row stay untouched. */
        col_end = FN(min_diff)(col_end, ic + mc - jc);
    }
    if (col_end <= col_start) {
        return;
    }
    FN(pack_a)(apack, plan->a + ic * plan->rs_a + pc * plan->cs_a, plan->rs_a,
               plan->cs_a, mc, kc, mr);
    FN(macro_kernel)(plan, plan->c + ic * plan->rs_c + (jc + col_start) * plan->cs_c,
                     apack, FN(bpack_slice)(plan, nc, pc) + col_start * kc, mc,
                     col_end - col_start, kc, ic, jc + col_start, beta, last);
}

/*
 * Compute unit u of the grid for every K slice in turn, from a bpack that
 * holds them all (whole_k).
 */
static void
FN(gemm_unit_whole_k)(const FN(gemm_plan) *plan, const FN(gemm_grid) *grid,
                      T *apack, ptrdiff_t u, ptrdiff_t jc, ptrdiff_t nc)
{
    for (ptrdiff_t pc = 0; pc < plan->k; pc += plan->kc) {
        FN(gemm_unit)(plan, grid, apack, u, jc, nc, pc);
    }
}

/*
 * Pack unit u of all the K slices of B of the column block at jc (whole_k):
 * slice u / pack_units, panel group u % pack_units.
 */
static void
FN(pack_b_unit_whole_k)(const FN(gemm_plan) *plan, ptrdiff_t u,
                        ptrdiff_t pack_units, ptrdiff_t jc, ptrdiff_t nc)
{
    ptrdiff_t pc = (u / pack_units) * plan->kc;
    ptrdiff_t kc = FN(min_diff)(plan->k - pc, plan->kc);
    FN(pack_b_unit)(plan, u % pack_units, jc, nc, pc, kc);
}

/* Wait politely in a spin loop: the thread waited for runs on another CPU. */
static inline void
FN(spin_pause)(void)
{
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_ia32_pause();
#endif
}

/*
 * Make sure that every pack unit of B (all K slices of the only column
 * block) is packed: pack each unit that no thread has claimed yet, then
 * wait for the units that other threads are packing.
 */
static void
FN(pack_b_claimed)(const FN(gemm_plan) *plan, ptrdiff_t pack_units,
                   ptrdiff_t count, ptrdiff_t nc)
{
    atomic_int *state = plan->claims->state;
    for (ptrdiff_t i = 0; i < count; i++) {
        int unclaimed = 0;
        if (atomic_load_explicit(&state[i], memory_order_acquire) == 0 &&
            atomic_compare_exchange_strong(&state[i], &unclaimed, 1)) {
            FN(pack_b_unit_whole_k)(plan, i, pack_units, 0, nc);
            atomic_store_explicit(&state[i], 2, memory_order_release);
        }
    }
    for (ptrdiff_t i = 0; i < count; i++) {
        while (atomic_load_explicit(&state[i], memory_order_acquire) != 2) {
            FN(spin_pause)();
        }
    }
}

/*
 * Run this thread's share of a product with claims: take units of C from
 * the shared counter until none is left, packing B on the way. The only
 * wait for other threads is for pack units that they are packing, and the
 * end of the parallel region. A thread that the system keeps off its CPU
 * thus delays the others only if it holds a pack unit.
 */
static void
FN(gemm_thread_claims)(const FN(gemm_plan) *plan, T *apack, ptrdiff_t nc)
{
    const FN(ukernel_desc) *kd = plan->kd;
    ptrdiff_t col_panels = (nc + kd->nr - 1) / kd->nr;
    ptrdiff_t pack_units = (col_panels + plan->pack_panels - 1) / plan->pack_panels;
    ptrdiff_t slices = (plan->k + plan->kc - 1) / plan->kc;
    FN(gemm_grid) grid = FN(make_grid)(plan, nc);
    ptrdiff_t units = grid.row_units * grid.col_units;
    int packed = 0;

    for (;;) {
        ptrdiff_t u = (ptrdiff_t)atomic_fetch_add(&plan->claims->next_unit, 1);
        if (u >= units) {
            break;
        }
        if (!packed) {
            FN(pack_b_claimed)(plan, pack_units, slices * pack_units, nc);
            packed = 1;
        }
        FN(gemm_unit_whole_k)(plan, &grid, apack, u, 0, nc);
    }
}

/*
 * Run the blocked product on each thread of the team (or on the only
 * thread, with nthreads == 1). For each column block and K slice, the
 * threads first pack B together, then compute the units of C. Both loops
 * hand out one unit at a time and end with a barrier, because the next
 * slice overwrites the packed B block. With whole_k, the threads pack all
 * the K slices first, and each unit then runs through every slice: one
 * barrier per column block instead of two per slice, and none with claims
 * (gemm_thread_claims). Which thread computes a unit never changes the
 * unit's arithmetic.
 *
 * Worksharing loops appear only in a team of this product's own: a
 * single-thread call may run inside someone else's parallel region, which
 * an orphaned omp for would bind to.
 */
static void
FN(gemm_thread)(const FN(gemm_plan) *plan)
{
    const FN(ukernel_desc) *kd = plan->kd;
    int parallel = plan->nthreads > 1;
    int tid = parallel ? MLA_THREAD_ID() : 0;
    T *apack = plan->apack + (size_t)tid * plan->apack_size;
    ptrdiff_t slices = (plan->k + plan->kc - 1) / plan->kc;

    if (plan->claims != NULL) {
        FN(gemm_thread_claims)(plan, apack, plan->n);
        return;
    }

    for (ptrdiff_t jc = 0; jc < plan->n; jc += kd->nc) {
        ptrdiff_t nc = FN(min_diff)(plan->n - jc, kd->nc);
        ptrdiff_t col_panels = (nc + kd->nr - 1) / kd->nr;
        ptrdiff_t pack_units =
            (col_panels + plan->pack_panels - 1) / plan->pack_panels;
        FN(gemm_grid) grid = FN(make_grid)(plan, nc);
        ptrdiff_t units = grid.row_units * grid.col_units;

        if (parallel && plan->whole_k) {
#pragma omp for schedule(dynamic)
            for (ptrdiff_t u = 0; u < slices * pack_units; u++) {
                FN(pack_b_unit_whole_k)(plan, u, pack_units, jc, nc);
            }
#pragma omp for schedule(dynamic)
            for (ptrdiff_t u = 0; u < units; u++) {
                FN(gemm_unit_whole_k)(plan, &grid, apack, u, jc, nc);
            }
            continue;
        }
        for (ptrdiff_t pc = 0; pc < plan->k; pc += plan->kc) {
            ptrdiff_t kc = FN(min_diff)(plan->k - pc, plan->kc);
            if (parallel) {
#pragma omp for schedule(dynamic)
                for (ptrdiff_t u = 0; u < pack_units; u++) {
                    FN(pack_b_unit)(plan, u, jc, nc, pc, kc);
                }
#pragma omp for schedule(dynamic)
                for (ptrdiff_t u = 0; u < units; u++) {
                    FN(gemm_unit)(plan, &grid, apack, u, jc, nc, pc);
                }
            }
            else {
                for (ptrdiff_t u = 0; u < pack_units; u++) {
                    FN(pack_b_unit)(plan, u, jc, nc, pc, kc);
                }
                for (ptrdiff_t u = 0; u < units; u++) {
                    FN(gemm_unit)(plan, &grid, apack, u, jc, nc, pc);
                }
            }
        }
    }
}

/* Elements of packed A that each thread owns. */
static size_t
FN(gemm_apack_size)(const FN(ukernel_desc) *kd, ptrdiff_t m, ptrdiff_t k)
{
    ptrdiff_t kc = FN(min_diff)(k, kd->kc);
    ptrdiff_t mc = FN(round_up)(FN(min_diff)(m, kd->mc), kd->mr);
    return (size_t)mc * (size_t)kc;
}

/*
 * Multithreaded products whose packed B, all K slices of one column block,
 * takes at most this many bytes pack it whole (whole_k in gemm_thread).
 * It then stays in a last-level cache of 16 MiB or more while the units of
 * C go through it.
 */
#define GEMM_WHOLE_K_BYTES (8 << 20)

/* Whether a product on nthreads threads packs all K slices of B at once. */
static int
FN(gemm_whole_k)(const FN(ukernel_desc) *kd, ptrdiff_t n, ptrdiff_t k,
                 int nthreads)
{
    ptrdiff_t nc = FN(round_up)(FN(min_diff)(n, kd->nc), kd->nr);
    return nthreads > 1 &&
           (double)k * (double)nc * sizeof(T) <= GEMM_WHOLE_K_BYTES;
}

/* Elements of packed B that the threads share. */
static size_t
FN(gemm_bpack_size)(const FN(ukernel_desc) *kd, ptrdiff_t n, ptrdiff_t k,
                    int nthreads)
{
    ptrdiff_t kc = FN(min_diff)(k, kd->kc);
    ptrdiff_t nc = FN(round_up)(FN(min_diff)(n, kd->nc), kd->nr);
    if (FN(gemm_whole_k)(kd, n, k, nthreads)) {
        kc = k;
    }
    return (size_t)kc * (size_t)nc;
}

/* Scratch elements that gemm_run needs for m x n x k on nthreads. */
static size_t
FN(gemm_workspace)(const FN(ukernel_desc) *kd, ptrdiff_t m, ptrdiff_t n,
                   ptrdiff_t k, int nthreads)
{
    if (m == 0 || n == 0 || k == 0) {
        return 0;
    }
    return FN(gemm_bpack_size)(kd, n, k, nthreads) +
           (size_t)nthreads * FN(gemm_apack_size)(kd, m, k);
}

/*
 * Products below this many multiply-adds (about 160^3) run on one thread:
 * waking a second thread costs more than it saves, and far more when
 * another process occupies the core.
 */
#define GEMM_PARALLEL_MIN_WORK 4.0e6

/* Rows of y that one unit of a threaded matrix-vector product computes. */
#define GEMV_UNIT_ROWS 256

/*
 * Matrix-vector products from this many multiply-adds share their rows
 * among threads. Each reads its matrix once, so memory bounds it rather
 * than arithmetic. A second core reading half the rows then pays off for
 * far smaller products than GEMM_PARALLEL_MIN_WORK. On Zen 4, (512, 512)
 * float64 took 17.6 us on two threads against 30.8 us on one.
 */
#define GEMV_PARALLEL_MIN_WORK 1.0e5

/* Threads worth starting for an m x n x k product. */
static int
FN(gemm_threads)(const FN(ukernel_desc) *kd, ptrdiff_t m, ptrdiff_t n,
                 ptrdiff_t k)
{
    int nthreads = mla_get_num_threads();
    if (m == 1 || n == 1) {
        ptrdiff_t rows = m == 1 ? n : m;
        ptrdiff_t units = (rows + GEMV_UNIT_ROWS - 1) / GEMV_UNIT_ROWS;
        if (nthreads <= 1 ||
            (double)rows * (double)k < GEMV_PARALLEL_MIN_WORK) {
            return 1;
        }
        return mla_team_threads(units < nthreads ? (int)units : nthreads);
    }
    ptrdiff_t tiles = ((m + kd->mr - 1) / kd->mr) *
                      ((FN(min_diff)(n, kd->nc) + kd->nr - 1) / kd->nr);
    if (nthreads <= 1 || (double)m * (double)n * (double)k < GEMM_PARALLEL_MIN_WORK) {
        return 1;
    }
    /* At least four tiles per thread. */
    if (tiles < 4 * (ptrdiff_t)nthreads) {
        nthreads = (int)(tiles / 4 > 1 ? tiles / 4 : 1);
    }
    return mla_team_threads(nthreads);
}

/*
 * Products up to this many multiply-adds skip packing (gemm_direct): their
 * operands stay in cache, and packing them would cost a fair part of the
 * product itself. Measured on AMD Zen 3 with AVX2, the direct path was
 * faster up to n = 48 to 64 in float64 and n = 96 in float32.
 */
#undef GEMM_DIRECT_MAX_WORK
#if MLA_DTYPE == 32
#define GEMM_DIRECT_MAX_WORK (96.0 * 96.0 * 96.0)
#else
#define GEMM_DIRECT_MAX_WORK (64.0 * 64.0 * 64.0)
#endif

static int
FN(use_direct)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    return (double)m * (double)n * (double)k <= GEMM_DIRECT_MAX_WORK;
}

/*
 * Write act(alpha * 0 + beta * C + bias) for an empty inner dimension:
 * the epilogue of a sum of nothing.
 */
static void
FN(gemm_empty_inner)(const FN(gemm_plan) *plan)
{
    for (ptrdiff_t i = 0; i < plan->m; i++) {
        ptrdiff_t end = plan->lower ? FN(min_diff)(plan->n, i + 1) : plan->n;
        for (ptrdiff_t j = 0; j < end; j++) {
            T *cij = plan->c + i * plan->rs_c + j * plan->cs_c;
            T v = plan->alpha * 0;
            if (plan->beta != 0) {
                T scaled = plan->beta * *cij;
                v = scaled + v;
            }
            *cij = v;
        }
    }
    for (ptrdiff_t i = 0; i < plan->m; i++) {
        ptrdiff_t end = plan->lower ? FN(min_diff)(plan->n, i + 1) : plan->n;
        FN(apply_epilogue)(plan, plan->c + i * plan->rs_c, 1, end, i, 0);
    }
}

/* Compute rows of y = alpha * M x + beta * y with one form of the kernel. */
static void
FN(gemv_rows)(const FN(gemm_plan) *plan, int dot, ptrdiff_t rows,
              const T *mat, ptrdiff_t rs_mat, ptrdiff_t cs_mat, const T *x,
              ptrdiff_t incx, T *y, ptrdiff_t incy)
{
    if (dot) {
        plan->kd->gemv_dot(rows, plan->k, mat, rs_mat, x, y, incy,
                           plan->alpha, plan->beta);
    }
    else {
        plan->kd->gemv_axpy(rows, plan->k, mat, cs_mat, x, incx, y, incy,
                            plan->alpha, plan->beta);
    }
}

/*
 * Compute a product with one row or one column of C as a matrix-vector
 * product, y = alpha * M x + beta * y, and return 1; return 0 and leave C
 * alone when neither form of the kernel can read the operands. With n == 1,
 * M is A and x the column of B; with m == 1, M is B^T and x the row of A.
 * Threads share out units of GEMV_UNIT_ROWS rows; the dot form needs a
 * contiguous x.
 */
static int
FN(gemv_run)(const FN(gemm_plan) *plan)
{
    const T *mat, *x;
    T *y;
    ptrdiff_t rows, rs_mat, cs_mat, incx, incy;

    if (plan->lower || (plan->n != 1 && plan->m != 1)) {
        return 0;
    }
    if (plan->n == 1) {
        mat = plan->a;
        rows = plan->m;
        rs_mat = plan->rs_a;
        cs_mat = plan->cs_a;
        x = plan->b;
        incx = plan->rs_b;
        y = plan->c;
        incy = plan->rs_c;
    }
    else {
        mat = plan->b;
        rows = plan->n;
        rs_mat = plan->cs_b;
        cs_mat = plan->rs_b;
        x = plan->a;
        incx = plan->cs_a;
        y = plan->c;
        incy = plan->cs_c;
    }
    int dot = cs_mat == 1 && incx == 1;
    if (!dot && rs_mat != 1) {
        return 0;
    }

    ptrdiff_t units = (rows + GEMV_UNIT_ROWS - 1) / GEMV_UNIT_ROWS;
    int nthreads = plan->nthreads;
    if (nthreads > 1) {
        mla_note_parallel(nthreads);
#pragma omp parallel for num_threads(nthreads) schedule(dynamic)
        for (ptrdiff_t u = 0; u < units; u++) {
            ptrdiff_t i = u * GEMV_UNIT_ROWS;
            FN(gemv_rows)(plan, dot, FN(min_diff)(rows - i, GEMV_UNIT_ROWS),
                          mat + i * rs_mat, rs_mat, cs_mat, x, incx,
                          y + i * incy, incy);
        }
    }
    else {
        FN(gemv_rows)(plan, dot, rows, mat, rs_mat, cs_mat, x, incx, y, incy);
    }

    if (plan->bias != NULL || plan->activation != MLA_ACT_LINEAR) {
        FN(apply_epilogue)(plan, plan->c, plan->m, plan->n, 0, 0);
    }
    return 1;
}

/*
 * C (m, n) = act(alpha * A (m, k) B (k, n) + beta * C + bias), all through
 * strides; beta == 0 never reads C. With lower (m == n) only elements with
 * row >= column are written. C must not overlap A, B or the bias. work
 * has room for gemm_workspace elements of nthreads threads.
 */
static void
FN(gemm_run)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a, ptrdiff_t rs_a,
             ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
             ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T beta,
             const FN(mla_epilogue) *ep, int lower,
             const FN(ukernel_desc) *kd, T *work, int nthreads)
{
    FN(gemm_plan) plan = {
        c, rs_c, cs_c, a, rs_a, cs_a, b, rs_b, cs_b, m, n, k,
        1, beta, NULL, 0, 0, MLA_ACT_LINEAR, lower, kd,
        NULL, NULL, 0, nthreads < 1 ? 1 : nthreads, 0, 0, NULL, GEMM_PACK_PANELS,
    };
    if (ep != NULL) {
        plan.alpha = ep->alpha;
        plan.bias = ep->bias;
        plan.bias_rs = ep->bias_rs;
        plan.bias_cs = ep->bias_cs;
        plan.activation = ep->activation;
    }
    if (m == 0 || n == 0) {
        return;
    }
    if (k == 0) {
        FN(gemm_empty_inner)(&plan);
        return;
    }
    plan.kc = FN(slice_depth)(kd, k);

    if (FN(gemv_run)(&plan)) {
        return;
    }
    /*
     * A product one tile wide gains nothing from packed A: each panel
     * would be read once, by the one column of tiles.
     */
    if (plan.nthreads == 1 && (FN(use_direct)(m, n, k) || n <= kd->nr)) {
        FN(gemm_direct)(&plan, work);
        return;
    }
    plan.bpack = work;
    plan.apack = work + FN(gemm_bpack_size)(kd, n, k, plan.nthreads);
    plan.whole_k = FN(gemm_whole_k)(kd, n, k, plan.nthreads);
    plan.apack_size = FN(gemm_apack_size)(kd, m, k);
    plan.pack_panels = FN(pack_panels)(kd, n, plan.nthreads);

    /*
     * Without a second thread, skip the OpenMP region: entering one costs
     * about a microsecond even with an if clause, more than a whole small
     * product.
     */
    if (plan.nthreads == 1) {
        FN(gemm_thread)(&plan);
        return;
    }
    /*
     * A product with one column block whose packed B is small enough to
     * track shares its work by claims instead of barriers.
     */
    struct FN(gemm_claims) claims;
    if (plan.whole_k && n <= kd->nc) {
        ptrdiff_t col_panels = (n + kd->nr - 1) / kd->nr;
        ptrdiff_t pack_units =
            (col_panels + plan.pack_panels - 1) / plan.pack_panels;
        ptrdiff_t count = (k + plan.kc - 1) / plan.kc * pack_units;
        if (count <= GEMM_CLAIM_UNITS) {
            for (ptrdiff_t i = 0; i < count; i++) {
                atomic_init(&claims.state[i], 0);
            }
            atomic_init(&claims.next_unit, 0);
            plan.claims = &claims;
        }
    }

    /* A team smaller than requested (nested regions) shares the units. */
    mla_note_parallel(plan.nthreads);
#pragma omp parallel num_threads(plan.nthreads)
    FN(gemm_thread)(&plan);
}

/*
 * Store in units[0] and units[1] the row and column units into which a
 * product of this size on nthreads threads cuts its first column block of
 * C, and in units[2] that block's row panels. The tests call it through a
 * hook.
 */
void
FN(mla_gemm_grid_units)(ptrdiff_t m, ptrdiff_t n, int nthreads,
                        ptrdiff_t units[3])
{
    FN(ukernel_desc) kd = FN(select_ukernel)(n);
    FN(gemm_plan) plan = {0};
    plan.m = m;
    plan.kd = &kd;
    plan.nthreads = nthreads < 1 ? 1 : nthreads;
    FN(gemm_grid) grid = FN(make_grid)(&plan, FN(min_diff)(n, kd.nc));
    units[0] = grid.row_units;
    units[1] = grid.col_units;
    units[2] = grid.row_panels;
}

/* Threads a product of this size runs on: pass it to the two below. */
int
FN(mla_gemm_threads)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    FN(ukernel_desc) kd = FN(select_ukernel)(n);
    return FN(gemm_threads)(&kd, m, n, k);
}

/* Scratch elements mla_gemm_run needs for this size on nthreads. */
size_t
FN(mla_gemm_workspace)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, int nthreads)
{
    FN(ukernel_desc) kd = FN(select_ukernel)(n);
    return FN(gemm_workspace)(&kd, m, n, k, nthreads < 1 ? 1 : nthreads);
}

/*
 * Compute the product of mla_gemm in caller-owned scratch. work has room
 * for at least mla_gemm_workspace(m, n, k, nthreads) elements. nthreads
 * comes from mla_gemm_threads, or is 1 inside a parallel region. Callers
 * that run many products allocate once. A product with n == 1, cs_a == 1
 * and rs_b == 1 runs as a matrix-vector product that never reads work,
 * which may then be NULL.
 */
void
FN(mla_gemm_run)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a,
                 ptrdiff_t rs_a, ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b,
                 ptrdiff_t cs_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                 const FN(mla_epilogue) *ep, T *work, int nthreads)
{
    FN(ukernel_desc) kd = FN(select_ukernel)(n);
    FN(gemm_run)(c, rs_c, cs_c, a, rs_a, cs_a, b, rs_b, cs_b, m, n, k, 0, ep,
                 0, &kd, work, nthreads);
}

/*
 * Return the strided micro-kernel of the level chosen at import and store
 * its tile in *mr and *nr, for kernels that lay out their operands
 * themselves (the Gram products of regression.c). gemm.h states the
 * kernel's contract.
 */
FN(mla_ukernel_strided)
FN(mla_gemm_strided_kernel)(ptrdiff_t *mr, ptrdiff_t *nr)
{
    FN(ukernel_desc) kd = FN(select_ukernel)(0);
    *mr = kd.mr;
    *nr = kd.nr;
    return kd.strided;
}

/* Allocate the scratch of one product and run it. */
static mla_status
FN(gemm_alloc_run)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a,
                   ptrdiff_t rs_a, ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b,
                   ptrdiff_t cs_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                   T beta, const FN(mla_epilogue) *ep, int lower)
{
    FN(ukernel_desc) kd = FN(select_ukernel)(n);
    int nthreads = FN(gemm_threads)(&kd, m, n, k);
    /* A lower triangle is half the work. */
    if (lower && nthreads > 1 &&
        (double)m * (double)n * (double)k < 2 * GEMM_PARALLEL_MIN_WORK) {
        nthreads = 1;
    }
    T *work = mla_alloc(FN(gemm_workspace)(&kd, m, n, k, nthreads), sizeof(T));
    if (work == NULL) {
        return MLA_ERR_NOMEM;
    }
    FN(gemm_run)(c, rs_c, cs_c, a, rs_a, cs_a, b, rs_b, cs_b, m, n, k, beta,
                 ep, lower, &kd, work, nthreads);
    mla_free(work);
    return MLA_OK;
}

mla_status
FN(mla_gemm)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a, ptrdiff_t rs_a,
             ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b, ptrdiff_t cs_b,
             ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const FN(mla_epilogue) *ep)
{
    return FN(gemm_alloc_run)(c, rs_c, cs_c, a, rs_a, cs_a, b, rs_b, cs_b, m,
                              n, k, 0, ep, 0);
}

/*
 * C (m, n) = act(alpha * A (m, k) B (k, n) + beta * C + bias): mla_gemm
 * that adds to what C contains. beta == 0 never reads C, so it equals
 * mla_gemm.
 */
mla_status
FN(mla_gemm_update)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a,
                    ptrdiff_t rs_a, ptrdiff_t cs_a, const T *b, ptrdiff_t rs_b,
                    ptrdiff_t cs_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                    T beta, const FN(mla_epilogue) *ep)
{
    return FN(gemm_alloc_run)(c, rs_c, cs_c, a, rs_a, cs_a, b, rs_b, cs_b, m,
                              n, k, beta, ep, 0);
}

/*
 * mla_gemm_run that adds to what C contains: C = alpha * A B + beta * C,
 * then the bias and activation. beta == 0 never reads C, so it equals
 * mla_gemm_run.
 */
void
FN(mla_gemm_run_update)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a,
                        ptrdiff_t rs_a, ptrdiff_t cs_a, const T *b,
                        ptrdiff_t rs_b, ptrdiff_t cs_b, ptrdiff_t m,
                        ptrdiff_t n, ptrdiff_t k, T beta,
                        const FN(mla_epilogue) *ep, T *work, int nthreads)
{
    FN(ukernel_desc) kd = FN(select_ukernel)(n);
    FN(gemm_run)(c, rs_c, cs_c, a, rs_a, cs_a, b, rs_b, cs_b, m, n, k, beta,
                 ep, 0, &kd, work, nthreads);
}

/*
 * The lower triangle (row >= column) of C (n, n) = alpha * A (n, k) A^T +
 * beta * C, as BLAS's SYRK computes it, in about half the multiply-adds of
 * the full product; the strict upper triangle is not touched. Pass the
 * strides of A^T for A^T A. beta == 0 never reads C.
 */
mla_status
FN(mla_syrk_lower)(T *c, ptrdiff_t rs_c, ptrdiff_t cs_c, const T *a,
                   ptrdiff_t rs_a, ptrdiff_t cs_a, ptrdiff_t n, ptrdiff_t k,
                   T alpha, T beta)
{
    FN(mla_epilogue) ep = {alpha, NULL, 0, 0, MLA_ACT_LINEAR};
    return FN(gemm_alloc_run)(c, rs_c, cs_c, a, rs_a, cs_a, a, cs_a, rs_a, n,
                              n, k, beta, &ep, 1);
}

/*
 * Compute batch independent products C[t] = A[t] B[t], where matrix t of
 * each operand starts at the element offset given in its offsets array
 * (the wrapper computes them from broadcast batch shapes). A product large
 * enough for threads of its own runs on all of them, one product after
 * another. Smaller products are handed out whole to the threads, each
 * thread with its own scratch. Either way each product is computed by the
 * same operations as on one thread.
 */
mla_status
FN(mla_matmul_batched)(T *c, const ptrdiff_t *c_offsets, ptrdiff_t rs_c,
                       ptrdiff_t cs_c, const T *a, const ptrdiff_t *a_offsets,
                       ptrdiff_t rs_a, ptrdiff_t cs_a, const T *b,
                       const ptrdiff_t *b_offsets, ptrdiff_t rs_b,
                       ptrdiff_t cs_b, ptrdiff_t batch, ptrdiff_t m,
                       ptrdiff_t n, ptrdiff_t k)
{
    FN(ukernel_desc) kd = FN(select_ukernel)(n);
    int product_threads = FN(gemm_threads)(&kd, m, n, k);
    int batch_threads = 1;

    if (batch == 0 || m == 0 || n == 0) {
        return MLA_OK;
    }
    if (product_threads == 1 && batch > 1 &&
        (double)batch * (double)m * (double)n * (double)k >=
            GEMM_PARALLEL_MIN_WORK) {
        int nthreads = mla_get_num_threads();
        batch_threads = mla_team_threads((ptrdiff_t)nthreads < batch ? nthreads
                                                                     : (int)batch);
    }

    size_t each = FN(gemm_workspace)(&kd, m, n, k, product_threads);
    T *work = mla_alloc(each * (size_t)batch_threads, sizeof(T));
    if (work == NULL) {
        return MLA_ERR_NOMEM;
    }
    if (batch_threads == 1) {
        for (ptrdiff_t t = 0; t < batch; t++) {
            FN(gemm_run)(c + c_offsets[t], rs_c, cs_c, a + a_offsets[t], rs_a,
                         cs_a, b + b_offsets[t], rs_b, cs_b, m, n, k, 0, NULL,
                         0, &kd, work, product_threads);
        }
    }
    else {
        mla_note_parallel(batch_threads);
#pragma omp parallel for num_threads(batch_threads) schedule(dynamic)
        for (ptrdiff_t t = 0; t < batch; t++) {
            T *own = work + each * (size_t)MLA_THREAD_ID();
            FN(gemm_run)(c + c_offsets[t], rs_c, cs_c, a + a_offsets[t], rs_a,
                         cs_a, b + b_offsets[t], rs_b, cs_b, m, n, k, 0, NULL,
                         0, &kd, own, 1);
        }
    }
    mla_free(work);
    return MLA_OK;
}

/*
 * Run the peak FLOP/s loop of the selected SIMD level for iterations steps
 * (gemm_ukernel_impl.h) and return the floating-point operations it did.
 * *sink receives the loop's result, so that the loop is not optimized
 * away. The portable level runs 12 scalar multiply-add chains instead.
 */
double
FN(mla_gemm_peak_loop)(ptrdiff_t iterations, double *sink)
{
#ifdef MLA_HAVE_X86_KERNELS
    mla_level level = mla_get_level();
#if MLA_DTYPE == 32
    if (level >= MLA_LEVEL_AVX512) {
        *sink = mla_fma_chains_avx512_f32(iterations);
        return 12.0 * 2 * 16 * (double)iterations;
    }
    if (level >= MLA_LEVEL_AVX2) {
        *sink = mla_fma_chains_avx2_f32(iterations);
        return 12.0 * 2 * 8 * (double)iterations;
    }
#else
    if (level >= MLA_LEVEL_AVX512) {
        *sink = mla_fma_chains_avx512_f64(iterations);
        return 12.0 * 2 * 8 * (double)iterations;
    }
    if (level >= MLA_LEVEL_AVX2) {
        *sink = mla_fma_chains_avx2_f64(iterations);
        return 12.0 * 2 * 4 * (double)iterations;
    }
#endif
#endif
    T acc[12], x = (T)0.999999, y = (T)1e-7;
    for (int i = 0; i < 12; i++) {
        acc[i] = (T)i;
    }
    for (ptrdiff_t step = 0; step < iterations; step++) {
        for (int i = 0; i < 12; i++) {
            T prod = acc[i] * x;
            acc[i] = prod + y;
        }
    }
    double sum = 0;
    for (int i = 0; i < 12; i++) {
        sum += acc[i];
    }
    *sink = sum;
    return 12.0 * 2 * (double)iterations;
}

/*
 * The textbook product: C (m, n) = A (m, k) B (k, n), all C-contiguous,
 * one multiply-add at a time in i, j, l order, with no blocking and no
 * SIMD. It is the baseline of the loops-versus-vectorized comparison.
 */
void
FN(mla_matmul_loop)(T *c, const T *a, const T *b, ptrdiff_t m, ptrdiff_t n,
                    ptrdiff_t k)
{
    for (ptrdiff_t i = 0; i < m; i++) {
        for (ptrdiff_t j = 0; j < n; j++) {
            T sum = 0;
            for (ptrdiff_t l = 0; l < k; l++) {
                sum += a[i * k + l] * b[l * n + j];
            }
            c[i * n + j] = sum;
        }
    }
}
