"""Commutative blinding on Curve25519 u-coordinates (X25519, RFC 7748) with an Elligator 2
hash (RFC 9380), for ECDH-PSI.

Pure math: no I/O, randomness passed in. Two interchangeable paths give byte-identical
results and accept or reject exactly the same inputs:

* the **pure path**: OpenSSL's X25519 through ``cryptography`` (one call per point), with
  ``gmpy2`` for the hash and the point checks;
* the optional **compiled kernel** ``privfin.crypto._x25519_kernel`` (C, AVX-512 IFMA, eight
  points per vector; built by ``pip install`` where a C compiler exists, used only if the CPU
  has AVX-512 IFMA), for the batch scalar multiplication. :data:`KERNEL` says whether it is
  in use; every batch function takes ``kernel=None`` (automatic), ``True`` or ``False``.

Measured on the 2-vCPU benchmark machine (one core, µs per point, noisy): OpenSSL X25519 42,
kernel 11, libsodium X25519 53, libsodium ristretto255 61 (SPEC.md §2).

* :func:`hash_to_u_packed` maps messages to u-coordinates: ``hash_to_field`` of RFC 9380 §5.2
  (``expand_message_xmd`` with SHA-512, 48 bytes, big-endian, mod p) followed by
  ``map_to_curve_elligator2`` for curve25519 (§6.7.1, Z = 2). This is the suite
  ``curve25519_XMD:SHA-512_ELL2_NU_`` (``encode_to_curve``) *before* its ``clear_cofactor``
  step: :func:`clear_cofactor_u` gives the RFC's output (used by the test vectors). The
  cofactor does not need clearing here because every X25519 scalar is clamped to a multiple
  of 8, so the first blinding already lands in the prime-order subgroup.
* :class:`X25519Key` is a 32-byte secret; ``blind`` computes ``X25519(k, u)``, that is the
  u-coordinate of ``clamp(k)·P``. Since multiplication by integers commutes,
  ``X25519(a, X25519(b, u)) == X25519(b, X25519(a, u))``.
* :func:`scalarmult_batch` rejects (``InvalidPointError``) any row that is not a canonical
  u-coordinate (top bit set, or ``u >= p``), that is not on the curve (a point of the twist),
  or whose product is the neutral element (a point of small order).

Security: the prime-order subgroup has order ``L ≈ 2**252`` (about 126-bit security against
Pollard rho, the platform's "ECC 128-bit" class). Clamped scalars take ``2**251`` distinct
values modulo ``L``, half the group: at most one bit of DDH advantage is lost (standard for
X25519). Decisional Diffie-Hellman in the prime-order subgroup is what ECDH-PSI relies on.
"""

from __future__ import annotations

import hashlib
from typing import Any

import gmpy2
import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from privfin.crypto.random import RandomSource

__all__ = [
    "FIELD_PRIME",
    "KERNEL",
    "POINT_BYTES",
    "SCALAR_BYTES",
    "InvalidPointError",
    "X25519Key",
    "clear_cofactor_u",
    "hash_blind_packed",
    "hash_to_field",
    "hash_to_u",
    "hash_to_u_packed",
    "is_on_curve",
    "map_to_curve_u",
    "scalarmult",
    "scalarmult_batch",
]

POINT_BYTES = 32
SCALAR_BYTES = 32
#: The field prime 2**255 - 19.
FIELD_PRIME = 2**255 - 19
_A = 486662
_P = gmpy2.mpz(FIELD_PRIME)
_MA = gmpy2.mpz(FIELD_PRIME - _A)  # -A mod p
#: Bytes of ``hash_to_field`` per element (RFC 9380: ceil((ceil(log2 p) + k) / 8), k = 128).
FIELD_HASH_BYTES = 48

U8 = npt.NDArray[np.uint8]


def _load_kernel() -> Any:
    try:
        from privfin.crypto import _x25519_kernel  # type: ignore[attr-defined]
    except ImportError:  # not built (no compiler at install time): the pure path
        return None
    return _x25519_kernel if _x25519_kernel.available() else None


_KERNEL: Any = _load_kernel()
#: Whether the compiled kernel is built and this CPU runs it.
KERNEL: bool = _KERNEL is not None


def _use_kernel(kernel: bool | None) -> bool:
    if kernel is None:
        return KERNEL
    if kernel and not KERNEL:
        raise RuntimeError("the compiled X25519 kernel is not built or this CPU lacks it")
    return kernel


class InvalidPointError(ValueError):
    """Bytes that are not a canonical u-coordinate of a Curve25519 point of large order.

    Subclasses :class:`ValueError` (like :class:`privfin.crypto.ristretto.InvalidPointError`);
    ``index`` is the first offending row of a batch.
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


# ------------------------------------------------------------------------------ hashing


def _dst_prime(dst: bytes) -> bytes:
    if not 1 <= len(dst) <= 255:
        raise ValueError("domain separation tag must be 1-255 bytes (RFC 9380 §5.3.3)")
    return dst + bytes([len(dst)])


_ZPAD = hashlib.sha512(bytes(128))  # SHA-512 state after the 128-byte zero block Z_pad


def hash_to_field(msg: bytes, dst: bytes) -> int:
    """``hash_to_field(msg, 1)`` of RFC 9380 §5.2 for GF(2**255 - 19): ``expand_message_xmd``
    (SHA-512) to 48 bytes, read big-endian, reduced mod p."""
    dprime = _dst_prime(dst)
    h = _ZPAD.copy()
    h.update(msg + FIELD_HASH_BYTES.to_bytes(2, "big") + b"\x00" + dprime)
    b1 = hashlib.sha512(h.digest() + b"\x01" + dprime).digest()
    return int.from_bytes(b1[:FIELD_HASH_BYTES], "big") % FIELD_PRIME


def map_to_curve_u(t: int) -> int:
    """u-coordinate of ``map_to_curve_elligator2(t)`` for curve25519 (RFC 9380 §6.7.1, Z = 2).

    ``x1 = -A / (1 + 2t²)``; ``u = x1`` if ``x1³ + A·x1² + x1`` is a square, else
    ``-x1 - A``. (``1 + 2t²`` is never 0: ``-1/2`` is not a square mod p.)
    """
    tv = gmpy2.mpz(t)
    x1 = _MA * gmpy2.invert(2 * tv * tv + 1, _P) % _P
    gx1 = x1 * (x1 * (x1 + _A) + 1) % _P
    if gmpy2.jacobi(gx1, _P) == -1:
        return int((_MA - x1) % _P)
    return int(x1)


def hash_to_u(msg: bytes, dst: bytes) -> bytes:
    """``map_to_curve_u(hash_to_field(msg))`` as 32 little-endian bytes."""
    return map_to_curve_u(hash_to_field(msg, dst)).to_bytes(POINT_BYTES, "little")


def _hash_to_field_packed(data: bytes, bounds: list[int], dst: bytes) -> bytes:
    """:func:`hash_to_field` of every packed message, as 32 little-endian bytes each."""
    dprime = _dst_prime(dst)
    tail = FIELD_HASH_BYTES.to_bytes(2, "big") + b"\x00" + dprime
    one = b"\x01" + dprime
    zpad = _ZPAD.copy
    sha = hashlib.sha512
    mv = memoryview(data)
    p = FIELD_PRIME
    frombytes = int.from_bytes
    parts: list[bytes] = []
    append = parts.append
    start = 0
    for stop in bounds:
        h = zpad()
        h.update(mv[start:stop])
        h.update(tail)
        t = frombytes(sha(h.digest() + one).digest()[:48], "big") % p
        append(t.to_bytes(POINT_BYTES, "little"))
        start = stop
    return b"".join(parts)


def hash_to_u_packed(
    data: bytes, ends: npt.ArrayLike, dst: bytes, *, kernel: bool | None = None
) -> U8:
    """:func:`hash_to_u` of messages packed in one buffer (message ``i`` is
    ``data[ends[i-1]:ends[i]]``), as an ``(n, 32)`` uint8 array; the map runs in the kernel if
    ``kernel`` is true (or None and :data:`KERNEL`), else in ``gmpy2``."""
    bounds = _check_bounds(data, ends)
    n = len(bounds)
    if n == 0:
        return np.empty((0, POINT_BYTES), dtype=np.uint8)
    if _use_kernel(kernel):
        result = np.empty((n, POINT_BYTES), dtype=np.uint8)
        _KERNEL.elligator_batch(_hash_to_field_packed(data, bounds, dst), result)
        return result
    out = bytearray(POINT_BYTES * n)
    dprime = _dst_prime(dst)
    tail = FIELD_HASH_BYTES.to_bytes(2, "big") + b"\x00" + dprime
    one = b"\x01" + dprime
    zpad = _ZPAD.copy
    sha = hashlib.sha512
    mv = memoryview(data)
    p, ma, a = _P, _MA, _A
    invert, jacobi, mpz = gmpy2.invert, gmpy2.jacobi, gmpy2.mpz
    frombytes = int.from_bytes
    start = 0
    for i, stop in enumerate(bounds):
        h = zpad()
        h.update(mv[start:stop])
        h.update(tail)
        t = mpz(frombytes(sha(h.digest() + one).digest()[:48], "big")) % p
        x1 = ma * invert(2 * t * t + 1, p) % p
        if jacobi(x1 * (x1 * (x1 + a) + 1) % p, p) == -1:
            x1 = (ma - x1) % p
        out[POINT_BYTES * i : POINT_BYTES * (i + 1)] = int(x1).to_bytes(POINT_BYTES, "little")
        start = stop
    return np.frombuffer(out, dtype=np.uint8).reshape(n, POINT_BYTES)


def clear_cofactor_u(u: int) -> int:
    """u-coordinate of ``8·P`` for a point ``P`` with u-coordinate ``u`` (three x-only
    doublings, RFC 7748 formulas); 0 for a point of order dividing 8."""
    x, z = gmpy2.mpz(u), gmpy2.mpz(1)
    a24 = (_A - 2) // 4
    for _ in range(3):
        s, d = (x + z) ** 2 % _P, (x - z) ** 2 % _P
        e = (s - d) % _P
        x, z = s * d % _P, e * (s + a24 * e) % _P
    if z == 0:
        return 0
    return int(x * gmpy2.invert(z, _P) % _P)


def _check_bounds(data: bytes, ends: npt.ArrayLike) -> list[int]:
    bounds = np.asarray(ends, dtype=np.int64)
    if bounds.ndim != 1:
        raise ValueError("packed messages: ends must be one-dimensional")
    if bounds.size and int(bounds[-1]) != len(data):
        raise ValueError("packed messages: the last end offset must equal the buffer length")
    out: list[int] = bounds.tolist()
    return out


# ------------------------------------------------------------------------------ keys and points


class X25519Key:
    """A 32-byte X25519 secret ``k`` (used clamped, as RFC 7748 prescribes).

    It never leaves its owner: no ``__bytes__``, a ``repr`` that hides it, and the only
    accessor is :meth:`secret_bytes_for_checkpoint` (for the owner's private checkpoint).
    """

    __slots__ = ("_k",)

    def __init__(self, scalar: bytes) -> None:
        if not isinstance(scalar, bytes) or len(scalar) != SCALAR_BYTES:
            raise ValueError(f"an X25519 secret is {SCALAR_BYTES} bytes")
        self._k = scalar

    @classmethod
    def generate(cls, random: RandomSource) -> X25519Key:
        """32 uniform bytes from ``random``."""
        return cls(random.bytes(SCALAR_BYTES))

    @classmethod
    def from_secret_bytes(cls, data: bytes) -> X25519Key:
        """Restore a key from :meth:`secret_bytes_for_checkpoint`."""
        return cls(bytes(data))

    def secret_bytes_for_checkpoint(self) -> bytes:
        """The secret bytes. Only for the owner's private checkpoint store."""
        return self._k

    def blind(self, points: npt.ArrayLike) -> U8:
        """``X25519(k, u)`` for every row; :class:`InvalidPointError` on a bad point."""
        return scalarmult_batch(self._k, points)

    def __repr__(self) -> str:
        return "X25519Key(<secret>)"


def _private(scalar: bytes) -> Any:
    if not isinstance(scalar, bytes) or len(scalar) != SCALAR_BYTES:
        raise ValueError(f"an X25519 secret is {SCALAR_BYTES} bytes")
    return X25519PrivateKey.from_private_bytes(scalar)


def _as_points(points: npt.ArrayLike) -> U8:
    arr = np.ascontiguousarray(points, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != POINT_BYTES:
        raise InvalidPointError(f"points must be an (n, {POINT_BYTES}) uint8 array")
    return arr


def _first_noncanonical(arr: U8) -> int | None:
    """Index of the first row that is not a canonical u (top bit set, or ``u >= p``)."""
    top = arr[:, 31]
    bad = top >= 0x80
    # u >= p = 2**255 - 19 (with the top bit clear): bytes 0x7f, 30 x 0xff, then >= 0xed.
    bad |= (top == 0x7F) & (arr[:, 1:31] == 0xFF).all(axis=1) & (arr[:, 0] >= 0xED)
    where = np.flatnonzero(bad)
    return int(where[0]) if where.size else None


def is_on_curve(u: int) -> bool:
    """Whether ``u`` (in ``[0, p)``) is the u-coordinate of a point of curve25519 (rather
    than of its quadratic twist): ``u³ + A·u² + u`` is a square (or zero)."""
    x = gmpy2.mpz(u)
    return bool(gmpy2.jacobi(x * (x * (x + _A) + 1) % _P, _P) != -1)


def scalarmult_batch(scalar: bytes, points: npt.ArrayLike, *, kernel: bool | None = None) -> U8:
    """``X25519(scalar, u)`` for every row of an ``(n, 32)`` uint8 array of u-coordinates
    (through the compiled kernel if ``kernel`` is true, or is None and :data:`KERNEL`).

    Raises
    ------
    InvalidPointError
        If a row is not canonical (top bit set, or ``u >= p``), is not on the curve (a twist
        point), or has small order (the product is the neutral element); ``index`` is the
        first such row.
    """
    sk = _private(scalar)
    src = _as_points(points)
    n = src.shape[0]
    if n == 0:
        return np.empty((0, POINT_BYTES), dtype=np.uint8)
    bad = _first_noncanonical(src)
    if bad is not None:
        raise InvalidPointError(f"point {bad} is not a canonical u-coordinate", bad)
    if _use_kernel(kernel):
        return _kernel_batch(scalar, src)
    raw = src.tobytes()
    out = bytearray(POINT_BYTES * n)
    exchange = sk.exchange
    from_public = X25519PublicKey.from_public_bytes
    p, a = _P, _A
    jacobi, mpz, frombytes = gmpy2.jacobi, gmpy2.mpz, int.from_bytes
    for i in range(n):
        lo = POINT_BYTES * i
        u = raw[lo : lo + POINT_BYTES]
        x = mpz(frombytes(u, "little"))
        if jacobi(x * (x * (x + a) + 1) % p, p) == -1:
            raise InvalidPointError(f"point {i} is not on curve25519 (a twist point)", i)
        try:
            out[lo : lo + POINT_BYTES] = exchange(from_public(u))
        except ValueError:  # OpenSSL refuses an all-zero shared secret
            raise InvalidPointError(f"point {i} has small order", i) from None
    return np.frombuffer(out, dtype=np.uint8).reshape(n, POINT_BYTES)


def _kernel_batch(scalar: bytes, src: U8) -> U8:
    """The kernel's products, with the pure path's checks in the same order: the first row
    that is a twist point or has small order (all-zero product) is reported."""
    n = src.shape[0]
    out = np.empty((n, POINT_BYTES), dtype=np.uint8)
    twist = np.empty(n, dtype=np.uint8)
    _KERNEL.x25519_batch(scalar, src, out, twist)
    bad = (twist != 0) | ~out.any(axis=1)
    where = np.flatnonzero(bad)
    if where.size:
        i = int(where[0])
        if twist[i]:
            raise InvalidPointError(f"point {i} is not on curve25519 (a twist point)", i)
        raise InvalidPointError(f"point {i} has small order", i)
    return out


def scalarmult(scalar: bytes, point: bytes) -> bytes:
    """``X25519(scalar, u)`` for one u-coordinate (checked as in :func:`scalarmult_batch`)."""
    if not isinstance(point, bytes) or len(point) != POINT_BYTES:
        raise InvalidPointError(f"a point is {POINT_BYTES} bytes")
    arr = np.frombuffer(point, dtype=np.uint8).reshape(1, POINT_BYTES)
    return scalarmult_batch(scalar, arr).tobytes()


def hash_blind_packed(
    scalar: bytes | None,
    data: bytes,
    ends: npt.ArrayLike,
    dst: bytes,
    *,
    kernel: bool | None = None,
) -> U8:
    """``X25519(scalar, H(m))`` (or ``H(m)`` if ``scalar`` is None) for packed messages. Pure
    path: one pass per item (hash, map, multiply); with the kernel: the hashes to the field,
    then two kernel calls for the batch (map, multiply). No Python object per item is kept."""
    if scalar is None:
        return hash_to_u_packed(data, ends, dst, kernel=kernel)
    sk = _private(scalar)
    if _use_kernel(kernel):
        return _kernel_batch(scalar, hash_to_u_packed(data, ends, dst, kernel=True))
    bounds = _check_bounds(data, ends)
    n = len(bounds)
    if n == 0:
        return np.empty((0, POINT_BYTES), dtype=np.uint8)
    out = bytearray(POINT_BYTES * n)
    dprime = _dst_prime(dst)
    tail = FIELD_HASH_BYTES.to_bytes(2, "big") + b"\x00" + dprime
    one = b"\x01" + dprime
    zpad = _ZPAD.copy
    sha = hashlib.sha512
    mv = memoryview(data)
    p, ma, a = _P, _MA, _A
    invert, jacobi, mpz = gmpy2.invert, gmpy2.jacobi, gmpy2.mpz
    frombytes = int.from_bytes
    exchange = sk.exchange
    from_public = X25519PublicKey.from_public_bytes
    start = 0
    for i, stop in enumerate(bounds):
        h = zpad()
        h.update(mv[start:stop])
        h.update(tail)
        t = mpz(frombytes(sha(h.digest() + one).digest()[:48], "big")) % p
        x1 = ma * invert(2 * t * t + 1, p) % p
        if jacobi(x1 * (x1 * (x1 + a) + 1) % p, p) == -1:
            x1 = (ma - x1) % p
        try:
            out[POINT_BYTES * i : POINT_BYTES * (i + 1)] = exchange(
                from_public(int(x1).to_bytes(POINT_BYTES, "little"))
            )
        except ValueError:  # pragma: no cover - a hash of small order (8 of 2**254 points)
            raise InvalidPointError("a hashed point has small order", i) from None
        start = stop
    return np.frombuffer(out, dtype=np.uint8).reshape(n, POINT_BYTES)
