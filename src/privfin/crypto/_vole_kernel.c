/* Optional compiled kernel of privfin.crypto.okvs and privfin.crypto.gf128.
 *
 * Byte-identical to their pure paths, which the tests compare it with:
 *
 * * okvs_solve: the lazy Gaussian elimination of a random-band OKVS over GF(2^128) values.
 *   Row i (in the order given) has its band at columns starts[i] .. starts[i] + 64 W - 1, bit
 *   k of words bands[i, 0..W-1] (little-endian across words) being column starts[i] + k, and
 *   its value vals[i] (16 bytes). A row is reduced by the stored row of its leading column
 *   while that column already has one; otherwise it is stored there (aligned at that column).
 *   A row reduced to zero is a failure: the function returns its index (nothing written).
 *   Then back substitution in decreasing column order writes every pivot column of `out`;
 *   the other columns keep what the caller put there (random fill). Returns -1 on success.
 *   Every stored row's support stays within 64 W columns of its pivot (all rows reduced into
 *   it started at or before that column), so W words always suffice.
 * * okvs_decode: out[i] = XOR of table[starts[i] + k] over the set bits k of row i (rows
 *   visited in a given order, e.g. by start, if one is passed; the same bytes).
 * * gf128_mul_scalar: out[i] = vec[i] * s in GF(2^128) = GF(2)[x] / (x^128 + x^7 + x^2 + x + 1),
 *   16-byte elements as two little-endian 64-bit words, bit j of the 128-bit integer being
 *   the coefficient of x^j; on PCLMULQDQ (checked at run time: pclmul_available()).
 *
 * * ea_gather: out[i] = XOR over k < d of acc[col(i, k)] for rows of `width` 64-bit words,
 *   col(i, k) = floor(r * cols / 2^64) for the little-endian 64-bit word r = raw[i * d + k]
 *   (computed as (rh * cols + ((rl * cols) >> 32)) >> 32, exact for cols < 2^32).
 * * ea_gather_regular: the same rows over the prefix XOR of a *regular* sparse vector (one
 *   nonzero per block of 2^depth columns, at offset alpha[b] of block b) without the vector:
 *   that prefix XOR at column c is sums[b + (c mod 2^depth >= alpha[b])] with b = c >> depth
 *   and sums[k] the XOR of the first k nonzero values (a table of blocks + 1 two-word rows).
 *
 * No I/O, no state; the GIL is released while they run.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORDS 8

static inline int ctz64(uint64_t x) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(x);
#else
    int n = 0;
    while (!(x & 1)) {
        x >>= 1;
        n++;
    }
    return n;
#endif
}

/* Shift the W-word bit vector b right by `o` bits (towards bit 0), 0 <= o < 64 W. */
static inline void shift_right(uint64_t *b, int W, int o) {
    const int ws = o >> 6, bs = o & 63;
    for (int k = 0; k < W; k++) {
        uint64_t lo = k + ws < W ? b[k + ws] : 0;
        uint64_t hi = k + ws + 1 < W ? b[k + ws + 1] : 0;
        b[k] = bs ? (lo >> bs) | (hi << (64 - bs)) : lo;
    }
}

/* Returns -1 on success, the failing row's index, or -2 when out of memory. */
static Py_ssize_t solve(const int64_t *starts, const uint64_t *bands, const uint64_t *vals,
                        Py_ssize_t n, Py_ssize_t m, int W, uint64_t *out) {
    int64_t *piv = malloc((size_t)(m ? m : 1) * sizeof(int64_t));
    uint64_t *rows = malloc((size_t)(n ? n : 1) * (size_t)(W + 2) * sizeof(uint64_t));
    if (!piv || !rows) {
        free(piv);
        free(rows);
        return -2;
    }
    for (Py_ssize_t c = 0; c < m; c++) piv[c] = -1;
    Py_ssize_t failed = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t *r = rows + (size_t)i * (W + 2); /* band words, then the value's two words */
        memcpy(r, bands + (size_t)i * W, (size_t)W * 8);
        r[W] = vals[2 * i];
        r[W + 1] = vals[2 * i + 1];
        int64_t col = starts[i];
        for (;;) {
            int k = 0;
            while (k < W && !r[k]) k++;
            if (k == W) {
                failed = i;
                break;
            }
            const int o = 64 * k + ctz64(r[k]);
            if (o) shift_right(r, W, o);
            col += o;
            const int64_t p = piv[col];
            if (p < 0) {
                piv[col] = i;
                break;
            }
            const uint64_t *q = rows + (size_t)p * (W + 2);
            for (int u = 0; u < W + 2; u++) r[u] ^= q[u];
        }
        if (failed >= 0) break;
    }
    if (failed < 0) {
        for (Py_ssize_t c = m - 1; c >= 0; c--) {
            const int64_t p = piv[c];
            if (p < 0) continue;
            const uint64_t *r = rows + (size_t)p * (W + 2);
            uint64_t a = r[W], b = r[W + 1];
            for (int k = 0; k < W; k++) {
                uint64_t w = k ? r[k] : r[k] & ~1ULL;
                while (w) {
                    const Py_ssize_t col = c + 64 * k + ctz64(w);
                    a ^= out[2 * col];
                    b ^= out[2 * col + 1];
                    w &= w - 1;
                }
            }
            out[2 * c] = a;
            out[2 * c + 1] = b;
        }
    }
    free(piv);
    free(rows);
    return failed;
}

/* Row i's band sum into out[i]; rows visited in the order `order` (if not NULL), e.g. by
 * increasing start, so that the table is read front to back instead of at random (3-4x
 * faster at 1M rows here: the table outgrows the caches). The bytes written do not depend
 * on the order. */
#define DECODE_AHEAD 16 /* rows prefetched ahead when visited in a given order */

static void decode(const int64_t *starts, const uint64_t *bands, const uint64_t *table,
                   const int64_t *order, Py_ssize_t n, int W, uint64_t *out) {
    for (Py_ssize_t j = 0; j < n; j++) {
        const Py_ssize_t i = order ? (Py_ssize_t)order[j] : j;
#if defined(__GNUC__) || defined(__clang__)
        if (order && j + DECODE_AHEAD < n) { /* the rows visited next are scattered */
            const Py_ssize_t ahead = (Py_ssize_t)order[j + DECODE_AHEAD];
            __builtin_prefetch(starts + ahead);
            __builtin_prefetch(bands + (size_t)ahead * W);
            __builtin_prefetch(out + 2 * ahead, 1);
        }
#endif
        const uint64_t *r = bands + (size_t)i * W;
        const uint64_t *t = table + 2 * starts[i];
        uint64_t a = 0, b = 0;
        for (int k = 0; k < W; k++) {
            uint64_t w = r[k];
            while (w) {
                const int col = 64 * k + ctz64(w);
                a ^= t[2 * col];
                b ^= t[2 * col + 1];
                w &= w - 1;
            }
        }
        out[2 * i] = a;
        out[2 * i + 1] = b;
    }
}

/* Every start in [0, m - 64 W]: the band fits in the table. */
static int starts_ok(const int64_t *starts, Py_ssize_t n, Py_ssize_t m, int W) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (starts[i] < 0 || starts[i] > m - 64 * (Py_ssize_t)W) return 0;
    }
    return 1;
}

/* okvs_solve(starts, bands, vals, m, W, out) -> int */
static PyObject *k_okvs_solve(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer st, bd, vl, out;
    Py_ssize_t m;
    int W;
    if (!PyArg_ParseTuple(args, "y*y*y*niw*", &st, &bd, &vl, &m, &W, &out)) return NULL;
    PyObject *ret = NULL;
    const Py_ssize_t n = st.len / 8;
    if (W < 1 || W > MAX_WORDS || m < 64 * (Py_ssize_t)W || st.len % 8 || bd.len != n * W * 8 ||
        vl.len != n * 16 || out.len != m * 16) {
        PyErr_SetString(PyExc_ValueError, "okvs_solve: sizes do not match");
        goto done;
    }
    if (!starts_ok((const int64_t *)st.buf, n, m, W)) {
        PyErr_SetString(PyExc_ValueError, "okvs_solve: a band start is out of range");
        goto done;
    }
    Py_ssize_t r;
    Py_BEGIN_ALLOW_THREADS r = solve((const int64_t *)st.buf, (const uint64_t *)bd.buf,
                                     (const uint64_t *)vl.buf, n, m, W, (uint64_t *)out.buf);
    Py_END_ALLOW_THREADS
    if (r == -2) {
        PyErr_NoMemory();
        goto done;
    }
    ret = PyLong_FromSsize_t(r);
done:
    PyBuffer_Release(&st);
    PyBuffer_Release(&bd);
    PyBuffer_Release(&vl);
    PyBuffer_Release(&out);
    return ret;
}

/* okvs_decode(starts, bands, table, W, out[, order]): `order` (int64, n entries, each in
 * [0, n)) is the order in which the rows are visited. */
static PyObject *k_okvs_decode(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer st, bd, tb, out, od = {0};
    int W;
    if (!PyArg_ParseTuple(args, "y*y*y*iw*|y*", &st, &bd, &tb, &W, &out, &od)) return NULL;
    PyObject *ret = NULL;
    const Py_ssize_t n = st.len / 8, m = tb.len / 16;
    const int64_t *order = od.obj ? (const int64_t *)od.buf : NULL;
    if (W < 1 || W > MAX_WORDS || m < 64 * (Py_ssize_t)W || st.len % 8 || tb.len % 16 ||
        bd.len != n * W * 8 || out.len != n * 16 || (order && od.len != n * 8)) {
        PyErr_SetString(PyExc_ValueError, "okvs_decode: sizes do not match");
        goto done;
    }
    if (!starts_ok((const int64_t *)st.buf, n, m, W)) {
        PyErr_SetString(PyExc_ValueError, "okvs_decode: a band start is out of range");
        goto done;
    }
    for (Py_ssize_t j = 0; order && j < n; j++) {
        if (order[j] < 0 || order[j] >= n) {
            PyErr_SetString(PyExc_ValueError, "okvs_decode: an order entry is out of range");
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS decode((const int64_t *)st.buf, (const uint64_t *)bd.buf,
                                  (const uint64_t *)tb.buf, order, n, W, (uint64_t *)out.buf);
    Py_END_ALLOW_THREADS
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&st);
    PyBuffer_Release(&bd);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&out);
    if (od.obj) PyBuffer_Release(&od);
    return ret;
}

static inline uint64_t column(uint64_t r, uint64_t cols) {
    return ((r >> 32) * cols + (((r & 0xffffffffULL) * cols) >> 32)) >> 32;
}

#define GATHER_AHEAD 8 /* outputs whose rows are prefetched ahead of the one being summed */

static void gather(const uint64_t *acc, const uint64_t *raw, Py_ssize_t n, int d, int width,
                   uint64_t cols, uint64_t *out) {
    for (Py_ssize_t i = 0; i < n; i++) {
#if defined(__GNUC__) || defined(__clang__)
        if (i + GATHER_AHEAD < n) {
            const uint64_t *r = raw + (size_t)(i + GATHER_AHEAD) * d;
            for (int k = 0; k < d; k++) __builtin_prefetch(acc + column(r[k], cols) * width);
        }
#endif
        uint64_t *o = out + (size_t)i * width;
        for (int u = 0; u < width; u++) o[u] = 0;
        const uint64_t *r = raw + (size_t)i * d;
        for (int k = 0; k < d; k++) {
            const uint64_t *a = acc + column(r[k], cols) * width;
            for (int u = 0; u < width; u++) o[u] ^= a[u];
        }
    }
}

/* ea_gather(acc, raw, d, width, out) */
static PyObject *k_ea_gather(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer acc, raw, out;
    int d, width;
    if (!PyArg_ParseTuple(args, "y*y*iiw*", &acc, &raw, &d, &width, &out)) return NULL;
    PyObject *ret = NULL;
    const Py_ssize_t row = 8 * (Py_ssize_t)width;
    if (d < 1 || width < 1 || width > 64 || acc.len % row || out.len % row ||
        raw.len != (out.len / row) * d * 8 || acc.len / row >= ((Py_ssize_t)1 << 32) ||
        acc.len == 0) {
        PyErr_SetString(PyExc_ValueError, "ea_gather: sizes do not match");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS gather((const uint64_t *)acc.buf, (const uint64_t *)raw.buf,
                                  out.len / row, d, width, (uint64_t)(acc.len / row),
                                  (uint64_t *)out.buf);
    Py_END_ALLOW_THREADS
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&acc);
    PyBuffer_Release(&raw);
    PyBuffer_Release(&out);
    return ret;
}

static void gather_regular(const uint64_t *raw, Py_ssize_t n, int d, uint64_t cols, int depth,
                           const int64_t *alpha, const uint64_t *sums, uint64_t *out) {
    const uint64_t mask = ((uint64_t)1 << depth) - 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t o0 = 0, o1 = 0;
        const uint64_t *r = raw + (size_t)i * d;
        for (int k = 0; k < d; k++) {
            const uint64_t c = column(r[k], cols);
            const uint64_t b = c >> depth;
            const uint64_t at = b + ((int64_t)(c & mask) >= alpha[b]);
            o0 ^= sums[2 * at];
            o1 ^= sums[2 * at + 1];
        }
        out[2 * i] = o0;
        out[2 * i + 1] = o1;
    }
}

/* ea_gather_regular(raw, d, depth, alpha, sums, out) */
static PyObject *k_ea_gather_regular(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer raw, alpha, sums, out;
    int d, depth;
    if (!PyArg_ParseTuple(args, "y*iiy*y*w*", &raw, &d, &depth, &alpha, &sums, &out))
        return NULL;
    PyObject *ret = NULL;
    const Py_ssize_t blocks = alpha.len / 8;
    if (d < 1 || depth < 1 || depth > 30 || alpha.len % 8 || blocks < 1 || out.len % 16 ||
        sums.len != (blocks + 1) * 16 || raw.len != (out.len / 16) * d * 8 ||
        (blocks << depth) >= ((Py_ssize_t)1 << 32)) {
        PyErr_SetString(PyExc_ValueError, "ea_gather_regular: sizes do not match");
        goto done;
    }
    const int64_t *al = (const int64_t *)alpha.buf;
    for (Py_ssize_t b = 0; b < blocks; b++) {
        if (al[b] < 0 || al[b] >= ((int64_t)1 << depth)) {
            PyErr_SetString(PyExc_ValueError, "ea_gather_regular: an offset is out of its block");
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS gather_regular((const uint64_t *)raw.buf, out.len / 16, d,
                                          (uint64_t)blocks << depth, depth, al,
                                          (const uint64_t *)sums.buf, (uint64_t *)out.buf);
    Py_END_ALLOW_THREADS
    ret = Py_None;
    Py_INCREF(ret);
done:
    PyBuffer_Release(&raw);
    PyBuffer_Release(&alpha);
    PyBuffer_Release(&sums);
    PyBuffer_Release(&out);
    return ret;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PRIVFIN_PCLMUL 1
#include <immintrin.h>

#define TGT __attribute__((target("pclmul,sse4.1")))

TGT static int cpu_ok(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

/* a * b mod x^128 + x^7 + x^2 + x + 1. */
TGT static inline __m128i gf_mul(__m128i a, __m128i b) {
    const __m128i poly = _mm_set_epi64x(0, 0x87);
    __m128i lo = _mm_clmulepi64_si128(a, b, 0x00);
    __m128i hi = _mm_clmulepi64_si128(a, b, 0x11);
    __m128i mid = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10));
    lo = _mm_xor_si128(lo, _mm_slli_si128(mid, 8));
    hi = _mm_xor_si128(hi, _mm_srli_si128(mid, 8));
    /* hi = (p2, p3): p3 * x^192 = p3 * x^64 * (x^7 + x^2 + x + 1), into (p1, p2) */
    __m128i t = _mm_clmulepi64_si128(hi, poly, 0x01);
    hi = _mm_xor_si128(hi, _mm_srli_si128(t, 8));
    lo = _mm_xor_si128(lo, _mm_slli_si128(t, 8));
    /* p2 * x^128 = p2 * (x^7 + x^2 + x + 1), into (p0, p1) */
    t = _mm_clmulepi64_si128(hi, poly, 0x00);
    return _mm_xor_si128(lo, t);
}

TGT static void mul_scalar(const uint8_t *v, const uint8_t *s, Py_ssize_t n, uint8_t *out) {
    const __m128i b = _mm_loadu_si128((const __m128i *)s);
    for (Py_ssize_t i = 0; i < n; i++) {
        __m128i a = _mm_loadu_si128((const __m128i *)(v + 16 * i));
        _mm_storeu_si128((__m128i *)(out + 16 * i), gf_mul(a, b));
    }
}
#endif

static PyObject *k_pclmul_available(PyObject *self, PyObject *noargs) {
    (void)self;
    (void)noargs;
#ifdef PRIVFIN_PCLMUL
    return PyBool_FromLong(cpu_ok());
#else
    Py_RETURN_FALSE;
#endif
}

/* gf128_mul_scalar(vec, scalar, out) */
static PyObject *k_gf128_mul_scalar(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer v, s, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &v, &s, &out)) return NULL;
    PyObject *ret = NULL;
    if (v.len % 16 || s.len != 16 || out.len != v.len) {
        PyErr_SetString(PyExc_ValueError, "gf128_mul_scalar: sizes do not match");
        goto done;
    }
#ifdef PRIVFIN_PCLMUL
    if (!cpu_ok()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no PCLMULQDQ");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS mul_scalar((const uint8_t *)v.buf, (const uint8_t *)s.buf, v.len / 16,
                                      (uint8_t *)out.buf);
    Py_END_ALLOW_THREADS
    ret = Py_None;
    Py_INCREF(ret);
#else
    PyErr_SetString(PyExc_RuntimeError, "the GF(2^128) kernel is not compiled for this platform");
#endif
done:
    PyBuffer_Release(&v);
    PyBuffer_Release(&s);
    PyBuffer_Release(&out);
    return ret;
}

static PyMethodDef methods[] = {
    {"okvs_solve", k_okvs_solve, METH_VARARGS, "Random-band OKVS elimination and solution."},
    {"okvs_decode", k_okvs_decode, METH_VARARGS, "Random-band OKVS decoding (band sums)."},
    {"ea_gather", k_ea_gather, METH_VARARGS, "Sparse expander rows over accumulated vectors."},
    {"ea_gather_regular", k_ea_gather_regular, METH_VARARGS,
     "Sparse expander rows over the prefix XOR of a regular sparse vector."},
    {"pclmul_available", k_pclmul_available, METH_NOARGS, "Whether this CPU has PCLMULQDQ."},
    {"gf128_mul_scalar", k_gf128_mul_scalar, METH_VARARGS, "GF(2^128) vector times scalar."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_vole_kernel", "OKVS and GF(2^128) kernel of privfin.crypto.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__vole_kernel(void) { return PyModule_Create(&module); }
