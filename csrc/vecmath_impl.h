/*
 * vecmath_impl.h: the vectorized exp and the array kernels of vecmath.h,
 * written once over a vector of VLEN elements. Each instantiation defines
 * before including this file:
 *
 *   MLA_DTYPE and dtype.h  the element type T and FN(name)
 *   VFN(name)              name for this level and type: name_avx2_f32
 *   VATTR                  the target attribute of every function, or empty
 *   VT, VMASK, VLEN        the vector, its comparison mask, its length
 *   V_LOAD(p), V_STORE(p, v)       unaligned load and store
 *   V_SET1(x)                      every lane x
 *   V_ADD, V_SUB, V_MUL, V_DIV     (a, b)
 *   V_FMA(a, b, c)                 a * b + c, fused or not
 *   V_FNMA(a, b, c)                c - a * b, fused or not
 *   V_MIN(a, b), V_MAX(a, b)       b where either is NaN (the x86 rule)
 *   V_ABS(a), V_NEG(a)
 *   V_LT, V_GT, V_EQ, V_UNORD      (a, b) comparisons giving a VMASK
 *   V_BLEND(m, a, b)               b where m is set, else a
 *   V_ANY(m)                       nonzero if any lane of m is set
 *   V_POW2_SHIFTED(t)              2^k from t = k + shifter (below), for an
 *                                  integer k in the normal exponent range
 *   V_SCALEF(a, k)                 optional, with V_TABLE16: a * 2^floor(k),
 *                                  one rounding (AVX-512's vscalef)
 *   V_TABLE16(table, t)            optional, with V_SCALEF: per lane, the
 *                                  table entry that the low four bits of t
 *                                  select (AVX-512's permutes)
 *   V_SPLIT_SQRT2(x, e)            m with x = 2^e m and m in
 *                                  [sqrt(1/2), sqrt(2)), storing e as T
 *                                  lanes in *e, for x positive and normal
 *
 * exp is evaluated on tails shorter than VLEN through a VLEN-element buffer
 * on the stack, so every element goes through the same vector code; the
 * tails of the other kernels are plain loops of the same operations.
 */

/*
 * Clamp x as exp_vector needs, then split it as x = k ln2 + r, where k is
 * x / ln2 rounded to a multiple of the unit of the shifter's last mantissa
 * bit: 1 for 1.5 * 2^(mantissa bits), 1/16 for a shifter 16 times smaller.
 * Return r and store k, and t = k + shifter, whose low mantissa bits hold
 * k in those units. The version of exp_vector without a table explains
 * the bounds and the two-part ln2.
 */
VATTR static inline VT
VFN(exp_split)(VT x, T shifter, VT *t, VT *k)
{
#if MLA_DTYPE == 64
    const T hi = 710.0, lo = -746.0;
    const T log2e = 0x1.71547652b82fep0;
    const T ln2_hi = 0x1.62e42feep-1, ln2_lo = 0x1.a39ef35793c76p-33;
#else
    const T hi = 89.0f, lo = -104.0f;
    const T log2e = 0x1.715476p0f;
    const T ln2_hi = 0x1.63p-1f, ln2_lo = -0x1.bd0106p-13f;
#endif

    x = V_MIN(V_SET1(hi), x);
    x = V_MAX(V_SET1(lo), x);
    *t = V_FMA(x, V_SET1(log2e), V_SET1(shifter));
    *k = V_SUB(*t, V_SET1(shifter));
    VT r = V_FNMA(*k, V_SET1(ln2_hi), x);
    return V_FNMA(*k, V_SET1(ln2_lo), r);
}

#ifdef V_TABLE16
/*
 * 2^(j/16) for j = 0..15, rounded to T: the table of exp_vector below on
 * levels that can look up 16 entries per lane (V_TABLE16).
 */
static const T VFN(exp2_sixteenths)[16] = {
#if MLA_DTYPE == 64
    0x1.0000000000000p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0,
    0x1.2387a6e756238p+0, 0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0,
    0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0, 0x1.6a09e667f3bcdp+0,
    0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0, 0x1.9c49182a3f090p+0,
    0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0, 0x1.d5818dcfba487p+0,
    0x1.ea4afa2a490dap+0,
#else
    0x1.000000p+0f, 0x1.0b5586p+0f, 0x1.172b84p+0f, 0x1.2387a6p+0f,
    0x1.306fe0p+0f, 0x1.3dea64p+0f, 0x1.4bfdaep+0f, 0x1.5ab07ep+0f,
    0x1.6a09e6p+0f, 0x1.7a1148p+0f, 0x1.8ace54p+0f, 0x1.9c4918p+0f,
    0x1.ae89fap+0f, 0x1.c199bep+0f, 0x1.d5818ep+0f, 0x1.ea4afap+0f,
#endif
};

/*
 * exp(x) with the special values of the version below, from
 * x = (i + j / 16) ln2 + r with |r| <= ln2 / 32, j in 0..15 and i an
 * integer, so that exp(x) = 2^i 2^(j / 16) exp(r). The table gives
 * 2^(j / 16) to half an ulp. On the smaller interval, exp(r) is
 * 1 + r + r^2 q(r) with q of degree 4 (float64) or 1 (float32). The Remez
 * exchange algorithm chose its coefficients, which keep the relative error
 * there under 0.06 ulp. V_SCALEF applies 2^i, the floor of k = i + j / 16,
 * with one rounding, so the result is within 1 ulp of exp(x), as the tests
 * measure.
 */
VATTR static inline VT
VFN(exp_vector)(VT x)
{
    /* 1.5 * 2^(mantissa bits) / 16: k is rounded to sixteenths. */
#if MLA_DTYPE == 64
    const T shifter = 0x1.8p48;
#else
    const T shifter = 0x1.8p19f;
#endif
    VT t, k;
    VT r = VFN(exp_split)(x, shifter, &t, &k);

#if MLA_DTYPE == 64
    VT q = V_SET1(0x1.6c14c6ce3c41cp-10);
    q = V_FMA(q, r, V_SET1(0x1.11123aae4ca30p-7));
    q = V_FMA(q, r, V_SET1(0x1.55555558fccafp-5));
    q = V_FMA(q, r, V_SET1(0x1.555555548f894p-3));
    q = V_FMA(q, r, V_SET1(0x1.fffffffffffb9p-2));
#else
    VT q = V_FMA(V_SET1(0x1.555762p-3f), r, V_SET1(0x1.000290p-1f));
#endif
    VT s = V_FMA(q, V_MUL(r, r), r);

    /*
     * The low four bits of t hold j. With s = exp(r) - 1, the fused
     * 2^(j/16) s + 2^(j/16) rounds once.
     */
    VT table = V_TABLE16(VFN(exp2_sixteenths), t);
    return V_SCALEF(V_FMA(table, s, table), k);
}
#else
/*
 * exp(x) lane by lane, within 2 ulp of the C library (the tests measure
 * it), with exp(NaN) = NaN, exp(+inf) = +inf and exp(-inf) = 0.
 *
 * x is clamped to [lo, hi], beyond which the result overflows or
 * underflows to 0 anyway; NaN passes the clamp since V_MIN and V_MAX return
 * their second operand for it. Then x = k ln2 + r with k = round(x / ln2),
 * found by adding the shifter 1.5 * 2^(mantissa bits), and |r| <= ln2 / 2.
 * ln2 is split in two (Cody and Waite): k * ln2_hi is exact because ln2_hi
 * has few significant bits, so r keeps full precision even without FMA.
 * exp(r) is a polynomial of degree 11 (float64) or 6 (float32), fitted
 * to a relative error below 0.05 ulp on that interval, evaluated as
 * 1 + (r + r^2 q(r)) so that the last rounding dominates. The result is
 * exp(r) * 2^k, built from the exponent bits; when |k| leaves the normal
 * exponent range (results near overflow, or subnormal), the scaling is
 * split into 2^k1 * 2^k2 with k1 = round(k / 2), so that only the last
 * product rounds, as a subnormal result must.
 */
VATTR static inline VT
VFN(exp_vector)(VT x)
{
#if MLA_DTYPE == 64
    const T shifter = 0x1.8p52;
    const T scale_limit = 1022;
#else
    const T shifter = 0x1.8p23f;
    const T scale_limit = 126;
#endif

    /* Clamp, then split x = k ln2 + r. */
    VT t, k;
    VT r = VFN(exp_split)(x, shifter, &t, &k);

    /* exp(r) = 1 + r + r^2 q(r), with q(r) near 1/2! + r/3! + ... */
#if MLA_DTYPE == 64
    VT q = V_SET1(0x1.af631dc77317bp-26);
    q = V_FMA(q, r, V_SET1(0x1.28b40639f7187p-22));
    q = V_FMA(q, r, V_SET1(0x1.71ddf6badec7dp-19));
    q = V_FMA(q, r, V_SET1(0x1.a01993bebde07p-16));
    q = V_FMA(q, r, V_SET1(0x1.a01a01b009b94p-13));
    q = V_FMA(q, r, V_SET1(0x1.6c16c185fded5p-10));
    q = V_FMA(q, r, V_SET1(0x1.111111110f808p-7));
    q = V_FMA(q, r, V_SET1(0x1.55555555503f4p-5));
    q = V_FMA(q, r, V_SET1(0x1.5555555555558p-3));
    q = V_FMA(q, r, V_SET1(0x1.0000000000009p-1));
#else
    VT q = V_SET1(0x1.6a244cp-10f);
    q = V_FMA(q, r, V_SET1(0x1.1239d4p-7f));
    q = V_FMA(q, r, V_SET1(0x1.5558f2p-5f));
    q = V_FMA(q, r, V_SET1(0x1.555492p-3f));
    q = V_FMA(q, r, V_SET1(0x1.fffffcp-2f));
#endif
    VT p = V_ADD(V_SET1(1), V_FMA(q, V_MUL(r, r), r));

    /* Scale by 2^k, in two steps where 2^k is not a normal number. */
    VMASK far = V_GT(V_ABS(k), V_SET1(scale_limit));
    if (!V_ANY(far)) {
        return V_MUL(p, V_POW2_SHIFTED(t));
    }
    VT t1 = V_FMA(k, V_SET1(0.5), V_SET1(shifter));
    VT k1 = V_SUB(t1, V_SET1(shifter));
    VT t2 = V_ADD(V_SUB(k, k1), V_SET1(shifter));
    return V_MUL(V_MUL(p, V_POW2_SHIFTED(t1)), V_POW2_SHIFTED(t2));
}
#endif /* V_TABLE16 */

/*
 * sigmoid(x) from e = exp(-|x|), which lies in (0, 1]: 1 / (1 + e) for
 * x >= 0 and e / (1 + e) below, so no exponential overflows.
 */
VATTR static inline VT
VFN(sigmoid_vector)(VT x)
{
    VT e = VFN(exp_vector)(V_NEG(V_ABS(x)));
    VT s = V_DIV(V_SET1(1), V_ADD(V_SET1(1), e));
    return V_BLEND(V_LT(x, V_SET1(0)), s, V_MUL(e, s));
}

/* sigmoid(x) sigmoid(-x) = e / (1 + e)^2, accurate where 1 - s cancels. */
VATTR static inline VT
VFN(sigmoid_derivative_vector)(VT x)
{
    VT e = VFN(exp_vector)(V_NEG(V_ABS(x)));
    VT s = V_DIV(V_SET1(1), V_ADD(V_SET1(1), e));
    return V_MUL(s, V_MUL(e, s));
}

/*
 * log(x) lane by lane for x positive, normal and finite, or NaN, which it
 * returns: the values that the clip of cross_entropy leaves. With
 * x = 2^e m, f = m - 1 and s = f / (2 + f), log(m) = 2 atanh(s), which is
 * 2s + s R(s^2). Since 2s = f - s f, that is f - (h - s (h + R)) with
 * h = f^2 / 2, where the small correction comes last. R(z) = z P(z) with
 * P of degree 6 (float64) or 2 (float32), fitted by the Remez exchange
 * algorithm to a relative error under 0.02 ulp for |s| <= 0.1716. e ln2
 * is added in two parts (Cody and Waite), e ln2_hi exactly.
 */
VATTR static inline VT
VFN(log_vector)(VT x)
{
    VT e;
    VT m = V_SPLIT_SQRT2(x, &e);
    VT f = V_SUB(m, V_SET1(1));
    VT s = V_DIV(f, V_ADD(V_SET1(2), f));
    VT z = V_MUL(s, s);
#if MLA_DTYPE == 64
    const T ln2_hi = 0x1.62e42feep-1, ln2_lo = 0x1.a39ef35793c76p-33;
    VT p = V_SET1(0x1.2f50f43e64db5p-3);
    p = V_FMA(p, z, V_SET1(0x1.399d294f88f5bp-3));
    p = V_FMA(p, z, V_SET1(0x1.746647dd066c2p-3));
    p = V_FMA(p, z, V_SET1(0x1.c71c52be8192ap-3));
    p = V_FMA(p, z, V_SET1(0x1.2492493fad552p-2));
    p = V_FMA(p, z, V_SET1(0x1.99999999847e9p-2));
    p = V_FMA(p, z, V_SET1(0x1.555555555557cp-1));
#else
    const T ln2_hi = 0x1.62e300p-1f, ln2_lo = 0x1.2fefa2p-17f;
    VT p = V_SET1(0x1.326fc8p-2f);
    p = V_FMA(p, z, V_SET1(0x1.995ae8p-2f));
    p = V_FMA(p, z, V_SET1(0x1.55557ap-1f));
#endif
    VT h = V_MUL(V_SET1(0.5), V_MUL(f, f));
    VT correction = V_FMA(s, V_FMA(z, p, h), V_MUL(e, V_SET1(ln2_lo)));
    VT result = V_FMA(e, V_SET1(ln2_hi), V_SUB(f, V_SUB(h, correction)));
    return V_BLEND(V_UNORD(x, x), result, x);
}

/* Copy the n < VLEN elements of x into buf and fill the rest with pad. */
VATTR static inline void
VFN(load_tail)(T *buf, const T *x, ptrdiff_t n, T pad)
{
    for (ptrdiff_t i = 0; i < VLEN; i++) {
        buf[i] = i < n ? x[i] : pad;
    }
}

/* Sum of the lanes of v, in double. */
VATTR static inline double
VFN(sum_lanes)(VT v)
{
    T lanes[VLEN];
    V_STORE(lanes, v);
    double sum = 0;
    for (int i = 0; i < VLEN; i++) {
        sum += lanes[i];
    }
    return sum;
}

/* The lane-wise max of running and v, where a NaN in v sticks. */
VATTR static inline VT
VFN(max_nan)(VT running, VT v)
{
    return V_BLEND(V_UNORD(v, v), V_MAX(v, running), v);
}

VATTR static void
VFN(exp_array)(T *y, const T *x, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + VLEN <= n; i += VLEN) {
        V_STORE(y + i, VFN(exp_vector)(V_LOAD(x + i)));
    }
    if (i < n) {
        T buf[VLEN];
        VFN(load_tail)(buf, x + i, n - i, 0);
        V_STORE(buf, VFN(exp_vector)(V_LOAD(buf)));
        for (ptrdiff_t j = 0; j < n - i; j++) {
            y[i + j] = buf[j];
        }
    }
}

VATTR static void
VFN(sigmoid_array)(T *y, const T *x, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + VLEN <= n; i += VLEN) {
        V_STORE(y + i, VFN(sigmoid_vector)(V_LOAD(x + i)));
    }
    if (i < n) {
        T buf[VLEN];
        VFN(load_tail)(buf, x + i, n - i, 0);
        V_STORE(buf, VFN(sigmoid_vector)(V_LOAD(buf)));
        for (ptrdiff_t j = 0; j < n - i; j++) {
            y[i + j] = buf[j];
        }
    }
}

VATTR static void
VFN(sigmoid_derivative_array)(T *y, const T *x, ptrdiff_t n)
{
    ptrdiff_t i = 0;
    for (; i + VLEN <= n; i += VLEN) {
        V_STORE(y + i, VFN(sigmoid_derivative_vector)(V_LOAD(x + i)));
    }
    if (i < n) {
        T buf[VLEN];
        VFN(load_tail)(buf, x + i, n - i, 0);
        V_STORE(buf, VFN(sigmoid_derivative_vector)(V_LOAD(buf)));
        for (ptrdiff_t j = 0; j < n - i; j++) {
            y[i + j] = buf[j];
        }
    }
}

/*
 * The max of the lanes of running and of x[start..n), NaN sticking: the
 * end of max_array and of the read ahead of exp_sum_array. x is not
 * offset unless start < n, so it may be NULL when n is 0.
 */
VATTR static T
VFN(max_finish)(VT running, const T *x, ptrdiff_t start, ptrdiff_t n)
{
    ptrdiff_t i = start;
    for (; i + VLEN <= n; i += VLEN) {
        running = VFN(max_nan)(running, V_LOAD(x + i));
    }
    if (i < n) {
        T buf[VLEN];
        VFN(load_tail)(buf, x + i, n - i, -INFINITY);
        running = VFN(max_nan)(running, V_LOAD(buf));
    }
    T lanes[VLEN];
    V_STORE(lanes, running);
    T max = lanes[0];
    for (int j = 1; j < VLEN; j++) {
        if (lanes[j] > max || lanes[j] != lanes[j]) {
            max = lanes[j];
        }
    }
    return max;
}

VATTR static T
VFN(max_array)(const T *x, ptrdiff_t n)
{
    /* Four running maxima, so that no compare waits for the previous one. */
    VT running = V_SET1(-INFINITY), running1 = running;
    VT running2 = running, running3 = running;
    ptrdiff_t i = 0;
    for (; i + 4 * VLEN <= n; i += 4 * VLEN) {
        running = VFN(max_nan)(running, V_LOAD(x + i));
        running1 = VFN(max_nan)(running1, V_LOAD(x + i + VLEN));
        running2 = VFN(max_nan)(running2, V_LOAD(x + i + 2 * VLEN));
        running3 = VFN(max_nan)(running3, V_LOAD(x + i + 3 * VLEN));
    }
    running = VFN(max_nan)(running, running1);
    running2 = VFN(max_nan)(running2, running3);
    running = VFN(max_nan)(running, running2);
    return VFN(max_finish)(running, x, i, n);
}

/* What exp_sum_array stores in y. */
enum { VFN(store_nothing), VFN(store_exp), VFN(store_shifted) };

/*
 * Adds exp(x - shift) of the two vectors at x + i into sum0 and sum1, and
 * stores at y + i the values that `store` selects (y is NULL for
 * store_nothing).
 */
VATTR static inline void
VFN(exp_sum_step)(T *y, const T *x, ptrdiff_t i, VT vshift, int store,
                  VT *sum0, VT *sum1)
{
    VT d0 = V_SUB(V_LOAD(x + i), vshift);
    VT d1 = V_SUB(V_LOAD(x + i + VLEN), vshift);
    VT e0 = VFN(exp_vector)(d0);
    VT e1 = VFN(exp_vector)(d1);
    if (store != VFN(store_nothing)) {
        V_STORE(y + i, store == VFN(store_shifted) ? d0 : e0);
        V_STORE(y + i + VLEN, store == VFN(store_shifted) ? d1 : e1);
    }
    *sum0 = V_ADD(*sum0, e0);
    *sum1 = V_ADD(*sum1, e1);
}

/*
 * The sum runs in VLEN lanes of T, two vectors at a time. Callers keep n
 * to a chunk of about a thousand elements, so each lane adds at most a few
 * hundred terms in [0, 1] before the lanes are added in double.
 *
 * The max of the next chunk is read in the same loop: its loads from
 * memory then overlap the arithmetic of the exponentials, where a loop of
 * their own would wait for them.
 */
VATTR static double
VFN(exp_sum_array)(T *y, const T *x, T shift, ptrdiff_t n, int shifted,
                   const T *next, ptrdiff_t next_n, T *next_max)
{
    int store = y == NULL ? VFN(store_nothing)
                : shifted ? VFN(store_shifted)
                          : VFN(store_exp);
    VT vshift = V_SET1(shift);
    VT sum0 = V_SET1(0), sum1 = V_SET1(0);
    VT ahead0 = V_SET1(-INFINITY), ahead1 = ahead0;
    ptrdiff_t i = 0;
    for (; i + 2 * VLEN <= n && i + 2 * VLEN <= next_n; i += 2 * VLEN) {
        ahead0 = VFN(max_nan)(ahead0, V_LOAD(next + i));
        ahead1 = VFN(max_nan)(ahead1, V_LOAD(next + i + VLEN));
        VFN(exp_sum_step)(y, x, i, vshift, store, &sum0, &sum1);
    }
    *next_max = VFN(max_finish)(VFN(max_nan)(ahead0, ahead1), next, i,
                                next_n);
    for (; i + 2 * VLEN <= n; i += 2 * VLEN) {
        VFN(exp_sum_step)(y, x, i, vshift, store, &sum0, &sum1);
    }
    /* At most two vectors are left; the padding -inf gives exp = 0. */
    for (; i < n; i += VLEN) {
        T buf[VLEN];
        ptrdiff_t count = n - i < VLEN ? n - i : VLEN;
        VFN(load_tail)(buf, x + i, count, -INFINITY);
        VT d = V_SUB(V_LOAD(buf), vshift);
        VT e = VFN(exp_vector)(d);
        sum0 = V_ADD(sum0, e);
        if (store != VFN(store_nothing)) {
            V_STORE(buf, store == VFN(store_shifted) ? d : e);
            for (ptrdiff_t j = 0; j < count; j++) {
                y[i + j] = buf[j];
            }
        }
    }
    return VFN(sum_lanes)(V_ADD(sum0, sum1));
}

VATTR static void
VFN(scale_array)(T *y, const T *x, T factor, ptrdiff_t n)
{
    VT vfactor = V_SET1(factor);
    ptrdiff_t i = 0;
    for (; i + VLEN <= n; i += VLEN) {
        V_STORE(y + i, V_MUL(V_LOAD(x + i), vfactor));
    }
    for (; i < n; i++) {
        y[i] = x[i] * factor;
    }
}

VATTR static void
VFN(scale_subtract_array)(T *y, const T *x, T factor, const T *p, T weight,
                          ptrdiff_t n)
{
    VT vfactor = V_SET1(factor), vweight = V_SET1(weight);
    ptrdiff_t i = 0;
    for (; i + VLEN <= n; i += VLEN) {
        VT scaled = V_MUL(V_LOAD(x + i), vfactor);
        V_STORE(y + i, V_SUB(scaled, V_MUL(V_LOAD(p + i), vweight)));
    }
    for (; i < n; i++) {
        y[i] = x[i] * factor - p[i] * weight;
    }
}

/*
 * The clip passes NaN through: V_MAX and V_MIN return their second
 * operand for it. Each lane of sum0 + sum1 adds at most 16 terms in T
 * before the lanes are added into a double, so the sum keeps double
 * accuracy even with one lane of float32. The padding of the tail, p = 1
 * and w = 0, adds 0.
 */
VATTR static double
VFN(clipped_log_dot_array)(const T *p, const T *w, T lo, T hi, ptrdiff_t n)
{
    VT vlo = V_SET1(lo), vhi = V_SET1(hi);
    double total = 0;
    ptrdiff_t i = 0;
    while (i + 2 * VLEN <= n) {
        VT sum0 = V_SET1(0), sum1 = V_SET1(0);
        for (int step = 0; step < 8 && i + 2 * VLEN <= n; step++) {
            VT p0 = V_MIN(vhi, V_MAX(vlo, V_LOAD(p + i)));
            VT p1 = V_MIN(vhi, V_MAX(vlo, V_LOAD(p + i + VLEN)));
            sum0 = V_FMA(V_LOAD(w + i), VFN(log_vector)(p0), sum0);
            sum1 = V_FMA(V_LOAD(w + i + VLEN), VFN(log_vector)(p1), sum1);
            i += 2 * VLEN;
        }
        total += VFN(sum_lanes)(V_ADD(sum0, sum1));
    }
    for (; i < n; i += VLEN) {
        T pbuf[VLEN], wbuf[VLEN];
        ptrdiff_t count = n - i < VLEN ? n - i : VLEN;
        VFN(load_tail)(pbuf, p + i, count, 1);
        VFN(load_tail)(wbuf, w + i, count, 0);
        VT p0 = V_MIN(vhi, V_MAX(vlo, V_LOAD(pbuf)));
        total += VFN(sum_lanes)(V_MUL(V_LOAD(wbuf), VFN(log_vector)(p0)));
    }
    return total;
}

VATTR static void
VFN(log_normalize_array)(T *y, const T *x, T max, T log_sum, ptrdiff_t n)
{
    VT vmax = V_SET1(max), vlog_sum = V_SET1(log_sum);
    ptrdiff_t i = 0;
    for (; i + VLEN <= n; i += VLEN) {
        V_STORE(y + i, V_SUB(V_SUB(V_LOAD(x + i), vmax), vlog_sum));
    }
    for (; i < n; i++) {
        y[i] = (x[i] - max) - log_sum;
    }
}

/*
 * Terms with p == 0 are dropped rather than multiplied, so that p = 0
 * against x = -inf gives 0 and not NaN. The sums run in T lanes, like
 * exp_sum_array, and callers keep n to a chunk.
 */
VATTR static double
VFN(weighted_gap_array)(const T *p, const T *x, T shift, ptrdiff_t n,
                        double *mass)
{
    VT vshift = V_SET1(shift), zero = V_SET1(0);
    VT gap = zero, total = zero;
    ptrdiff_t i = 0;
    for (; i + VLEN <= n; i += VLEN) {
        VT vp = V_LOAD(p + i);
        VT term = V_MUL(vp, V_SUB(vshift, V_LOAD(x + i)));
        gap = V_ADD(gap, V_BLEND(V_EQ(vp, zero), term, zero));
        total = V_ADD(total, vp);
    }
    double gap_sum = VFN(sum_lanes)(gap);
    double mass_sum = VFN(sum_lanes)(total);
    for (; i < n; i++) {
        if (p[i] != 0) {
            gap_sum += (double)(p[i] * (shift - x[i]));
            mass_sum += p[i];
        }
    }
    *mass += mass_sum;
    return gap_sum;
}

/*
 * The column kernels walk `rows` rows of n columns, row i starting at
 * x + i * ld (and y + i * ld). They take one vector of columns at a time,
 * so the per-column max or sum of a vector stays in a register down the
 * rows.
 */
VATTR static void
VFN(max_columns_array)(T *max, const T *x, ptrdiff_t ld, ptrdiff_t rows,
                       ptrdiff_t n)
{
    ptrdiff_t j = 0;
    for (; j + VLEN <= n; j += VLEN) {
        VT running = V_LOAD(max + j);
        for (ptrdiff_t i = 0; i < rows; i++) {
            running = VFN(max_nan)(running, V_LOAD(x + i * ld + j));
        }
        V_STORE(max + j, running);
    }
    for (; j < n; j++) {
        for (ptrdiff_t i = 0; i < rows; i++) {
            T v = x[i * ld + j];
            if (v > max[j] || v != v) {
                max[j] = v;
            }
        }
    }
}

VATTR static void
VFN(exp_sum_columns_array)(T *y, const T *x, ptrdiff_t ld, ptrdiff_t rows,
                           const T *shift, T *sum, ptrdiff_t n)
{
    ptrdiff_t j = 0;
    for (; j + VLEN <= n; j += VLEN) {
        VT vshift = V_LOAD(shift + j);
        VT running = V_LOAD(sum + j);
        for (ptrdiff_t i = 0; i < rows; i++) {
            VT e = VFN(exp_vector)(V_SUB(V_LOAD(x + i * ld + j), vshift));
            if (y != NULL) {
                V_STORE(y + i * ld + j, e);
            }
            running = V_ADD(running, e);
        }
        V_STORE(sum + j, running);
    }
    if (j < n) {
        T buf[VLEN], shift_buf[VLEN], sum_buf[VLEN];
        ptrdiff_t count = n - j;
        VFN(load_tail)(shift_buf, shift + j, count, 0);
        VFN(load_tail)(sum_buf, sum + j, count, 0);
        VT vshift = V_LOAD(shift_buf);
        VT running = V_LOAD(sum_buf);
        for (ptrdiff_t i = 0; i < rows; i++) {
            VFN(load_tail)(buf, x + i * ld + j, count, -INFINITY);
            VT e = VFN(exp_vector)(V_SUB(V_LOAD(buf), vshift));
            running = V_ADD(running, e);
            if (y != NULL) {
                V_STORE(buf, e);
                for (ptrdiff_t k = 0; k < count; k++) {
                    y[i * ld + j + k] = buf[k];
                }
            }
        }
        V_STORE(sum_buf, running);
        for (ptrdiff_t k = 0; k < count; k++) {
            sum[j + k] = sum_buf[k];
        }
    }
}

VATTR static void
VFN(scale_columns_array)(T *y, const T *x, ptrdiff_t ld, ptrdiff_t rows,
                         const T *factor, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < rows; i++) {
        const T *xi = x + i * ld;
        T *yi = y + i * ld;
        ptrdiff_t j = 0;
        for (; j + VLEN <= n; j += VLEN) {
            V_STORE(yi + j, V_MUL(V_LOAD(xi + j), V_LOAD(factor + j)));
        }
        for (; j < n; j++) {
            yi[j] = xi[j] * factor[j];
        }
    }
}

VATTR static void
VFN(log_normalize_columns_array)(T *y, const T *x, ptrdiff_t ld,
                                 ptrdiff_t rows, const T *max,
                                 const T *log_sum, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < rows; i++) {
        const T *xi = x + i * ld;
        T *yi = y + i * ld;
        ptrdiff_t j = 0;
        for (; j + VLEN <= n; j += VLEN) {
            VT shifted = V_SUB(V_LOAD(xi + j), V_LOAD(max + j));
            V_STORE(yi + j, V_SUB(shifted, V_LOAD(log_sum + j)));
        }
        for (; j < n; j++) {
            yi[j] = (xi[j] - max[j]) - log_sum[j];
        }
    }
}

VATTR static void
VFN(scale_dot_columns_array)(T *y, const T *x, ptrdiff_t ld, ptrdiff_t rows,
                             const T *factor, const T *g, T *sum, ptrdiff_t n)
{
    ptrdiff_t j = 0;
    for (; j + VLEN <= n; j += VLEN) {
        VT vfactor = V_LOAD(factor + j);
        VT running = V_LOAD(sum + j);
        for (ptrdiff_t i = 0; i < rows; i++) {
            VT scaled = V_MUL(V_LOAD(x + i * ld + j), vfactor);
            V_STORE(y + i * ld + j, scaled);
            running = V_FMA(scaled, V_LOAD(g + i * ld + j), running);
        }
        V_STORE(sum + j, running);
    }
    for (; j < n; j++) {
        T running = sum[j];
        for (ptrdiff_t i = 0; i < rows; i++) {
            T scaled = x[i * ld + j] * factor[j];
            y[i * ld + j] = scaled;
            running += scaled * g[i * ld + j];
        }
        sum[j] = running;
    }
}

VATTR static void
VFN(softmax_grad_columns_array)(T *g, const T *p, ptrdiff_t ld, ptrdiff_t rows,
                                const T *delta, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < rows; i++) {
        const T *pi = p + i * ld;
        T *gi = g + i * ld;
        ptrdiff_t j = 0;
        for (; j + VLEN <= n; j += VLEN) {
            VT diff = V_SUB(V_LOAD(gi + j), V_LOAD(delta + j));
            V_STORE(gi + j, V_MUL(V_LOAD(pi + j), diff));
        }
        for (; j < n; j++) {
            gi[j] = pi[j] * (gi[j] - delta[j]);
        }
    }
}

const FN(mla_vector_kernels) VFN(mla_vector_kernels) = {
    VFN(exp_array),
    VFN(sigmoid_array),
    VFN(sigmoid_derivative_array),
    VFN(max_array),
    VFN(exp_sum_array),
    VFN(scale_array),
    VFN(scale_subtract_array),
    VFN(log_normalize_array),
    VFN(clipped_log_dot_array),
    VFN(weighted_gap_array),
    VFN(max_columns_array),
    VFN(exp_sum_columns_array),
    VFN(scale_columns_array),
    VFN(log_normalize_columns_array),
    VFN(scale_dot_columns_array),
    VFN(softmax_grad_columns_array),
};
