"""Arithmetic in GF(2^128) for VOLE and OKVS values (pure math, no I/O).

The field is ``GF(2)[x] / (x^128 + x^7 + x^2 + x + 1)``. An element is 16 bytes, the
little-endian encoding of a 128-bit integer whose bit ``j`` is the coefficient of ``x^j``
(no bit reflection, unlike GCM's convention); vectors are ``(n, 16)`` uint8 arrays. Addition
is XOR.

* :func:`mul`, :func:`inv`, :func:`power` — one element at a time on Python integers, the
  reference (shift-and-add, then reduction).
* :func:`mul_scalar` — a vector times one element: in the optional compiled kernel
  src/privfin/crypto/_vole_kernel.c (PCLMULQDQ, used when the CPU has it: :data:`KERNEL`), or
  in numpy with sixteen 256-entry tables (``T_j[v] = s·v·x^(8j)``, the product is the XOR of
  ``T_j[byte_j]`` by linearity). Both give the same bytes (tested).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BYTES",
    "KERNEL",
    "MODULUS",
    "add",
    "combine_bits",
    "inv",
    "mul",
    "mul_scalar",
    "power",
    "times_x",
    "to_int",
]

#: Bytes of an element.
BYTES = 16
#: The reduction polynomial ``x^128 + x^7 + x^2 + x + 1`` as an integer.
MODULUS = (1 << 128) | 0x87
_MASK = (1 << 128) - 1

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]


def _load_kernel() -> Any:
    try:
        from privfin.crypto import _vole_kernel  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _vole_kernel if _vole_kernel.pclmul_available() else None


_KERNEL: Any = _load_kernel()
#: Whether the compiled PCLMULQDQ kernel is built and this CPU runs it.
KERNEL = _KERNEL is not None


def _use_kernel(kernel: bool | None) -> bool:
    if kernel is None:
        return KERNEL
    if kernel and not KERNEL:
        raise RuntimeError("the compiled GF(2^128) kernel is not built or this CPU lacks PCLMUL")
    return kernel


def _check(a: int) -> None:
    if not 0 <= a <= _MASK:
        raise ValueError("a GF(2^128) element is an integer in [0, 2^128)")


def add(a: int, b: int) -> int:
    """``a + b`` (= ``a - b``): XOR."""
    _check(a)
    _check(b)
    return a ^ b


def mul(a: int, b: int) -> int:
    """``a · b``: carry-less product, then reduction by :data:`MODULUS`."""
    _check(a)
    _check(b)
    p = 0
    while b:
        low = b & -b
        p ^= a << (low.bit_length() - 1)
        b ^= low
    for j in range(p.bit_length() - 1, 127, -1):
        if p >> j & 1:
            p ^= MODULUS << (j - 128)
    return p


def power(a: int, e: int) -> int:
    """``a^e`` for ``e >= 0`` (square and multiply)."""
    _check(a)
    if e < 0:
        raise ValueError("the exponent must be non-negative")
    r = 1
    while e:
        if e & 1:
            r = mul(r, a)
        a = mul(a, a)
        e >>= 1
    return r


def inv(a: int) -> int:
    """``a^-1 = a^(2^128 - 2)`` for ``a != 0``."""
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in GF(2^128)")
    return power(a, (1 << 128) - 2)


def to_int(element: npt.ArrayLike) -> int:
    """The integer of one 16-byte element."""
    return int.from_bytes(np.asarray(element, dtype=np.uint8).tobytes(), "little")


def _tables(s: int) -> U64:
    """``(16, 256, 2)`` uint64: ``T[j, v] = s · v · x^(8j)`` (``v`` a byte)."""
    basis = []
    e = s
    for _ in range(128):
        basis.append(e)
        e <<= 1
        if e >> 128:
            e ^= MODULUS
    words = np.array([[b & (2**64 - 1), b >> 64] for b in basis], dtype=np.uint64)
    t = np.zeros((16, 256, 2), dtype=np.uint64)
    for j in range(16):
        for bit in range(8):
            lo = 1 << bit
            t[j, lo : 2 * lo] = t[j, :lo] ^ words[8 * j + bit]
    return t


def mul_scalar(vec: npt.ArrayLike, scalar: int, *, kernel: bool | None = None) -> U8:
    """``(n, 16)`` uint8: every element of ``vec`` (``(n, 16)`` uint8) times ``scalar``."""
    _check(scalar)
    v = np.ascontiguousarray(vec, dtype=np.uint8)
    if v.ndim != 2 or v.shape[1] != BYTES:
        raise ValueError(f"vec must be an (n, {BYTES}) uint8 array")
    out = np.empty_like(v)
    if _use_kernel(kernel):
        _KERNEL.gf128_mul_scalar(v, scalar.to_bytes(BYTES, "little"), out)
        return out
    t = _tables(scalar)
    acc = out.view(np.uint64)
    step = 1 << 16
    for s in range(0, v.shape[0], step):
        chunk = v[s : s + step]
        a = acc[s : s + step]
        a[...] = t[0][chunk[:, 0]]
        for j in range(1, BYTES):
            a ^= t[j][chunk[:, j]]
    return out


def times_x(vec: npt.ArrayLike) -> U8:
    """``(n, 16)`` uint8: every element times ``x`` (a shift and a conditional reduction)."""
    v = np.ascontiguousarray(vec, dtype=np.uint8)
    if v.ndim != 2 or v.shape[1] != BYTES:
        raise ValueError(f"vec must be an (n, {BYTES}) uint8 array")
    w = v.view(np.uint64)
    out = np.empty_like(w)
    top = w[:, 1] >> np.uint64(63)
    out[:, 1] = (w[:, 1] << np.uint64(1)) | (w[:, 0] >> np.uint64(63))
    out[:, 0] = (w[:, 0] << np.uint64(1)) ^ (top * np.uint64(0x87))
    return out.view(np.uint8)


def combine_bits(rows: npt.ArrayLike) -> U8:
    """``(n, 16)`` uint8: ``Σ_k rows[:, k] · x^k`` for ``rows`` of shape ``(n, 128, 16)`` (Horner
    from ``k = 127`` down). Turns 128 correlated OTs ``t_k = q_k + r_k·Δ`` into one VOLE
    correlation ``Σ t_k x^k = Σ q_k x^k + Δ · Σ r_k x^k``."""
    r = np.ascontiguousarray(rows, dtype=np.uint8)
    if r.ndim != 3 or r.shape[1:] != (128, BYTES):
        raise ValueError("rows must be an (n, 128, 16) uint8 array")
    acc = r[:, 127].copy()
    for k in range(126, -1, -1):
        acc = times_x(acc)
        acc ^= r[:, k]
    return acc
