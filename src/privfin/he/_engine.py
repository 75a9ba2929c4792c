"""Encryption engines: the per-key arithmetic of bulk encryption, shared by the calling process
and by pool workers (:mod:`privfin.he._procs`).

An engine is rebuilt from its :attr:`Engine.spec`, a small tuple of ints (public values only:
the modulus, the fixed bases and the window sizes), so a worker process receives a few hundred
bytes and recomputes its fixed-base tables instead of receiving megabytes of them. Engines hold
no randomness: the caller draws the short exponents and passes them in, which keeps results
independent of where (which process, which thread) they are computed.

Pure math: no I/O, no module-level state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import gmpy2

from privfin.errors import ConfigError
from privfin.he._util import FixedBaseTable

__all__ = ["Engine", "OUEngine", "PaillierEngine", "Spec", "engine_from_spec"]

#: ``("paillier", n, h_s, window)`` or ``("ou", n, g, h, window, g_window)``.
Spec = tuple[Any, ...]


class Engine(ABC):
    """Encryption arithmetic of one key: ``Enc(m; a) = plain(m) * base**a mod M``."""

    spec: Spec
    modulus: Any
    exponent_bits: int

    def __reduce__(self) -> tuple[Any, tuple[Spec]]:
        # Pickled as its spec: a worker started by spawn/forkserver rebuilds the tables.
        return engine_from_spec, (self.spec,)

    @property
    def ciphertext_bytes(self) -> int:
        """Fixed width of one ciphertext in bytes."""
        return (int(self.modulus).bit_length() + 7) // 8

    @abstractmethod
    def randomizers(self, exps: Sequence[int]) -> list[Any]:
        """``base ** a mod M`` for each short exponent ``a`` (encryptions of zero)."""

    @abstractmethod
    def encrypt(self, ms: Sequence[int], exps: Sequence[int]) -> list[Any]:
        """Ciphertexts of ``ms`` (in the scheme's plaintext form), exponents ``exps``."""

    @abstractmethod
    def prepare(self, ms: Sequence[int] = ()) -> None:
        """Build every table row ``encrypt(ms, ...)`` needs (before handing work to threads)."""

    @abstractmethod
    def tables(self) -> list[FixedBaseTable]:
        """The fixed-base tables of this engine."""


class PaillierEngine(Engine):
    """DJN Paillier: ``(1 + n)**m * h_s**a mod n**2`` with a fixed-base table for ``h_s``.

    ``(1 + m*n) * R = R + n * (m*R mod n)  (mod n**2)``: the plaintext factor costs a reduction
    modulo ``n`` and a half-size product instead of a full multiplication modulo ``n**2``.
    """

    def __init__(self, n: int, hs: int, window: int, exponent_bits: int) -> None:
        self.spec = ("paillier", int(n), int(hs), window, exponent_bits)
        self._n = gmpy2.mpz(n)
        self.modulus = self._n * self._n
        self.exponent_bits = exponent_bits
        self.table = FixedBaseTable(hs, self.modulus, window)

    def prepare(self, ms: Sequence[int] = ()) -> None:
        self.table.ensure_bits(self.exponent_bits)

    def tables(self) -> list[FixedBaseTable]:
        return [self.table]

    def randomizers(self, exps: Sequence[int]) -> list[Any]:
        pow_ = self.table.pow
        return [pow_(a) for a in exps]

    def encrypt(self, ms: Sequence[int], exps: Sequence[int]) -> list[Any]:
        """``ms`` must be residues in ``[0, n)``."""
        n, nsq = self._n, self.modulus
        pow_ = self.table.pow
        out = []
        for m, a in zip(ms, exps, strict=True):
            r = pow_(a)
            c = r + n * (m * r % n) if m else r
            if c >= nsq:
                c -= nsq
            out.append(c)
        return out


class OUEngine(Engine):
    """Okamoto–Uchiyama: ``g**m * h**a mod n`` with fixed-base tables for ``g``, ``g**-1``, ``h``.

    The ``g`` tables grow with the plaintexts (up to ``capacity_bits``), so they keep a small
    window; the ``h`` table covers only the short exponent and takes a large one.
    """

    def __init__(self, n: int, g: int, h: int, window: int, g_window: int, exponent_bits: int):
        self.spec = ("ou", int(n), int(g), int(h), window, g_window, exponent_bits)
        self.modulus = gmpy2.mpz(n)
        self.exponent_bits = exponent_bits
        self.g_table = FixedBaseTable(g, self.modulus, g_window)
        self.g_inv_table = FixedBaseTable(gmpy2.invert(g, self.modulus), self.modulus, g_window)
        self.h_table = FixedBaseTable(h, self.modulus, window)

    def plain(self, m: int) -> Any:
        """``g ** m mod n`` (``m`` may be negative)."""
        return self.g_table.pow(m) if m >= 0 else self.g_inv_table.pow(-m)

    def prepare(self, ms: Sequence[int] = ()) -> None:
        self.h_table.ensure_bits(self.exponent_bits)
        pos = max((m for m in ms if m > 0), default=0)
        neg = -min((m for m in ms if m < 0), default=0)
        if pos:
            self.g_table.ensure_bits(pos.bit_length())
        if neg:
            self.g_inv_table.ensure_bits(neg.bit_length())

    def tables(self) -> list[FixedBaseTable]:
        return [self.h_table, self.g_table, self.g_inv_table]

    def randomizers(self, exps: Sequence[int]) -> list[Any]:
        pow_ = self.h_table.pow
        return [pow_(a) for a in exps]

    def encrypt(self, ms: Sequence[int], exps: Sequence[int]) -> list[Any]:
        g_pow, g_inv_pow = self.g_table.pow, self.g_inv_table.pow
        mul_pow = self.h_table.mul_pow
        out = []
        for m, a in zip(ms, exps, strict=True):
            if m == 0:
                out.append(mul_pow(None, a))
            else:
                out.append(mul_pow(g_pow(m) if m > 0 else g_inv_pow(-m), a))
        return out


def engine_from_spec(spec: Spec) -> Engine:
    """Rebuild an engine from its spec (in a pool worker). Tables are built lazily."""
    if not isinstance(spec, tuple) or not spec:
        raise ConfigError("not an engine spec")
    if spec[0] == "paillier" and len(spec) == 5:
        _, n, hs, window, bits = spec
        return PaillierEngine(n, hs, window, bits)
    if spec[0] == "ou" and len(spec) == 7:
        _, n, g, h, window, g_window, bits = spec
        return OUEngine(n, g, h, window, g_window, bits)
    raise ConfigError(f"unknown engine spec {spec[0]!r}")
