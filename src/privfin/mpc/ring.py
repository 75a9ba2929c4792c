"""Arithmetic in the ring Z_2^64 and fixed-point encoding (pure math, no I/O, no randomness).

Values are numpy ``uint64`` arrays; addition and multiplication wrap modulo 2**64 exactly as
numpy's unsigned arithmetic does. A real number ``v`` is encoded with ``f`` fractional bits as
``round(v * 2**f) mod 2**64``; decoding reads the ring element as a two's-complement int64 and
divides by ``2**f``. Encodable reals lie in ``[-2**(63-f), 2**(63-f))``.

numpy has no integer BLAS, so :func:`ring_matmul` computes uint64 matrix products exactly with
float64 GEMMs on 22/21/21-bit limbs (six GEMMs, chunked along the inner dimension so every
float64 accumulation stays below 2**53 and is therefore exact). Small products use numpy's
integer ``@`` which is faster below :data:`LIMB_MATMUL_MIN_WORK` multiply-adds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "LIMB_MATMUL_MIN_WORK",
    "RING_BITS",
    "U64",
    "decode_fixed",
    "encode_fixed",
    "limb_matmul",
    "ring_matmul",
    "ring_ops",
    "to_ring",
    "to_signed",
    "u64",
]

RING_BITS = 64
U64 = npt.NDArray[np.uint64]

_MASK22 = np.uint64((1 << 22) - 1)
_MASK21 = np.uint64((1 << 21) - 1)
#: max inner dimension per chunk: (2**22 - 1) ** 2 * 512 < 2**53
_CHUNK = 512
#: m*k*n above which limb GEMMs beat numpy's integer matmul (measured on 2 cores; see
#: benchmarks/mpc.py). Below it the six GEMMs' conversion overhead dominates.
LIMB_MATMUL_MIN_WORK = 1 << 18


P = ParamSpec("P")
R = TypeVar("R")


def ring_ops(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``fn`` with numpy overflow warnings off. Wrapping modulo 2**64 is the
    intended semantics of ring arithmetic; numpy only warns about it for 0-d scalars."""

    @functools.wraps(fn)
    def inner(*args: P.args, **kwargs: P.kwargs) -> R:
        with np.errstate(over="ignore"):
            return fn(*args, **kwargs)

    return inner


def u64(value: int) -> np.uint64:
    """A Python int (any sign) as a ring scalar ``value mod 2**64``."""
    return np.uint64(int(value) % (1 << RING_BITS))


def to_ring(values: npt.ArrayLike) -> U64:
    """Integers (any integer dtype, possibly negative) as ring elements (two's complement)."""
    arr = np.asarray(values)
    if arr.dtype == np.uint64:
        return arr
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        raise TypeError(f"ring elements must be integers, got dtype {arr.dtype}")
    return np.asarray(arr.astype(np.int64)).view(np.uint64)


def to_signed(values: U64) -> npt.NDArray[np.int64]:
    """Ring elements read as two's-complement int64 (a view, no copy)."""
    return values.view(np.int64)


def encode_fixed(values: npt.ArrayLike, frac_bits: int) -> U64:
    """Encode reals as fixed-point ring elements: ``round(v * 2**frac_bits) mod 2**64``.

    Raises
    ------
    ValueError
        If a value is not finite or does not fit in ``[-2**(63-f), 2**(63-f))``.
    """
    arr = np.asarray(values, dtype=np.float64)
    scaled = np.rint(arr * float(1 << frac_bits))
    limit = float(1 << 63)
    if not np.all(np.isfinite(scaled)) or np.any(scaled >= limit) or np.any(scaled < -limit):
        raise ValueError(
            f"values must be finite and within +-2**{63 - frac_bits} to encode with "
            f"{frac_bits} fractional bits"
        )
    return np.asarray(scaled, dtype=np.float64).astype(np.int64).view(np.uint64)


def decode_fixed(values: U64, frac_bits: int) -> npt.NDArray[np.float64]:
    """Decode fixed-point ring elements to float64 (two's complement / ``2**frac_bits``)."""
    out: npt.NDArray[np.float64] = to_signed(np.asarray(values, dtype=np.uint64)).astype(
        np.float64
    ) / float(1 << frac_bits)
    return out


def _limbs(x: U64) -> tuple[npt.NDArray[np.float64], ...]:
    return (
        (x & _MASK22).astype(np.float64),
        ((x >> np.uint64(22)) & _MASK21).astype(np.float64),
        (x >> np.uint64(43)).astype(np.float64),
    )


def _exact(product: npt.NDArray[np.float64]) -> U64:
    return product.astype(np.uint64)


def limb_matmul(a: U64, b: U64) -> U64:
    """Exact ``a @ b mod 2**64`` for 2-D uint64 matrices with six float64 GEMMs.

    Each operand is split into limbs of 22, 21 and 21 bits (offsets 0, 22, 43); limb products at
    offsets >= 64 vanish modulo 2**64, so six of the nine GEMMs are needed. Every limb product is
    below 2**44 and at most 512 of them are summed per GEMM (longer inner dimensions are
    chunked), so each float64 result is an exact integer below 2**53.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"cannot multiply matrices of shapes {a.shape} and {b.shape}")
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.uint64)
    for start in range(0, max(k, 1), _CHUNK):
        stop = min(k, start + _CHUNK)
        if stop <= start:
            break
        a0, a1, a2 = _limbs(np.ascontiguousarray(a[:, start:stop]))
        b0, b1, b2 = _limbs(np.ascontiguousarray(b[start:stop, :]))
        out += _exact(a0 @ b0)
        out += (_exact(a0 @ b1) + _exact(a1 @ b0)) << np.uint64(22)
        out += (_exact(a0 @ b2) + _exact(a2 @ b0)) << np.uint64(43)
        out += _exact(a1 @ b1) << np.uint64(44)
    return out


def ring_matmul(a: U64, b: U64, *, method: str = "auto") -> U64:
    """``a @ b`` in Z_2^64 for uint64 arrays of 1 or 2 dimensions (numpy ``@`` semantics).

    Parameters
    ----------
    method:
        ``"limbs"`` (float64 BLAS, exact), ``"numpy"`` (integer ``@``) or ``"auto"`` (limbs when
        ``m*k*n >= LIMB_MATMUL_MIN_WORK``).
    """
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    if a2.ndim != 2 or b2.ndim != 2:
        raise ValueError("ring_matmul supports 1-D and 2-D operands")
    work = a2.shape[0] * a2.shape[1] * b2.shape[1]
    use_limbs = method == "limbs" or (method == "auto" and work >= LIMB_MATMUL_MIN_WORK)
    if method not in ("auto", "limbs", "numpy"):
        raise ValueError(f"unknown matmul method {method!r}")
    out: Any = limb_matmul(a2, b2) if use_limbs else a2 @ b2
    if a.ndim == 1 and b.ndim == 1:
        return np.asarray(out.reshape(()), dtype=np.uint64)
    if a.ndim == 1:
        return np.asarray(out.reshape(-1), dtype=np.uint64)
    if b.ndim == 1:
        return np.asarray(out.reshape(-1), dtype=np.uint64)
    return np.asarray(out, dtype=np.uint64)
