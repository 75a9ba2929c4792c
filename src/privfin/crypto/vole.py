"""Silent random VOLE over GF(2^128) from IKNP correlated OT (pure math, no I/O; semi-honest).

Output (``n`` positions): the **sender** holds ``Δ`` and ``B``, the **receiver** ``A`` and
``C`` with ``C = B + A·Δ`` (element-wise, GF(2^128) from :mod:`privfin.crypto.gf128`; ``A``
and ``B`` pseudorandom). Parameters, messages and the security argument:
src/privfin/crypto/SPEC.md ("Silent VOLE").

1. **Correlated OT.** One IKNP extension (:mod:`privfin.crypto.ot`) with the VOLE receiver as
   extension receiver, random choice bits ``r_j`` and the VOLE sender's ``s`` as ``Δ``: raw
   rows ``t_j = q_j + r_j·Δ``. OTs ``i·h + l`` serve GGM tree ``i`` at level ``l``; the
   ``128`` OTs after them per tree make one **base VOLE** ``γ_i = δ_i + Δ·β_i`` with
   ``β_i = Σ_k r_k x^k``, ``γ_i = Σ_k t_k x^k``, ``δ_i = Σ_k q_k x^k``.
2. **Single-point VOLE per tree** (``t`` trees of depth ``h``: a regular noise vector of
   length ``N' = t·2^h`` with one nonzero ``β_i`` per block, at ``α_i``): the sender expands
   a GGM tree from a random root with ``G_b(s) = π_b(s) ⊕ s`` (fixed-key AES, keys public;
   all trees of a level in one AES call per child side) and sends, per level, the XOR of the
   left children and of the right children, each masked with one random OT
   (``H(q_j)``, ``H(q_j ⊕ Δ)``, the tweakable correlation-robust hash of
   :class:`~privfin.crypto.ot.CrHash`). The receiver gets the one for the side off its path
   (``α``'s bit ``l`` is ``1 − r_{i·h+l}``) and rebuilds every leaf but ``α_i``. The sender
   also sends ``d_i = δ_i + Σ_j v_{i,j}``; the receiver sets
   ``w_{α_i} = γ_i + d_i + Σ_{j≠α_i} v_{i,j} = v_{α_i} + Δ·β_i``.
   So ``w = v + Δ·e`` over all ``N'`` positions.
3. **Compression** by the Expand-Accumulate code (Boyle, Couteau, Gilboa, Ishai, Kohl,
   Resch, Scholl, CRYPTO 2022) in its dual-LPN use: ``x ↦ E·(prefix-XOR of x)`` where every
   row of ``E`` (``n × N'``) has ``weight`` ones at public pseudorandom columns (AES-CTR under
   a public ``code_seed``). Applied to ``v`` (sender: ``B``), ``w`` (receiver: ``C``) and
   ``e`` (receiver: ``A``); it is GF(2)-linear, so ``C = B + A·Δ`` holds.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privfin.crypto import gf128
from privfin.crypto.ot import CrHash
from privfin.crypto.random import RandomSource

__all__ = [
    "DEFAULT_EXPANSION",
    "DEFAULT_WEIGHT",
    "KERNEL",
    "MIN_TREES",
    "VoleMessage",
    "VoleParams",
    "VoleReceiver",
    "VoleSender",
    "ea_compress",
]

U8 = npt.NDArray[np.uint8]
U64 = npt.NDArray[np.uint64]

#: Noise weight floor (regular noise, one tree per nonzero): see SPEC ("Silent VOLE").
MIN_TREES = 1024
#: ``N' ≥ DEFAULT_EXPANSION · n`` (code rate 1/4).
DEFAULT_EXPANSION = 4
#: Ones per row of the expander ``E``.
DEFAULT_WEIGHT = 21
#: Base-VOLE OTs per tree (one element of GF(2^128) from 128 bits).
BASE_OTS = 128

_GGM_KEYS = [hashlib.sha256(b"privfin.vole.ggm.%d" % b).digest()[:16] for b in (0, 1)]


@dataclass(frozen=True)
class VoleParams:
    """``n`` outputs from ``trees`` GGM trees of ``depth`` levels (``N' = trees·2^depth``
    noise positions) compressed by an expander of ``weight`` ones per row under the public
    ``code_seed``; ``hash_tweak`` separates the random-OT hashes from other uses of the
    same :class:`~privfin.crypto.ot.CrHash` key."""

    n: int
    trees: int
    depth: int
    weight: int
    code_seed: bytes
    hash_tweak: int = 0

    def __post_init__(self) -> None:
        if self.n < 0 or self.trees < 1 or not 1 <= self.depth <= 30 or self.weight < 1:
            raise ValueError("VOLE parameters out of range")
        if len(self.code_seed) != 16:
            raise ValueError("the code seed is 16 bytes")
        if self.noise_len >= 1 << 32:
            raise ValueError("VOLE too large")

    @classmethod
    def for_outputs(
        cls,
        n: int,
        code_seed: bytes,
        *,
        min_trees: int = MIN_TREES,
        expansion: int = DEFAULT_EXPANSION,
        weight: int = DEFAULT_WEIGHT,
        hash_tweak: int = 0,
    ) -> VoleParams:
        """The deepest trees that still number at least ``min_trees``, with
        ``N' ≥ expansion·n`` (and at least two leaves per tree)."""
        target = max(expansion * n, 2 * min_trees)
        depth = max(1, (target // min_trees).bit_length() - 1)
        trees = max(min_trees, -(-target // (1 << depth)))
        return cls(n, trees, depth, weight, bytes(code_seed), hash_tweak)

    @property
    def noise_len(self) -> int:
        return self.trees << self.depth

    @property
    def ggm_ots(self) -> int:
        return self.trees * self.depth

    @property
    def ots(self) -> int:
        """Correlated OTs used (GGM then base VOLE), before padding to whole IKNP rows."""
        return self.trees * (self.depth + BASE_OTS)

    @property
    def padded_ots(self) -> int:
        """:attr:`ots` rounded up to a multiple of 128 (whole bytes of whole 64-bit words)."""
        return -(-self.ots // 128) * 128


@dataclass(frozen=True)
class VoleMessage:
    """Sender → receiver: ``masked`` (``(trees, depth, 2, 16)`` uint8: per level the XOR of
    the left, then of the right children, each under its random-OT mask) and ``sums``
    (``(trees, 16)``: ``δ_i + Σ_j v_{i,j}``)."""

    masked: U8
    sums: U8

    def check(self, params: VoleParams) -> None:
        if self.masked.dtype != np.uint8 or self.masked.shape != (
            params.trees,
            params.depth,
            2,
            16,
        ):
            raise ValueError("VOLE message: the GGM corrections have the wrong shape")
        if self.sums.dtype != np.uint8 or self.sums.shape != (params.trees, 16):
            raise ValueError("VOLE message: the tree sums have the wrong shape")


def _expand(nodes: U8, encs: list[object]) -> U8:
    """``(t, 2w, 16)``: the children ``(G_0(s), G_1(s))`` of every node of ``(t, w, 16)``."""
    t, w, _ = nodes.shape
    flat = np.ascontiguousarray(nodes).reshape(-1)
    out = np.empty((t, w, 2, 16), np.uint8)
    buf = np.empty(flat.size + 16, np.uint8)
    words = nodes.view(np.uint64)
    out64 = out.view(np.uint64)
    for b, enc in enumerate(encs):
        enc.update_into(flat.data, buf.data)  # type: ignore[attr-defined]
        np.bitwise_xor(buf[: flat.size].view(np.uint64).reshape(t, w, 2), words, out=out64[:, :, b])
    return out.reshape(t, 2 * w, 16)


def _xor_sides(nodes: U8) -> tuple[U8, U8]:
    """``(t, 16)`` each: the XOR of the left (even) and of the right (odd) children."""
    t, w, _ = nodes.shape
    both = _fold(nodes.view(np.uint64).reshape(t, w // 2, 4))
    return both[:, :2].copy().view(np.uint8), both[:, 2:].copy().view(np.uint8)


def _fold(a: U64) -> U64:
    """XOR over axis 1 of ``(t, k, c)`` by halving (contiguous blocks, no strided reduce)."""
    while a.shape[1] > 1:
        half = a.shape[1] // 2
        top = a[:, :half] ^ a[:, half : 2 * half]
        if a.shape[1] % 2:
            top[:, 0] ^= a[:, 2 * half]
        a = top
    return np.ascontiguousarray(a[:, 0])


def _xor_all(nodes: U8) -> U8:
    """``(t, 16)``: the XOR of all nodes of each tree."""
    t = nodes.shape[0]
    return _fold(nodes.view(np.uint64).reshape(t, -1, 2)).view(np.uint8)


def _ggm_ciphers() -> list[object]:
    # ECB is AES used as a fixed-key public permutation (the PRG G_b(s) = π_b(s) ⊕ s in the
    # ideal-permutation model), not as encryption of data.
    return [
        Cipher(algorithms.AES(k), modes.ECB()).encryptor()  # noqa: S305
        for k in _GGM_KEYS
    ]


def _masks(h: CrHash, rows: U8, tweak: int) -> U8:
    return h.words(rows, tweak, 2).view(np.uint8).reshape(-1, 16)


def _load_kernel() -> Any:
    try:
        from privfin.crypto import _vole_kernel  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _vole_kernel


_KERNEL: Any = _load_kernel()
#: Whether the compiled kernel (src/privfin/crypto/_vole_kernel.c) is built: it runs the
#: expander's gathers; the numpy path gives the same bytes.
KERNEL = _KERNEL is not None


def _use_kernel(kernel: bool | None) -> bool:
    if kernel is None:
        return KERNEL
    if kernel and not KERNEL:
        raise RuntimeError("the compiled VOLE kernel is not built")
    return kernel


def _columns(raw: U64, cols: int) -> npt.NDArray[np.int64]:
    """``floor(r · cols / 2^64)`` for 64-bit ``r`` and ``cols < 2^32`` (exact, no overflow:
    ``r_hi · cols + ((r_lo · cols) >> 32) < 2^64``)."""
    c = np.uint64(cols)
    lo = ((raw & np.uint64(0xFFFFFFFF)) * c) >> np.uint64(32)
    return (((raw >> np.uint64(32)) * c + lo) >> np.uint64(32)).astype(np.int64)


#: outputs below which the compression stays on one thread
_SPLIT_MIN = 1 << 15
#: code rows per step of the compression (their key stream: 1.3 MB at weight 21)
_CHUNK = 1 << 13


def _code_words(
    params: VoleParams, chunk: int, start: int = 0, stop: int | None = None
) -> Iterator[tuple[int, int, memoryview]]:
    """``(s, e, raw)`` for the rows ``s … e − 1`` of the code in ``[start, stop)`` (``chunk``
    rows at a time): ``raw`` holds their ``weight`` 64-bit AES-CTR words each, valid until
    the next step (one buffer, reused: at 1M outputs the 210 MB of key stream took
    0.12-0.42 s as fresh ``bytes`` of 11 MB a chunk, 0.03-0.07 s into a reused, cache-sized
    buffer). ``start · weight`` must be even (the stream starts at a whole AES block)."""
    n, d = params.n, params.weight
    stop = n if stop is None else stop
    if chunk < 1:
        raise ValueError("chunk must be positive")
    if not 0 <= start <= stop <= n or start * d % 2:
        raise ValueError("the code rows must start at a whole AES block within the code")
    counter = (start * d // 2).to_bytes(16, "big")  # 8-byte words: two per 16-byte block
    enc = Cipher(algorithms.AES(params.code_seed), modes.CTR(counter)).encryptor()
    rows = min(chunk, max(stop - start, 1))
    zeros = bytes(8 * d * rows)
    buf = bytearray(8 * d * rows + 16)  # (update_into wants a block of slack)
    view = memoryview(buf)
    for s in range(start, stop, rows):
        e = min(stop, s + rows)
        size = 8 * d * (e - s)
        enc.update_into(memoryview(zeros)[:size], buf)
        yield s, e, view[:size]


def ea_compress(
    vecs: list[U8], params: VoleParams, *, kernel: bool | None = None, chunk: int = _CHUNK
) -> list[U8]:
    """``E · prefix_xor(v)`` (``(n, 16)`` uint8) for every ``v`` of ``(N', 16)`` uint8 in
    ``vecs`` (one pass over the expander for all of them). Row ``i`` of ``E`` has ones at the
    columns ``floor(r · N' / 2^64)`` of the 64-bit words ``r = i·weight … i·weight + weight − 1``
    of AES-128-CTR under ``code_seed`` (zero IV); a column drawn twice cancels."""
    k = len(vecs)
    if k == 0:
        return []
    cols = params.noise_len
    stacked = np.empty((cols, k, 2), np.uint64)
    for j, v in enumerate(vecs):
        arr = np.ascontiguousarray(v, dtype=np.uint8)
        if arr.shape != (cols, 16):
            raise ValueError("a vector to compress has the wrong shape")
        stacked[:, j] = arr.view(np.uint64).reshape(cols, 2)
    return _compress_in_place(stacked, params, kernel=kernel, chunk=chunk)


def _compress_in_place(
    stacked: U64,
    params: VoleParams,
    *,
    kernel: bool | None = None,
    chunk: int = _CHUNK,
    threads: int = 1,
) -> list[U8]:
    """:func:`ea_compress` of the ``k`` vectors side by side in ``stacked`` (``(N', k, 2)``
    uint64), which it overwrites with their prefix XORs (no second copy in memory). With the
    kernel and ``threads > 1``, that many threads gather slices of the rows (the same bytes;
    for a party whose peer idles meanwhile, so that the second core is free)."""
    cols, k, _ = stacked.shape
    acc = stacked.reshape(cols, 2 * k)
    np.bitwise_xor.accumulate(acc, axis=0, out=acc)
    n, d = params.n, params.weight
    out = np.zeros((n, 2 * k), np.uint64)
    use = _use_kernel(kernel)

    def rows(start: int, stop: int) -> None:
        for s, e, raw in _code_words(params, chunk, start, stop):
            o = out[s:e]
            if use:
                _KERNEL.ea_gather(acc, raw, d, 2 * k, o)  # (the GIL released)
                continue
            pos = _columns(np.frombuffer(raw, np.uint64), cols).reshape(e - s, d)
            for c in range(d):
                o ^= acc[pos[:, c]]

    if use and threads > 1 and n >= _SPLIT_MIN:
        # the rows in ``threads`` even-aligned slices, one per thread (disjoint outputs)
        cuts = [n * j // threads & ~1 for j in range(threads)] + [n]
        errors: list[BaseException] = []

        def work(start: int, stop: int) -> None:
            try:
                rows(start, stop)
            except BaseException as exc:  # handed to the calling thread below
                errors.append(exc)

        workers = [
            threading.Thread(target=work, args=(cuts[j], cuts[j + 1]), name="vole-expander")
            for j in range(1, threads)
        ]
        for w in workers:
            w.start()
        try:
            rows(cuts[0], cuts[1])
        finally:
            for w in workers:
                w.join()
        if errors:
            raise errors[0]
    else:
        rows(0, n)
    return [np.ascontiguousarray(out[:, 2 * j : 2 * j + 2]).view(np.uint8) for j in range(k)]


def _compress_regular(
    alpha: npt.NDArray[np.int64],
    beta: U8,
    params: VoleParams,
    *,
    kernel: bool | None = None,
    chunk: int = _CHUNK,
) -> U8:
    """:func:`ea_compress` of the regular noise vector ``e`` (``β_i`` at ``i·2^h + α_i``,
    zero elsewhere) without forming it: its prefix XOR at column ``c`` is ``S[k(c)]`` with
    ``S[k]`` the XOR of ``β_0 … β_{k−1}`` and ``k(c) = b + (c mod 2^h ≥ α_b)``, ``b = c ≫ h``
    (the number of nonzeros at or before ``c``). The same bytes as ``ea_compress([e])``
    (tested), from a table of ``t + 1`` elements instead of an ``N'``-element vector: no
    random reads across ``16·N'`` bytes (the receiver's ``A``)."""
    t, depth, d, n = params.trees, params.depth, params.weight, params.n
    al = np.ascontiguousarray(alpha, dtype=np.int64)
    if al.shape != (t,) or beta.shape != (t, 16):
        raise ValueError("one noise offset and value per tree")
    if al.size and (int(al.min()) < 0 or int(al.max()) >= 1 << depth):
        raise ValueError("a noise offset is outside its tree")
    sums = np.zeros((t + 1, 2), np.uint64)
    np.bitwise_xor.accumulate(
        np.ascontiguousarray(beta).view(np.uint64).reshape(t, 2), axis=0, out=sums[1:]
    )
    out = np.zeros((n, 2), np.uint64)
    use = _use_kernel(kernel)
    mask = np.int64((1 << depth) - 1)
    for s, e, raw in _code_words(params, chunk):
        if use:
            _KERNEL.ea_gather_regular(raw, d, depth, al, sums, out[s:e])
            continue
        pos = _columns(np.frombuffer(raw, np.uint64), params.noise_len).reshape(e - s, d)
        block = pos >> depth
        at = block + ((pos & mask) >= al[block])
        out[s:e] = np.bitwise_xor.reduce(sums[at], axis=1)
    return out.view(np.uint8)


class VoleSender:
    """The party holding ``Δ`` (the IKNP sender's ``s``): :meth:`respond` turns its IKNP rows
    ``q`` into the message for the receiver and its output ``B``."""

    def __init__(
        self,
        params: VoleParams,
        delta: npt.ArrayLike,
        random: RandomSource,
        *,
        kernel: bool | None = None,
    ) -> None:
        self.kernel = kernel
        d = np.asarray(delta, dtype=np.uint8)
        if d.shape != (16,):
            raise ValueError("delta is 16 bytes")
        self.params = params
        self.delta = d.copy()
        self._random = random
        self._leaves: U64 | None = None

    @property
    def delta_int(self) -> int:
        return gf128.to_int(self.delta)

    def respond(self, q: npt.ArrayLike, h: CrHash) -> tuple[VoleMessage, U8]:
        """``(message, B)`` from the rows ``q`` (``(padded_ots, 16)`` uint8)."""
        msg = self.message(q, h)
        return msg, self.output()

    def message(self, q: npt.ArrayLike, h: CrHash) -> VoleMessage:
        """The message for the receiver from the rows ``q`` (``(padded_ots, 16)`` uint8); the
        output ``B`` follows from :meth:`output` (so the message can go out first)."""
        p = self.params
        rows = np.ascontiguousarray(q, dtype=np.uint8)
        if rows.shape != (p.padded_ots, 16):
            raise ValueError("q has the wrong shape for these VOLE parameters")
        t, depth = p.trees, p.depth
        roots = np.frombuffer(self._random.bytes(16 * t), np.uint8).reshape(t, 1, 16)
        encs = _ggm_ciphers()
        sums = np.empty((t, depth, 2, 16), np.uint8)
        nodes = roots
        for level in range(depth):
            nodes = _expand(nodes, encs)
            sums[:, level, 0], sums[:, level, 1] = _xor_sides(nodes)
        ggm = rows[: p.ggm_ots]
        masked = sums.copy()
        masked[:, :, 0] ^= _masks(h, ggm, p.hash_tweak).reshape(t, depth, 16)
        masked[:, :, 1] ^= _masks(h, ggm ^ self.delta, p.hash_tweak).reshape(t, depth, 16)
        base = rows[p.ggm_ots : p.ots].reshape(t, BASE_OTS, 16)
        tree_sums = gf128.combine_bits(base) ^ _xor_all(nodes)
        self._leaves = nodes.view(np.uint64).reshape(-1, 1, 2)
        return VoleMessage(masked=masked, sums=tree_sums)

    def output(self) -> U8:
        """``B`` (``(n, 16)`` uint8), once, after :meth:`message`."""
        if self._leaves is None:
            raise ValueError("call message() first (and output() once)")
        leaves, self._leaves = self._leaves, None
        (b,) = _compress_in_place(leaves, self.params, kernel=self.kernel)
        return b


class VoleReceiver:
    """The other party: draws its random IKNP choice bits (:attr:`choices`, packed), then
    :meth:`finish` turns its rows ``t`` and the sender's message into ``(A, C)``."""

    def __init__(
        self, params: VoleParams, random: RandomSource, *, kernel: bool | None = None
    ) -> None:
        self.params = params
        self.kernel = kernel
        self._leaves: U64 | None = None
        bits = np.unpackbits(
            np.frombuffer(random.bytes(params.padded_ots // 8), np.uint8), bitorder="little"
        )
        self.bits: U8 = bits
        #: packed choice bits for :meth:`privfin.crypto.ot.IknpReceiver.extend`
        self.choices: U8 = np.packbits(bits, bitorder="little")

    def noise(self) -> tuple[npt.NDArray[np.int64], U8]:
        """The noise positions ``α_i`` (within each tree's block) and values ``β_i``."""
        p = self.params
        path = 1 - self.bits[: p.ggm_ots].reshape(p.trees, p.depth).astype(np.int64)
        alpha = np.zeros(p.trees, np.int64)
        for level in range(p.depth):
            alpha = 2 * alpha + path[:, level]
        beta_bits = self.bits[p.ggm_ots : p.ots].reshape(p.trees, BASE_OTS)
        return alpha, np.packbits(beta_bits, axis=1, bitorder="little")

    def finish(self, t_rows: npt.ArrayLike, message: VoleMessage, h: CrHash) -> tuple[U8, U8]:
        """``(A, C)`` from the rows ``t`` (``(padded_ots, 16)``) and the sender's message."""
        a = self.finish_a(t_rows, message, h)
        return a, self.output_c()

    def finish_a(self, t_rows: npt.ArrayLike, message: VoleMessage, h: CrHash) -> U8:
        """``A`` from the rows ``t`` and the sender's message; ``C`` follows from
        :meth:`output_c` (so what needs only ``A`` can go out first)."""
        p = self.params
        message.check(p)
        rows = np.ascontiguousarray(t_rows, dtype=np.uint8)
        if rows.shape != (p.padded_ots, 16):
            raise ValueError("t has the wrong shape for these VOLE parameters")
        t, depth = p.trees, p.depth
        path = 1 - self.bits[: p.ggm_ots].reshape(t, depth).astype(np.int64)
        got = message.masked[np.arange(t)[:, None], np.arange(depth)[None, :], 1 - path]
        got = got ^ _masks(h, rows[: p.ggm_ots], p.hash_tweak).reshape(t, depth, 16)
        encs = _ggm_ciphers()
        trees = np.arange(t)
        nodes = np.zeros((t, 1, 16), np.uint8)
        pos = np.zeros(t, np.int64)
        for level in range(depth):
            nodes = _expand(nodes, encs)
            nodes[trees, 2 * pos] = 0
            nodes[trees, 2 * pos + 1] = 0
            side = 1 - path[:, level]
            left, right = _xor_sides(nodes)
            known = np.where(side[:, None] == 1, right, left)
            nodes[trees, 2 * pos + side] = got[:, level] ^ known
            pos = 2 * pos + path[:, level]
        base = rows[p.ggm_ots : p.ots].reshape(t, BASE_OTS, 16)
        gamma = gf128.combine_bits(base)
        nodes[trees, pos] = gamma ^ message.sums ^ _xor_all(nodes)
        self._leaves = nodes.view(np.uint64).reshape(-1, 1, 2)
        alpha, beta = self.noise()
        return _compress_regular(alpha, beta, p, kernel=self.kernel)

    def output_c(self, *, threads: int = 1) -> U8:
        """``C`` (``(n, 16)`` uint8), once, after :meth:`finish_a`; ``threads``: see
        :func:`_compress_in_place` (the same bytes)."""
        leaves = self._leaves
        if leaves is None:
            raise ValueError("call finish_a() first (and output_c() once)")
        self._leaves = None
        (c,) = _compress_in_place(leaves, self.params, kernel=self.kernel, threads=threads)
        return c
