"""Three-party replicated secret sharing (ABY3-style; semi-honest, honest majority): no
dealer, no triples.

The computing parties ``P0, P1, P2`` keep the platform's additive shares ``x = x0 + x1 + x2``
(so every local operation of :class:`~privfin.mpc.tensor.SharedTensor` is unchanged); party
``Pi`` also obtains ``x_{i+1}`` from its successor whenever a product needs it, so that it
holds the replicated pair ``(x_i, x_{i+1})`` — exactly the view of ABY3's 2-out-of-3
replicated sharing, never more. With the pair, products are local up to a fresh zero-sharing:

* multiplication / matrix product: each ``Pi`` sends ``(x_i, y_i)`` to ``P_{i-1}`` (one
  message, one round), then ``z_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i + α_i`` (matrix
  products with ``@``): the nine cross terms of ``(Σ x)(Σ y)`` are each counted once;
* ``α_i = F(k_i, c) − F(k_{i+1}, c)`` with pairwise PRG keys (``Pi`` holds ``k_i`` and the
  ``k_{i+1}`` its successor sent at setup): ``Σ α_i = 0`` and ``α_i`` is uniform to
  ``P_{i−1}``, which lacks ``k_{i+1}``, so every product share a party later receives is
  fresh;
* truncation, exact, one round: ``P0`` draws a private uniform ``r``, ``P1`` and ``P2``
  both learn ``c = x + 2^62 + r`` (``P0`` sends ``x0 + 2^62 + r + α0`` to both, ``P1`` and
  ``P2`` exchange ``x_i + α_i``), and the pair-protocol term ``msb(r)·2^(64−f)·msb(c)`` is
  split by ``P0`` into ``t1`` (from the key ``k1`` it shares with ``P1``) and ``t2`` (sent to
  ``P2`` in the same round): within one unit in the last place of ``floor(x / 2^f)`` for
  every ``|x| < 2^62`` (:meth:`~privfin.mpc.protocol.Engine._rss_trunc`).

Comparisons run on packed XOR-shared words as with the dealer: the engine makes ANDs from
replicated boolean products (``z_i = x_i y_i ^ x_i y_{i+1} ^ x_{i+1} y_i ^ β_i``, ``β`` an XOR
zero-sharing), edaBits from a boolean adder on the parties' own random words, and daBits from
two replicated products, so every function of :mod:`privfin.mpc.functions`, ``mpc_stats`` and
``ss_lr`` run unchanged. Data and result parties may be distinct from the
three computing parties (JR/T 0196 roles).

Security: any single computing party sees two of the three components of every value
(uniform), and zero-shared products; two colluding computing parties learn everything
(honest majority). Semi-honest: a party that sends wrong components shifts results undetected
(no MACs).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod

import numpy as np

from privfin.crypto.prg import expand_uint64
from privfin.errors import ConfigError
from privfin.mpc.messages import Seed
from privfin.mpc.providers.base import Shape
from privfin.mpc.ring import U64, ring_ops
from privfin.runtime import Context

__all__ = ["Rss3Provider"]

_TAG_KEY = "mpc.rss.key"


class Rss3Provider:
    """Pairwise PRG keys and zero-sharings for exactly 3 computing parties; it offers no
    triples: the engine multiplies on the replicated pairs (``replicated = True``)."""

    name = "rss3"
    trusted: tuple[str, ...] = ()
    replicated = True
    supports_trunc_pair = False
    supports_random_bits = False
    #: comparisons run on packed XOR-shared words: the engine builds edaBits, daBits and ANDs
    #: from replicated products (no triples)
    supports_packed_bits = True

    def __init__(self, ctx: Context, compute: Sequence[str]) -> None:
        if len(compute) != 3:
            raise ConfigError(
                f"replicated secret sharing needs exactly 3 computing parties, got {len(compute)}"
            )
        self.ctx = ctx
        self.compute = tuple(compute)
        self.is_compute = ctx.party in self.compute
        self.index = self.compute.index(ctx.party) if self.is_compute else -1
        self.prev = self.compute[(self.index - 1) % 3] if self.is_compute else ""
        self.next = self.compute[(self.index + 1) % 3] if self.is_compute else ""
        self._own = b""
        self._next_key = b""
        self._counter = 0

    def setup(self) -> None:
        """Each computing party sends a fresh key ``k_i`` to its predecessor."""
        if not self.is_compute or self._own:
            return
        self._own = self.ctx.random.bytes(32)
        self.ctx.channel.send(self.prev, _TAG_KEY, Seed(seed=self._own))
        self._next_key = self.ctx.channel.recv(self.next, _TAG_KEY, expect=Seed).seed

    @ring_ops
    def zero_share(self, shape: Shape) -> U64:
        """This party's ``α_i`` of a fresh sharing of zero (``Σ α_i = 0``)."""
        self.setup()
        counter = self._counter
        self._counter += 1
        n = prod(shape)
        mine = expand_uint64(self._own, n, stream=counter)
        theirs = expand_uint64(self._next_key, n, stream=counter)
        return np.asarray(mine - theirs, dtype=np.uint64).reshape(shape)

    @ring_ops
    def xor_zero_share(self, shape: Shape) -> U64:
        """This party's ``β_i`` of a fresh XOR-sharing of zero (``β_0 ^ β_1 ^ β_2 = 0``)."""
        self.setup()
        counter = self._counter
        self._counter += 1
        n = prod(shape)
        mine = expand_uint64(self._own, n, stream=counter)
        theirs = expand_uint64(self._next_key, n, stream=counter)
        return np.asarray(mine ^ theirs, dtype=np.uint64).reshape(shape)

    def joint_random(self, count: int) -> U64:
        """Uniform words known to ``P0`` and ``P1`` only (expanded from the key ``k1`` they
        share; ``P2`` gets zeros). Every computing party calls it in lockstep."""
        self.setup()
        counter = self._counter
        self._counter += 1
        if self.index == 0:
            return expand_uint64(self._next_key, count, stream=counter)
        if self.index == 1:
            return expand_uint64(self._own, count, stream=counter)
        return np.zeros(count, dtype=np.uint64)

    def key_random(self, key: int, count: int) -> U64:
        """Uniform words from the key ``k_key``, known to ``P_key`` and ``P_{key−1}`` only
        (zeros at the third party). Every computing party calls it in lockstep."""
        self.setup()
        counter = self._counter
        self._counter += 1
        if self.index == key:
            return expand_uint64(self._own, count, stream=counter)
        if (self.index + 1) % 3 == key:
            return expand_uint64(self._next_key, count, stream=counter)
        return np.zeros(count, dtype=np.uint64)

    def _none(self, what: str) -> ConfigError:
        return ConfigError(f"replicated sharing multiplies without {what}; the engine asked one")

    def mul_triple(self, shape: Shape) -> None:
        raise self._none("Beaver triples")

    def matmul_triple(self, m: int, k: int, n: int) -> None:
        raise self._none("matrix triples")

    def trunc_pair(self, shape: Shape, frac_bits: int) -> None:
        raise self._none("truncation pairs")

    def random_bits(self, shape: Shape) -> None:
        raise self._none("random bits")

    def bool_triple(self, shape: Shape) -> None:
        raise self._none("AND triples")

    def edabits(self, shape: Shape) -> None:
        raise self._none("edaBits")

    def dabits(self, shape: Shape) -> None:
        raise self._none("daBits")

    def dabit_triple(self, shape: Shape, y_shape: Shape) -> None:
        raise self._none("daBit triples")
