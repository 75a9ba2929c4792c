"""The ristretto255 prime-order group (RFC 9496) through libsodium (``rbcl``).

Pure math: no I/O, no globals beyond the loaded library, randomness passed in.

* :func:`hash_to_group` maps bytes to a group element as ``hash_to_ristretto255`` of RFC 9380
  §6.8.2 / RFC 9496 §4.3.4: ``expand_message_xmd`` with SHA-512 and a caller-chosen domain
  separation tag (DST) gives 64 uniform bytes, which libsodium's
  ``crypto_core_ristretto255_from_hash`` (the RFC 9496 one-way map, two Elligator maps added)
  turns into an element. The discrete logarithm of the output is unknown to everyone.
* :class:`BlindingKey` is a secret scalar in ``[1, L)`` in a handle: it blinds points
  (``P -> k·P``) and can be inverted; its bytes are only readable through
  :meth:`BlindingKey.secret_bytes_for_checkpoint`, which is easy to grep for.
* :func:`scalarmult_batch` multiplies an ``(n, 32)`` array of encoded points by one scalar and
  rejects (``InvalidPointError``) any encoding that is not a canonical ristretto255 element or
  that is the identity. Every point received from another party goes through it (or through
  :func:`check_points`), so a malformed or off-curve point is refused loudly.

Security: ristretto255 has prime order ``L ≈ 2**252`` (about 126-bit security, the platform's
"ECC 128-bit" class); it has no cofactor, so there are no small-subgroup points to inject.
Decisional Diffie-Hellman is assumed hard, which is what ECDH-PSI relies on.

The batch loops call libsodium through :mod:`ctypes`, which releases the GIL during each call,
so several threads (:class:`privfin.compute.ThreadBackend`) run them on several cores.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto.random import RandomSource

__all__ = [
    "GROUP_ORDER",
    "HASH_BYTES",
    "POINT_BYTES",
    "SCALAR_BYTES",
    "BlindingKey",
    "InvalidPointError",
    "check_points",
    "expand_message_xmd_sha512",
    "hash_blind_packed",
    "hash_to_group",
    "hash_to_group_batch",
    "is_valid_point",
    "scalarmult",
    "scalarmult_batch",
]

POINT_BYTES = 32
SCALAR_BYTES = 32
HASH_BYTES = 64
#: The prime order of the group.
GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493

PointArray = npt.NDArray[np.uint8]
_IDENTITY = bytes(POINT_BYTES)


class InvalidPointError(ValueError):
    """Bytes that are not a canonical encoding of a non-identity ristretto255 element.

    Subclasses :class:`ValueError`, so a message whose ``__post_init__`` raises it decodes to a
    :class:`~privfin.errors.DecodeError`.
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


# ------------------------------------------------------------------------------ libsodium access


class _Sodium:
    """Our own ctypes view of the libsodium that ``rbcl`` bundles and initialises.

    We open the same shared object a second time (the loader returns the same handle) so that we
    can declare pointer argument types on *our* function objects, without touching rbcl's, and
    call the C functions on offsets of one contiguous buffer (measured about 1.5x faster than
    rbcl's per-call wrappers, which allocate and check on every call).
    """

    def __init__(self) -> None:
        import rbcl
        from rbcl import rbcl as _impl

        # rbcl runs sodium_init on import; a private attribute holds the library path.
        base: Any = getattr(_impl, "_sodium", None)
        name = getattr(base, "_name", None)
        if not isinstance(name, str):  # pragma: no cover - depends on rbcl internals
            raise ImportError("cannot locate rbcl's libsodium; rbcl >= 1.0 is required")
        lib = ctypes.CDLL(name)
        vp = ctypes.c_void_p
        self.smult = lib.crypto_scalarmult_ristretto255
        self.smult.argtypes = [vp, vp, vp]
        self.smult.restype = ctypes.c_int
        self.from_hash = lib.crypto_core_ristretto255_from_hash
        self.from_hash.argtypes = [vp, vp]
        self.from_hash.restype = ctypes.c_int
        self.valid = lib.crypto_core_ristretto255_is_valid_point
        self.valid.argtypes = [vp]
        self.valid.restype = ctypes.c_int
        self.rbcl = rbcl


_LIB: _Sodium | None = None


def _lib() -> _Sodium:
    global _LIB  # noqa: PLW0603 - lazily loaded library handle, immutable once set
    if _LIB is None:
        _LIB = _Sodium()
    return _LIB


# ------------------------------------------------------------------------------ hashing


def _dst_prime(dst: bytes) -> bytes:
    if not 1 <= len(dst) <= 255:
        raise ValueError("domain separation tag must be 1-255 bytes (RFC 9380 §5.3.3)")
    return dst + bytes([len(dst)])


_ZPAD = hashlib.sha512(bytes(128))  # SHA-512 state after the 128-byte zero block Z_pad


def expand_message_xmd_sha512(msg: bytes, dst: bytes, length: int = HASH_BYTES) -> bytes:
    """``expand_message_xmd`` of RFC 9380 §5.3.1 with SHA-512.

    Parameters
    ----------
    msg:
        The message.
    dst:
        Domain separation tag, 1-255 bytes.
    length:
        Output length in bytes, at most 255 * 64.
    """
    ell = -(-length // 64)
    if ell > 255 or length <= 0:
        raise ValueError("expand_message_xmd output length must be in [1, 16320]")
    dprime = _dst_prime(dst)
    h0 = _ZPAD.copy()
    h0.update(msg + length.to_bytes(2, "big") + b"\x00" + dprime)
    b0 = h0.digest()
    out = [hashlib.sha512(b0 + b"\x01" + dprime).digest()]
    for i in range(2, ell + 1):
        prev = bytes(x ^ y for x, y in zip(b0, out[-1], strict=True))
        out.append(hashlib.sha512(prev + bytes([i]) + dprime).digest())
    return b"".join(out)[:length]


def _uniform_many(items: Sequence[bytes], dst: bytes) -> bytes:
    """64 uniform bytes per item (``expand_message_xmd`` specialised to 64 bytes), joined."""
    dprime = _dst_prime(dst)
    tail = (64).to_bytes(2, "big") + b"\x00" + dprime
    one = b"\x01" + dprime
    zpad = _ZPAD.copy
    sha = hashlib.sha512
    parts: list[bytes] = []
    append = parts.append
    for msg in items:
        h = zpad()
        h.update(msg + tail)
        append(sha(h.digest() + one).digest())
    return b"".join(parts)


def hash_to_group(msg: bytes, dst: bytes) -> bytes:
    """``hash_to_ristretto255(msg)`` (RFC 9380 §6.8.2, expander SHA-512, tag ``dst``).

    Returns the 32-byte canonical encoding of the element.
    """
    uniform = expand_message_xmd_sha512(msg, dst, HASH_BYTES)
    point: bytes = _lib().rbcl.crypto_core_ristretto255_from_hash(uniform)
    return point


def hash_to_group_batch(items: Sequence[bytes], dst: bytes) -> PointArray:
    """:func:`hash_to_group` of every item, as an ``(n, 32)`` uint8 array."""
    n = len(items)
    out = np.empty((n, POINT_BYTES), dtype=np.uint8)
    if n == 0:
        return out
    uniform = _uniform_many(items, dst)
    lib = _lib()
    src = ctypes.create_string_buffer(uniform, len(uniform))
    src_addr = ctypes.addressof(src)
    dst_addr = out.ctypes.data
    fn = lib.from_hash
    for i in range(n):
        fn(dst_addr + POINT_BYTES * i, src_addr + HASH_BYTES * i)
    return out


def hash_blind_packed(
    scalar: bytes | None, data: bytes, ends: npt.ArrayLike, dst: bytes
) -> PointArray:
    """``s·H(m)`` (or ``H(m)`` if ``scalar`` is None) for messages packed in one buffer.

    Message ``i`` is ``data[ends[i-1]:ends[i]]`` (``ends[-1] == len(data)``). One pass per
    item: the SHA-512 expansion (holding the GIL for a few microseconds), then libsodium's
    ``from_hash`` and scalar multiplication (releasing it), so several threads, or a party
    thread next to this one, are not starved by long GIL-held loops. Inputs and outputs are
    contiguous buffers: no Python object per item survives the call.
    """
    bounds = np.asarray(ends, dtype=np.int64)
    n = int(bounds.shape[0])
    out = np.empty((n, POINT_BYTES), dtype=np.uint8)
    if n == 0:
        return out
    if int(bounds[-1]) != len(data):
        raise ValueError("packed messages: the last end offset must equal the buffer length")
    dprime = _dst_prime(dst)
    tail = (64).to_bytes(2, "big") + b"\x00" + dprime
    one = b"\x01" + dprime
    zpad = _ZPAD.copy
    sha = hashlib.sha512
    lib = _lib()
    from_hash = lib.from_hash
    smult = lib.smult
    tmp = ctypes.create_string_buffer(POINT_BYTES)
    t_addr = ctypes.addressof(tmp)
    d_addr = out.ctypes.data
    mv = memoryview(data)
    failed = 0
    start = 0
    if scalar is None:
        for i, stop in enumerate(bounds.tolist()):
            h = zpad()
            h.update(mv[start:stop])
            h.update(tail)
            from_hash(d_addr + POINT_BYTES * i, sha(h.digest() + one).digest())
            start = stop
        return out
    if not isinstance(scalar, bytes) or len(scalar) != SCALAR_BYTES:
        raise ValueError(f"a scalar is {SCALAR_BYTES} bytes")
    kbuf = ctypes.create_string_buffer(scalar, SCALAR_BYTES)
    k = ctypes.addressof(kbuf)
    for i, stop in enumerate(bounds.tolist()):
        h = zpad()
        h.update(mv[start:stop])
        h.update(tail)
        from_hash(t_addr, sha(h.digest() + one).digest())
        failed |= smult(d_addr + POINT_BYTES * i, k, t_addr)
        start = stop
    ctypes.memset(kbuf, 0, SCALAR_BYTES)
    if failed:  # pragma: no cover - only if a hash lands on the identity (probability 2**-252)
        raise InvalidPointError("a hashed point is the identity")
    return out


# ------------------------------------------------------------------------------ scalars and points


class BlindingKey:
    """A secret scalar ``k`` in ``[1, L)`` of ristretto255.

    It never leaves its owner: there is no ``__bytes__``, the ``repr`` hides it, and the only
    way to read it is :meth:`secret_bytes_for_checkpoint` (for the owner's private checkpoint).
    """

    __slots__ = ("_k",)

    def __init__(self, scalar: bytes) -> None:
        if not isinstance(scalar, bytes) or len(scalar) != SCALAR_BYTES:
            raise ValueError(f"a scalar is {SCALAR_BYTES} bytes")
        value = int.from_bytes(scalar, "little")
        if not 0 < value < GROUP_ORDER:
            raise ValueError("a blinding scalar must lie in [1, L)")
        self._k = scalar

    @classmethod
    def generate(cls, random: RandomSource) -> BlindingKey:
        """A uniform scalar in ``[1, L)`` from 64 random bytes reduced mod L (bias < 2**-250)."""
        while True:
            value = int.from_bytes(random.bytes(64), "little") % GROUP_ORDER
            if value:
                return cls(value.to_bytes(SCALAR_BYTES, "little"))

    @classmethod
    def from_secret_bytes(cls, data: bytes) -> BlindingKey:
        """Restore a key from :meth:`secret_bytes_for_checkpoint`."""
        return cls(bytes(data))

    def secret_bytes_for_checkpoint(self) -> bytes:
        """The secret scalar (little-endian). Only for the owner's private checkpoint store."""
        return self._k

    def inverse(self) -> BlindingKey:
        """The key ``k**-1 mod L`` (unblinds what this key blinded)."""
        value = int.from_bytes(self._k, "little")
        return BlindingKey(pow(value, -1, GROUP_ORDER).to_bytes(SCALAR_BYTES, "little"))

    def blind(self, points: PointArray) -> PointArray:
        """``k·P`` for every row of ``points``; :class:`InvalidPointError` on a bad point."""
        return scalarmult_batch(self._k, points)

    def blind_one(self, point: bytes) -> bytes:
        """``k·P`` for one encoded point."""
        return scalarmult(self._k, point)

    def __repr__(self) -> str:
        return "BlindingKey(<secret>)"


def _as_points(points: npt.ArrayLike) -> PointArray:
    arr = np.ascontiguousarray(points, dtype=np.uint8)
    if arr.ndim != 2 or arr.shape[1] != POINT_BYTES:
        raise InvalidPointError(f"points must be an (n, {POINT_BYTES}) uint8 array")
    return arr


def scalarmult(scalar: bytes, point: bytes) -> bytes:
    """``s·P`` for one point; :class:`InvalidPointError` if ``point`` is not a valid element."""
    if not isinstance(point, bytes) or len(point) != POINT_BYTES:
        raise InvalidPointError(f"a point is {POINT_BYTES} bytes")
    arr = np.frombuffer(point, dtype=np.uint8).reshape(1, POINT_BYTES)
    return scalarmult_batch(scalar, arr).tobytes()


def scalarmult_batch(scalar: bytes, points: npt.ArrayLike) -> PointArray:
    """``s·P`` for every row of an ``(n, 32)`` uint8 array of encoded points.

    Raises
    ------
    InvalidPointError
        If a row is not the canonical encoding of a ristretto255 element, or is the identity
        (libsodium refuses both); ``index`` is the first such row.
    """
    if not isinstance(scalar, bytes) or len(scalar) != SCALAR_BYTES:
        raise ValueError(f"a scalar is {SCALAR_BYTES} bytes")
    src = _as_points(points)
    n = src.shape[0]
    out = np.empty((n, POINT_BYTES), dtype=np.uint8)
    if n == 0:
        return out
    fn = _lib().smult
    kbuf = ctypes.create_string_buffer(scalar, SCALAR_BYTES)
    k = ctypes.addressof(kbuf)
    s_addr = src.ctypes.data
    d_addr = out.ctypes.data
    failed = 0
    for off in range(0, n * POINT_BYTES, POINT_BYTES):
        failed |= fn(d_addr + off, k, s_addr + off)
    if failed:
        for i in range(n):  # locate the first bad row (slow path, only on failure)
            if fn(d_addr + POINT_BYTES * i, k, s_addr + POINT_BYTES * i) != 0:
                raise InvalidPointError(
                    f"point {i} is not a valid ristretto255 element (or is the identity)", i
                )
    ctypes.memset(kbuf, 0, SCALAR_BYTES)
    return out


def is_valid_point(point: bytes) -> bool:
    """Whether ``point`` canonically encodes a non-identity ristretto255 element."""
    if not isinstance(point, bytes) or len(point) != POINT_BYTES or point == _IDENTITY:
        return False
    return bool(_lib().valid(point) == 1)


def check_points(points: npt.ArrayLike) -> PointArray:
    """Return ``points`` as an ``(n, 32)`` array if every row is a valid element, else raise
    :class:`InvalidPointError` (about 6x cheaper than a scalar multiplication per point)."""
    arr = _as_points(points)
    identity = np.flatnonzero(~arr.any(axis=1))
    if identity.size:
        raise InvalidPointError(f"point {int(identity[0])} is the identity", int(identity[0]))
    fn = _lib().valid
    base = arr.ctypes.data
    for i in range(arr.shape[0]):
        if fn(base + POINT_BYTES * i) != 1:
            raise InvalidPointError(f"point {i} is not a valid ristretto255 element", i)
    return arr
