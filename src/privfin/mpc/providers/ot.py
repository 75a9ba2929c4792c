"""Dealer-free correlated randomness for 2 computing parties from OT extension (IKNP).

Every item is a product of private values of the two parties, computed from correlated OTs
(:class:`privfin.mpc.ot.OtExtension`, both directions at once) and local PRG draws:

* **Beaver triples** (Gilboa): each party draws ``a_i, b_i``; the cross term ``a_i·b_j`` is an
  oblivious linear evaluation with 64 correlated OTs, one per bit ``k`` of ``b_j`` (the
  receiver's choice), correlation ``a_i``; bit ``k`` needs only ``64 − k`` bits of its
  correction (packed to the bit: 32.5 bits per word on average). 128 OTs per triple, both
  directions in the same rounds.
* **Matrix triples** (``A @ B``): one OT per bit of an element of ``B`` (``64·k·n``), each
  carrying a whole column of ``A`` (``m`` words) as its correlation; when ``m < n`` the
  transposed product is generated instead (fewer OTs, same correction bytes ``260·m·k·n``).
* **Boolean AND triples** on 64-bit words: ``a_i`` are the receiver's choice bits of 1-bit
  random OTs whose pair gives ``b_j = m0 ⊕ m1`` (and a share ``m0`` of ``a_i·b_j``): 128 OTs
  per word, only the IKNP matrix crosses the wire.
* **Bit decompositions** (edaBits, daBits, daBit triples, truncation pairs, random bits):
  ``r = x0 ⊕ x1`` for private random words ``x_i``: the XOR-shares are ``x_i`` and the
  additive shares follow from ``x0 + x1 − 2·Σ 2^k x0_k x1_k``; each bit product is one
  correlated OT (P0 sends, P1 chooses) with only the bits the item uses.

Security (semi-honest, no trusted party; κ = 128): what a party sees is the peer's IKNP
matrices and corrections, which are pseudorandom given its own view (IKNP + the
correlation-robust hash, src/privfin/crypto/SPEC.md). **Not** secure against active
deviation: a party that sends a wrong correction makes the item wrong by an amount it chose,
undetected (no MACs: the same additive attack as for every provider here); malformed messages
(sizes, counters, points) are refused.
Cost: ≈ 128 OTs per Beaver triple, ≈ 2.6 KB sent per triple and party (IKNP's 16 bytes of
``u`` per OT dominate; silent OT would cut it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from math import prod

import numpy as np

from privfin.crypto import ot as otm
from privfin.crypto.prg import expand_uint64
from privfin.errors import ConfigError
from privfin.mpc.ot import FixedOts, OtExtension
from privfin.mpc.providers.base import Shape
from privfin.mpc.ring import U64, ring_matmul, ring_ops
from privfin.runtime import Context
from privfin.runtime.context import ProgressTask

__all__ = ["MAX_MATMUL_WORDS", "MUL_CHUNK", "FixedPair", "OtProvider"]

#: Elements per chunk of a Beaver-triple request (2**20 OTs per direction).
MUL_CHUNK = 1 << 14
#: Largest ``64·m·n`` (words per row of ``B``) of a matrix triple, and 1/64 of the largest
#: ``64·m·k·n``: bigger products must be split by the caller.
MAX_MATMUL_WORDS = 1 << 25
_ONE = np.uint64(1)
_BITS = np.arange(64, dtype=np.uint64).reshape(64, 1)
_SHIFTS = np.arange(64, dtype=np.int64)
#: bits of the correction of Gilboa's OT for bit k: the received word is shifted left by k
_GILBOA_BITS = np.array([64 - k for k in range(64)], dtype=np.int64)


def _check_trunc(frac_bits: int, ring_bits: int) -> None:
    if not 2 <= ring_bits <= 64 or not 0 < frac_bits < ring_bits - 1:
        raise ConfigError(
            f"truncation by {frac_bits} bits from a ring of {ring_bits} bits is not supported"
        )


def _bit_rows(x: U64) -> np.ndarray:
    """0/1 uint8 ``(64, n)``: row ``k`` holds bit ``k`` of every element of ``x``."""
    n = x.size
    pad = otm.pad_count(max(n, 1))
    buf = np.zeros(pad, dtype=np.uint64)
    buf[:n] = x.ravel()
    rows = otm.transpose_bits(buf.view(np.uint8).reshape(pad, 8))  # (64, pad/8)
    return np.unpackbits(rows, axis=1, bitorder="little")[:, :n]


class OtProvider:
    """Beaver, matrix and AND triples, truncation pairs, random bits, edaBits, daBits and daBit
    triples for exactly 2 computing parties, without a dealer (IKNP OT extension)."""

    name = "ot"
    trusted: tuple[str, ...] = ()
    supports_trunc_pair = True
    supports_random_bits = True
    supports_packed_bits = True
    supports_bool_pairs = True

    def __init__(
        self,
        ctx: Context,
        compute: Sequence[str],
        *,
        batch: int = 1 << 20,
        kernel: bool | None = None,
    ) -> None:
        if len(compute) != 2:
            raise ConfigError(
                "OT triples are for exactly 2 computing parties (with 3, use triples='rss3')"
            )
        self.ctx = ctx
        self.compute = tuple(compute)
        self.is_compute = ctx.party in self.compute
        self.index = self.compute.index(ctx.party) if self.is_compute else -1
        self.peer = self.compute[1 - self.index] if self.is_compute else ""
        self.ot: OtExtension | None = None
        if self.is_compute:
            self.ot = OtExtension(ctx, self.peer, first=self.index == 0, batch=batch, kernel=kernel)
        self._seed = b""
        self._counter = 0
        self.items = 0
        #: truncation pairs generated ahead (:meth:`prefetch_trunc_pairs`), per (size, bits,
        #: ring bits)
        self._pool: dict[tuple[int, int, int], deque[tuple[U64, U64, U64]]] = {}
        #: requests of at least this many OTs report progress (``ctx.progress``)
        self.progress_min = 1 << 22

    def setup(self) -> None:
        if not self.is_compute or self._seed:
            return
        self._seed = self.ctx.random.bytes(32)
        assert self.ot is not None
        self.ot.setup()

    @property
    def bytes_sent(self) -> int:
        return 0 if self.ot is None else self.ot.stats.bytes_sent

    def _draw(self, count: int) -> U64:
        """Private uniform ring elements of this party (its own PRG stream)."""
        self.setup()
        counter = self._counter
        self._counter += 1
        return expand_uint64(self._seed, count, stream=counter)

    def _ext(self) -> OtExtension:
        self.setup()
        assert self.ot is not None
        return self.ot

    def _task(self, what: str, total: int) -> ProgressTask | None:
        if total < self.progress_min:
            return None
        return self.ctx.progress.task(f"mpc.ot.{what}", total=total)

    # ----------------------------------------------------------------- Beaver triples

    @ring_ops
    def _gilboa(self, mine_a: U64, mine_b: U64, task: ProgressTask | None) -> U64:
        """Shares of ``a_i·b_j + a_j·b_i`` (this party's cross terms) for flat ``a``, ``b``."""
        n = mine_a.size
        ext = self._ext()
        choices = _bit_rows(mine_b).reshape(-1)  # (bit, element) order
        # OT (k, e): choice bit k of b_j[e], correlation a_i[e] (the same for each of the 64
        # bits: repeated, not copied); summed as sum_k 2^k (received - own) per element
        acc = ext.cot_sum(
            choices,
            mine_a.reshape(-1, 1),
            period=n,
            shifts=np.repeat(_SHIFTS, n),
            nbits=np.repeat(_GILBOA_BITS, n),
            repeat=64,
            task=task,
        )
        return acc.reshape(n)

    @ring_ops
    def mul_triple(self, shape: Shape) -> tuple[U64, U64, U64] | None:
        if not self.is_compute:
            return None
        size = prod(shape)
        ab = self._draw(2 * size)
        a, b = ab[:size], ab[size:]
        c = a * b
        task = self._task("triples", 128 * size)
        for s in range(0, size, MUL_CHUNK):
            e = min(size, s + MUL_CHUNK)
            c[s:e] += self._gilboa(a[s:e], b[s:e], task)
        self.items += size
        return a.reshape(shape), b.reshape(shape), c.reshape(shape)

    @ring_ops
    def matmul_triple(self, m: int, k: int, n: int) -> tuple[U64, U64, U64] | None:
        if not self.is_compute:
            return None
        if m < n:
            # (B^T, A^T, C^T) of a triple for the transposed product needs 64*k*m OTs
            got = self._matmul_b_bits(n, k, m)
            return got[1].T.copy(), got[0].T.copy(), got[2].T.copy()
        return self._matmul_b_bits(m, k, n)

    @ring_ops
    def _matmul_b_bits(self, m: int, k: int, n: int) -> tuple[U64, U64, U64]:
        if 64 * n * m > MAX_MATMUL_WORDS or 64 * m * k * n > 64 * MAX_MATMUL_WORDS:
            # Gilboa moves ~64*m*k*n words: beyond this it takes hours and gigabytes
            raise ConfigError(
                f"a {m}x{k} @ {k}x{n} matrix triple is too large for OT-based generation "
                f"(~{64 * m * k * n:,} correlated words); split the product into smaller blocks"
            )
        ext = self._ext()
        ab = self._draw(m * k + k * n)
        a = ab[: m * k].reshape(m, k)
        b = ab[m * k :].reshape(k, n)
        c = ring_matmul(a, b)
        per_l = 64 * n * m
        step = max(1, (1 << 21) // max(per_l, 1))
        for s in range(0, k, step):
            e = min(k, s + step)
            kc = e - s
            # OT (bit, l, j): choice bit of b[l, j], correlation column a[:, l] (m words)
            choices = _bit_rows(b[s:e].reshape(-1)).reshape(-1)
            # (the same kc*n correlation rows for each of the 64 bits: repeated, not copied)
            corr = np.repeat(a[:, s:e].T, n, axis=0) if n > 1 else np.ascontiguousarray(a[:, s:e].T)
            # OT (k, l, j) goes to column j of C with weight 2^k (each received word is right
            # modulo 2**(64 - k): the shift discards the rest)
            acc = ext.cot_sum(
                choices,
                corr,
                period=n,
                shifts=np.repeat(_SHIFTS, kc * n),
                nbits=np.repeat(_GILBOA_BITS, kc * n),
                repeat=64,
            )
            c += acc.T
        self.items += m * n
        return a, b, c

    # -------------------------------------------------------------- boolean triples

    @staticmethod
    def _pack(bits: np.ndarray) -> U64:
        return np.packbits(bits, bitorder="little").view("<u8").astype(np.uint64)

    @ring_ops
    def _and_cross(self, a: U64, width: int) -> tuple[U64, list[U64], list[U64]]:
        """Random OTs with ``width``-bit messages, one per bit of this party's ``a`` (its
        choices) and one per bit it sends: returns ``a`` and, per message bit ``l``, this
        party's ``b_l = m0_l ⊕ m1_l`` and its shares of ``a_i·b_j,l ⊕ a_j·b_i,l``."""
        words = a.size
        choices = np.unpackbits(a.view(np.uint8), bitorder="little")
        task = self._task("and_triples", 128 * words)
        v, m0, m1 = self._ext().rot(choices, 64 * words, bits=width, task=task)
        bs, cross = [], []
        for bit in range(width):
            sh = np.uint8(bit)
            lo0 = (m0 >> sh) & np.uint8(1)
            lo1 = (m1 >> sh) & np.uint8(1)
            bs.append(self._pack(lo0 ^ lo1))
            cross.append(self._pack(lo0) ^ self._pack((v >> sh) & np.uint8(1)))
        return a, bs, cross

    @ring_ops
    def bool_triple(self, shape: Shape) -> tuple[U64, U64, U64] | None:
        if not self.is_compute:
            return None
        a, (b,), (cross,) = self._and_cross(self._draw(prod(shape)), 1)
        c = (a & b) ^ cross
        self.items += a.size
        return a.reshape(shape), b.reshape(shape), c.reshape(shape)

    @ring_ops
    def bool_triple_pair(self, shape: Shape) -> tuple[U64, U64, U64, U64, U64] | None:
        """Two AND triples sharing ``a`` from one random OT per bit and direction with 2-bit
        messages: half the OTs of two :meth:`bool_triple` calls."""
        if not self.is_compute:
            return None
        a, (b1, b2), (x1, x2) = self._and_cross(self._draw(prod(shape)), 2)
        c1 = (a & b1) ^ x1
        c2 = (a & b2) ^ x2
        self.items += 2 * a.size
        return tuple(t.reshape(shape) for t in (a, b1, b2, c1, c2))  # type: ignore[return-value]

    # -------------------------------------------------------------- bit decompositions

    @ring_ops
    def _bit_products(self, x: U64, bits: Sequence[int], width_bits: Sequence[int]) -> U64:
        """Shares ``(len(bits), n)`` of ``x0_k · x1_k`` (as ring elements) for each listed bit
        ``k`` of the private words ``x_i``, correct modulo ``2**width_bits[i]``. P0 sends
        (correlation: its bit), P1 chooses (its bit); P0's share is ``−h``."""
        n = x.size
        rows = _bit_rows(x)[list(bits)]  # (nb, n) 0/1
        nbits = np.repeat(np.array(width_bits, dtype=np.int64), n)
        ext = self._ext()
        empty = np.zeros((0, 1), dtype=np.uint64)
        if self.index == 0:
            _, own = ext.cot(
                np.zeros(0, np.uint8),
                rows.reshape(-1, 1).astype(np.uint64),
                recv_width=1,
                send_bits=nbits,
            )
            return np.asarray(-own.reshape(len(bits), n), dtype=np.uint64)
        got, _ = ext.cot(rows.reshape(-1), empty, recv_width=1, recv_bits=nbits)
        return got.reshape(len(bits), n)

    @ring_ops
    def _decomposed(self, n: int, widths: Sequence[int]) -> tuple[U64, U64]:
        """A fresh private word ``x_i`` per element and shares of ``x0_k x1_k`` for every bit
        ``k`` (correct modulo ``2**widths[k]``): ``r = x0 ⊕ x1``."""
        x = self._draw(n)
        bits = [k for k in range(64) if widths[k] > 0]
        p = np.zeros((64, n), dtype=np.uint64)
        if bits:
            p[bits] = self._bit_products(x, bits, [widths[k] for k in bits])
        return x, p

    def _own_bits(self, x: U64) -> U64:
        return np.asarray((x[None, :] >> _BITS) & _ONE, dtype=np.uint64)

    @ring_ops
    def edabits(self, shape: Shape) -> tuple[U64, U64] | None:
        if not self.is_compute:
            return None
        n = prod(shape)
        x, p = self._decomposed(n, [63 - k for k in range(64)])
        # r = x0 + x1 − 2 Σ 2^k p_k
        r = x - (np.sum(p << _BITS, axis=0, dtype=np.uint64) << _ONE)
        self.items += n
        return r.reshape(shape), x.reshape(shape)

    @ring_ops
    def random_bits(self, shape: Shape) -> tuple[U64, U64] | None:
        if not self.is_compute:
            return None
        n = prod(shape)
        x, p = self._decomposed(n, [63] * 64)
        bits = self._own_bits(x) - (p << _ONE)  # b_k = x0_k + x1_k − 2 p_k
        r = np.sum(bits << _BITS, axis=0, dtype=np.uint64)
        self.items += n
        return r.reshape(shape), bits.reshape((64, *shape))

    @ring_ops
    def trunc_pair(
        self, shape: Shape, frac_bits: int, ring_bits: int = 64
    ) -> tuple[U64, U64, U64] | None:
        """``(r mod 2**ring_bits, r >> frac_bits, msb)`` for a uniform ``r`` of ``ring_bits``
        bits (``msb`` its bit ``ring_bits − 1``), the last two as shares over Z_2^64: with
        ``ring_bits < 64`` the pair truncates a value shared modulo ``2**ring_bits`` into
        shares over Z_2^64 (:meth:`privfin.mpc.protocol.Engine.trunc`)."""
        if not self.is_compute:
            return None
        _check_trunc(frac_bits, ring_bits)
        n = prod(shape)
        pooled = self._pool.get((n, frac_bits, ring_bits))
        if pooled:
            r, hi, msb = pooled.popleft()
            return r.reshape(shape), hi.reshape(shape), msb.reshape(shape)
        r, hi, msb = self._trunc_items(n, frac_bits, ring_bits)
        return r.reshape(shape), hi.reshape(shape), msb.reshape(shape)

    @ring_ops
    def _trunc_items(self, n: int, f: int, ring: int = 64) -> tuple[U64, U64, U64]:
        # bit k of r = x0 ⊕ x1 is b_k = x0_k + x1_k − 2 p_k: for r (used mod 2**ring) it is
        # needed mod 2**(ring − k), for r >> f (a Z_2^64 share) mod 2**(64 − k + f), and the
        # msb as a whole ring element; p_k one bit less (it is doubled)
        widths = [max(ring - 1 - k, 63 - k + f if k >= f else 0) for k in range(ring)]
        widths[ring - 1] = 63
        x, p = self._decomposed(n, widths + [0] * (64 - ring))
        bits = (self._own_bits(x) - (p << _ONE))[:ring]  # each correct mod 2**(widths[k] + 1)
        r = np.sum(bits << _BITS[:ring], axis=0, dtype=np.uint64)
        hi = np.sum(bits[f:] << _BITS[: ring - f], axis=0, dtype=np.uint64)
        self.items += n
        return np.asarray(r, np.uint64), np.asarray(hi, np.uint64), bits[ring - 1].copy()

    def prefetch_trunc_pairs(self, requests: Sequence[tuple[int, ...]]) -> None:
        """Generate the truncation pairs of the listed future requests ``(size, frac_bits)``
        or ``(size, frac_bits, ring_bits)`` now, in bulk (one batch of bit products per scale
        and ring, in increasing order): :meth:`trunc_pair` then serves a request of that
        size, scale and ring from the pool, in order, without OT round trips. Every computing
        party calls it with the same list."""
        if not self.is_compute:
            return
        groups: dict[tuple[int, int], list[int]] = {}
        for req in requests:
            n, f, ring = (*req, 64) if len(req) == 2 else req
            if n < 1:
                raise ConfigError(f"no truncation pairs of {n} elements")
            _check_trunc(f, ring)
            groups.setdefault((f, ring), []).append(n)
        for f, ring in sorted(groups):
            sizes = groups[(f, ring)]
            r, hi, msb = self._trunc_items(sum(sizes), f, ring)
            at = 0
            for n in sizes:
                item = (r[at : at + n], hi[at : at + n], msb[at : at + n])
                self._pool.setdefault((n, f, ring), deque()).append(item)
                at += n

    @ring_ops
    def dabits(self, shape: Shape) -> tuple[U64, U64] | None:
        if not self.is_compute:
            return None
        n = prod(shape)
        x = self._draw(n) & _ONE
        p = self._bit_products(x, [0], [63])[0]
        self.items += n
        return (x - (p << _ONE)).reshape(shape), x.reshape(shape)

    @ring_ops
    def dabit_triple(self, shape: Shape, y_shape: Shape) -> tuple[U64, U64, U64, U64] | None:
        """``u = x0 ⊕ x1``; ``u·M_i = x_i M_i + (1 − 2x_i)·x_j·M_i`` for each party's mask
        share ``M_i``: one COT each way (P0's also carries ``x0`` for the daBit itself)."""
        if not self.is_compute:
            return None
        n = prod(shape)
        mask = self._draw(prod(y_shape)).reshape(y_shape)
        x = self._draw(n) & _ONE
        mb = np.broadcast_to(mask, shape).reshape(n)
        scaled = (_ONE - (x << _ONE)) * mb  # (1 − 2 x_i) M_i
        ext = self._ext()
        if self.index == 0:
            got, own = ext.cot(x.astype(np.uint8), np.stack([x, scaled], axis=1), recv_width=1)
            p = -own[:, 0]
            c = x * mb - own[:, 1] + got[:, 0]
        else:
            got, own = ext.cot(x.astype(np.uint8), scaled.reshape(n, 1), recv_width=2)
            p = got[:, 0]
            c = x * mb + got[:, 1] - own[:, 0]
        u = x - (p << _ONE)
        self.items += n
        return u.reshape(shape), x.reshape(shape), mask, c.reshape(shape)

    # ------------------------------------------------- products with a plaintext matrix

    supports_plain_products = True
    #: truncation pairs of a smaller ring (``trunc_pair(..., ring_bits)``)
    supports_ring_trunc = True

    @ring_ops
    def plain_cross(
        self, mine: U64 | None, peer_y: U64 | None, peer_rows: int, n: int, ring_bits: int = 64
    ) -> tuple[U64, U64]:
        """The cross terms of products ``M_o @ Y_o`` where one computing party ``o`` holds
        the matrix ``M_o`` in plaintext and ``Y_o`` (``q_o x n``) is additively shared.

        ``mine``: this party's plaintext ``M`` (``p x q``) or ``None``; ``peer_y``: this
        party's share of the operand of the peer's matrix (``q' x n``) or ``None``;
        ``peer_rows``: the rows ``p'`` of the peer's matrix. Gilboa with the choice bits on
        the shared operand (the small side in SS-LR): for each bit ``k`` of each element
        ``Y[l, j]`` of its share the peer chooses one correlated OT whose correlation is the
        column ``M[:, l]`` (``p`` words, trimmed to the ``64 − k`` bits used): ``64·q·n`` OTs
        per direction, no triple and nothing opened. Both directions run in the same
        batches.

        ``ring_bits`` (public, 2-64): the products are needed modulo ``2**ring_bits`` only
        (the caller truncates them into Z_2^64 with a pair of that ring): the peer chooses
        only the low ``ring_bits`` bits of its share (``ring_bits·q·n`` OTs) and the
        correction of bit ``k`` keeps ``ring_bits − k`` bits. The shares returned are then
        correct modulo ``2**ring_bits`` only.

        Returns ``(theirs, own)``: this party's shares of ``M' @ Y'^(mine)`` (``p' x n``)
        and of ``M @ Y^(peer)`` (``p x n``, zeros if ``mine`` is ``None``)."""
        if not 2 <= ring_bits <= 64:
            raise ConfigError(f"products modulo 2**{ring_bits} are not supported")
        ext = self._ext()
        nbits = _GILBOA_BITS[64 - ring_bits :]  # ring − k for bit k < ring
        shifts = _SHIFTS[:ring_bits]
        if peer_y is not None and peer_y.size and peer_rows:
            q_p = peer_y.shape[0]
            # (bit, l, j) order, bits below the ring only
            choices = _bit_rows(peer_y.reshape(-1))[:ring_bits].reshape(-1)
            rb = np.repeat(nbits, q_p * n)
        else:
            q_p = 0
            choices = np.zeros(0, np.uint8)
            rb = np.zeros(0, np.int64)
        if mine is not None and mine.size:
            p_m, q_m = mine.shape
            # OT (k, l, j): correlation column M[:, l], the same for every bit k and column j
            corr = np.repeat(mine.T, n, axis=0) if n > 1 else np.ascontiguousarray(mine.T)
            sb = np.repeat(nbits, q_m * n)
            repeat = ring_bits
        else:
            p_m = 0 if mine is None else mine.shape[0]
            q_m = 0
            corr = np.zeros((0, 1), dtype=np.uint64)
            sb = np.zeros(0, np.int64)
            repeat = 1
        theirs, own = ext.cot_sums(
            choices,
            corr,
            period=n,
            recv_width=max(peer_rows, 1) if q_p else 1,
            recv_bits=rb,
            send_bits=sb,
            recv_shifts=np.repeat(shifts, q_p * n),
            send_shifts=np.repeat(shifts, q_m * n),
            repeat=repeat,
        )
        theirs_out = theirs.T.copy() if q_p else np.zeros((peer_rows, n), dtype=np.uint64)
        mine_out = own.T.copy() if q_m else np.zeros((p_m, n), dtype=np.uint64)
        self.items += peer_rows * n * q_p + p_m * n * q_m
        return theirs_out, mine_out

    # ------------------------------------- products with a plaintext matrix, OTs reused

    #: :meth:`fixed_prepare` / :meth:`fixed_cross`: choice bits on the plaintext matrix
    supports_fixed_products = True

    @ring_ops
    def fixed_prepare(
        self,
        mine: U64 | None,
        bits: int,
        peer_shape: tuple[int, int] | None,
        peer_bits: int,
        block: int,
    ) -> FixedPair:
        """Extend, once, one OT per bit of every element of each party's plaintext matrix
        (both directions in the same batches): this party chooses with the bits of its own
        ``mine`` (``p x q``, signed fixed point with ``|x| < 2**(bits − 1)``, offset to the
        unsigned ``x + 2**(bits − 1) < 2**bits``) and sends the OTs of the peer's matrix
        (``peer_shape``, ``peer_bits`` bits, public). Only ``u`` crosses the wire:
        ``16·bits·p·q`` bytes per party. The OTs are stored by blocks of ``block`` rows (a
        batch), within a block in the order (bit ``k``, row, column): a product with a whole
        block uses a contiguous run of them (:meth:`fixed_cross`)."""
        ext = self._ext()
        if block < 1:
            raise ConfigError("fixed OTs: blocks of at least one row")
        if mine is not None:
            if not 2 <= bits <= 63:
                raise ConfigError(f"a plaintext matrix of {bits} bits is not supported")
            off = mine.view(np.int64) + np.int64(1 << (bits - 1))
            if off.size and (int(off.min()) < 0 or int(off.max()) >= 1 << bits):
                raise ConfigError(f"the plaintext matrix exceeds its announced {bits} bits")
            p, q = mine.shape
            choices = self._fixed_choices(off.view(np.uint64), bits, block)
        else:
            choices = np.zeros(0, np.uint8)
            p = q = 0
        pp, pq = peer_shape if peer_shape is not None else (0, 0)
        n_send = peer_bits * pp * pq if peer_shape is not None else 0
        task = self._task("fixed", choices.size + n_send)
        got, sent = ext.extend_fixed(choices, n_send, task=task)
        return FixedPair(
            got if mine is not None else None,
            (p, q, bits),
            sent if peer_shape is not None else None,
            (pp, pq, peer_bits),
            block,
        )

    @staticmethod
    def _fixed_choices(unsigned: U64, bits: int, block: int) -> np.ndarray:
        """The choice bits of :meth:`fixed_prepare` for a ``p x q`` matrix of unsigned
        ``bits``-bit elements: by blocks of ``block`` rows, each in the order (bit ``k``,
        row, column); :meth:`_fixed_rows` finds them again."""
        p, q = unsigned.shape
        planes = _bit_rows(unsigned.reshape(-1))[:bits].reshape(bits, p, q)
        parts = [planes[:, lo : lo + block].reshape(-1) for lo in range(0, p, block)]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint8)

    @staticmethod
    def _fixed_rows(
        p: int, q: int, bits: int, block: int, rows: slice | np.ndarray, kept: int
    ) -> slice | np.ndarray:
        """The OTs of bits ``k < kept`` of the rows ``rows`` of a ``p x q`` matrix stored by
        :meth:`fixed_prepare`, in the order (``k``, row, column): a slice when ``rows`` is a
        whole block, else indices."""
        if isinstance(rows, slice):
            lo, hi, step = rows.indices(p)
            if step == 1 and lo % block == 0 and hi == min(lo + block, p) and hi > lo:
                start = lo * q * bits  # the blocks before are whole
                return slice(start, start + kept * (hi - lo) * q)
            sel = np.arange(lo, hi, step, dtype=np.int64)
        else:
            sel = np.asarray(rows, dtype=np.int64).reshape(-1)
        beta, inner = np.divmod(sel, block)
        size = np.minimum(block, p - beta * block)
        k = np.arange(kept, dtype=np.int64).reshape(-1, 1, 1)
        base = (beta * block * q * bits).reshape(1, -1, 1)
        idx = base + (k * size.reshape(1, -1, 1) + inner.reshape(1, -1, 1)) * q
        out: np.ndarray = (idx + np.arange(q, dtype=np.int64).reshape(1, 1, -1)).reshape(-1)
        return out

    @ring_ops
    def fixed_cross(
        self,
        pair: FixedPair,
        rows: slice | np.ndarray,
        peer_y: U64 | None,
        *,
        transpose: bool,
        ring_bits: int = 64,
    ) -> tuple[U64, U64]:
        """The cross terms of ``X_o[rows] @ y_o`` (``transpose``: ``X_o[rows]^T @ e``) for
        the plaintext matrices of :meth:`fixed_prepare`, from its OTs hashed under fresh
        tweaks: this party chooses with its matrix's bits (the peer's correlation is the
        peer's share of the operand) and sends with correlation ``peer_y``, its share of the
        operand of the peer's matrix. OT (``k``, ``i``, ``l``) carries ``y[l]`` (forward:
        the words are summed per ``(i, l)`` and then over ``l``) or ``e[i]`` (summed per
        ``l``); bit ``k`` carries ``ring_bits − k`` bits of correction (products needed
        modulo ``2**ring_bits``), bits at or above the ring are skipped. The offset of the
        peer's unsigned bits is removed here: ``X'·y = X·y + 2**(K−1)·Σ y`` (``K`` its bit
        count), a term of this party's share of ``y``.

        Returns ``(theirs, own)``: this party's shares of the peer's cross term (one per
        row, or per peer column with ``transpose``) and of its own (empty without a
        matrix)."""
        if not 2 <= ring_bits <= 64:
            raise ConfigError(f"products modulo 2**{ring_bits} are not supported")
        ext = self._ext()
        p, q, bits = pair.mine_shape
        pp, pq, pbits = pair.peer_shape
        n_rows = p if pair.mine is not None else pp
        b = len(range(*rows.indices(n_rows))) if isinstance(rows, slice) else np.asarray(rows).size
        kr, ks = min(bits, ring_bits), min(pbits, ring_bits)
        if pair.mine is not None:
            recv_rows = self._fixed_rows(p, q, bits, pair.block, rows, kr)
            r_widths = (kr, b * q, ring_bits)
            r_period = q if transpose else b * q
        else:
            recv_rows, r_widths, r_period = np.zeros(0, np.int64), (0, 0, ring_bits), 1
        if pair.peer is not None:
            if peer_y is None or peer_y.size != (b if transpose else pq):
                raise ConfigError("fixed_cross: the operand of the peer's matrix is missing")
            send_rows = self._fixed_rows(pp, pq, pbits, pair.block, rows, ks)
            y = np.asarray(peer_y, dtype=np.uint64).reshape(-1)
            corr = (np.repeat(y, pq) if transpose else y).reshape(-1, 1)
            s_widths = (ks, b * pq, ring_bits)
            s_period = pq if transpose else b * pq
        else:
            send_rows, s_widths, s_period = np.zeros(0, np.int64), (0, 0, ring_bits), 1
            y = np.zeros(0, dtype=np.uint64)
            corr = np.zeros((1, 1), dtype=np.uint64)
        acc_r, acc_s = ext.cot_fixed_sums(
            pair.mine,
            recv_rows,
            pair.peer,
            send_rows,
            corr,
            recv_widths=r_widths,
            send_widths=s_widths,
            recv_period=r_period,
            send_period=s_period,
        )
        theirs: U64
        if pair.peer is not None:
            theirs = acc_s.reshape(-1) if transpose else acc_s.reshape(b, pq).sum(1, np.uint64)
            # X' = X + 2^(K−1): remove 2^(K−1)·Σ y from this party's share of the product
            off = np.sum(y, dtype=np.uint64) << np.uint64(pbits - 1)
            theirs = np.asarray(theirs - off, dtype=np.uint64)
        else:
            theirs = np.zeros(0, dtype=np.uint64)
        if pair.mine is not None:
            own = acc_r.reshape(-1) if transpose else acc_r.reshape(b, q).sum(1, np.uint64)
        else:
            own = np.zeros(0, dtype=np.uint64)
        self.items += b * (p * q + pp * pq) // max(n_rows, 1)
        return theirs, np.asarray(own, dtype=np.uint64)


class FixedPair:
    """The OTs of :meth:`OtProvider.fixed_prepare`: this party's received OTs on its own
    matrix (``mine``, shape and bits ``mine_shape``) and the OTs it sends for the peer's
    (``peer``, ``peer_shape``), stored by blocks of ``block`` rows."""

    __slots__ = ("block", "mine", "mine_shape", "peer", "peer_shape")

    def __init__(
        self,
        mine: FixedOts | None,
        mine_shape: tuple[int, int, int],
        peer: FixedOts | None,
        peer_shape: tuple[int, int, int],
        block: int,
    ) -> None:
        self.mine = mine
        self.mine_shape = mine_shape
        self.peer = peer
        self.peer_shape = peer_shape
        self.block = block
