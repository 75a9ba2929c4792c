"""Fixed-point packing of (g, h, count) into one Paillier/OU plaintext, and its inverse.

One sample's plaintext is ``cnt + sum_k (G_k << o_gk) + (H_k << o_hk)`` with the slots (least
significant first) ``[count | g_0 | h_0 | g_1 | h_1 | ...]``, where ``G_k = round((g_k - g_min)
* 2**P)`` and ``H_k = round((h_k - h_min) * 2**P)`` are non-negative (the offsets ``g_min``,
``h_min`` stay with the guest) and ``cnt = 1``. Each slot is wide enough that the sum over all
rows cannot carry into the next slot, so homomorphic sums of packed plaintexts are packed
sums. The guest recovers ``sum g = G / 2**P + g_min * count``.

A host compresses ``per_ct`` such sums into one ciphertext with Horner's rule
(``acc = acc ** 2**W * c``, ``W`` the packed width), so the guest decrypts once per ``per_ct``
bins. Security: the layout (slot widths) is public; it reveals the bit length of the gradient
range scaled by ``2**P`` and of the number of rows, nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import gmpy2
import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError, DecodeError, ProtocolAbort
from privfin.he import ou, paillier

__all__ = [
    "GradientLayout",
    "PublicKeyBase",
    "add_plaintexts",
    "ciphertexts_from_bytes",
    "ciphertexts_to_bytes",
    "compress",
    "layout_widths",
    "slot_width",
]

FloatArray = npt.NDArray[np.float64]
#: The additively homomorphic keys SecureBoost runs on.
PublicKeyBase = paillier.PublicKey | ou.PublicKey


def slot_width(value_range: float, precision: int, n_rows: int) -> int:
    """Bits of one (g or h) slot: a per-row value in ``[0, ceil(range * 2**P)]`` summed over
    ``n_rows`` rows without carrying out of the slot."""
    top = int(np.ceil(value_range * 2.0**precision)) + 1
    return top.bit_length() + int(n_rows).bit_length() + 1


def layout_widths(
    n_rows: int, precision: int, ranges: Sequence[tuple[float, float]]
) -> tuple[int, ...]:
    """Slot widths ``(count, g_0, h_0, g_1, h_1, ...)`` for per-row ``(g, h)`` value ranges.

    The guest calls it with its ranges (public bounds, or the observed ranges in regression);
    a host calls it with the public bounds to get the widest layout an honest guest declares
    (:meth:`GradientLayout.make`), and refuses anything wider."""
    widths = [int(n_rows).bit_length() + 1]
    for g_range, h_range in ranges:
        widths += [slot_width(g_range, precision, n_rows), slot_width(h_range, precision, n_rows)]
    return tuple(widths)


@dataclass(frozen=True)
class GradientLayout:
    """Slot widths and the guest-private offsets of one tree's gradient encoding."""

    widths: tuple[int, ...]
    precision: int
    g_min: FloatArray
    h_min: FloatArray

    @property
    def n_outputs(self) -> int:
        return (len(self.widths) - 1) // 2

    @property
    def width(self) -> int:
        """Bits of one packed (count, g, h...) value."""
        return sum(self.widths)

    @classmethod
    def make(
        cls,
        g: FloatArray,
        h: FloatArray,
        n_rows: int,
        precision: int,
        bounds: tuple[float, float, float, float] | None,
    ) -> GradientLayout:
        """Choose offsets and widths so sums over ``n_rows`` rows never overflow a slot.

        ``bounds`` are public per-sample bounds ``(g_min, g_max, h_min, h_max)``; without them
        the observed ranges are used (regression), which reveals their bit length only.
        """
        k = g.shape[1]
        if bounds is not None:
            g_lo = np.full(k, bounds[0])
            g_hi = np.full(k, bounds[1])
            h_lo = np.full(k, bounds[2])
            h_hi = np.full(k, bounds[3])
            g_hi = np.maximum(g_hi, g.max(axis=0, initial=-np.inf))
            g_lo = np.minimum(g_lo, g.min(axis=0, initial=np.inf))
            h_hi = np.maximum(h_hi, h.max(axis=0, initial=-np.inf))
            h_lo = np.minimum(h_lo, h.min(axis=0, initial=np.inf))
        else:
            g_lo, g_hi = g.min(axis=0), g.max(axis=0)
            h_lo, h_hi = h.min(axis=0), h.max(axis=0)
        ranges = [
            (float(g_hi[j]) - float(g_lo[j]), float(h_hi[j]) - float(h_lo[j])) for j in range(k)
        ]
        widths = layout_widths(n_rows, precision, ranges)
        return cls(widths, precision, np.asarray(g_lo, float), np.asarray(h_lo, float))

    def encode(self, g: FloatArray, h: FloatArray) -> list[int]:
        """Packed plaintext integers, one per row."""
        scale = 2.0**self.precision
        cols: list[npt.NDArray[np.int64] | list[int]] = [[1] * g.shape[0]]
        for j in range(self.n_outputs):
            gi = np.rint((g[:, j] - self.g_min[j]) * scale).astype(np.int64)
            hi = np.rint((h[:, j] - self.h_min[j]) * scale).astype(np.int64)
            if gi.size and (gi.min() < 0 or hi.min() < 0):  # pragma: no cover - by construction
                raise ConfigError("gradient below its offset")
            cols += [gi, hi]
        shifts = np.cumsum([0, *self.widths[:-1]]).tolist()
        out = [0] * g.shape[0]
        for col, shift in zip(cols, shifts, strict=True):
            values = col.tolist() if isinstance(col, np.ndarray) else col
            out = [acc + (v << shift) for acc, v in zip(out, values, strict=True)]
        return out

    def decode(
        self, plaintexts: Sequence[int], per_ct: int, n_values: int, party: str
    ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
        """Unpack ``n_values`` compressed sums: arrays ``G (n, K)``, ``H (n, K)``, ``count (n,)``.

        Raises
        ------
        ProtocolAbort
            If a plaintext has bits beyond its slots (a tampered or malformed histogram).
        """
        w = self.width
        k = self.n_outputs
        limit = 1 << (w * per_ct)
        mask = (1 << w) - 1
        packed: list[int] = []
        for m in plaintexts:
            if not 0 <= m < limit:
                raise ProtocolAbort(
                    "histogram plaintext exceeds its packed width (tampered?)", party=party
                )
            rest = m
            for _ in range(per_ct):
                packed.append(rest & mask)
                rest >>= w
        packed = packed[:n_values]
        shifts = np.cumsum([0, *self.widths[:-1]]).tolist()
        masks = [(1 << wi) - 1 for wi in self.widths]
        cnt = np.array([(v >> shifts[0]) & masks[0] for v in packed], dtype=np.int64)
        scale = 2.0**-self.precision
        gs = np.empty((len(packed), k))
        hs = np.empty((len(packed), k))
        for j in range(k):
            sg, sh = shifts[1 + 2 * j], shifts[2 + 2 * j]
            mg, mh = masks[1 + 2 * j], masks[2 + 2 * j]
            gs[:, j] = [float((v >> sg) & mg) * scale for v in packed]
            hs[:, j] = [float((v >> sh) & mh) * scale for v in packed]
        gs += cnt[:, None] * self.g_min[None, :]
        hs += cnt[:, None] * self.h_min[None, :]
        return gs, hs, cnt


def add_plaintexts(
    pk: PublicKeyBase, randomizers: Sequence[Any], plaintexts: Sequence[int]
) -> list[Any]:
    """``Enc(0)_i -> Enc(m_i)``, bit-for-bit ``pk.raw_add_plain(randomizers, plaintexts)``.

    The group element encoding a plaintext (``g**m`` for OU, ``1 + m*n`` for Paillier) is
    computed once per *distinct* plaintext: boosting gradients take few distinct values (one per
    leaf path and label), so most rows cost one modular multiplication by their own fresh
    randomizer. Same ciphertexts, hence the same security.
    """
    if len(randomizers) != len(plaintexts):
        raise ConfigError(f"length mismatch: {len(randomizers)} vs {len(plaintexts)}")
    distinct = list(dict.fromkeys(plaintexts))
    element = dict(zip(distinct, pk.raw_add_plain([1] * len(distinct), distinct), strict=True))
    mod = gmpy2.mpz(pk.ciphertext_modulus)
    return [gmpy2.mpz(r) * element[m] % mod for r, m in zip(randomizers, plaintexts, strict=True)]


def ciphertexts_to_bytes(cts: Sequence[Any], pk: PublicKeyBase) -> bytes:
    """Fixed-width big-endian concatenation."""
    width = pk.ciphertext_bytes
    return b"".join(int(c).to_bytes(width, "big") for c in cts)


def ciphertexts_from_bytes(
    blob: bytes, pk: PublicKeyBase, count: int | None = None, executor: Executor | None = None
) -> list[Any]:
    """Parse and validate fixed-width ciphertexts (each must lie in Z*_M of ``pk``).

    Validation is exact and batched: every value must satisfy ``0 < c < M``, and instead of one
    gcd per ciphertext the product of all of them modulo ``n`` is checked with a single gcd.
    Sound because the prime factors of ``n`` are prime: a prime ``r | n`` divides
    ``prod c_i mod n`` iff it divides some ``c_i``, so ``gcd(prod c_i mod n, n) == 1`` iff
    ``gcd(c_i, n) == 1`` for every ``i`` (the same set of accepted inputs as the per-value
    check, at one modular multiplication per ciphertext). ``executor`` (threads) splits the
    product over cores.

    Raises
    ------
    DecodeError
        Wrong length or a value that is not a valid ciphertext under ``pk``.
    """
    width = pk.ciphertext_bytes
    if len(blob) % width or (count is not None and len(blob) != count * width):
        raise DecodeError(f"ciphertext blob of {len(blob)} bytes is not a multiple of {width}")
    total = len(blob) // width
    mod = gmpy2.mpz(pk.ciphertext_modulus)
    n = gmpy2.mpz(pk.n)
    mpz = gmpy2.mpz
    from_bytes = int.from_bytes
    cts = [mpz(from_bytes(blob[i * width : (i + 1) * width], "big")) for i in range(total)]
    bad = DecodeError(f"value is not a valid {pk.scheme} ciphertext for this key")
    if cts and (min(cts) <= 0 or max(cts) >= mod):
        raise bad

    def product(lo: int, hi: int) -> Any:
        acc = mpz(1)
        with gmpy2.context(allow_release_gil=True):
            for c in cts[lo:hi]:
                acc = acc * c % n
        return acc

    if executor is None or total < 1024:
        acc = product(0, total)
    else:
        parts = 4
        bounds = [total * i // parts for i in range(parts + 1)]
        acc = mpz(1)
        for f in [executor.submit(product, bounds[i], bounds[i + 1]) for i in range(parts)]:
            acc = acc * f.result() % n
    if gmpy2.gcd(acc, n) != 1:
        raise bad
    return cts


def compress(
    cts: Sequence[Any],
    pk: PublicKeyBase,
    width: int,
    per_ct: int,
    executor: Executor | None = None,
) -> list[Any]:
    """Pack groups of ``per_ct`` ciphertexts into one (Horner: ``acc ** 2**width * c``)."""
    mod = gmpy2.mpz(pk.ciphertext_modulus)
    shift = gmpy2.mpz(1) << width
    groups = [list(cts[i : i + per_ct]) for i in range(0, len(cts), per_ct)]

    def work(chunk: list[list[Any]]) -> list[Any]:
        out = []
        with gmpy2.context(allow_release_gil=True):
            for group in chunk:
                acc = group[-1]
                for c in reversed(group[:-1]):
                    acc = gmpy2.powmod(acc, shift, mod) * c % mod
                out.append(acc)
        return out

    if executor is None or len(groups) < 4:
        return work(groups)
    n = 8
    bounds = [len(groups) * i // n for i in range(n + 1)]
    futures = [executor.submit(work, groups[bounds[i] : bounds[i + 1]]) for i in range(n)]
    result: list[Any] = []
    for f in futures:
        result.extend(f.result())
    return result
