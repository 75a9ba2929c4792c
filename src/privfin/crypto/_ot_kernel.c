/* Optional compiled kernel of privfin.crypto.ot: the bit-matrix transpose of OT extension.
 *
 * A matrix of `rows` x `cols` bits is stored row by row as packed bytes, bit j of a row being
 * bit (j % 8) of byte j / 8 (numpy's little-endian packbits order); the transpose is stored
 * the same way. The kernel transposes 64 x 64 bit blocks held in 64 words with six masked
 * swap stages (the numpy path's algorithm), in tiles of 512 rows x 64 column bytes whose
 * transpose is assembled in a 32 KiB local buffer and written out a whole output-row segment
 * at a time (output rows are far apart: this keeps the stores from evicting each other).
 * Portable C (no intrinsics, little-endian words as numpy's uint64 view): byte-identical to
 * the numpy path of privfin.crypto.ot.transpose_bits. No I/O, no state; the
 * GIL is released while it runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TR 512 /* rows of a tile (64 output bytes per output row) */
#define TC 64  /* column bytes of a tile (512 output rows) */

/* Transpose 64 x 64 bits in place: a[i] holds row i (bit b = column b); afterwards a[k]
 * holds column k (bit i = row i). Six masked swap stages. */
static inline void transpose64(uint64_t *a) {
    static const uint64_t masks[6] = {
        0x00000000FFFFFFFFULL, 0x0000FFFF0000FFFFULL, 0x00FF00FF00FF00FFULL,
        0x0F0F0F0F0F0F0F0FULL, 0x3333333333333333ULL, 0x5555555555555555ULL,
    };
    int s = 0;
    for (int j = 32; j; j >>= 1, s++) {
        const uint64_t m = masks[s];
        for (int k = 0; k < 64; k = (k + j + 1) & ~j) {
            uint64_t t = ((a[k] >> j) ^ a[k + j]) & m;
            a[k + j] ^= t;
            a[k] ^= t << j;
        }
    }
}

/* in: rows x cb bytes; out: (8 cb) x (rows / 8) bytes; rows a multiple of 64, cb of 8.
 * Tiles of TR rows x TC column bytes: the transposed tile is built in a local buffer and
 * written out one whole output-row segment at a time. */
static void transpose(const uint8_t *in, uint8_t *out, Py_ssize_t rows, Py_ssize_t cb) {
    const Py_ssize_t ob = rows / 8; /* bytes per output row */
    static _Thread_local uint64_t tile[8 * TC][TR / 64];
    uint64_t a[64];
    for (Py_ssize_t c0 = 0; c0 < cb; c0 += TC) {
        const Py_ssize_t tc = c0 + TC < cb ? TC : cb - c0;
        for (Py_ssize_t r0 = 0; r0 < rows; r0 += TR) {
            const Py_ssize_t tr = r0 + TR < rows ? TR : rows - r0;
            for (Py_ssize_t rb = 0; rb < tr; rb += 64) {
                for (Py_ssize_t c = 0; c < tc; c += 8) {
                    const uint8_t *src = in + (r0 + rb) * cb + c0 + c;
                    for (int i = 0; i < 64; i++) memcpy(&a[i], src + i * cb, 8);
                    transpose64(a);
                    for (int k = 0; k < 64; k++) tile[8 * c + k][rb / 64] = a[k];
                }
            }
            for (Py_ssize_t k = 0; k < 8 * tc; k++)
                memcpy(out + (8 * c0 + k) * ob + r0 / 8, tile[k], (size_t)(tr / 8));
        }
    }
}

PyDoc_STRVAR(transpose_doc,
             "transpose(matrix, out, rows, col_bytes): out (8 col_bytes x rows / 8 bytes) = "
             "the bit transpose of matrix (rows x col_bytes bytes, little-endian bit order); "
             "rows a multiple of 64, col_bytes of 8.");

static PyObject *py_transpose(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer m, out;
    Py_ssize_t rows, cb;
    if (!PyArg_ParseTuple(args, "y*w*nn", &m, &out, &rows, &cb)) return NULL;
    PyObject *ret = NULL;
    if (rows < 0 || cb < 0 || rows % 64 || cb % 8 || m.len != rows * cb || out.len != rows * cb) {
        PyErr_SetString(PyExc_ValueError, "transpose: bad shape or buffer sizes");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    transpose((const uint8_t *)m.buf, (uint8_t *)out.buf, rows, cb);
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    ret = Py_None;
done:
    PyBuffer_Release(&m);
    PyBuffer_Release(&out);
    return ret;
}

static PyMethodDef methods[] = {
    {"transpose", py_transpose, METH_VARARGS, transpose_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ot_kernel", "Optional bit-matrix transpose kernel of privfin.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ot_kernel(void) { return PyModule_Create(&module); }
