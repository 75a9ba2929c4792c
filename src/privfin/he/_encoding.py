"""Fixed-point encoding of ints and floats into signed integers, and back.

An encoded vector is a list of Python ints ``m_i = round(x_i * 2**f)`` (``f = 0`` for ints)
together with a *declared bound*: every ``|m_i| < 2**bound_bits``. The bound is public
metadata (it travels with ciphertexts); by default it is data-independent up to a 64-bit
granularity: ``bound_bits = f + 64 * ceil(b / 64)`` where ``b`` is the bit length of the largest
integer part, so values that fit in 64 bits all get the same bound. Pass ``value_bits`` to
declare it explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from privfin.errors import ConfigError
from privfin.he.errors import OverflowDetected

__all__ = [
    "DEFAULT_FRAC_BITS",
    "Encoded",
    "ceil_log2",
    "decode_values",
    "encode_values",
    "flatten",
    "to_fixed",
]

#: Fractional bits used for floats unless told otherwise (absolute precision 2**-33 after
#: rounding to nearest).
DEFAULT_FRAC_BITS = 32

Container = Literal["list", "ndarray", "scalar"]


@dataclass(frozen=True, slots=True)
class Encoded:
    """Values encoded to signed integers with ``frac_bits`` fractional bits."""

    ints: list[int]
    is_float: bool
    container: Container
    frac_bits: int
    bound_bits: int


def ceil_log2(count: int) -> int:
    """Smallest ``k`` with ``2**k >= count`` (0 for count <= 1)."""
    return max(0, (count - 1).bit_length())


def _granular_bits(int_bits: int) -> int:
    return 64 * max(1, math.ceil(int_bits / 64))


def flatten(values: object) -> tuple[list[int | float], bool, Container]:
    if isinstance(values, np.ndarray):
        if values.ndim == 0:
            return flatten(values.item())
        if values.ndim != 1:
            raise ConfigError(f"expected a 1-D array, got shape {values.shape}")
        kind = values.dtype.kind
        if kind in "biu":
            return [int(v) for v in values.tolist()], False, "ndarray"
        if kind == "f":
            if not np.all(np.isfinite(values)):
                raise ConfigError("cannot encrypt NaN or infinite values")
            return [float(v) for v in values.tolist()], True, "ndarray"
        raise ConfigError(f"cannot encrypt an array of dtype {values.dtype}; use ints or floats")
    if isinstance(values, (bool, int, float, np.integer, np.floating)):
        nums, is_float, _ = flatten([values])
        return nums, is_float, "scalar"
    if isinstance(values, (list, tuple)):
        out: list[int | float] = []
        is_float = False
        for v in values:
            if isinstance(v, (bool, int, np.integer, np.bool_)):
                out.append(int(v))
            elif isinstance(v, (float, np.floating)):
                fv = float(v)
                if not math.isfinite(fv):
                    raise ConfigError("cannot encrypt NaN or infinite values")
                out.append(fv)
                is_float = True
            else:
                raise ConfigError(f"cannot encrypt a value of type {type(v).__name__}")
        return out, is_float, "list"
    raise ConfigError(
        f"expected a number, a list or a 1-D numpy array, got {type(values).__name__}"
    )


def to_fixed(nums: Sequence[int | float], frac_bits: int) -> list[int]:
    """Round each number to the nearest multiple of ``2**-frac_bits``; return the numerators."""
    out: list[int] = []
    for x in nums:
        if isinstance(x, int):
            out.append(x << frac_bits)
        else:
            try:
                out.append(round(math.ldexp(x, frac_bits)))
            except OverflowError:
                raise OverflowDetected(f"{x!r} * 2**{frac_bits} is too large to encode") from None
    return out


def declared_bits(ints: Sequence[int], frac_bits: int, value_bits: int | None) -> int:
    """The public bound (in bits) of encoded ``ints``: explicit or 64-bit granular."""
    largest = max((abs(m) for m in ints), default=0)
    if value_bits is not None:
        if value_bits < 0:
            raise ConfigError("value_bits must be non-negative")
        bits = value_bits + frac_bits
        if largest >= 1 << bits:
            raise OverflowDetected(
                f"a value does not fit the declared value_bits={value_bits} "
                f"(|x| must be below 2**{value_bits})"
            )
        return bits
    int_bits = max(0, largest.bit_length() - frac_bits)
    return frac_bits + _granular_bits(int_bits)


def encode_values(
    values: object, frac_bits: int | None = None, value_bits: int | None = None
) -> Encoded:
    """Encode a number, list or 1-D array. Ints keep ``frac_bits = 0``; floats use
    ``frac_bits`` (default :data:`DEFAULT_FRAC_BITS`)."""
    nums, is_float, container = flatten(values)
    if frac_bits is not None and frac_bits < 0:
        raise ConfigError("frac_bits must be non-negative")
    f = (DEFAULT_FRAC_BITS if frac_bits is None else frac_bits) if is_float else 0
    ints = to_fixed(nums, f)
    return Encoded(ints, is_float, container, f, declared_bits(ints, f, value_bits))


def decode_values(ints: Sequence[int], is_float: bool, frac_bits: int, container: str) -> Any:
    """Inverse of :func:`encode_values` (up to the rounding of floats)."""
    if is_float:
        scale = 1 << frac_bits
        floats = [m / scale for m in ints]
        if container == "scalar":
            return floats[0]
        if container == "ndarray":
            return np.array(floats, dtype=np.float64)
        return floats
    values = list(ints)
    if container == "scalar":
        return values[0]
    if container == "ndarray":
        if all(-(2**63) <= v < 2**63 for v in values):
            return np.array(values, dtype=np.int64)
        return np.array(values, dtype=object)
    return values
