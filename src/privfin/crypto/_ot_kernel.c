/* Optional compiled kernel of privfin.crypto.ot: the correlation-robust hash of wide correlated
 * OTs over Z_2^64 fused with the sender's and the receiver's arithmetic and with the trimming
 * of the corrections, on AES-NI.
 *
 * Byte-identical to the numpy path of privfin.crypto.ot (CrHash.words, cot_send_trimmed,
 * cot_receive_trimmed), which the tests compare it with:
 *
 *   px_j = AES_k(x_j);  y_{j,l} = px_j XOR (j, tweak * 2^20 + l);  H = AES_k(y) XOR y
 *
 * (16-byte blocks as two little-endian 64-bit words: the low word carries j, the high word
 * tweak * 2^20 + l); block l gives words 2l and 2l + 1 of row j.
 *
 * Sender: own_j = H(q_j), d_j = H(q_j) - H(q_j XOR delta) + corr_j (word-wise mod 2^64); d is
 * written trimmed: the low nbits[j] bits (0-64) of every word of row j, rows one after the
 * other, as one little-endian bit stream zero-padded to whole bytes.
 * Receiver: out_j = H(t_j) + c_j * d_j where d_j is read back from the trimmed layout (zero
 * extended). Compiled for x86-64 only and used only when the CPU reports AES-NI (checked at
 * run time); otherwise available() is False and privfin uses the numpy path. No I/O, no state;
 * the GIL is released while it runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PRIVFIN_AESNI 1
#include <immintrin.h>

#define TGT __attribute__((target("aes,sse2")))

TGT static inline __m128i expand_step(__m128i key, __m128i gen) {
    gen = _mm_shuffle_epi32(gen, _MM_SHUFFLE(3, 3, 3, 3));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    key = _mm_xor_si128(key, _mm_slli_si128(key, 4));
    return _mm_xor_si128(key, gen);
}

/* AES-128 key schedule (FIPS 197) with AESKEYGENASSIST. */
TGT static void key_schedule(const uint8_t *key, __m128i rk[11]) {
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    rk[1] = expand_step(rk[0], _mm_aeskeygenassist_si128(rk[0], 0x01));
    rk[2] = expand_step(rk[1], _mm_aeskeygenassist_si128(rk[1], 0x02));
    rk[3] = expand_step(rk[2], _mm_aeskeygenassist_si128(rk[2], 0x04));
    rk[4] = expand_step(rk[3], _mm_aeskeygenassist_si128(rk[3], 0x08));
    rk[5] = expand_step(rk[4], _mm_aeskeygenassist_si128(rk[4], 0x10));
    rk[6] = expand_step(rk[5], _mm_aeskeygenassist_si128(rk[5], 0x20));
    rk[7] = expand_step(rk[6], _mm_aeskeygenassist_si128(rk[6], 0x40));
    rk[8] = expand_step(rk[7], _mm_aeskeygenassist_si128(rk[7], 0x80));
    rk[9] = expand_step(rk[8], _mm_aeskeygenassist_si128(rk[8], 0x1b));
    rk[10] = expand_step(rk[9], _mm_aeskeygenassist_si128(rk[9], 0x36));
}

TGT static inline __m128i aes1(const __m128i rk[11], __m128i x) {
    x = _mm_xor_si128(x, rk[0]);
    for (int r = 1; r < 10; r++) x = _mm_aesenc_si128(x, rk[r]);
    return _mm_aesenclast_si128(x, rk[10]);
}

/* Two independent blocks through AES, rounds interleaved (the unit's latency is hidden). */
TGT static inline void aes2(const __m128i rk[11], __m128i *a, __m128i *b) {
    __m128i x = _mm_xor_si128(*a, rk[0]), y = _mm_xor_si128(*b, rk[0]);
    for (int r = 1; r < 10; r++) {
        x = _mm_aesenc_si128(x, rk[r]);
        y = _mm_aesenc_si128(y, rk[r]);
    }
    *a = _mm_aesenclast_si128(x, rk[10]);
    *b = _mm_aesenclast_si128(y, rk[10]);
}

TGT static inline void aes4(const __m128i rk[11], __m128i v[4]) {
    __m128i a = _mm_xor_si128(v[0], rk[0]), b = _mm_xor_si128(v[1], rk[0]);
    __m128i c = _mm_xor_si128(v[2], rk[0]), d = _mm_xor_si128(v[3], rk[0]);
    for (int r = 1; r < 10; r++) {
        a = _mm_aesenc_si128(a, rk[r]);
        b = _mm_aesenc_si128(b, rk[r]);
        c = _mm_aesenc_si128(c, rk[r]);
        d = _mm_aesenc_si128(d, rk[r]);
    }
    v[0] = _mm_aesenclast_si128(a, rk[10]);
    v[1] = _mm_aesenclast_si128(b, rk[10]);
    v[2] = _mm_aesenclast_si128(c, rk[10]);
    v[3] = _mm_aesenclast_si128(d, rk[10]);
}

/* Eight independent blocks, rounds interleaved (one-word OTs: hides the unit's latency). */
TGT static inline void aes8(const __m128i rk[11], __m128i v[8]) {
    __m128i x[8];
    for (int i = 0; i < 8; i++) x[i] = _mm_xor_si128(v[i], rk[0]);
    for (int r = 1; r < 10; r++)
        for (int i = 0; i < 8; i++) x[i] = _mm_aesenc_si128(x[i], rk[r]);
    for (int i = 0; i < 8; i++) v[i] = _mm_aesenclast_si128(x[i], rk[10]);
}

/* Bit-stream writer: words are appended in order; a full 64-bit word is stored as soon as it
 * is complete, so every store lies within the first total_bits / 8 bytes of the message. */
typedef struct {
    uint8_t *p;
    uint64_t acc;
    int n; /* bits pending in acc, < 64 */
} bitw_t;

static inline uint64_t low_bits(uint64_t x, int w) {
    return w >= 64 ? x : (x & ((1ULL << w) - 1));
}

static inline void bw_put(bitw_t *b, uint64_t x, int w) {
    if (w == 0) return;
    x = low_bits(x, w);
    b->acc |= x << b->n;
    const int tot = b->n + w;
    if (tot >= 64) {
        memcpy(b->p, &b->acc, 8);
        b->p += 8;
        b->acc = b->n ? x >> (64 - b->n) : 0;
        b->n = tot - 64;
    } else {
        b->n = tot;
    }
}

static inline void bw_flush(bitw_t *b) {
    if (b->n) memcpy(b->p, &b->acc, (size_t)((b->n + 7) / 8));
}

/* The `w` bits at bit position `pos` of `src` (`len` bytes), zero-extended (little-endian
 * host: x86-64). The caller guarantees pos + w <= 8 * len. */
static inline uint64_t get_bits(const uint8_t *src, Py_ssize_t len, uint64_t pos, int w) {
    const Py_ssize_t at = (Py_ssize_t)(pos >> 3);
    const int sh = (int)(pos & 7);
    uint64_t x = 0;
    if (at + 8 <= len) {
        memcpy(&x, src + at, 8);
    } else {
        memcpy(&x, src + at, (size_t)(len - at));
    }
    x >>= sh;
    if (sh + w > 64) x |= (uint64_t)src[at + 8] << (64 - sh);
    return low_bits(x, w);
}

/* Where the words of OT j go: row j of `rows` (n x width), or, when `acc` is set, added
 * (receiver) or subtracted (sender) after a left shift by shifts[j] into row
 * (acc_phase + j) mod acc_period of `acc` (acc_period x width). */
typedef struct {
    uint64_t *rows;
    uint64_t *acc;
    Py_ssize_t acc_period, acc_phase;
    const uint8_t *shifts;
} sink_t;

static inline uint64_t *sink_row(const sink_t *k, Py_ssize_t j, Py_ssize_t ar, Py_ssize_t width) {
    return k->acc ? k->acc + ar * width : k->rows + j * width;
}

/* Sender of n correlated OTs of `width` words (see the header comment). */
TGT static void cot_send_rows(const __m128i rk[11], const uint8_t *q, const uint8_t *delta,
                              uint64_t tweak_hi, const uint64_t *corr, Py_ssize_t period,
                              Py_ssize_t phase, Py_ssize_t n, Py_ssize_t width, sink_t own,
                              uint8_t *dout, const int64_t *nbits, int pre) {
    /* pre: q holds (π(q_j), π(q_j ⊕ s)), 32 bytes per OT, computed once for OTs used many
     * times (the hash's inner permutation does not depend on the tweak) */
    const __m128i dl = _mm_loadu_si128((const __m128i *)delta);
    const Py_ssize_t blocks = (width + 1) / 2;
    Py_ssize_t cr = phase;           /* row of corr used by OT j: (phase + j) mod period */
    Py_ssize_t ar = own.acc_phase;   /* accumulator row of OT j */
    bitw_t bw = {dout, 0, 0};
    Py_ssize_t j0 = 0;
    if (width == 1) {
        /* one word per OT: four OTs per round of eight AES blocks (the same words as below,
         * whose block 0 has the tweak's block index 0) */
        for (; j0 + 4 <= n; j0 += 4) {
            __m128i v[8], y[8];
            if (pre) {
                for (int u = 0; u < 8; u++) v[u] = _mm_loadu_si128((const __m128i *)(q + 16 * (2 * j0 + u)));
            } else {
                for (int u = 0; u < 4; u++) {
                    __m128i p = _mm_loadu_si128((const __m128i *)(q + 16 * (j0 + u)));
                    v[2 * u] = p;
                    v[2 * u + 1] = _mm_xor_si128(p, dl);
                }
                aes8(rk, v);
            }
            for (int u = 0; u < 4; u++) {
                const __m128i row = _mm_set_epi64x((long long)tweak_hi, (long long)(j0 + u));
                y[2 * u] = v[2 * u] = _mm_xor_si128(v[2 * u], row);
                y[2 * u + 1] = v[2 * u + 1] = _mm_xor_si128(v[2 * u + 1], row);
            }
            aes8(rk, v);
            for (int u = 0; u < 4; u++) {
                const Py_ssize_t j = j0 + u;
                uint64_t a = (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(v[2 * u], y[2 * u]));
                uint64_t b =
                    (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(v[2 * u + 1], y[2 * u + 1]));
                bw_put(&bw, a - b + corr[cr], (int)nbits[j]);
                if (own.acc)
                    own.acc[ar] -= a << own.shifts[j];
                else
                    own.rows[j] = a;
                if (++cr == period) cr = 0;
                if (own.acc && ++ar == own.acc_period) ar = 0;
            }
        }
    }
    for (Py_ssize_t j = j0; j < n; j++) {
        __m128i p0, p1;
        if (pre) {
            p0 = _mm_loadu_si128((const __m128i *)(q + 32 * j));
            p1 = _mm_loadu_si128((const __m128i *)(q + 32 * j + 16));
        } else {
            p0 = _mm_loadu_si128((const __m128i *)(q + 16 * j));
            p1 = _mm_xor_si128(p0, dl);
            aes2(rk, &p0, &p1);
        }
        const __m128i row = _mm_set_epi64x((long long)tweak_hi, (long long)j);
        p0 = _mm_xor_si128(p0, row);
        p1 = _mm_xor_si128(p1, row);
        const uint64_t *cj = corr + cr * width;
        uint64_t *oj = sink_row(&own, j, ar, width);
        const int sh = own.acc ? own.shifts[j] : 0;
        const int w = (int)nbits[j];
        for (Py_ssize_t l = 0; l < blocks; l += 2) {
            const int nb = blocks - l < 2 ? 1 : 2;
            __m128i v[4], y[4];
            for (int u = 0; u < 2; u++) {
                __m128i tw = _mm_set_epi64x((long long)(l + (u < nb ? u : 0)), 0);
                y[2 * u] = v[2 * u] = _mm_xor_si128(p0, tw);
                y[2 * u + 1] = v[2 * u + 1] = _mm_xor_si128(p1, tw);
            }
            aes4(rk, v);
            for (int u = 0; u < nb; u++) {
                __m128i a = _mm_xor_si128(v[2 * u], y[2 * u]);
                __m128i b = _mm_xor_si128(v[2 * u + 1], y[2 * u + 1]);
                Py_ssize_t at = 2 * (l + u);
                const int cnt = at + 2 <= width ? 2 : 1;
                uint64_t aw[2], ow[2];
                _mm_storeu_si128((__m128i *)aw, _mm_sub_epi64(a, b));
                _mm_storeu_si128((__m128i *)ow, a);
                for (int i = 0; i < cnt; i++) {
                    bw_put(&bw, aw[i] + cj[at + i], w);
                    if (own.acc)
                        oj[at + i] -= ow[i] << sh;
                    else
                        oj[at + i] = ow[i];
                }
            }
        }
        if (++cr == period) cr = 0;
        if (own.acc && ++ar == own.acc_period) ar = 0;
    }
    bw_flush(&bw);
}

/* Receiver: out_j = H(t_j) + c_j * untrim(d_j). */
TGT static void cot_recv_rows(const __m128i rk[11], const uint8_t *t, const uint8_t *choices,
                              uint64_t tweak_hi, const uint8_t *msg, Py_ssize_t mlen,
                              Py_ssize_t n, Py_ssize_t width, sink_t out,
                              const int64_t *nbits, int pre) {
    /* pre: t holds π(t_j) (see cot_send_rows) */
    const Py_ssize_t blocks = (width + 1) / 2;
    Py_ssize_t ar = out.acc_phase;
    uint64_t pos = 0; /* bit position in msg */
    Py_ssize_t j0 = 0;
    if (width == 1) {
        /* one word per OT: eight OTs per round of eight AES blocks (same words as below) */
        for (; j0 + 8 <= n; j0 += 8) {
            __m128i v[8], y[8];
            for (int u = 0; u < 8; u++) v[u] = _mm_loadu_si128((const __m128i *)(t + 16 * (j0 + u)));
            if (!pre) aes8(rk, v);
            for (int u = 0; u < 8; u++)
                y[u] = v[u] = _mm_xor_si128(
                    v[u], _mm_set_epi64x((long long)tweak_hi, (long long)(j0 + u)));
            aes8(rk, v);
            for (int u = 0; u < 8; u++) {
                const Py_ssize_t j = j0 + u;
                const int w = (int)nbits[j];
                uint64_t x = (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(v[u], y[u]));
                if (choices[j] != 0 && w > 0) x += get_bits(msg, mlen, pos, w);
                pos += (uint64_t)w;
                if (out.acc) {
                    out.acc[ar] += x << out.shifts[j];
                    if (++ar == out.acc_period) ar = 0;
                } else {
                    out.rows[j] = x;
                }
            }
        }
    }
    for (Py_ssize_t j = j0; j < n; j++) {
        __m128i p0 = _mm_loadu_si128((const __m128i *)(t + 16 * j));
        if (!pre) p0 = aes1(rk, p0);
        p0 = _mm_xor_si128(p0, _mm_set_epi64x((long long)tweak_hi, (long long)j));
        uint64_t *oj = sink_row(&out, j, ar, width);
        const int sh = out.acc ? out.shifts[j] : 0;
        const int w = (int)nbits[j];
        const int c = choices[j] != 0 && w > 0;
        for (Py_ssize_t l = 0; l < blocks; l += 4) {
            const int nb = (int)(blocks - l < 4 ? blocks - l : 4);
            __m128i v[4], y[4];
            for (int u = 0; u < 4; u++) {
                y[u] = v[u] = _mm_xor_si128(p0, _mm_set_epi64x((long long)(l + (u < nb ? u : 0)), 0));
            }
            aes4(rk, v);
            for (int u = 0; u < nb; u++) {
                Py_ssize_t at = 2 * (l + u);
                const int cnt = at + 2 <= width ? 2 : 1;
                uint64_t hw[2];
                _mm_storeu_si128((__m128i *)hw, _mm_xor_si128(v[u], y[u]));
                for (int i = 0; i < cnt; i++) {
                    uint64_t x = hw[i];
                    if (c) x += get_bits(msg, mlen, pos + (uint64_t)(at + i) * (uint64_t)w, w);
                    if (out.acc)
                        oj[at + i] += x << sh;
                    else
                        oj[at + i] = x;
                }
            }
        }
        pos += (uint64_t)width * (uint64_t)w;
        if (out.acc && ++ar == out.acc_period) ar = 0;
    }
}

/* The hash alone (for the tests): out[j] = words of H(rows[j], (j, tweak * 2^20 + l)). */
TGT static void words_rows(const __m128i rk[11], const uint8_t *rows, uint64_t tweak_hi,
                           Py_ssize_t n, Py_ssize_t width, uint64_t *out) {
    const Py_ssize_t blocks = (width + 1) / 2;
    for (Py_ssize_t j = 0; j < n; j++) {
        __m128i p0 = aes1(rk, _mm_loadu_si128((const __m128i *)(rows + 16 * j)));
        p0 = _mm_xor_si128(p0, _mm_set_epi64x((long long)tweak_hi, (long long)j));
        for (Py_ssize_t l = 0; l < blocks; l++) {
            __m128i y = _mm_xor_si128(p0, _mm_set_epi64x((long long)l, 0));
            __m128i h = _mm_xor_si128(aes1(rk, y), y);
            uint64_t hw[2];
            _mm_storeu_si128((__m128i *)hw, h);
            Py_ssize_t at = 2 * l;
            memcpy(out + j * width + at, hw, (size_t)(width - at < 2 ? width - at : 2) * 8);
        }
    }
}


/* Bit-matrix transpose of packed little-endian bit rows: `in` is rows x (cols / 8) bytes,
 * `out` is cols x (rows / 8) (rows multiple of 16, cols of 8). Tiles of TR_ROWS x TR_COLS
 * bits (16 KiB in, 16 KiB out: both stay in L1; an output row of a tile is one cache line). Inside a tile, blocks of 16 rows x 128
 * columns: 16 row vectors are loaded and byte-transposed in registers (four rounds of
 * unpacks), so vector k holds column byte k of the 16 rows; MOVMSKB then collects bit 7 of
 * each (one output column, 16 rows) and a left shift brings the next bit up. A last column
 * block of 8 bytes (cols not a multiple of 128) takes the same path on half vectors. */
#define TR_ROWS 256
#define TR_COLS 512

__attribute__((target("sse2"))) static inline void tr_emit(__m128i x, uint8_t *out,
                                                         Py_ssize_t col, Py_ssize_t rb) {
    /* the 8 columns col .. col + 7 of one byte vector, 16 rows each */
    for (int i = 7; i >= 0; i--) {
        uint16_t m = (uint16_t)_mm_movemask_epi8(x);
        memcpy(out + (col + i) * rb, &m, 2);
        x = _mm_slli_epi64(x, 1);
    }
}

/* 16 x 16 byte transpose: on return v[k] holds byte k of the 16 input vectors. */
__attribute__((target("sse2"))) static inline void tr_bytes16(__m128i v[16]) {
    __m128i t[16];
    for (int i = 0; i < 8; i++) {
        t[i] = _mm_unpacklo_epi8(v[2 * i], v[2 * i + 1]);
        t[i + 8] = _mm_unpackhi_epi8(v[2 * i], v[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) {
            v[8 * h + i] = _mm_unpacklo_epi16(t[8 * h + 2 * i], t[8 * h + 2 * i + 1]);
            v[8 * h + i + 4] = _mm_unpackhi_epi16(t[8 * h + 2 * i], t[8 * h + 2 * i + 1]);
        }
    for (int q = 0; q < 4; q++)
        for (int i = 0; i < 2; i++) {
            t[4 * q + i] = _mm_unpacklo_epi32(v[4 * q + 2 * i], v[4 * q + 2 * i + 1]);
            t[4 * q + i + 2] = _mm_unpackhi_epi32(v[4 * q + 2 * i], v[4 * q + 2 * i + 1]);
        }
    for (int o = 0; o < 8; o++) {
        v[2 * o] = _mm_unpacklo_epi64(t[2 * o], t[2 * o + 1]);
        v[2 * o + 1] = _mm_unpackhi_epi64(t[2 * o], t[2 * o + 1]);
    }
}

/* Column bytes [c0, c1) of rows [rr, rr + 16), one byte at a time (the tail of a tile);
 * output column 8 * (c - cbase) + i at dst + (8 * (c - cbase) + i) * rb. */
__attribute__((target("sse2"))) static void tr_gather(const uint8_t *in, uint8_t *dst,
                                                    Py_ssize_t rr, Py_ssize_t c0, Py_ssize_t c1,
                                                    Py_ssize_t cbase, Py_ssize_t cb,
                                                    Py_ssize_t rb) {
    for (Py_ssize_t c = c0; c < c1; c++) {
        uint8_t col[16];
        for (int i = 0; i < 16; i++) col[i] = in[(rr + i) * cb + c];
        tr_emit(_mm_loadu_si128((const __m128i *)col), dst, 8 * (c - cbase), rb);
    }
}

/* A tile's output (TR_COLS rows of at most TR_ROWS / 8 bytes) is contiguous in `out` when
 * the tile spans whole output rows (rows <= TR_ROWS), and written there directly; otherwise
 * it is built in a contiguous local buffer and copied out row by row: written in place, 2
 * bytes at a time into rows rows / 8 bytes apart, it thrashes the cache when that stride is
 * a multiple of 4 KiB (all rows in one cache set). */
__attribute__((target("sse2"))) static void transpose_rows(const uint8_t *in, uint8_t *out,
                                                           Py_ssize_t rows, Py_ssize_t cols) {
    const Py_ssize_t cb = cols / 8, rb = rows / 8;
    _Alignas(64) uint8_t tile[TR_COLS * (TR_ROWS / 8)];
    const int direct = rows <= TR_ROWS;
    for (Py_ssize_t r0 = 0; r0 < rows; r0 += TR_ROWS) {
        const Py_ssize_t r1 = r0 + TR_ROWS < rows ? r0 + TR_ROWS : rows;
        const Py_ssize_t tb = (r1 - r0) / 8; /* bytes of a tile's output row */
        for (Py_ssize_t c0 = 0; c0 < cb; c0 += TR_COLS / 8) {
            const Py_ssize_t c1 = c0 + TR_COLS / 8 < cb ? c0 + TR_COLS / 8 : cb;
            uint8_t *base = direct ? out + 8 * c0 * rb : tile; /* rb == tb when direct */
            for (Py_ssize_t rr = r0; rr < r1; rr += 16) {
                uint8_t *dst = base + (rr - r0) / 8;
                Py_ssize_t c = c0;
                for (; c + 16 <= c1; c += 16) {
                    __m128i v[16];
                    for (int i = 0; i < 16; i++)
                        v[i] = _mm_loadu_si128((const __m128i *)(in + (rr + i) * cb + c));
                    tr_bytes16(v);
                    for (int k = 0; k < 16; k++) tr_emit(v[k], dst, 8 * (c - c0 + k), tb);
                }
                if (c < c1) tr_gather(in, dst, rr, c, c1, c0, cb, tb);
            }
            if (!direct)
                for (Py_ssize_t k = 0; k < 8 * (c1 - c0); k++)
                    memcpy(out + (8 * c0 + k) * rb + r0 / 8, tile + k * tb, (size_t)tb);
        }
    }
}

TGT static int cpu_ok(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse2");
}
#endif

/* nbits: one int64 in 0..64 per row; the layout's size must be exactly dlen bytes. */
static int check_layout(Py_buffer *nbits, Py_ssize_t n, Py_ssize_t width, Py_ssize_t dlen) {
    if (nbits->len != n * 8) {
        PyErr_SetString(PyExc_ValueError, "nbits needs one int64 per row");
        return -1;
    }
    const int64_t *nb = (const int64_t *)nbits->buf;
    uint64_t total = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (nb[j] < 0 || nb[j] > 64) {
            PyErr_SetString(PyExc_ValueError, "trimmed widths are 0-64 bits");
            return -1;
        }
        total += (uint64_t)nb[j] * (uint64_t)width;
    }
    if ((uint64_t)dlen != (total + 7) / 8) {
        PyErr_SetString(PyExc_ValueError, "trimmed layout size does not match");
        return -1;
    }
    return 0;
}

static int parse_tweak(unsigned long long tweak, uint64_t *hi) {
    if (tweak >= (1ULL << 44)) {
        PyErr_SetString(PyExc_ValueError, "hash tweak out of range");
        return -1;
    }
    *hi = (uint64_t)tweak << 20;
    return 0;
}


/* The output of a kernel call: per-OT rows (`rows`, n x width) or, when `acc` is non-empty,
 * an accumulator (`acc`, period x width) fed with the words shifted by `shifts`. */
static int make_sink(sink_t *k, Py_buffer *rows, Py_buffer *acc, Py_ssize_t acc_phase,
                     Py_buffer *shifts, Py_ssize_t n, Py_ssize_t width) {
    memset(k, 0, sizeof(*k));
    if (acc->len == 0) {
        if (rows->len != n * width * 8) {
            PyErr_SetString(PyExc_ValueError, "output rows do not match");
            return -1;
        }
        k->rows = (uint64_t *)rows->buf;
        return 0;
    }
    Py_ssize_t period = acc->len / 8 / width;
    if (acc->len != period * width * 8 || acc_phase < 0 || acc_phase >= period ||
        shifts->len != n) {
        PyErr_SetString(PyExc_ValueError, "accumulator layout does not match");
        return -1;
    }
    const uint8_t *sh = (const uint8_t *)shifts->buf;
    for (Py_ssize_t j = 0; j < n; j++) {
        if (sh[j] > 63) {
            PyErr_SetString(PyExc_ValueError, "shift out of range");
            return -1;
        }
    }
    k->acc = (uint64_t *)acc->buf;
    k->acc_period = period;
    k->acc_phase = acc_phase;
    k->shifts = sh;
    return 0;
}

static PyObject *k_available(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
#ifdef PRIVFIN_AESNI
    return PyBool_FromLong(cpu_ok());
#else
    Py_RETURN_FALSE;
#endif
}

/* cot_send(key, q, delta, tweak, corr, phase, width, own, acc, acc_phase, shifts, nbits,
 *          size) -> bytes:
 * row j of the OTs uses correlation row (phase + j) mod len(corr); the sender's words go to
 * `own` (n x width) or, if `acc` is non-empty, are subtracted from it (see sink_t); the
 * trimmed message (size bytes) is returned as a new bytes object. */
static PyObject *k_cot_send(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer key, q, delta, corr, own, acc, shifts, nbits;
    unsigned long long tweak;
    Py_ssize_t width, phase, size, acc_phase;
    int pre = 0;
    if (!PyArg_ParseTuple(args, "y*y*y*Ky*nnw*w*ny*y*n|p", &key, &q, &delta, &tweak, &corr,
                          &phase, &width, &own, &acc, &acc_phase, &shifts, &nbits, &size, &pre))
        return NULL;
    PyObject *ret = NULL;
    const Py_ssize_t row = pre ? 32 : 16;
    Py_ssize_t n = q.len / row;
    Py_ssize_t period = width > 0 ? corr.len / 8 / width : 0;
    uint64_t hi = 0;
    sink_t sink;
    if (key.len != 16 || delta.len != 16 || q.len % row || width < 1 || width > (1 << 21) ||
        corr.len != period * width * 8 || (n > 0 && period < 1) || phase < 0 ||
        (period > 0 && phase >= period) || size < 0) {
        PyErr_SetString(PyExc_ValueError, "cot_send: sizes do not match");
        goto done;
    }
    if (parse_tweak(tweak, &hi) < 0 || check_layout(&nbits, n, width, size) < 0 ||
        make_sink(&sink, &own, &acc, acc_phase, &shifts, n, width) < 0)
        goto done;
#ifdef PRIVFIN_AESNI
    if (!cpu_ok()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no AES-NI");
        goto done;
    }
    ret = PyBytes_FromStringAndSize(NULL, size); /* filled below, before anyone sees it */
    if (ret == NULL) goto done;
    {
        uint8_t *dout = (uint8_t *)PyBytes_AS_STRING(ret);
        __m128i rk[11];
        Py_BEGIN_ALLOW_THREADS key_schedule((const uint8_t *)key.buf, rk);
        cot_send_rows(rk, (const uint8_t *)q.buf, (const uint8_t *)delta.buf, hi,
                      (const uint64_t *)corr.buf, period, phase, n, width, sink, dout,
                      (const int64_t *)nbits.buf, pre);
        Py_END_ALLOW_THREADS
    }
#else
    PyErr_SetString(PyExc_RuntimeError, "the OT kernel is not compiled for this platform");
#endif
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&q);
    PyBuffer_Release(&delta);
    PyBuffer_Release(&corr);
    PyBuffer_Release(&own);
    PyBuffer_Release(&acc);
    PyBuffer_Release(&shifts);
    PyBuffer_Release(&nbits);
    return ret;
}

/* cot_recv(key, t, choices, tweak, msg, width, out, acc, acc_phase, shifts, nbits):
 * the receiver's words go to `out` (n x width) or, if `acc` is non-empty, are added to it. */
static PyObject *k_cot_recv(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer key, t, choices, msg, out, acc, shifts, nbits;
    unsigned long long tweak;
    Py_ssize_t width, acc_phase;
    int pre = 0;
    if (!PyArg_ParseTuple(args, "y*y*y*Ky*nw*w*ny*y*|p", &key, &t, &choices, &tweak, &msg,
                          &width, &out, &acc, &acc_phase, &shifts, &nbits, &pre))
        return NULL;
    PyObject *ret = NULL;
    Py_ssize_t n = t.len / 16;
    uint64_t hi = 0;
    sink_t sink;
    if (key.len != 16 || t.len % 16 || choices.len != n || width < 1 || width > (1 << 21)) {
        PyErr_SetString(PyExc_ValueError, "cot_recv: sizes do not match");
        goto done;
    }
    if (parse_tweak(tweak, &hi) < 0 || check_layout(&nbits, n, width, msg.len) < 0 ||
        make_sink(&sink, &out, &acc, acc_phase, &shifts, n, width) < 0)
        goto done;
#ifdef PRIVFIN_AESNI
    if (!cpu_ok()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no AES-NI");
        goto done;
    }
    {
        __m128i rk[11];
        Py_BEGIN_ALLOW_THREADS key_schedule((const uint8_t *)key.buf, rk);
        cot_recv_rows(rk, (const uint8_t *)t.buf, (const uint8_t *)choices.buf, hi,
                      (const uint8_t *)msg.buf, msg.len, n, width, sink,
                      (const int64_t *)nbits.buf, pre);
        Py_END_ALLOW_THREADS
    }
    ret = Py_None;
    Py_INCREF(ret);
#else
    PyErr_SetString(PyExc_RuntimeError, "the OT kernel is not compiled for this platform");
#endif
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&t);
    PyBuffer_Release(&choices);
    PyBuffer_Release(&msg);
    PyBuffer_Release(&out);
    PyBuffer_Release(&acc);
    PyBuffer_Release(&shifts);
    PyBuffer_Release(&nbits);
    return ret;
}

/* words(key, rows, tweak, width, out) */
static PyObject *k_words(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer key, rows, out;
    unsigned long long tweak;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*y*Knw*", &key, &rows, &tweak, &width, &out)) return NULL;
    PyObject *ret = NULL;
    Py_ssize_t n = rows.len / 16;
    uint64_t hi = 0;
    if (key.len != 16 || rows.len % 16 || width < 1 || width > (1 << 21) ||
        out.len != n * width * 8) {
        PyErr_SetString(PyExc_ValueError, "words: sizes do not match");
        goto done;
    }
    if (parse_tweak(tweak, &hi) < 0) goto done;
#ifdef PRIVFIN_AESNI
    if (!cpu_ok()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no AES-NI");
        goto done;
    }
    {
        __m128i rk[11];
        Py_BEGIN_ALLOW_THREADS key_schedule((const uint8_t *)key.buf, rk);
        words_rows(rk, (const uint8_t *)rows.buf, hi, n, width, (uint64_t *)out.buf);
        Py_END_ALLOW_THREADS
    }
    ret = Py_None;
    Py_INCREF(ret);
#else
    PyErr_SetString(PyExc_RuntimeError, "the OT kernel is not compiled for this platform");
#endif
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&rows);
    PyBuffer_Release(&out);
    return ret;
}

/* transpose(in, rows, cols, out) */
static PyObject *k_transpose(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer in, out;
    Py_ssize_t rows, cols;
    if (!PyArg_ParseTuple(args, "y*nnw*", &in, &rows, &cols, &out)) return NULL;
    PyObject *ret = NULL;
    if (rows < 0 || cols < 0 || rows % 16 || cols % 8 || in.len != rows * (cols / 8) ||
        out.len != cols * (rows / 8)) {
        PyErr_SetString(PyExc_ValueError, "transpose: sizes do not match");
        goto done;
    }
#ifdef PRIVFIN_AESNI
    Py_BEGIN_ALLOW_THREADS transpose_rows((const uint8_t *)in.buf, (uint8_t *)out.buf, rows, cols);
    Py_END_ALLOW_THREADS
    ret = Py_None;
    Py_INCREF(ret);
#else
    PyErr_SetString(PyExc_RuntimeError, "the OT kernel is not compiled for this platform");
#endif
done:
    PyBuffer_Release(&in);
    PyBuffer_Release(&out);
    return ret;
}

static PyMethodDef methods[] = {
    {"available", k_available, METH_NOARGS, "Whether this CPU runs the kernel (AES-NI)."},
    {"cot_send", k_cot_send, METH_VARARGS, "Correlated-OT sender, trimmed corrections."},
    {"cot_recv", k_cot_recv, METH_VARARGS, "Correlated-OT receiver from trimmed corrections."},
    {"words", k_words, METH_VARARGS, "The correlation-robust hash of 16-byte rows."},
    {"transpose", k_transpose, METH_VARARGS, "Bit-matrix transpose of packed rows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ot_kernel", "AES-NI kernel of privfin.crypto.ot.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ot_kernel(void) { return PyModule_Create(&module); }
