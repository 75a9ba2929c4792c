"""Wire helpers shared by the keys and vectors of :mod:`privfin.he`: non-negative ints as
big-endian bytes, bounded small ints, the format version and the limits every decoder enforces.
"""

from __future__ import annotations

from typing import Any

from privfin.errors import DecodeError

__all__ = [
    "MAX_WIRE_BITS",
    "MAX_WIRE_CIPHERTEXTS",
    "WIRE_VERSION",
    "int_from_wire",
    "int_to_bytes",
    "small_int",
]

#: Upper bound on the number of ciphertexts accepted by ``from_wire``.
MAX_WIRE_CIPHERTEXTS = 1 << 24
#: Upper bound on ``frac_bits`` / ``bound_bits`` accepted by ``from_wire``.
MAX_WIRE_BITS = 1 << 16

WIRE_VERSION = 1


def int_to_bytes(x: int) -> bytes:
    """Big-endian minimal encoding of a non-negative int (``b"\\x00"`` for 0)."""
    return int(x).to_bytes(max(1, (int(x).bit_length() + 7) // 8), "big")


def int_from_wire(data: dict[str, Any], key: str) -> int:
    """Read a non-negative int stored as big-endian bytes (or a plain int) under ``key``."""
    value = data.get(key)
    if isinstance(value, bytes):
        if len(value) > 8192:
            raise DecodeError(f"field {key!r} is too large")
        return int.from_bytes(value, "big")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise DecodeError(f"field {key!r} must be a non-negative integer or bytes")


def small_int(data: dict[str, Any], key: str, upper: int) -> int:
    """Read an int in ``[0, upper]`` stored under ``key`` (bools refused)."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= upper:
        raise DecodeError(f"field {key!r} must be an int in [0, {upper}]")
    return value
