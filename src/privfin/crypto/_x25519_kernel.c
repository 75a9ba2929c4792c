/* Optional compiled kernel of privfin.crypto.x25519: X25519 (RFC 7748) of one scalar with many
 * u-coordinates, eight at a time with AVX-512 IFMA (52-bit multiply-add).
 *
 * Field elements of GF(2^255 - 19) are five 51-bit limbs; each limb is a vector holding the
 * same limb of eight independent points (one per 64-bit lane). All lanes share the scalar, so
 * the Montgomery ladder's conditional swaps are the same for every lane. The result of every
 * lane is the canonical little-endian u-coordinate, byte-identical to RFC 7748's X25519 (and
 * to OpenSSL's, the pure path). Per point the kernel also reports whether u^3 + A u^2 + u is
 * a non-square (u is on the quadratic twist), computed with an exponentiation by (p - 1) / 2.
 * `elligator_batch` computes the Elligator 2 map of RFC 9380 (the hash's field-to-curve step)
 * for eight field elements at a time, byte-identical to the gmpy2 path.
 *
 * The kernel is compiled for x86-64 only and used only when the CPU reports AVX-512F and
 * AVX-512 IFMA (checked at run time); otherwise `available()` is False and privfin uses the
 * pure path. It does no I/O and keeps no state; the GIL is released while it runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PRIVFIN_IFMA 1
#include <immintrin.h>

#define TGT __attribute__((target("avx512f,avx512ifma")))
#define MASK51 0x7FFFFFFFFFFFFULL

typedef struct {
    __m512i v[5];
} fe8;

/* One carry pass: limbs back below 2^51 + 19 * 2^13 (limb 4's carry wraps as 19 * carry);
 * after fe_mul's two passes, below 2^51 + 19. */
TGT static inline fe8 fe_carry(fe8 a) {
    const __m512i m = _mm512_set1_epi64(MASK51);
    __m512i c;
    for (int i = 0; i < 4; i++) {
        c = _mm512_srli_epi64(a.v[i], 51);
        a.v[i] = _mm512_and_si512(a.v[i], m);
        a.v[i + 1] = _mm512_add_epi64(a.v[i + 1], c);
    }
    c = _mm512_srli_epi64(a.v[4], 51);
    a.v[4] = _mm512_and_si512(a.v[4], m);
    /* 19 c = 16 c + 2 c + c */
    c = _mm512_add_epi64(_mm512_add_epi64(_mm512_slli_epi64(c, 4), _mm512_slli_epi64(c, 1)), c);
    a.v[0] = _mm512_add_epi64(a.v[0], c);
    return a;
}

/* a + b, carried: every input of fe_mul must stay below 2^52 (IFMA reads 52 bits), and two
 * carried limbs (below 2^51 + 2^8) may sum past it. */
TGT static inline fe8 fe_add(fe8 a, fe8 b) {
    fe8 r;
    for (int i = 0; i < 5; i++) r.v[i] = _mm512_add_epi64(a.v[i], b.v[i]);
    return fe_carry(r);
}

/* a - b + 4p, carried (inputs below 2^53). */
TGT static inline fe8 fe_sub(fe8 a, fe8 b) {
    const __m512i p0 = _mm512_set1_epi64(4 * (MASK51 - 18));
    const __m512i pi = _mm512_set1_epi64(4 * MASK51);
    fe8 r;
    r.v[0] = _mm512_sub_epi64(_mm512_add_epi64(a.v[0], p0), b.v[0]);
    for (int i = 1; i < 5; i++) r.v[i] = _mm512_sub_epi64(_mm512_add_epi64(a.v[i], pi), b.v[i]);
    return fe_carry(r);
}

/* Columns lo[k] + 2 hi[k-1] (2^52 = 2 * 2^51), folded mod p (2^255 = 19) and carried. */
TGT static inline fe8 fe_fold(const __m512i lo[10], const __m512i hi[10]) {
    __m512i c[10];
    c[0] = lo[0];
    for (int k = 1; k < 10; k++) c[k] = _mm512_add_epi64(lo[k], _mm512_slli_epi64(hi[k - 1], 1));
    /* hi[9] is zero: the product of two values below 2^260 is below 2^520 */
    fe8 r;
    for (int k = 0; k < 5; k++) {
        __m512i t = c[k + 5];
        t = _mm512_add_epi64(_mm512_add_epi64(_mm512_slli_epi64(t, 4), _mm512_slli_epi64(t, 1)), t);
        r.v[k] = _mm512_add_epi64(c[k], t);
    }
    return fe_carry(fe_carry(r));
}

/* a * b for limbs below 2^52; result carried. */
TGT static inline fe8 fe_mul(fe8 a, fe8 b) {
    __m512i lo[10], hi[10];
    const __m512i z = _mm512_setzero_si512();
    for (int k = 0; k < 10; k++) {
        lo[k] = z;
        hi[k] = z;
    }
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 5; j++) {
            lo[i + j] = _mm512_madd52lo_epu64(lo[i + j], a.v[i], b.v[j]);
            hi[i + j] = _mm512_madd52hi_epu64(hi[i + j], a.v[i], b.v[j]);
        }
    }
    return fe_fold(lo, hi);
}

/* a^2: the 10 cross products once, doubled, plus the 5 squares (15 products, not 25). */
TGT static inline fe8 fe_sq(fe8 a) {
    __m512i lo[10], hi[10];
    const __m512i z = _mm512_setzero_si512();
    for (int k = 0; k < 10; k++) {
        lo[k] = z;
        hi[k] = z;
    }
    for (int i = 0; i < 5; i++) {
        for (int j = i + 1; j < 5; j++) {
            lo[i + j] = _mm512_madd52lo_epu64(lo[i + j], a.v[i], a.v[j]);
            hi[i + j] = _mm512_madd52hi_epu64(hi[i + j], a.v[i], a.v[j]);
        }
    }
    for (int k = 1; k < 8; k++) {
        lo[k] = _mm512_slli_epi64(lo[k], 1);
        hi[k] = _mm512_slli_epi64(hi[k], 1);
    }
    for (int i = 0; i < 5; i++) {
        lo[2 * i] = _mm512_madd52lo_epu64(lo[2 * i], a.v[i], a.v[i]);
        hi[2 * i] = _mm512_madd52hi_epu64(hi[2 * i], a.v[i], a.v[i]);
    }
    return fe_fold(lo, hi);
}

TGT static inline fe8 fe_sqn(fe8 a, int n) {
    for (int i = 0; i < n; i++) a = fe_sq(a);
    return a;
}

/* a * 121665 ((A - 2) / 4), carried; the same column rule as fe_mul with one limb. */
TGT static inline fe8 fe_mul_a24(fe8 a) {
    const __m512i k = _mm512_set1_epi64(121665);
    const __m512i z = _mm512_setzero_si512();
    fe8 r;
    __m512i hi[5];
    for (int i = 0; i < 5; i++) {
        r.v[i] = _mm512_madd52lo_epu64(z, a.v[i], k);
        hi[i] = _mm512_madd52hi_epu64(z, a.v[i], k);
    }
    for (int i = 1; i < 5; i++) r.v[i] = _mm512_add_epi64(r.v[i], _mm512_slli_epi64(hi[i - 1], 1));
    __m512i t = _mm512_slli_epi64(hi[4], 1);
    t = _mm512_add_epi64(_mm512_add_epi64(_mm512_slli_epi64(t, 4), _mm512_slli_epi64(t, 1)), t);
    r.v[0] = _mm512_add_epi64(r.v[0], t);
    return fe_carry(r);
}

/* z^(2^250 - 1), and z^11 through *z11, z^2 through *z2 (the common prefix of the chains). */
TGT static fe8 fe_pow_2_250_1(fe8 z, fe8 *z11, fe8 *z2o) {
    fe8 z2 = fe_sq(z);
    fe8 t = fe_sqn(z2, 2);
    fe8 z9 = fe_mul(t, z);
    fe8 e11 = fe_mul(z9, z2);
    t = fe_sq(e11);
    fe8 z5 = fe_mul(t, z9); /* 2^5 - 1 */
    t = fe_sqn(z5, 5);
    fe8 z10 = fe_mul(t, z5); /* 2^10 - 1 */
    t = fe_sqn(z10, 10);
    fe8 z20 = fe_mul(t, z10); /* 2^20 - 1 */
    t = fe_sqn(z20, 20);
    t = fe_mul(t, z20); /* 2^40 - 1 */
    t = fe_sqn(t, 10);
    fe8 z50 = fe_mul(t, z10); /* 2^50 - 1 */
    t = fe_sqn(z50, 50);
    fe8 z100 = fe_mul(t, z50); /* 2^100 - 1 */
    t = fe_sqn(z100, 100);
    t = fe_mul(t, z100); /* 2^200 - 1 */
    t = fe_sqn(t, 50);
    t = fe_mul(t, z50); /* 2^250 - 1 */
    *z11 = e11;
    *z2o = z2;
    return t;
}

/* Canonical limbs (value reduced below p). */
TGT static fe8 fe_freeze(fe8 a) {
    const __m512i m = _mm512_set1_epi64(MASK51);
    a = fe_carry(fe_carry(a));
    /* q = 1 iff a >= p: propagate the carry of a + 19 */
    __m512i q = _mm512_srli_epi64(_mm512_add_epi64(a.v[0], _mm512_set1_epi64(19)), 51);
    for (int i = 1; i < 5; i++) q = _mm512_srli_epi64(_mm512_add_epi64(a.v[i], q), 51);
    /* q is 0 or 1: add 19 q as 16 q + 2 q + q */
    q = _mm512_add_epi64(_mm512_add_epi64(_mm512_slli_epi64(q, 4), _mm512_slli_epi64(q, 1)), q);
    a.v[0] = _mm512_add_epi64(a.v[0], q);
    for (int i = 0; i < 4; i++) {
        __m512i c = _mm512_srli_epi64(a.v[i], 51);
        a.v[i] = _mm512_and_si512(a.v[i], m);
        a.v[i + 1] = _mm512_add_epi64(a.v[i + 1], c);
    }
    a.v[4] = _mm512_and_si512(a.v[4], m);
    return a;
}

static void unpack(uint64_t limbs[5][8], const unsigned char *u, int lane) {
    uint64_t w[4];
    memcpy(w, u, 32);
    w[3] &= 0x7FFFFFFFFFFFFFFFULL;
    limbs[0][lane] = w[0] & MASK51;
    limbs[1][lane] = ((w[0] >> 51) | (w[1] << 13)) & MASK51;
    limbs[2][lane] = ((w[1] >> 38) | (w[2] << 26)) & MASK51;
    limbs[3][lane] = ((w[2] >> 25) | (w[3] << 39)) & MASK51;
    limbs[4][lane] = (w[3] >> 12) & MASK51;
}

static void pack(unsigned char *out, uint64_t limbs[5][8], int lane) {
    uint64_t h0 = limbs[0][lane], h1 = limbs[1][lane], h2 = limbs[2][lane];
    uint64_t h3 = limbs[3][lane], h4 = limbs[4][lane];
    uint64_t w[4];
    w[0] = h0 | (h1 << 51);
    w[1] = (h1 >> 13) | (h2 << 38);
    w[2] = (h2 >> 26) | (h3 << 25);
    w[3] = (h3 >> 39) | (h4 << 12);
    memcpy(out, w, 32);
}

TGT static inline fe8 fe_load(uint64_t limbs[5][8]) {
    fe8 r;
    for (int i = 0; i < 5; i++) r.v[i] = _mm512_loadu_si512((const void *)limbs[i]);
    return r;
}

TGT static inline void fe_store(uint64_t limbs[5][8], fe8 a) {
    for (int i = 0; i < 5; i++) _mm512_storeu_si512((void *)limbs[i], a.v[i]);
}

TGT static inline void fe_cswap(fe8 *a, fe8 *b, uint64_t bit) {
    const __m512i mask = _mm512_set1_epi64((long long)(0 - bit));
    for (int i = 0; i < 5; i++) {
        __m512i t = _mm512_and_si512(mask, _mm512_xor_si512(a->v[i], b->v[i]));
        a->v[i] = _mm512_xor_si512(a->v[i], t);
        b->v[i] = _mm512_xor_si512(b->v[i], t);
    }
}

/* Eight points: out[lane] = X25519(k, u[lane]); twist[lane] = 1 if u is a twist point. */
TGT static void x25519_8(unsigned char *out, unsigned char *twist, const unsigned char k[32],
                         const unsigned char *u, int lanes) {
    uint64_t limbs[5][8];
    for (int l = 0; l < 8; l++) {
        static const unsigned char nine[32] = {9};
        unpack(limbs, l < lanes ? u + 32 * l : nine, l);
    }
    const fe8 x1 = fe_load(limbs);
    fe8 one, zero;
    for (int i = 0; i < 5; i++) {
        one.v[i] = _mm512_set1_epi64(i == 0 ? 1 : 0);
        zero.v[i] = _mm512_setzero_si512();
    }
    fe8 x2 = one, z2 = zero, x3 = x1, z3 = one;
    uint64_t swap = 0;
    for (int t = 254; t >= 0; t--) {
        uint64_t kt = (k[t >> 3] >> (t & 7)) & 1;
        swap ^= kt;
        fe_cswap(&x2, &x3, swap);
        fe_cswap(&z2, &z3, swap);
        swap = kt;
        fe8 a = fe_add(x2, z2);
        fe8 aa = fe_sq(a);
        fe8 b = fe_sub(x2, z2);
        fe8 bb = fe_sq(b);
        fe8 e = fe_sub(aa, bb);
        fe8 c = fe_add(x3, z3);
        fe8 d = fe_sub(x3, z3);
        fe8 da = fe_mul(d, a);
        fe8 cb = fe_mul(c, b);
        x3 = fe_sq(fe_add(da, cb));
        z3 = fe_mul(x1, fe_sq(fe_sub(da, cb)));
        x2 = fe_mul(aa, bb);
        z2 = fe_mul(e, fe_add(aa, fe_mul_a24(e)));
    }
    fe_cswap(&x2, &x3, swap);
    fe_cswap(&z2, &z3, swap);
    /* x2 / z2 = x2 * z2^(p - 2), p - 2 = (2^250 - 1) 2^5 + 11 */
    fe8 z11, zsq;
    fe8 t = fe_pow_2_250_1(z2, &z11, &zsq);
    t = fe_mul(fe_sqn(t, 5), z11);
    fe8 res = fe_freeze(fe_mul(x2, t));
    fe_store(limbs, res);
    for (int l = 0; l < lanes; l++) pack(out + 32 * l, limbs, l);
    /* Legendre symbol of g = u^3 + A u^2 + u: g^((p-1)/2), (p - 1) / 2 = (2^250 - 1) 2^4 + 6 */
    fe8 coef = zero;
    coef.v[0] = _mm512_set1_epi64(486662);
    fe8 g = fe_mul(x1, fe_add(fe_mul(x1, fe_add(x1, coef)), one));
    fe8 g11, g2;
    fe8 s = fe_pow_2_250_1(g, &g11, &g2);
    s = fe_mul(fe_sqn(s, 4), fe_mul(g2, fe_sq(g2)));
    fe_store(limbs, fe_freeze(s));
    for (int l = 0; l < lanes; l++) {
        /* p - 1 = 2^255 - 20: limbs 2^51 - 20, then four times 2^51 - 1 */
        twist[l] = limbs[0][l] == MASK51 - 19 && limbs[1][l] == MASK51 && limbs[2][l] == MASK51 &&
                   limbs[3][l] == MASK51 && limbs[4][l] == MASK51;
    }
}

/* Eight field elements t (canonical): out[lane] = u of Elligator 2 (RFC 9380 §6.7.1, Z = 2):
 * x1 = -A / (1 + 2 t^2); u = x1 if x1^3 + A x1^2 + x1 is a square (or 0), else -x1 - A. */
TGT static void elligator_8(unsigned char *out, const unsigned char *t, int lanes) {
    uint64_t limbs[5][8], other[5][8], sym[5][8];
    for (int l = 0; l < 8; l++) {
        static const unsigned char zero_t[32] = {0};
        unpack(limbs, l < lanes ? t + 32 * l : zero_t, l);
    }
    fe8 tv = fe_load(limbs), one, zero, a;
    for (int i = 0; i < 5; i++) {
        one.v[i] = _mm512_set1_epi64(i == 0 ? 1 : 0);
        zero.v[i] = _mm512_setzero_si512();
        a.v[i] = _mm512_set1_epi64(i == 0 ? 486662 : 0);
    }
    fe8 t2 = fe_sq(tv);
    fe8 den = fe_add(fe_add(t2, t2), one); /* 1 + 2 t^2, never 0 */
    fe8 e11, e2;
    fe8 inv = fe_pow_2_250_1(den, &e11, &e2);
    inv = fe_mul(fe_sqn(inv, 5), e11); /* den^(p - 2) */
    fe8 x1 = fe_sub(zero, fe_mul(inv, a));
    fe8 x2 = fe_sub(fe_sub(zero, x1), a);
    fe8 g = fe_mul(x1, fe_add(fe_mul(x1, fe_add(x1, a)), one));
    fe8 g11, g2;
    fe8 s = fe_pow_2_250_1(g, &g11, &g2);
    s = fe_mul(fe_sqn(s, 4), fe_mul(g2, fe_sq(g2))); /* g^((p - 1) / 2) */
    fe_store(limbs, fe_freeze(x1));
    fe_store(other, fe_freeze(x2));
    fe_store(sym, fe_freeze(s));
    for (int l = 0; l < lanes; l++) {
        int nonsquare = sym[0][l] == MASK51 - 19 && sym[1][l] == MASK51 && sym[2][l] == MASK51 &&
                        sym[3][l] == MASK51 && sym[4][l] == MASK51;
        pack(out + 32 * l, nonsquare ? other : limbs, l);
    }
}

static int have_ifma(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
}
#else
static int have_ifma(void) { return 0; }
#endif

PyDoc_STRVAR(available_doc, "available() -> bool: whether this CPU runs the kernel.");

static PyObject *available(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyBool_FromLong(have_ifma());
}

PyDoc_STRVAR(batch_doc,
             "x25519_batch(scalar, points, out, twist) -> None\n\n"
             "out[32i:32i+32] = X25519(scalar, points[32i:32i+32]); twist[i] = 1 if the point "
             "is on the quadratic twist. scalar is 32 bytes; points a bytes-like of 32 n bytes "
             "(top bits clear); out and twist writable buffers of 32 n and n bytes.");

static PyObject *x25519_batch(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer k, u, out, tw;
    if (!PyArg_ParseTuple(args, "y*y*w*w*", &k, &u, &out, &tw)) return NULL;
    PyObject *ret = NULL;
    Py_ssize_t n = u.len / 32;
    if (k.len != 32 || u.len % 32 != 0 || out.len != u.len || tw.len != n) {
        PyErr_SetString(PyExc_ValueError, "x25519_batch: bad buffer sizes");
        goto done;
    }
    if (!have_ifma()) {
        PyErr_SetString(PyExc_RuntimeError, "x25519_batch: this CPU lacks AVX-512 IFMA");
        goto done;
    }
#ifdef PRIVFIN_IFMA
    {
        unsigned char key[32];
        memcpy(key, k.buf, 32);
        key[0] &= 248;
        key[31] &= 127;
        key[31] |= 64;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i += 8) {
            int lanes = (int)(n - i < 8 ? n - i : 8);
            x25519_8((unsigned char *)out.buf + 32 * i, (unsigned char *)tw.buf + i, key,
                     (const unsigned char *)u.buf + 32 * i, lanes);
        }
        Py_END_ALLOW_THREADS
        memset(key, 0, sizeof key);
    }
#endif
    Py_INCREF(Py_None);
    ret = Py_None;
done:
    PyBuffer_Release(&k);
    PyBuffer_Release(&u);
    PyBuffer_Release(&out);
    PyBuffer_Release(&tw);
    return ret;
}

PyDoc_STRVAR(elligator_doc,
             "elligator_batch(ts, out) -> None\n\n"
             "out[32i:32i+32] = u-coordinate of Elligator 2 of the canonical field element "
             "ts[32i:32i+32] (little-endian, below 2^255 - 19).");

static PyObject *elligator_batch(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer t, out;
    if (!PyArg_ParseTuple(args, "y*w*", &t, &out)) return NULL;
    PyObject *ret = NULL;
    Py_ssize_t n = t.len / 32;
    if (t.len % 32 != 0 || out.len != t.len) {
        PyErr_SetString(PyExc_ValueError, "elligator_batch: bad buffer sizes");
        goto done;
    }
    if (!have_ifma()) {
        PyErr_SetString(PyExc_RuntimeError, "elligator_batch: this CPU lacks AVX-512 IFMA");
        goto done;
    }
#ifdef PRIVFIN_IFMA
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i += 8) {
        int lanes = (int)(n - i < 8 ? n - i : 8);
        elligator_8((unsigned char *)out.buf + 32 * i, (const unsigned char *)t.buf + 32 * i,
                    lanes);
    }
    Py_END_ALLOW_THREADS
#endif
    Py_INCREF(Py_None);
    ret = Py_None;
done:
    PyBuffer_Release(&t);
    PyBuffer_Release(&out);
    return ret;
}

static PyMethodDef methods[] = {
    {"elligator_batch", elligator_batch, METH_VARARGS, elligator_doc},
    {"available", available, METH_NOARGS, available_doc},
    {"x25519_batch", x25519_batch, METH_VARARGS, batch_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_x25519_kernel", "Optional AVX-512 IFMA X25519 kernel of privfin.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__x25519_kernel(void) { return PyModule_Create(&module); }
