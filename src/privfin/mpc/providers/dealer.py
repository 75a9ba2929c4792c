"""Correlated randomness from a dealer trusted by the computing parties.

Security property: **insecure against the dealer.** The dealer knows every triple, truncation
pair and random bit it generates, so together with the masked values the computing parties
open it could reconstruct every secret. It is secure against any coalition of computing
parties that excludes the dealer (each sees uniformly random shares). The dealer is either a
separate party (role ``dealer``) or one of the computing parties (SPU's SEMI2K "trusted first
party" does the same); in the latter case it is insecure against that computing party, which
then learns all inputs. It is refused in production mode unless explicitly enabled
(``Settings(allow_insecure=True)``).

Communication: at setup the dealer sends a 32-byte seed to every computing party. For each
request every computing party expands its seed (AES-CTR, stream = request counter) into its
shares of the *free* (uniform) components; only the *derived* components (``c = a*b``,
``r >> f``, bits) of one computing party, the correction party, must be sent as a
:class:`~privfin.mpc.messages.Correction`. When the dealer is itself the correction party (a
computing party as dealer) nothing is sent at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import prod

import numpy as np

from privfin.config import require_insecure_allowed
from privfin.crypto.prg import expand_uint64
from privfin.errors import ProtocolAbort
from privfin.mpc.messages import Correction, Seed
from privfin.mpc.providers.base import Shape
from privfin.mpc.ring import U64, ring_matmul, ring_ops
from privfin.runtime import Context

__all__ = ["DealerProvider"]

_ONE = np.uint64(1)


class DealerProvider:
    """Dealer-generated Beaver triples, matmul triples, truncation pairs, random bits, and the
    packed-bit material of comparisons: boolean AND triples on 64-bit words, edaBits, daBits
    and daBit triples (XOR-shared components are corrected by XOR instead of subtraction).

    Parameters
    ----------
    ctx:
        The party's context (all parties of the job construct one, in lockstep).
    compute:
        The computing parties, in the agreed order.
    dealer:
        The dealer: a separate party or one of ``compute``.
    """

    name = "dealer"
    supports_trunc_pair = True
    supports_random_bits = True
    supports_packed_bits = True
    supports_bool_pairs = True
    supports_masked_design = True
    supports_bool_products = True
    supports_knot_inject = True

    def __init__(self, ctx: Context, compute: Sequence[str], dealer: str) -> None:
        require_insecure_allowed(
            ctx.settings,
            f"the trusted dealer {dealer!r} (MPC triples)",
            secure=(
                "triples='ot' (dealer-free OT-extension triples; the default for two "
                "computing parties in production mode) or, with a third independent "
                "computing party, triples='rss3' (replicated sharing, honest majority)"
            ),
        )
        if ctx.settings.mode != "production" or ctx.settings.allow_insecure:
            ctx.log.warning("MPC correlated randomness from trusted dealer %r: insecure", dealer)
        self.ctx = ctx
        self.compute = tuple(compute)
        self.dealer = dealer
        self.trusted: tuple[str, ...] = (dealer,)
        self.corr = dealer if dealer in self.compute else self.compute[0]
        self.party = ctx.party
        self.is_dealer = ctx.party == dealer
        self.is_compute = ctx.party in self.compute
        self._seeds: dict[str, bytes] = {}
        self._private = b""
        self._counter = 0
        self._ready = False
        #: the dealer's truth of the design's mask ``A`` and of the labels' mask ``β``
        #: (:meth:`design_mask`), kept for the products it derives later
        self._design: tuple[U64, U64] | None = None

    def setup(self) -> None:
        """Distribute one PRG seed per computing party (the dealer keeps them all)."""
        if self._ready:
            return
        if self.is_dealer:
            self._private = self.ctx.random.bytes(32)
            for p in self.compute:
                self._seeds[p] = self.ctx.random.bytes(32)
                if p != self.party:
                    self.ctx.channel.send(p, "mpc.dealer.seed", Seed(seed=self._seeds[p]))
        elif self.is_compute:
            msg = self.ctx.channel.recv(self.dealer, "mpc.dealer.seed", expect=Seed)
            self._seeds[self.party] = msg.seed
        self._ready = True

    # ------------------------------------------------------------------------------ generic

    @ring_ops
    def _item(
        self,
        free: Sequence[Shape],
        derived: Sequence[Shape],
        derive: Callable[[list[U64], bytes, int], list[U64]],
        xor: Sequence[bool] = (),
    ) -> list[U64] | None:
        """One item of correlated randomness: shares of the free components (uniform, sum of
        every party's PRG output) and of the derived ones (``derive(free_truth)``).

        ``xor[i]`` (default ``False``) makes component ``i`` (free components first) XOR-shared
        instead of additively shared."""
        if not self._ready:
            self.setup()
        counter = self._counter
        self._counter += 1
        sizes = [prod(s) for s in (*free, *derived)]
        total = sum(sizes)
        n_free = len(free)
        shapes = [*free, *derived]
        is_xor = [bool(xor[i]) if i < len(xor) else False for i in range(len(shapes))]

        def split(flat: U64) -> list[U64]:
            out, at = [], 0
            for size, shape in zip(sizes, shapes, strict=True):
                out.append(flat[at : at + size].reshape(shape))
                at += size
            return out

        own: list[U64] | None = None
        if self.is_dealer:
            n_free_words = sum(sizes[:n_free])
            parts = {}
            for p, seed in self._seeds.items():
                if p == self.corr:  # its derived components are the corrections: not drawn
                    head = expand_uint64(seed, n_free_words, stream=counter)
                    parts[p] = split(
                        np.concatenate([head, np.empty(total - n_free_words, np.uint64)])
                    )
                else:
                    parts[p] = split(expand_uint64(seed, total, stream=counter))
            truth_free = []
            for i in range(n_free):
                acc = parts[self.compute[0]][i].copy()
                for p in self.compute[1:]:
                    if is_xor[i]:
                        acc ^= parts[p][i]
                    else:
                        acc += parts[p][i]
                truth_free.append(acc)
            truth = derive(truth_free, self._private, counter)
            corrections = []
            for j, value in enumerate(truth):
                c = value.copy()
                for p in self.compute:
                    if p != self.corr:
                        if is_xor[n_free + j]:
                            c ^= parts[p][n_free + j]
                        else:
                            c -= parts[p][n_free + j]
                corrections.append(c)
            if self.corr == self.party:
                own = parts[self.party][:n_free] + corrections
            else:
                flat = (
                    np.concatenate([c.ravel() for c in corrections])
                    if corrections
                    else (np.zeros(0, dtype=np.uint64))
                )
                self.ctx.channel.send(
                    self.corr, "mpc.dealer.corr", Correction(counter=counter, values=flat)
                )
                if self.is_compute:
                    own = parts[self.party]
            return own
        if not self.is_compute:
            return None
        mine = split(expand_uint64(self._seeds[self.party], total, stream=counter))
        if self.party != self.corr:
            return mine
        msg = self.ctx.channel.recv(self.dealer, "mpc.dealer.corr", expect=Correction)
        n_derived = sum(sizes[n_free:])
        if msg.counter != counter or msg.values.shape != (n_derived,):
            raise ProtocolAbort(
                f"dealer sent correction {msg.counter} of {msg.values.shape[0]} values, expected "
                f"{counter} of {n_derived}",
                party=self.dealer,
            )
        at = 0
        for j, shape in enumerate(derived):
            size = sizes[n_free + j]
            mine[n_free + j] = msg.values[at : at + size].reshape(shape)
            at += size
        return mine

    # ------------------------------------------------------------------------------- items

    def mul_triple(self, shape: Shape) -> tuple[U64, U64, U64] | None:
        out = self._item([shape, shape], [shape], lambda t, _s, _c: [t[0] * t[1]])
        return None if out is None else (out[0], out[1], out[2])

    def matmul_triple(self, m: int, k: int, n: int) -> tuple[U64, U64, U64] | None:
        out = self._item([(m, k), (k, n)], [(m, n)], lambda t, _s, _c: [ring_matmul(t[0], t[1])])
        return None if out is None else (out[0], out[1], out[2])

    def trunc_pair(self, shape: Shape, frac_bits: int) -> tuple[U64, U64, U64] | None:
        f = np.uint64(frac_bits)
        out = self._item(
            [shape], [shape, shape], lambda t, _s, _c: [t[0] >> f, t[0] >> np.uint64(63)]
        )
        return None if out is None else (out[0], out[1], out[2])

    def random_bits(self, shape: Shape) -> tuple[U64, U64] | None:
        def derive(_t: list[U64], private: bytes, counter: int) -> list[U64]:
            r = expand_uint64(private, prod(shape), stream=counter).reshape(shape)
            bits = (
                r[None, ...] >> np.arange(64, dtype=np.uint64).reshape((64,) + (1,) * len(shape))
            ) & _ONE
            return [r, bits]

        out = self._item([], [shape, (64, *shape)], derive)
        return None if out is None else (out[0], out[1])

    def bool_triple(self, shape: Shape) -> tuple[U64, U64, U64] | None:
        out = self._item(
            [shape, shape], [shape], lambda t, _s, _c: [t[0] & t[1]], xor=(True, True, True)
        )
        return None if out is None else (out[0], out[1], out[2])

    def bool_triple_pair(self, shape: Shape) -> tuple[U64, U64, U64, U64, U64] | None:
        out = self._item(
            [shape, shape, shape],
            [shape, shape],
            lambda t, _s, _c: [t[0] & t[1], t[0] & t[2]],
            xor=(True,) * 5,
        )
        return None if out is None else (out[0], out[1], out[2], out[3], out[4])

    def bool_products(
        self,
        shape: Shape,
        masks: int,
        maps: Sequence[tuple[int, int, U64]],
        subsets: Sequence[tuple[int, ...]],
    ) -> list[U64] | None:
        """XOR-shares of ``masks`` uniform words ``M_j`` of ``shape`` and, for each subset
        ``S`` of the factors ``L_i = (M_j << s) & keep`` (``maps[i] = (j, s, keep)``), of the
        AND of its factors: the material of products of up to ``max |S|`` XOR-shared words in
        one round (:meth:`Engine.and_terms`)."""

        def derive(t: list[U64], _s: bytes, _c: int) -> list[U64]:
            fac = [(t[j] << np.uint64(sh)) & keep for j, sh, keep in maps]
            out = []
            for sub in subsets:
                v = fac[sub[0]].copy()
                for i in sub[1:]:
                    v &= fac[i]
                out.append(v)
            return out

        return self._item(
            [shape] * masks,
            [shape] * len(subsets),
            derive,
            xor=(True,) * (masks + len(subsets)),
        )

    def knot_inject(self, n: int, inner: int) -> list[U64] | None:
        """The material of :meth:`Engine.msb_knots_select`: a uniform ``mask`` (n); daBits
        ``u_lo``, ``u_h`` (n) and ``u_j`` (inner x n), each additive then XOR-shared;
        ``u_h·u_j``; ``u_lo·mask``, ``u_h·mask``, ``u_j·mask`` and ``u_h·u_j·mask``
        (additive), in that order."""

        def derive(t: list[U64], private: bytes, counter: int) -> list[U64]:
            mask = t[0]
            u = expand_uint64(private, (2 + inner) * n, stream=counter) & _ONE
            ulo, uh, uj = u[:n], u[n : 2 * n], u[2 * n :].reshape(inner, n)
            uhuj = uh * uj
            return [ulo, ulo, uh, uh, uj, uj, uhuj, ulo * mask, uh * mask, uj * mask, uhuj * mask]

        vec, mat = (n,), (inner, n)
        return self._item(
            [vec],
            [vec, vec, vec, vec, mat, mat, mat, vec, vec, mat, mat],
            derive,
            xor=(False, False, True, False, True, False, True),
        )

    def edabits(self, shape: Shape) -> tuple[U64, U64] | None:
        out = self._item([shape], [shape], lambda t, _s, _c: [t[0]], xor=(False, True))
        return None if out is None else (out[0], out[1])

    def dabits(self, shape: Shape) -> tuple[U64, U64] | None:
        def derive(_t: list[U64], private: bytes, counter: int) -> list[U64]:
            b = expand_uint64(private, prod(shape), stream=counter).reshape(shape) & _ONE
            return [b, b]

        out = self._item([], [shape, shape], derive, xor=(False, True))
        return None if out is None else (out[0], out[1])

    def dabit_triple(self, shape: Shape, y_shape: Shape) -> tuple[U64, U64, U64, U64] | None:
        def derive(t: list[U64], private: bytes, counter: int) -> list[U64]:
            u = expand_uint64(private, prod(shape), stream=counter).reshape(shape) & _ONE
            return [u, u, u * t[0]]

        out = self._item([y_shape], [shape, shape, shape], derive, xor=(False, False, True))
        return None if out is None else (out[1], out[2], out[0], out[3])

    # ------------------------------------------------------- SS-LR with a masked design

    def design_mask(self, n: int, k: int) -> tuple[U64, U64] | None:
        """Shares of a uniform mask ``A`` (n x k) of the design matrix and ``β`` (n) of the
        labels, opened once (``X − A``, ``y − β``); the dealer keeps their truth for
        :meth:`design_forward` and :meth:`design_backward`."""

        def keep(t: list[U64], _s: bytes, _c: int) -> list[U64]:
            self._design = (t[0], t[1])
            return []

        out = self._item([(n, k), (n,)], [], keep)
        return None if out is None else (out[0], out[1])

    def _rows(self, rows: slice | np.ndarray) -> tuple[U64, U64]:
        if self._design is None:
            raise ProtocolAbort("the design's mask was not made first", party=self.dealer)
        return self._design[0][rows], self._design[1][rows]

    def design_forward(
        self, rows: slice | np.ndarray, m: int, k: int, frac_bits: int | None
    ) -> list[U64] | None:
        """Material of ``X_b · w`` with the masked design: ``B`` (k) and ``C = A_b · B`` (m);
        with ``frac_bits`` also a truncation pair fused in the same opening (the weights
        ``w − trunc(raw)``): ``r`` (k), ``r >> f``, ``msb(r)`` and
        ``D = A_b ⊙ (msb(r)·2**(64−f))`` (m x k, each column scaled). Returned in the order
        ``B, r, C, r >> f, msb(r), D`` (``B, C`` without ``frac_bits``)."""
        if frac_bits is None:

            def plain(t: list[U64], _s: bytes, _c: int) -> list[U64]:
                a_b, _ = self._rows(rows)
                return [ring_matmul(a_b, t[0])]

            return self._item([(k,)], [(m,)], plain)
        f = np.uint64(frac_bits)

        def fused(t: list[U64], _s: bytes, _c: int) -> list[U64]:
            a_b, _ = self._rows(rows)
            b, r = t
            msb = r >> np.uint64(63)
            return [ring_matmul(a_b, b), r >> f, msb, a_b * (msb << np.uint64(64 - frac_bits))]

        return self._item([(k,), (k,)], [(m,), (k,), (k,), (m, k)], fused)

    def design_backward(
        self, rows: slice | np.ndarray, m: int, k: int, frac_bits: int
    ) -> list[U64] | None:
        """Material of ``X_bᵀ (trunc(s) − y_b)`` with the masked design: a truncation pair
        ``r`` (m), ``r >> f``, ``msb(r)`` and ``J = A_bᵀ (r >> f + β_b)`` (k),
        ``Dp = A_b ⊙ (msb(r)·2**(64−f))`` (m x k, each row scaled), in that order."""
        f = np.uint64(frac_bits)

        def derive(t: list[U64], _s: bytes, _c: int) -> list[U64]:
            a_b, beta_b = self._rows(rows)
            r = t[0]
            hi = r >> f
            msb = r >> np.uint64(63)
            j = ring_matmul(a_b.T, hi + beta_b)
            return [hi, msb, j, a_b * (msb << np.uint64(64 - frac_bits))[:, None]]

        return self._item([(m,)], [(m,), (m,), (k,), (m, k)], derive)
