"""The interface every provider of correlated randomness implements.

A provider runs at *every* party of the job, in lockstep with the online program: each call is
made by all parties in the same order with the same public arguments (shapes). At a computing
party it returns that party's shares; at any other party (a separate dealer) it returns
``None`` after doing its part (e.g. sending corrections).
"""

from __future__ import annotations

from typing import Protocol

from privfin.mpc.ring import U64

__all__ = ["CorrelatedRandomness", "Shape"]

Shape = tuple[int, ...]


class CorrelatedRandomness(Protocol):
    """Offline material for the online protocol.

    Attributes
    ----------
    name:
        ``"dealer"`` or ``"paillier"``.
    trusted:
        Parties the provider's security relies on (it is insecure against them): the dealer for
        the dealer provider, nobody for dealer-free providers.
    supports_trunc_pair, supports_random_bits:
        Whether :meth:`trunc_pair` / :meth:`random_bits` are available; otherwise the online
        protocol uses its generic fallbacks (local 2-party truncation; bits from triples).
    supports_packed_bits:
        Whether :meth:`bool_triple`, :meth:`edabits` and :meth:`dabits` are available (the
        packed-bit comparison); otherwise comparisons run on 0/1 ring elements.

    Optional: a provider with ``supports_bool_pairs = True`` also offers
    ``bool_triple_pair(shape)``: XOR-shares of ``(a, b1, b2, a & b1, a & b2)`` (two AND
    triples sharing ``a``), used by the comparisons' Kogge-Stone levels.
    """

    name: str
    trusted: tuple[str, ...]
    supports_trunc_pair: bool
    supports_random_bits: bool
    supports_packed_bits: bool

    def setup(self) -> None:
        """Run once by every party before the first request (key or seed exchange)."""
        ...

    def mul_triple(self, shape: Shape) -> tuple[U64, U64, U64] | None:
        """Shares of ``a, b`` uniform in Z_2^64 of ``shape`` and ``c = a * b``."""
        ...

    def matmul_triple(self, m: int, k: int, n: int) -> tuple[U64, U64, U64] | None:
        """Shares of uniform ``A`` (m x k), ``B`` (k x n) and ``C = A @ B``."""
        ...

    def trunc_pair(self, shape: Shape, frac_bits: int) -> tuple[U64, U64, U64] | None:
        """Shares of uniform ``r``, of ``r >> frac_bits`` and of ``r >> 63`` (its top bit)."""
        ...

    def random_bits(self, shape: Shape) -> tuple[U64, U64] | None:
        """Shares of a uniform ``r`` and of its 64 bits (shape ``(64, *shape)``, bit i at
        index i, each bit a ring element 0 or 1)."""
        ...

    def bool_triple(self, shape: Shape) -> tuple[U64, U64, U64] | None:
        """XOR-shares of ``a, b`` uniform 64-bit words of ``shape`` and ``c = a & b`` (64
        independent AND triples per word)."""
        ...

    def edabits(self, shape: Shape) -> tuple[U64, U64] | None:
        """Shares of a uniform ``r``: additive shares in Z_2^64 and XOR-shares of its bits
        (one packed word per element)."""
        ...

    def dabits(self, shape: Shape) -> tuple[U64, U64] | None:
        """Shares of a uniform bit ``b`` (0/1): additive shares in Z_2^64 and XOR-shares of
        a word equal to ``b`` (only bit 0 of the XOR of the shares is meaningful)."""
        ...

    def dabit_triple(self, shape: Shape, y_shape: Shape) -> tuple[U64, U64, U64, U64] | None:
        """A daBit ``u`` of ``shape`` (additive shares, XOR-shares), a uniform mask ``b`` of
        ``y_shape`` (broadcast to ``shape``) and additive shares of ``c = u * b``: one-round
        products of XOR-shared bits with a shared value."""
        ...
