"""Oblivious transfer: base OTs over ristretto255 and IKNP OT extension (pure math, no I/O).

Semi-honest, computational security parameter ``KAPPA = 128``, statistical ``STAT = 40`` (see
src/privfin/crypto/SPEC.md). Messages are returned and accepted as numpy arrays or
bytes; a protocol driver (:mod:`privfin.mpc.ot`) carries them between parties.

* **Base OT** (Chou–Orlandi "Simplest OT" over ristretto255): the sender publishes
  ``A = a·G``; for choice ``c`` the receiver sends ``B = b·G + c·A``; the sender's keys are
  ``k0 = H(A, B, i, a·B)`` and ``k1 = H(A, B, i, a·(B − A))``, the receiver's
  ``k_c = H(A, B, i, b·A)``. Every received point goes through the checks of
  :mod:`privfin.crypto.ristretto` (canonical encoding, not the identity).
* **PRG** (:class:`RowPrg`): one AES-128-CTR stream per 16-byte seed; each call expands every
  seed by a whole buffer (one ``update_into`` per seed and buffer, never per block).
* **Correlation-robust hash** (:class:`CrHash`): the tweakable circular-correlation-robust
  hash of Guo–Katz–Wang–Yu (2020), ``H(x, i) = π(π(x) ⊕ i) ⊕ π(x)`` with ``π`` AES-128 under
  a key both parties agree on; two ECB calls over the whole buffer.
* **Bit-matrix transpose** (:func:`transpose_bits`): 64 x 64 blocks transposed on uint64
  words with six vectorised swap stages, in column chunks that stay in cache.
* **IKNP extension** (:class:`IknpReceiver`, :class:`IknpSender`): from ``KAPPA`` base OTs
  (with the roles reversed), any number of OTs: the receiver sends
  ``u_i = G(k_i^0) ⊕ G(k_i^1) ⊕ r`` (``KAPPA`` rows of ``m`` bits); the sender, holding
  ``s`` and ``k_i^{s_i}``, computes ``q_i = G(k_i^{s_i}) ⊕ s_i·u_i``; after transposing,
  ``q_j = t_j ⊕ r_j·s``. Random OT: the sender's messages are ``H(q_j)``, ``H(q_j ⊕ s)``,
  the receiver's ``H(t_j)``. Correlated OT over Z_2^64 (:func:`cot_send`,
  :func:`cot_receive`): the sender sends ``d_j = H(q_j) − H(q_j ⊕ s) + Δ_j`` and keeps
  ``H(q_j)``; the receiver outputs ``H(t_j) + r_j·d_j = H(q_j) + r_j·Δ_j``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privfin.crypto import ristretto
from privfin.crypto.random import RandomSource

__all__ = [
    "KAPPA",
    "KERNEL",
    "KEY_BYTES",
    "STAT",
    "BaseOtReceiver",
    "BaseOtSender",
    "CrHash",
    "IknpReceiver",
    "IknpSender",
    "RowPrg",
    "TrimmedLayoutError",
    "chosen_receive",
    "chosen_send",
    "cot_receive",
    "cot_receive_trimmed",
    "cot_send",
    "cot_send_trimmed",
    "pad_count",
    "rot_receive",
    "rot_send",
    "transpose_bits",
    "trim_words",
    "trimmed_layout",
    "untrim_words",
]

#: Computational security parameter: base OTs, columns of the extension matrix.
KAPPA = 128
#: Statistical security parameter (not used by semi-honest IKNP; see src/privfin/crypto/SPEC.md).
STAT = 40
#: Bytes of a base-OT key, a PRG seed and a row of the transposed extension matrix.
KEY_BYTES = 16

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]

_BASE_DST = b"privfin.ot.base.v1"


def _load_kernel() -> Any:
    try:
        from privfin.crypto import _ot_kernel  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _ot_kernel if _ot_kernel.available() else None


_KERNEL: Any = _load_kernel()
#: Whether the compiled AES-NI kernel (``privfin.crypto._ot_kernel``) is built and this CPU
#: runs it. The numpy path gives byte-identical results.
KERNEL = _KERNEL is not None


def _use_kernel(kernel: bool | None) -> bool:
    if kernel is None:
        return KERNEL
    if kernel and not KERNEL:
        raise RuntimeError("the compiled OT kernel is not built or this CPU lacks AES-NI")
    return kernel


# ------------------------------------------------------------------------------ base OT


def _random_scalar(random: RandomSource) -> bytes:
    import rbcl

    while True:
        s: bytes = rbcl.crypto_core_ristretto255_scalar_reduce(random.bytes(64))
        if any(s):
            return s


def _base_key(a_point: bytes, b_point: bytes, index: int, shared: bytes) -> bytes:
    h = hashlib.sha256(_BASE_DST)
    h.update(a_point + b_point + index.to_bytes(4, "big") + shared)
    return h.digest()[:KEY_BYTES]


class BaseOtSender:
    """Sender of ``count`` base OTs (Simplest OT): gets two random 16-byte keys per OT.

    Security (semi-honest, random oracle, CDH in ristretto255): the receiver learns nothing
    about the key it did not choose; the sender learns nothing about the choices (``B`` is a
    uniform group element whatever ``c``)."""

    def __init__(self, random: RandomSource) -> None:
        import rbcl

        self._a = _random_scalar(random)
        self.point: bytes = rbcl.crypto_scalarmult_ristretto255_base(self._a)

    def keys(self, reply: npt.ArrayLike) -> tuple[U8, U8]:
        """The keys ``(k0, k1)`` (each ``(count, 16)`` uint8) from the receiver's points.

        Raises
        ------
        ristretto.InvalidPointError
            If a point is not a canonical non-identity element, or equals ``A`` (then
            ``B − A`` would be the identity).
        """
        import rbcl

        pts = ristretto.check_points(reply)
        n = pts.shape[0]
        k0 = np.empty((n, KEY_BYTES), dtype=np.uint8)
        k1 = np.empty((n, KEY_BYTES), dtype=np.uint8)
        for i in range(n):
            b = pts[i].tobytes()
            if b == self.point:
                raise ristretto.InvalidPointError(f"base-OT point {i} equals the sender's A", i)
            p0 = ristretto.scalarmult(self._a, b)
            p1 = ristretto.scalarmult(self._a, rbcl.crypto_core_ristretto255_sub(b, self.point))
            k0[i] = np.frombuffer(_base_key(self.point, b, i, p0), dtype=np.uint8)
            k1[i] = np.frombuffer(_base_key(self.point, b, i, p1), dtype=np.uint8)
        return k0, k1


class BaseOtReceiver:
    """Receiver of base OTs with the given choice bits (0/1 array)."""

    def __init__(self, random: RandomSource, choices: npt.ArrayLike) -> None:
        self.choices = np.asarray(choices, dtype=np.uint8)
        if self.choices.ndim != 1 or np.any(self.choices > 1):
            raise ValueError("base-OT choices must be a flat array of bits")
        self._random = random
        self._scalars: list[bytes] = []
        self._points: U8 | None = None
        self._sender_point = b""

    def reply(self, sender_point: bytes) -> U8:
        """The points ``B_i`` (``(count, 32)`` uint8) answering the sender's ``A``.

        Raises
        ------
        ristretto.InvalidPointError
            If ``A`` is not a canonical non-identity element.
        """
        import rbcl

        if not ristretto.is_valid_point(sender_point):
            raise ristretto.InvalidPointError("the base-OT sender's point A is not valid")
        self._sender_point = sender_point
        n = self.choices.shape[0]
        out = np.empty((n, ristretto.POINT_BYTES), dtype=np.uint8)
        for i in range(n):
            b = _random_scalar(self._random)
            self._scalars.append(b)
            point = rbcl.crypto_scalarmult_ristretto255_base(b)
            if self.choices[i]:
                point = rbcl.crypto_core_ristretto255_add(point, sender_point)
            out[i] = np.frombuffer(point, dtype=np.uint8)
        self._points = out
        return out

    def keys(self) -> U8:
        """The chosen keys ``k_{c_i}`` (``(count, 16)`` uint8)."""
        if self._points is None:
            raise ValueError("call reply() first")
        n = self.choices.shape[0]
        out = np.empty((n, KEY_BYTES), dtype=np.uint8)
        for i in range(n):
            shared = ristretto.scalarmult(self._scalars[i], self._sender_point)
            key = _base_key(self._sender_point, self._points[i].tobytes(), i, shared)
            out[i] = np.frombuffer(key, dtype=np.uint8)
        self._scalars = []
        return out


# ------------------------------------------------------------------------------ PRG and hash


class RowPrg:
    """One AES-128-CTR stream per 16-byte seed (row of ``seeds``); :meth:`next` expands every
    seed by ``nbytes`` more bytes (the streams continue across calls)."""

    def __init__(self, seeds: npt.ArrayLike) -> None:
        arr = np.ascontiguousarray(seeds, dtype=np.uint8)
        if arr.ndim != 2 or arr.shape[1] != KEY_BYTES:
            raise ValueError(f"seeds must be an (n, {KEY_BYTES}) uint8 array")
        self._enc = [
            Cipher(algorithms.AES(arr[i].tobytes()), modes.CTR(bytes(16))).encryptor()
            for i in range(arr.shape[0])
        ]
        self._zeros = np.zeros(0, dtype=np.uint8)

    def next(self, nbytes: int) -> U8:
        """``(rows, nbytes)`` uint8: the next ``nbytes`` of every stream."""
        if self._zeros.size < nbytes:
            self._zeros = np.zeros(nbytes, dtype=np.uint8)
        out = np.empty((len(self._enc), nbytes + 16), dtype=np.uint8)
        src = self._zeros[:nbytes]
        for i, enc in enumerate(self._enc):
            enc.update_into(src.data, out[i].data)
        return out[:, :nbytes]


class CrHash:
    """Tweakable correlation-robust hash on 16-byte rows (π: AES-128 under a public key agreed
    by both parties): ``H(x, t) = π(y) ⊕ y`` with ``y = π(x) ⊕ t``.

    This is Guo–Katz–Wang–Yu's (2020) TCCR hash ``π(π(x) ⊕ t) ⊕ π(x)`` XORed with the public
    tweak ``t``, which keeps its (tweakable, circular) correlation robustness: an adversary
    who could tell ``H`` from random could tell the GKWY hash from random by XORing ``t``.
    The form lets the final XOR run on the AES input buffer (no broadcast)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"the hash key is {KEY_BYTES} bytes")
        self.key = bytes(key)
        # ECB here is AES used as a public permutation on independent blocks (the hash's
        # ideal-cipher model), not as encryption of data.
        self._enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
        self._arange = np.zeros(0, dtype=np.uint64)
        self._lrow = np.zeros(0, dtype=np.uint64)

    def _perm(self, x: U8) -> U8:
        flat = np.ascontiguousarray(x).reshape(-1)
        out = np.empty(flat.size + 16, dtype=np.uint8)
        self._enc.update_into(flat.data, out.data)
        return out[: flat.size].reshape(x.shape)

    def _index(self, n: int) -> U64:
        if self._arange.size < n:
            self._arange = np.arange(max(n, 1 << 20), dtype=np.uint64)
        return self._arange[:n]

    def _block_row(self, blocks: int) -> U64:
        """``(0, 0, 0, 1, 0, 2, …)``: the block index ``l`` in the high word of block ``l``."""
        if self._lrow.size < 2 * blocks:
            row = np.zeros(2 * max(blocks, 1 << 10), dtype=np.uint64)
            row[1::2] = np.arange(row.size // 2, dtype=np.uint64)
            self._lrow = row
        return self._lrow[: 2 * blocks]

    def perm(self, rows: U8) -> U8:
        """``π(x)`` of every 16-byte row: the hash's inner permutation, which does not depend
        on the tweak, computed once for OTs hashed many times (``words(..., prepermuted=True)``)."""
        return self._perm(np.ascontiguousarray(rows, dtype=np.uint8))

    def words(
        self,
        rows: U8,
        tweak: int,
        width: int,
        *,
        kernel: bool | None = None,
        prepermuted: bool = False,
    ) -> U64:
        """``(n, width)`` uint64: for row ``j`` the words of ``H(rows[j], (j, tweak·2^20 + l))``
        for blocks ``l = 0, 1, …`` (two words per block, the low word carries ``j``). The tweak
        block is distinct for every OT of a session (``tweak`` is the index of the batch's
        first OT, below 2^44) and every output block (``l < 2^20``). ``prepermuted``: the rows
        are already ``π(x)`` (:meth:`perm`; numpy path only)."""
        n = rows.shape[0]
        blocks = (width + 1) // 2
        if blocks >= 1 << 20 or tweak >= 1 << 44:
            raise ValueError("hash tweak out of range")
        if prepermuted:
            kernel = False
        if _use_kernel(kernel) and n:
            out_k = np.empty((n, width), dtype=np.uint64)
            _KERNEL.words(self.key, np.ascontiguousarray(rows, dtype=np.uint8), tweak, width, out_k)
            return out_k
        # the row part of the tweak goes in once per row: base_j = π(x_j) ⊕ (j, tweak·2^20)
        src = np.ascontiguousarray(rows, dtype=np.uint8) if prepermuted else self._perm(rows)
        base = src.view(np.uint64).reshape(n, 2).copy()
        base[:, 0] ^= self._index(n)
        base[:, 1] ^= np.uint64(tweak << 20)
        lrow = self._block_row(blocks)
        # one buffer for the output (16 bytes of slack for the cipher); rows in chunks of
        # about 256 KiB so that the broadcast, AES and the final XOR stay in cache
        buf = np.empty(n * blocks * 16 + 16, dtype=np.uint8)
        out = buf[: n * blocks * 16].view(np.uint64).reshape(n, 2 * blocks)
        step = max(1, (1 << 18) // (blocks * 16))
        y = np.empty((min(step, n), 2 * blocks), dtype=np.uint64)
        for s in range(0, n, step):
            e = min(n, s + step)
            yc = y[: e - s]
            # broadcast each row's 16 bytes over its blocks as one 16-byte element (a
            # complex128 view: a same-dtype copy moves the bytes unchanged), then the block index
            yc.view(np.complex128)[...] = base[s:e].view(np.complex128)
            yc ^= lrow
            self._enc.update_into(yc.reshape(-1).view(np.uint8).data, buf[s * blocks * 16 :].data)
            oc = out[s:e]
            np.bitwise_xor(oc, yc, out=oc)
        return out[:, :width]


# ------------------------------------------------------------------------------ transpose

_SWAP_MASKS = {
    j: np.uint64(sum(1 << b for b in range(64) if not b & j)) for j in (32, 16, 8, 4, 2, 1)
}
_CHUNK_WORDS = 1024  # 64 KiB of columns per 64 rows: the working set stays in cache


def _transpose_words(words: U64) -> U64:
    """Transpose ``(g, 64, c)`` uint64 (64-row groups of 64-bit column words) in place into
    ``(g, 64, c)`` where row ``k`` of block ``(g, c)`` holds column ``64c + k``."""
    g, _, c = words.shape
    tmp = np.empty((g, 32, c), dtype=np.uint64)
    for j in (32, 16, 8, 4, 2, 1):
        v = words.reshape(g, 64 // (2 * j), 2, j, c)
        lo = v[:, :, 0]
        hi = v[:, :, 1]
        t = tmp.reshape(g, 64 // (2 * j), j, c)
        np.right_shift(lo, np.uint64(j), out=t)
        np.bitwise_xor(t, hi, out=t)
        np.bitwise_and(t, _SWAP_MASKS[j], out=t)
        np.bitwise_xor(hi, t, out=hi)
        np.left_shift(t, np.uint64(j), out=t)
        np.bitwise_xor(lo, t, out=lo)
    return words


def transpose_bits(matrix: npt.ArrayLike, *, kernel: bool | None = None) -> U8:
    """Transpose a bit matrix stored as packed bytes (little-endian bit order: bit ``j`` of a
    row is bit ``j % 8`` of byte ``j // 8``).

    ``matrix`` is ``(rows, cols // 8)`` uint8 with ``rows`` and ``cols`` multiples of 64; the
    result is ``(cols, rows // 8)`` uint8 in the same packing. Through the compiled kernel
    (SSE2: tiles of 256 x 512 bits, 16 x 16 byte transposes in registers, the GIL released)
    where available; the numpy path gives the same bytes.
    """
    mat = np.asarray(matrix, dtype=np.uint8)
    if mat.ndim != 2 or mat.shape[0] % 64 or mat.shape[1] % 8:
        raise ValueError("transpose_bits needs (64*a, 8*b) packed bytes")
    rows, cb = mat.shape
    if _use_kernel(kernel):
        res = np.empty((cb * 8, rows // 8), dtype=np.uint8)
        _KERNEL.transpose(np.ascontiguousarray(mat), rows, cb * 8, res)
        return res
    g = rows // 64
    c = cb // 8
    out = np.empty((c, 64, g), dtype=np.uint64)
    for s in range(0, c, _CHUNK_WORDS):
        e = min(c, s + _CHUNK_WORDS)
        # a fresh copy: the swap stages work in place and the input stays untouched
        block = np.array(mat[:, 8 * s : 8 * e], copy=True, order="C").view(np.uint64)
        words = _transpose_words(block.reshape(g, 64, e - s))
        out[s:e] = words.transpose(2, 1, 0)
    return out.reshape(c * 64, g).view(np.uint8).reshape(c * 64, rows // 8)


def pad_count(n: int) -> int:
    """``n`` rounded up to a multiple of 64 (OT batches are whole 64-bit words)."""
    return -(-n // 64) * 64


# ------------------------------------------------------------------------------ IKNP


class IknpReceiver:
    """The extension receiver; it was the *sender* of the ``KAPPA`` base OTs (keys ``k0``,
    ``k1``)."""

    def __init__(self, k0: npt.ArrayLike, k1: npt.ArrayLike) -> None:
        self._g0 = RowPrg(k0)
        self._g1 = RowPrg(k1)

    def extend(self, choices: npt.ArrayLike) -> tuple[U8, U8]:
        """For packed choice bits (``m/8`` bytes, ``m`` a multiple of 64): the message ``u``
        (``(KAPPA, m/8)`` uint8) and the receiver's rows ``t`` (``(m, 16)`` uint8)."""
        r = np.asarray(choices, dtype=np.uint8)
        if r.ndim != 1 or r.size % 8:
            raise ValueError("choices must be packed bytes of a multiple of 64 bits")
        t0 = self._g0.next(r.size)
        u = self._g1.next(r.size)
        u ^= t0
        u ^= r
        return np.ascontiguousarray(u), transpose_bits(t0)


class IknpSender:
    """The extension sender; it was the *receiver* of the base OTs with choices ``s`` (its
    secret correlation) and got the keys ``k_i^{s_i}``."""

    def __init__(self, s: npt.ArrayLike, keys: npt.ArrayLike) -> None:
        bits = np.asarray(s, dtype=np.uint8)
        if bits.shape != (KAPPA,) or np.any(bits > 1):
            raise ValueError(f"s must be {KAPPA} bits")
        self._s = bits.astype(bool)
        self._g = RowPrg(keys)
        #: ``s`` packed as one 16-byte row (the correlation of every OT of this instance)
        self.delta: U8 = np.packbits(bits, bitorder="little")

    def extend(self, u: npt.ArrayLike) -> U8:
        """The sender's rows ``q_j = t_j ⊕ r_j·s`` (``(m, 16)`` uint8) from the receiver's
        ``u`` (``(KAPPA, m/8)`` uint8)."""
        msg = np.asarray(u, dtype=np.uint8)
        if msg.ndim != 2 or msg.shape[0] != KAPPA or msg.shape[1] % 8:
            raise ValueError(f"u must be ({KAPPA}, 8*b) uint8")
        q = np.ascontiguousarray(self._g.next(msg.shape[1]))
        q[self._s] ^= msg[self._s]
        return transpose_bits(q)


def rot_send(q: U8, delta: U8, h: CrHash, tweak: int, bits: int = 1) -> tuple[U8, U8]:
    """Random-OT messages of the sender: ``(m0, m1)``, the low ``bits`` (1-8) bits of
    ``H(q_j ⊕ b·s, tweak + j)``."""
    if not 1 <= bits <= 8:
        raise ValueError("random-OT messages have 1 to 8 bits here")
    mask = np.uint64((1 << bits) - 1)
    m0 = h.words(q, tweak, 1)[:, 0]
    m1 = h.words(q ^ delta, tweak, 1)[:, 0]
    return (m0 & mask).astype(np.uint8), (m1 & mask).astype(np.uint8)


def rot_receive(t: U8, h: CrHash, tweak: int, bits: int = 1) -> U8:
    """Random-OT message of the receiver: the low ``bits`` of ``H(t_j, tweak + j)``, which
    is ``m_{r_j}``."""
    if not 1 <= bits <= 8:
        raise ValueError("random-OT messages have 1 to 8 bits here")
    return (h.words(t, tweak, 1)[:, 0] & np.uint64((1 << bits) - 1)).astype(np.uint8)


def cot_send(
    q: U8, delta: U8, h: CrHash, tweak: int, corr: U64, *, kernel: bool | None = None
) -> tuple[U64, U64]:
    """Correlated OT over Z_2^64 with correlations ``corr`` (``(m, L)`` uint64): returns the
    sender's output ``H(q_j)`` and the message ``d = H(q_j) − H(q_j ⊕ s) + Δ_j``."""
    width = corr.shape[1]
    own = h.words(q, tweak, width, kernel=kernel)
    d = h.words(q ^ delta, tweak, width, kernel=kernel)
    np.subtract(own, d, out=d)
    d += corr
    return own, d


def cot_receive(
    t: U8, choices: U8, h: CrHash, tweak: int, message: U64, *, kernel: bool | None = None
) -> U64:
    """The receiver's output ``H(t_j) + r_j·d_j = H(q_j) + r_j·Δ_j`` (``choices``: 0/1 per
    OT, ``message``: ``(m, L)`` uint64 from :func:`cot_send`)."""
    out = h.words(t, tweak, message.shape[1], kernel=kernel)
    np.add(out, message, out=out, where=choices.astype(bool).reshape(-1, 1))
    return out


def chosen_send(q: U8, delta: U8, h: CrHash, tweak: int, x0: U64, x1: U64) -> tuple[U64, U64]:
    """Chosen-message OT: the sender's messages ``x0``, ``x1`` (``(m, L)`` uint64) encrypted
    as ``x_b ⊕ H(q_j ⊕ b·s)``."""
    width = x0.shape[1]
    e0 = h.words(q, tweak, width)
    e0 ^= x0
    e1 = h.words(q ^ delta, tweak, width)
    e1 ^= x1
    return e0, e1


def chosen_receive(t: U8, choices: U8, h: CrHash, tweak: int, e0: U64, e1: U64) -> U64:
    """Chosen-message OT: the receiver's ``x_{r_j} = e_{r_j} ⊕ H(t_j)``."""
    out = np.where(choices.reshape(-1, 1).astype(bool), e1, e0)
    out ^= h.words(t, tweak, e0.shape[1])
    return np.asarray(out, dtype=np.uint64)


# ------------------------------------------------------------------ trimmed correlated OT

I64 = npt.NDArray[np.int64]

#: Bits per trimmed word at most.
WORD_BITS = 64
_BIT_INDEX = np.arange(WORD_BITS, dtype=np.int64)


class TrimmedLayoutError(ValueError):
    """A trimmed message that is not a valid encoding (size, or padding bits not zero)."""


def trimmed_layout(nbits: I64, width: int) -> tuple[int, int]:
    """``(bits, bytes)`` of the trimmed layout: the low ``nbits[j]`` bits (0-64) of every one
    of the ``width`` words of row ``j``, rows one after the other, words in order, as one
    little-endian bit stream (bit ``i`` of the stream is bit ``i % 8`` of byte ``i // 8``),
    zero-padded to whole bytes."""
    nb = np.asarray(nbits, dtype=np.int64)
    if nb.size and (int(nb.min()) < 0 or int(nb.max()) > WORD_BITS):
        raise ValueError("trimmed widths are 0-64 bits")
    bits = int(nb.sum()) * width
    return bits, (bits + 7) // 8


def _bit_mask(nbits: I64, width: int) -> npt.NDArray[np.bool_]:
    keep = _BIT_INDEX.reshape(1, 1, WORD_BITS) < nbits.reshape(-1, 1, 1)
    return np.broadcast_to(keep, (nbits.size, width, WORD_BITS))


def trim_words(d: U64, nbits: I64) -> U8:
    """The trimmed layout of ``d`` (``(n, width)`` uint64; see :func:`trimmed_layout`)."""
    n, width = d.shape
    nb = np.asarray(nbits, dtype=np.int64)
    trimmed_layout(nb, width)
    raw = np.ascontiguousarray(d, dtype=np.uint64).view(np.uint8).reshape(n, width, 8)
    bits = np.unpackbits(raw, axis=2, bitorder="little")  # (n, width, 64), bit k at k
    return np.packbits(bits[_bit_mask(nb, width)], bitorder="little")


def untrim_words(data: npt.ArrayLike, nbits: I64, width: int) -> U64:
    """The words of a trimmed layout, zero-extended: ``(n, width)`` uint64. Raises
    :class:`TrimmedLayoutError` if the size is not the layout's or a padding bit is set."""
    nb = np.asarray(nbits, dtype=np.int64)
    n = nb.size
    total, size = trimmed_layout(nb, width)
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else np.asarray(data)
    if buf.size != size:
        raise TrimmedLayoutError(f"trimmed message of {buf.size} bytes, expected {size}")
    stream = np.unpackbits(buf.astype(np.uint8, copy=False), bitorder="little")
    if stream[total:].any():
        raise TrimmedLayoutError("trimmed message: padding bits are not zero")
    bits = np.zeros((n, width, WORD_BITS), dtype=np.uint8)
    bits[_bit_mask(nb, width)] = stream[:total]
    return np.packbits(bits, axis=2, bitorder="little").view(np.uint64).reshape(n, width)


def cot_send_trimmed(
    q: U8,
    delta: U8,
    h: CrHash,
    tweak: int,
    corr: U64,
    nbits: I64,
    *,
    phase: int = 0,
    acc: U64 | None = None,
    acc_phase: int = 0,
    shifts: U8 | None = None,
    kernel: bool | None = None,
    prepermuted: bool = False,
) -> tuple[U64 | None, bytes]:
    """:func:`cot_send` for ``len(nbits)`` OTs with the message in the trimmed layout (row
    ``j`` keeps the low ``nbits[j]`` bits of each word, packed to the bit; see
    :func:`trimmed_layout`): ``(own, message bytes)``.

    The correlations repeat: OT ``j`` uses row ``(phase + j) % len(corr)`` of ``corr``
    (``(R, width)`` uint64), so a correlation shared by many OTs is not copied for each.
    Through the AES-NI kernel when available (one pass, the GIL released), else numpy; both
    give the same bytes.

    With ``acc`` (``(P, width)`` uint64), the sender's words are not returned (``None``) but
    subtracted from it, shifted left: ``acc[(acc_phase + j) % P] −= own_j << shifts[j]``.

    ``prepermuted``: ``q`` is ``(n, 32)``, row ``j`` holding ``π(q_j)`` and ``π(q_j ⊕ s)``
    (:meth:`CrHash.perm`, computed once for OTs used many times): the same output with one AES
    call per hash instead of two."""
    nb = np.ascontiguousarray(nbits, dtype=np.int64)
    n = nb.size
    period, width = corr.shape
    row = 2 * KEY_BYTES if prepermuted else KEY_BYTES
    if nb.ndim != 1 or q.shape[0] < n or q.shape[1:] != (row,) or (n and not 0 <= phase < period):
        raise ValueError("cot_send_trimmed: one bit width and one row per OT")
    _, size = trimmed_layout(nb, width)
    if not _use_kernel(kernel) or n == 0:
        if phase + n <= period:
            rows = corr[phase : phase + n]
        else:
            rows = corr[(phase + np.arange(n)) % period]
        if prepermuted:
            own = h.words(q[:n, :KEY_BYTES], tweak, width, prepermuted=True)
            d = own - h.words(q[:n, KEY_BYTES:], tweak, width, prepermuted=True) + rows
        else:
            own, d = cot_send(q[:n], delta, h, tweak, rows, kernel=False)
        if acc is not None:
            _accumulate(acc, acc_phase, own, shifts, -1)
            return None, trim_words(d, nb).tobytes()
        return own, trim_words(d, nb).tobytes()
    own_k, acc_k, sh = _sink(acc, acc_phase, shifts, n, width)
    out: bytes = _KERNEL.cot_send(
        h.key,
        np.ascontiguousarray(q[:n], dtype=np.uint8),
        np.ascontiguousarray(delta, dtype=np.uint8).tobytes(),
        tweak,
        np.ascontiguousarray(corr, dtype=np.uint64),
        phase,
        width,
        own_k,
        acc_k,
        acc_phase,
        sh,
        nb,
        size,
        prepermuted,
    )
    return (None if acc is not None else own_k), out


def _sink(
    acc: U64 | None, acc_phase: int, shifts: U8 | None, n: int, width: int
) -> tuple[U64, U64, U8]:
    """The kernel's output arguments: per-OT rows, or an accumulator with its shifts."""
    if acc is None:
        return np.empty((n, width), np.uint64), np.empty(0, np.uint64), np.empty(0, np.uint8)
    sh = np.ascontiguousarray(shifts, dtype=np.uint8)
    if (
        acc.ndim != 2
        or acc.shape[1] != width
        or not acc.flags.c_contiguous
        or sh.shape != (n,)
        or not 0 <= acc_phase < acc.shape[0]
    ):
        raise ValueError("the accumulator, its phase and the shifts do not match")
    return np.empty(0, np.uint64), acc, sh


def _accumulate(acc: U64, phase: int, rows: U64, shifts: U8 | None, sign: int) -> None:
    """``acc[(phase + j) % P] += sign · rows[j] << shifts[j]`` (the numpy path)."""
    n, width = rows.shape
    sh = np.ascontiguousarray(shifts, dtype=np.uint8)
    if acc.ndim != 2 or acc.shape[1] != width or sh.shape != (n,) or not 0 <= phase < acc.shape[0]:
        raise ValueError("the accumulator, its phase and the shifts do not match")
    vals = rows << sh.astype(np.uint64).reshape(-1, 1)
    if sign < 0:
        np.negative(vals, out=vals)
    period = acc.shape[0]
    if phase == 0 and n % period == 0:
        acc += np.sum(vals.reshape(n // period, period, width), axis=0, dtype=np.uint64)
    else:
        np.add.at(acc, (phase + np.arange(n)) % period, vals)


def cot_receive_trimmed(
    t: U8,
    choices: U8,
    h: CrHash,
    tweak: int,
    data: npt.ArrayLike,
    nbits: I64,
    width: int,
    *,
    acc: U64 | None = None,
    acc_phase: int = 0,
    shifts: U8 | None = None,
    kernel: bool | None = None,
    prepermuted: bool = False,
) -> U64 | None:
    """:func:`cot_receive` from a trimmed message: words correct modulo ``2**nbits[j]``
    only (the caller discards the rest). With ``acc``, the words are added to it instead:
    ``acc[(acc_phase + j) % P] += out_j << shifts[j]`` (and ``None`` is returned).

    Raises :class:`TrimmedLayoutError` for a message of the wrong size or with a padding bit
    set (an encoding the sender's :func:`cot_send_trimmed` never produces)."""
    nb = np.ascontiguousarray(nbits, dtype=np.int64)
    n = nb.size
    c = np.ascontiguousarray(choices, dtype=np.uint8).reshape(-1)
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else np.asarray(data)
    total, size = trimmed_layout(nb, width)
    if c.size != n or t.shape[0] < n:
        raise ValueError("cot_receive_trimmed: sizes do not match")
    if buf.size != size:
        raise TrimmedLayoutError(f"trimmed message of {buf.size} bytes, expected {size}")
    if total % 8 and int(buf[-1]) >> (total % 8):
        raise TrimmedLayoutError("trimmed message: padding bits are not zero")
    if not _use_kernel(kernel) or n == 0:
        msg = untrim_words(buf, nb, width)
        if prepermuted:  # t holds π(t_j)
            got = h.words(t[:n], tweak, width, prepermuted=True)
            np.add(got, msg, out=got, where=c.astype(bool).reshape(-1, 1))
        else:
            got = cot_receive(t[:n], c, h, tweak, msg, kernel=False)
        if acc is not None:
            _accumulate(acc, acc_phase, got, shifts, 1)
            return None
        return got
    out, acc_k, sh = _sink(acc, acc_phase, shifts, n, width)
    _KERNEL.cot_recv(
        h.key,
        np.ascontiguousarray(t[:n], dtype=np.uint8),
        c,
        tweak,
        np.ascontiguousarray(buf, dtype=np.uint8),
        width,
        out,
        acc_k,
        acc_phase,
        sh,
        nb,
        prepermuted,
    )
    return None if acc is not None else out
