"""The online protocol over additive shares in Z_2^64 (semi-honest).

Every party of the job runs the same program in lockstep. A computing party holds a share
(a uint64 array) of each secret value; other parties hold ``None`` and only take part where
their role requires it (a separate dealer hands out correlated randomness, see
:mod:`privfin.mpc.providers`). This module works on raw shares; :mod:`privfin.mpc.tensor` wraps
them in a user-facing tensor type.

What a computing party learns: only values masked by uniform correlated randomness (Beaver
``x - a``, ``y - b``; ``x + r`` in comparisons and truncation), which are uniform in Z_2^64 and
independent of the secrets; and nothing at all from local truncation. Output values are
revealed only through :meth:`Engine.reveal`, to named result parties.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from math import prod

import numpy as np
import numpy.typing as npt

from privfin.crypto.prg import expand_uint64
from privfin.errors import ConfigError, ProtocolAbort
from privfin.mpc.messages import Opening, RevealShare
from privfin.mpc.providers.base import CorrelatedRandomness, Shape
from privfin.mpc.ring import U64, ring_matmul, ring_ops, u64
from privfin.mpc.roles import MPCRoles
from privfin.runtime import Context

__all__ = ["TRUNCATIONS", "Engine", "MaskedDesign"]

TRUNCATIONS = ("auto", "pair", "local")
_ONE = np.uint64(1)
_ALL = np.uint64(2**64 - 1)
_M32 = np.uint64(2**32 - 1)
_LANE0 = np.uint64(1 | (1 << 32))


def _lane_keep(s: int) -> np.uint64:
    """Mask clearing the low ``s`` bits of both 32-bit lanes (what a shift carried over)."""
    low = (1 << s) - 1
    return np.uint64(_M32_INT ^ low | ((_M32_INT ^ low) << 32))


_M32_INT = 2**32 - 1
_LANE0_16 = np.uint64(0x0001000100010001)


def _lane_keep16(s: int) -> np.uint64:
    """Mask clearing the low ``s`` bits of each of the four 16-bit lanes."""
    lane = 0xFFFF ^ ((1 << s) - 1)
    return np.uint64(lane | lane << 16 | lane << 32 | lane << 48)


def _pair_trunc_parts(c: U64, r_hi: U64, r_msb: U64, frac_bits: int) -> tuple[U64, U64, U64]:
    """The pair truncation by ``frac_bits`` from its opening ``c = x + 2**62 + r`` (the pair
    ``(r, r >> f, msb r)``): ``(1 − msb c, share, public)``, this party's share of
    ``trunc(x)`` without the public part ``(c >> f) − 2**(62−f)``, which the leader adds."""
    keep = _ONE - (c >> np.uint64(63))
    share = keep * (r_msb << np.uint64(64 - frac_bits)) - r_hi
    public = (c >> np.uint64(frac_bits)) - u64(1 << (62 - frac_bits))
    return keep, share, public


_TAG_OPEN = "mpc.open"
_TAG_REVEAL = "mpc.reveal"
_TAG_RSS = "mpc.rss.pair"
_TAG_RSS_TRUNC = "mpc.rss.trunc"


class MaskedDesign:
    """A design matrix ``X`` (n x k) and labels ``y`` (n) opened once masked by the dealer's
    ``A`` and ``β`` (:meth:`Engine.mask_design`): ``E = X − A`` and ``Fy = y − β`` are public,
    ``A`` stays shared (``a``: this party's share; ``None`` where the party computes
    nothing)."""

    def __init__(self, n: int, k: int, e: U64 | None, fy: U64 | None, a: U64 | None) -> None:
        self.n = n
        self.k = k
        self.e = e
        self.fy = fy
        self.a = a

    def count(self, rows: slice | npt.NDArray[np.int64]) -> int:
        """How many rows ``rows`` selects."""
        if isinstance(rows, slice):
            return len(range(*rows.indices(self.n)))
        return int(np.asarray(rows).size)


class Engine:
    """Secure primitives on shares for one party.

    Parameters
    ----------
    truncation:
        ``"pair"``: dealer-provided truncation pair, one round, any number of computing
        parties; the result is within 1 unit in the last place (2**-f) of ``x / 2**f`` with
        certainty provided ``|x| < 2**62``. ``"local"``: SecureML's local 2-party truncation,
        no communication; within 1 unit in the last place except with probability about
        ``2**(l_x + 1 - 64)`` per element where ``|x| < 2**l_x`` (then the error is huge).
        ``"auto"``: ``pair`` if the provider offers pairs, else ``local``.
    and_fan_in:
        2 (default) or 4: with 4 and a provider of products of several words (the dealer,
        :meth:`and_terms`) the knot comparison's Kogge-Stone levels are radix 4 (2 rounds
        fewer, a third of the AND bytes, 2.4x the dealer's material: more CPU).
    """

    def __init__(
        self,
        ctx: Context,
        roles: MPCRoles,
        provider: CorrelatedRandomness,
        *,
        truncation: str = "auto",
        and_fan_in: int = 2,
    ) -> None:
        if truncation not in TRUNCATIONS:
            raise ConfigError(f"truncation must be one of {TRUNCATIONS}, got {truncation!r}")
        #: three-party replicated sharing (providers.rss3): products on replicated pairs
        self.replicated = bool(getattr(provider, "replicated", False))
        if truncation == "auto":
            truncation = "pair" if provider.supports_trunc_pair else "local"
        if truncation == "pair" and not provider.supports_trunc_pair and not self.replicated:
            # (replicated sharing always truncates exactly, without pairs: _rss_trunc)
            raise ConfigError(f"provider {provider.name!r} offers no truncation pairs")
        if truncation == "local" and len(roles.compute) != 2 and not self.replicated:
            raise ConfigError("local (SecureML) truncation needs exactly 2 computing parties")
        self.ctx = ctx
        self.roles = roles
        self.provider = provider
        self.truncation = truncation
        if and_fan_in not in (2, 4):
            raise ConfigError(f"and_fan_in must be 2 or 4, got {and_fan_in}")
        self.fan_in = and_fan_in
        self.party = ctx.party
        self.compute = roles.compute
        self.is_compute = ctx.party in roles.compute
        self.index = roles.compute.index(ctx.party) if self.is_compute else -1
        self.is_leader = self.index == 0
        self.others = tuple(p for p in roles.compute if p != ctx.party)
        self._bits_counter = 0
        self._bits_seed = b""
        self.rounds = 0
        #: wall-clock seconds spent in openings' send + receive (encoding, transport, waiting)
        self.comm_seconds = 0.0

    # -------------------------------------------------------------------------- local ops

    @ring_ops
    def add_public(self, share: U64 | None, value: U64) -> U64 | None:
        """Shares of ``x + value`` (the leader adds the public value)."""
        if share is None:
            return None
        if self.is_leader:
            return share + value
        return np.broadcast_to(share, np.broadcast_shapes(share.shape, value.shape)).copy()

    @ring_ops
    def public_share(self, value: U64) -> U64 | None:
        """Shares of a public value (leader holds it, the others hold 0)."""
        if not self.is_compute:
            return None
        return value.copy() if self.is_leader else np.zeros_like(value)

    # ---------------------------------------------------------------------- communication

    @ring_ops
    def open(self, shares: Sequence[U64 | None], xor: Sequence[U64] = ()) -> list[U64] | None:
        """Open values among the computing parties. **Only for uniformly masked values**: the
        caller guarantees each opened value is masked by fresh correlated randomness.

        ``shares`` are additive shares (reconstructed by summing), ``xor`` XOR-shares
        (reconstructed by XOR); both travel in one message (one round)."""
        if not self.is_compute:
            return None
        arrays = [s for s in shares if s is not None]
        n_sum = sum(a.size for a in arrays)
        flat = np.empty(n_sum + sum(a.size for a in xor), dtype=np.uint64)
        at = 0
        for a in (*arrays, *xor):
            flat[at : at + a.size] = a.ravel()
            at += a.size
        total = self.open_flat(flat, n_sum)
        out, at = [], 0
        for a in (*arrays, *xor):
            out.append(total[at : at + a.size].reshape(a.shape))
            at += a.size
        return out

    def open_flat(self, flat: U64, n_sum: int) -> U64:
        """Open the flat array ``flat`` **in place** (see :meth:`open`): its first ``n_sum``
        entries are additive shares, the rest XOR-shares. Only for computing parties."""
        t0 = time.perf_counter()
        self.ctx.channel.broadcast(_TAG_OPEN, Opening(values=flat), peers=self.others)
        got = self.ctx.channel.gather(_TAG_OPEN, peers=self.others, expect=Opening)
        self.comm_seconds += time.perf_counter() - t0
        for peer, msg in got.items():
            if msg.values.shape != flat.shape:
                raise ProtocolAbort(
                    f"computing party {peer!r} opened {msg.values.shape[0]} values, "
                    f"expected {flat.shape[0]}",
                    party=peer,
                )
            np.add(flat[:n_sum], msg.values[:n_sum], out=flat[:n_sum])
            if n_sum < flat.size:
                np.bitwise_xor(flat[n_sum:], msg.values[n_sum:], out=flat[n_sum:])
        self.rounds += 1
        return flat

    @ring_ops
    def reveal(self, share: U64 | None, shape: Shape, to: str, label: str = "") -> U64 | None:
        """Reconstruct a value at result party ``to`` only; returns it there, ``None`` elsewhere.

        Raises
        ------
        RevealDenied
            At every party, before anything is sent, if ``to`` is not a result party.
        """
        self.roles.check_result_party(to)
        if self.is_compute and self.party != to:
            assert share is not None
            self.ctx.channel.send(
                to, _TAG_REVEAL, RevealShare(label=label, values=np.asarray(share))
            )
        if self.party != to:
            return None
        total = np.zeros(shape, dtype=np.uint64) if share is None else share.copy()
        for peer in self.compute:
            if peer == self.party:
                continue
            msg = self.ctx.channel.recv(peer, _TAG_REVEAL, expect=RevealShare)
            if msg.values.shape != tuple(shape) or msg.label != label:
                raise ProtocolAbort(
                    f"computing party {peer!r} revealed {msg.label!r} of shape "
                    f"{msg.values.shape}, expected {label!r} of shape {tuple(shape)}",
                    party=peer,
                )
            total += msg.values
        return total

    # ------------------------------------------------------------------ multiplications

    # ------------------------------------------------- three-party replicated sharing

    def _rss_pairs(self, arrays: Sequence[U64]) -> list[U64]:
        """Send this party's components to its predecessor and receive its successor's
        (``x_{i+1}`` of every array): after this each party holds the replicated pairs."""
        flat = np.concatenate([np.ascontiguousarray(a).ravel() for a in arrays])
        n = len(self.compute)
        prev = self.compute[(self.index - 1) % n]
        nxt = self.compute[(self.index + 1) % n]
        t0 = time.perf_counter()
        self.ctx.channel.send(prev, _TAG_RSS, Opening(values=flat))
        msg = self.ctx.channel.recv(nxt, _TAG_RSS, expect=Opening)
        self.comm_seconds += time.perf_counter() - t0
        if msg.values.shape != flat.shape:
            raise ProtocolAbort(
                f"computing party {nxt!r} sent {msg.values.shape[0]} share components, "
                f"expected {flat.shape[0]}",
                party=nxt,
            )
        self.rounds += 1
        out, at = [], 0
        for a in arrays:
            out.append(msg.values[at : at + a.size].reshape(a.shape))
            at += a.size
        return out

    def _zero(self, shape: Shape) -> U64:
        return np.asarray(self.provider.zero_share(shape), dtype=np.uint64)  # type: ignore[attr-defined]

    @ring_ops
    def _rss_mul(self, x: U64 | None, y: U64 | None, shape: Shape) -> U64 | None:
        if not self.is_compute:
            return None
        assert x is not None and y is not None
        # components travel in the operands' own (public) shapes, broadcast after receipt
        xn, yn = self._rss_pairs([np.asarray(x), np.asarray(y)])
        xs, ys = np.broadcast_to(x, shape), np.broadcast_to(y, shape)
        z = xs * ys
        z += xs * np.broadcast_to(yn, shape)
        z += np.broadcast_to(xn, shape) * ys
        z += self._zero(shape)
        return np.asarray(z, dtype=np.uint64)

    @ring_ops
    def _rss_matmul(self, x: U64 | None, y: U64 | None, m: int, k: int, n: int) -> U64 | None:
        if not self.is_compute:
            return None
        assert x is not None and y is not None
        xm, ym = x.reshape(m, k), y.reshape(k, n)
        xn, yn = self._rss_pairs([xm, ym])
        z = ring_matmul(xm, ym + yn) + ring_matmul(xn, ym)
        return np.asarray(z + self._zero((m, n)), dtype=np.uint64)

    @ring_ops
    def rss_next(self, share: U64 | None, shape: Shape) -> U64 | None:
        """Replicated sharing: this party's successor's component of a shared array (one
        message to the predecessor, one round), for an operand used in many products
        (:meth:`rss_matmul_paired`): its components then travel once."""
        if not self.replicated:
            raise ConfigError("replicated pairs exist only with replicated sharing (rss3)")
        if not self.is_compute:
            return None
        assert share is not None
        (nxt,) = self._rss_pairs([np.asarray(share).reshape(shape)])
        return np.asarray(nxt, dtype=np.uint64)

    @ring_ops
    def rss_matmul_paired(
        self, x: U64 | None, x_next: U64 | None, y: U64 | None, m: int, k: int, n: int
    ) -> U64 | None:
        """:meth:`matmul` on replicated sharing when this party already holds ``x``'s pair
        (``x_next`` from :meth:`rss_next`, sliced like ``x``): only ``y``'s components
        travel (one round, ``k·n`` words per party)."""
        if not self.replicated:
            raise ConfigError("replicated pairs exist only with replicated sharing (rss3)")
        if not self.is_compute:
            return None
        assert x is not None and x_next is not None and y is not None
        xm, xn, ym = x.reshape(m, k), x_next.reshape(m, k), y.reshape(k, n)
        (yn,) = self._rss_pairs([ym])
        z = ring_matmul(xm, ym + yn) + ring_matmul(xn, ym)
        return np.asarray(z + self._zero((m, n)), dtype=np.uint64)

    @ring_ops
    def rss_local_matmul(
        self,
        x: U64 | None,
        x_next: U64 | None,
        y: U64 | None,
        y_next: U64 | None,
        m: int,
        k: int,
        n: int,
    ) -> U64 | None:
        """Replicated sharing: ``X @ Y`` when this party holds both operands' pairs: local
        (``z_i = x_i y_i + x_i y_{i+1} + x_{i+1} y_i + α_i``), no round."""
        if not self.is_compute:
            return None
        assert x is not None and x_next is not None and y is not None and y_next is not None
        xm, xn = x.reshape(m, k), x_next.reshape(m, k)
        ym, yn = y.reshape(k, n), y_next.reshape(k, n)
        z = ring_matmul(xm, ym + yn) + ring_matmul(xn, ym)
        return np.asarray(z + self._zero((m, n)), dtype=np.uint64)

    @ring_ops
    def rss_trunc_tmatmul(
        self, z: U64 | None, x: U64 | None, x_next: U64 | None, m: int, k: int, frac_bits: int
    ) -> U64 | None:
        """Replicated sharing: shares of ``Xᵀ · trunc(z, frac_bits)`` for additive ``z``
        (``m``) and ``X`` (``m x k``) whose pair this party holds, in **one round** (the
        truncation's): the truncated vector never needs its own pair exchange.

        The truncation is :meth:`_rss_trunc`'s (``c = z + 2^62 + r`` learnt by ``P1`` and
        ``P2``, ``r`` private to ``P0``, ``T = msb(r)·2^(64−F)`` split into ``t1`` from the
        key ``k1`` and ``t2`` sent to ``P2``); its components are ``o0 = T − (r >> F)``
        (``P0``), ``B − t1·β`` (``P1``) and ``−t2·β`` (``P2``) with ``B = (c >> F) − 2^(62−F)``
        and ``β = msb(c)`` known to both ``P1`` and ``P2``. Every cross term of ``Xᵀ·o`` is
        then local except three, which ``P0`` prepares in the same round from what it alone
        knows in advance: it sends ``o0 + μ`` to ``P2`` (``μ`` from ``k1``: ``P2`` adds
        ``X2ᵀ(o0 + μ)``, ``P1`` subtracts ``X2ᵀ μ``) and ``N + R`` to ``P1``, ``N = X0ᵀ
        diag(t1) + X1ᵀ diag(t2)`` (``R`` from the key ``k0`` it shares with ``P2``: ``P1``
        subtracts ``(N + R)·β``, ``P2`` adds ``R·β``). Messages: ``P0 → P1`` ``m + k·m``
        words, ``P0 → P2`` ``3 m``, ``P1 ↔ P2`` ``m`` each; every received word is masked by
        ``r`` or a key its receiver lacks. Exact like :meth:`_rss_trunc` (each element within
        one unit of ``floor(z / 2^F)``), so the product is within ``Σ |X|`` units."""
        got = self.rss_trunc_tmatmul_ex(z, x, x_next, m, k, frac_bits)
        return None if got is None else got[0]

    @ring_ops
    def rss_trunc_tmatmul_ex(
        self,
        z: U64 | None,
        x: U64 | None,
        x_next: U64 | None,
        m: int,
        k: int,
        frac_bits: int,
        *,
        pair_send: U64 | None = None,
        pair_size: int = 0,
    ) -> tuple[U64, U64, U64 | None] | None:
        """:meth:`rss_trunc_tmatmul`, also returning this party's additive component of
        ``trunc(z)`` (re-randomised by a fresh zero-sharing) and, when ``pair_size > 0``,
        carrying a pair exchange in the same round: this party sends ``pair_send``
        (``pair_size`` words) to its predecessor and receives its successor's (returned
        third). Every party passes the same ``pair_size``."""
        if not self.is_compute:
            return None
        assert z is not None and x is not None and x_next is not None
        if pair_size and (pair_send is None or pair_send.shape != (pair_size,)):
            raise ConfigError(f"the piggybacked pair exchange sends {pair_size} words")
        extra = np.asarray(pair_send, dtype=np.uint64) if pair_size else np.zeros(0, np.uint64)
        big_f = np.uint64(frac_bits)
        sh = np.uint64(64 - frac_bits)
        share = np.array(np.broadcast_to(z, (m,)), dtype=np.uint64, order="C")
        alpha = self._zero((m,))
        v1 = self.provider.joint_random(m)  # type: ignore[attr-defined]
        mu = self.provider.joint_random(m)  # type: ignore[attr-defined]
        rr = self.provider.key_random(0, k * m).reshape(k, m)  # type: ignore[attr-defined]
        zeta = self._zero((m,))
        xm, xn = x.reshape(m, k), x_next.reshape(m, k)
        p0, p1, p2 = self.compute
        bias = np.uint64(1 << 62)
        t0 = time.perf_counter()
        send = self.ctx.channel.send

        def vec(a: U64, b: U64) -> U64:  # A (m x k)ᵀ @ b (m,)
            return ring_matmul(a.T, b.reshape(m, 1)).reshape(k)

        def recv(peer: str, size: int) -> U64:
            msg = self.ctx.channel.recv(peer, _TAG_RSS_TRUNC, expect=Opening)
            if msg.values.shape != (size,):
                raise ProtocolAbort(
                    f"computing party {peer!r} sent {msg.values.shape[0]} values for a "
                    f"truncation of {m} (expected {size})",
                    party=peer,
                )
            return np.asarray(msg.values, dtype=np.uint64)

        received: U64 | None = None
        if self.index == 0:
            r = self._own_random(m)
            big_t = (r >> np.uint64(63)) << sh
            t1 = v1 << sh
            t2 = big_t - t1
            o0 = big_t - (r >> big_f)
            masked = share + bias + r + alpha
            nr = xm.T * t1[None, :] + xn.T * t2[None, :] + rr
            send(p1, _TAG_RSS_TRUNC, Opening(values=np.concatenate([masked, nr.ravel()])))
            send(p2, _TAG_RSS_TRUNC, Opening(values=np.concatenate([masked, t2, o0 + mu, extra])))
            if pair_size:
                received = recv(p1, pair_size)
            self.comm_seconds += time.perf_counter() - t0
            self.rounds += 1
            out = vec(xm + xn, o0)
            comp = o0
        else:
            other = p2 if self.index == 1 else p1
            tail = extra if self.index == 2 else np.zeros(0, np.uint64)
            send(other, _TAG_RSS_TRUNC, Opening(values=np.concatenate([share + alpha, tail])))
            if self.index == 1 and pair_size:
                send(p0, _TAG_RSS_TRUNC, Opening(values=extra))
            c = share + alpha
            first = recv(p0, m + k * m if self.index == 1 else 3 * m + pair_size)
            second = recv(other, m + (pair_size if self.index == 1 else 0))
            c += first[:m] + second[:m]
            if self.index == 1 and pair_size:
                received = second[m:]
            self.comm_seconds += time.perf_counter() - t0
            self.rounds += 1
            beta = c >> np.uint64(63)
            big_b = (c >> big_f) - u64(1 << (62 - frac_bits))
            both = xm + xn
            if self.index == 1:  # holds X1, X2
                nr = first[m:].reshape(k, m)
                t1 = v1 << sh
                comp = big_b - t1 * beta
                out = vec(both, comp) - vec(xn, mu)
                out -= ring_matmul(nr, beta.reshape(m, 1)).reshape(k)
            else:  # holds X2, X0
                t2, o0mu = first[m : 2 * m], first[2 * m : 3 * m]
                if pair_size:
                    received = first[3 * m :]
                comp = -(t2 * beta)
                out = vec(xm, o0mu) + vec(xn, big_b) + vec(both, comp)
                out += ring_matmul(rr, beta.reshape(m, 1)).reshape(k)
        product = np.asarray(out + self._zero((k,)), dtype=np.uint64)
        return product, np.asarray(comp + zeta, dtype=np.uint64), received

    @ring_ops
    def _rss_trunc(self, x: U64 | None, shape: Shape, frac_bits: int) -> U64 | None:
        """Exact truncation on replicated shares in **one round**: ``P0`` draws a private
        uniform ``r``; ``P1`` and ``P2`` both learn ``c = x + 2^62 + r`` (uniform to them)
        from ``x0 + 2^62 + r + α0`` (``P0`` → both), ``x1 + α1`` (``P1`` → ``P2``) and
        ``x2 + α2`` (``P2`` → ``P1``), ``α`` a fresh zero-sharing; then, as in the pair
        protocol, ``x / 2^f = (c >> f) − (r >> f) + T·(1 − msb(c)) − 2^(62−f)`` with
        ``T = msb(r)·2^(64−f)`` known to ``P0`` only: ``P0`` splits ``T = t1 + t2`` with
        ``t1`` from the key ``k1`` it shares with ``P1`` and sends ``t2`` to ``P2`` in the
        same round (it does not depend on ``x``), so ``T·msb(c) = t1·msb(c) + t2·msb(c)`` is
        local at ``P1`` and ``P2``, which both know ``msb(c)``. Output components
        (additive, re-randomised by a second zero-sharing): ``P0``: ``T − (r >> f)``;
        ``P1``: ``(c >> f) − 2^(62−f) − t1·msb(c)``; ``P2``: ``−t2·msb(c)``. Within one
        unit in the last place of ``floor(x / 2^f)`` for ``|x| < 2^62``, always."""
        if not self.is_compute:
            return None
        assert x is not None
        f = np.uint64(frac_bits)
        n = prod(shape)
        share = np.array(np.broadcast_to(x, shape), dtype=np.uint64, order="C").reshape(n)
        zero = self._zero((2, n))
        t1 = self.provider.joint_random(n)  # type: ignore[attr-defined]
        p0, p1, p2 = self.compute
        bias = np.uint64(1 << 62)
        t0 = time.perf_counter()
        if self.index == 0:
            r = self._own_random(n)
            big_t = (r >> np.uint64(63)) << np.uint64(64 - frac_bits)
            masked = share + bias + r + zero[0]
            self.ctx.channel.send(p1, _TAG_RSS_TRUNC, Opening(values=masked))
            both = np.concatenate([masked, big_t - t1])
            self.ctx.channel.send(p2, _TAG_RSS_TRUNC, Opening(values=both))
            self.comm_seconds += time.perf_counter() - t0
            self.rounds += 1
            out = big_t - (r >> f) + zero[1]
            return np.asarray(out.reshape(shape), dtype=np.uint64)
        other = p2 if self.index == 1 else p1
        self.ctx.channel.send(other, _TAG_RSS_TRUNC, Opening(values=share + zero[0]))
        c = share + zero[0]
        t2 = np.zeros(n, dtype=np.uint64)
        for peer, size in ((p0, n if self.index == 1 else 2 * n), (other, n)):
            msg = self.ctx.channel.recv(peer, _TAG_RSS_TRUNC, expect=Opening)
            if msg.values.shape != (size,):
                raise ProtocolAbort(
                    f"computing party {peer!r} sent {msg.values.shape[0]} values for a "
                    f"truncation of {n} (expected {size})",
                    party=peer,
                )
            c += msg.values[:n]
            if size == 2 * n:
                t2 = msg.values[n:]
        self.comm_seconds += time.perf_counter() - t0
        self.rounds += 1
        beta = c >> np.uint64(63)
        if self.index == 1:
            out = (c >> f) - u64(1 << (62 - frac_bits)) - t1 * beta + zero[1]
        else:
            out = zero[1] - t2 * beta
        return np.asarray(out.reshape(shape), dtype=np.uint64)

    @ring_ops
    def _rss_and(self, x: U64 | None, y: U64 | None, shape: Shape) -> U64 | None:
        """XOR-shares of ``x & y`` on replicated XOR pairs: one message to the predecessor,
        ``z_i = x_i y_i ^ x_i y_{i+1} ^ x_{i+1} y_i ^ β_i`` (``β``: XOR zero-sharing)."""
        if not self.is_compute:
            return None
        assert x is not None and y is not None
        xs = np.broadcast_to(x, shape)
        ys = np.broadcast_to(y, shape)
        xn, yn = self._rss_pairs([xs, ys])
        z = xs & ys
        z ^= xs & yn
        z ^= xn & ys
        z ^= self.provider.xor_zero_share(shape)  # type: ignore[attr-defined]
        return np.asarray(z, dtype=np.uint64)

    def _edabits(self, n: int) -> tuple[U64, U64] | None:
        if not self.replicated:
            return self.provider.edabits((n,))
        return self._rss_edabits(n)

    def _own_random(self, n: int) -> U64:
        return np.frombuffer(self.ctx.random.bytes(8 * n), dtype="<u8").astype(np.uint64)

    def _rss_and_local(self, x: tuple[U64, U64], y: tuple[U64, U64], beta: U64) -> U64:
        """This party's XOR-share of ``x & y`` from replicated pairs ``(v_i, v_{i+1})``."""
        z = x[0] & y[0]
        z ^= x[0] & y[1]
        z ^= x[1] & y[0]
        z ^= beta
        return np.asarray(z, dtype=np.uint64)

    @ring_ops
    def _rss_edabits(self, n: int) -> tuple[U64, U64] | None:
        """edaBits without a dealer: ``r = r0 + r1 + r2`` (each party's own random word is its
        additive share); XOR-shares of the bits of ``r`` from a boolean adder on the parties'
        words, kept as replicated pairs (ABY3: every AND output is reshared once to the
        predecessor): hand-over of the inputs, a carry-save step, then a 64-bit Kogge-Stone
        adder. 13 words sent per element, 8 rounds."""
        if not self.is_compute:
            return None
        i = self.index
        r = self._own_random(n)
        (rn,) = self._rss_pairs([r])  # the successor's word r_{i+1}
        zero = np.zeros(n, dtype=np.uint64)

        def pair_of(owner: int) -> tuple[U64, U64]:
            return (r if i == owner else zero, rn if (i + 1) % 3 == owner else zero)

        def xor(u: tuple[U64, U64], v: tuple[U64, U64]) -> tuple[U64, U64]:
            return (u[0] ^ v[0], u[1] ^ v[1])

        def shl(u: tuple[U64, U64], bits: int) -> tuple[U64, U64]:
            sh = np.uint64(bits)
            return (u[0] << sh, u[1] << sh)

        def reshare(*zs: U64) -> list[tuple[U64, U64]]:
            nxt = self._rss_pairs(list(zs))
            return [(z, zn) for z, zn in zip(zs, nxt, strict=True)]

        a, b, c = pair_of(0), pair_of(1), pair_of(2)
        beta = self.provider.xor_zero_share((13, n))  # type: ignore[attr-defined]
        # carry-save: maj(a, b, c) = (a & b) ^ (c & (a ^ b)); one fresh mask for the sum
        maj = self._rss_and_local(a, b, beta[0]) ^ self._rss_and_local(c, xor(a, b), zero)
        (carry,) = reshare(maj)
        carry = shl(carry, 1)
        total = xor(xor(a, b), c)
        (g,) = reshare(self._rss_and_local(total, carry, beta[1]))
        p0 = xor(total, carry)
        prop = p0
        k = 2
        for bits in (1, 2, 4, 8, 16):
            zg = self._rss_and_local(prop, shl(g, bits), beta[k])
            zp = self._rss_and_local(prop, shl(prop, bits), beta[k + 1])
            k += 2
            new_g, prop = reshare(zg, zp)
            g = xor(g, new_g)
        last = self._rss_and_local(prop, shl(g, 32), beta[k])
        g_own = g[0] ^ last
        return r, np.asarray(p0[0] ^ (g_own << _ONE), dtype=np.uint64)

    @ring_ops
    def _rss_dabits(self, shape: Shape) -> tuple[U64, U64] | None:
        """daBits without a dealer: ``b = b0 ^ b1 ^ b2`` (each party's random bit is its
        XOR-share); additive shares from ``t = b0 + b1 − 2 b0 b1``, ``b = t + b2 − 2 t b2``
        (two replicated products, 2 rounds)."""
        if not self.is_compute:
            return None
        n = prod(shape)
        mine = self._own_random(n) & _ONE
        zero = np.zeros(n, dtype=np.uint64)
        ins = [mine if j == self.index else zero for j in range(3)]
        p01 = self._rss_mul(ins[0], ins[1], (n,))
        assert p01 is not None
        t = ins[0] + ins[1] - (p01 << _ONE)
        pt2 = self._rss_mul(t, ins[2], (n,))
        assert pt2 is not None
        b = t + ins[2] - (pt2 << _ONE)
        return np.asarray(b.reshape(shape), dtype=np.uint64), mine.reshape(shape)

    @ring_ops
    def _rss_dabit_triple(self, shape: Shape, y_shape: Shape) -> tuple[U64, U64, U64, U64] | None:
        """A daBit ``u``, a uniform mask ``M`` (each party's own random additive share) and
        ``u·M`` (one more replicated product): 3 rounds."""
        da = self._rss_dabits(shape)
        if da is None:
            return None
        u, ux = da
        mask = self._own_random(prod(y_shape)).reshape(y_shape)
        c = self._rss_mul(u, mask, shape)  # the mask's components travel un-broadcast
        assert c is not None
        return u, ux, mask, c

    @ring_ops
    def mul(self, x: U64 | None, y: U64 | None, shape: Shape) -> U64 | None:
        """Beaver multiplication of two shared arrays of ``shape`` (no truncation).

        Online path: the two masked values are written into one send buffer, the opening is
        reconstructed in place, then ``z_i = e*y_i + f*a_i + c_i`` at every party (summed over
        the parties: ``e*y + f*a + a*b = x*y``): two multiplications and two additions over
        uint64, one new array. With replicated sharing (3 parties): ``_rss_mul``."""
        if self.replicated:
            return self._rss_mul(x, y, shape)
        triple = self.provider.mul_triple(shape)
        if not self.is_compute:
            return None
        assert x is not None and y is not None and triple is not None
        a, b, c = triple
        size = prod(shape)
        buf = np.empty(2 * size, dtype=np.uint64)
        e = buf[:size].reshape(shape)
        f = buf[size:].reshape(shape)
        np.subtract(x, a, out=e)
        np.subtract(y, b, out=f)
        self.open_flat(buf, buf.size)
        z = np.multiply(e, y)
        f *= a
        z += f
        z += c
        return z

    @ring_ops
    def matmul(self, x: U64 | None, y: U64 | None, m: int, k: int, n: int) -> U64 | None:
        """Beaver matrix product of a shared (m x k) and a shared (k x n) matrix."""
        if self.replicated:
            return self._rss_matmul(x, y, m, k, n)
        triple = self.provider.matmul_triple(m, k, n)
        if not self.is_compute:
            return None
        assert x is not None and y is not None and triple is not None
        a, b, c = triple
        opened = self.open([x.reshape(m, k) - a, y.reshape(k, n) - b])
        assert opened is not None
        e, f = opened
        left = a + e if self.is_leader else a  # (a + e) @ f + e @ b + c == ... + e @ f at leader
        return c + ring_matmul(e, b) + ring_matmul(left, f)

    @property
    def ring_trunc(self) -> bool:
        """Whether :meth:`trunc` accepts ``ring_bits < 64`` (pair truncation with a provider
        that makes pairs of a smaller ring: ``ot``)."""
        return (
            not self.replicated
            and self.truncation == "pair"
            and bool(getattr(self.provider, "supports_ring_trunc", False))
        )

    @property
    def plain_products(self) -> bool:
        """Whether :meth:`plain_matmul` is available: two computing parties and a provider
        with OT-based products of a plaintext matrix (the ``ot`` provider)."""
        return len(self.compute) == 2 and bool(
            getattr(self.provider, "supports_plain_products", False)
        )

    @ring_ops
    def plain_matmul(
        self,
        mats: dict[str, U64 | None],
        ys: dict[str, U64 | None],
        dims: dict[str, tuple[int, int]],
        n: int,
        ring_bits: int = 64,
    ) -> dict[str, U64] | None:
        """Shares of ``M_o @ Y_o`` for each computing party ``o`` in ``dims`` that holds the
        matrix ``M_o`` (``dims[o]`` = ``(p, q)``, public) in plaintext (``mats[o]`` at ``o``,
        ``None`` elsewhere) and a shared ``Y_o`` (``ys[o]``: this party's share, ``q x n``).

        ``o`` computes ``M_o @ Y_o^(o)`` locally; the cross term ``M_o @ Y_o^(peer)`` is a
        Gilboa product from correlated OTs (:meth:`OtProvider.plain_cross`): no triple, no
        opening, ``M_o`` never leaves ``o``. Both parties' matrices run in the same OT
        batches (one exchange of ``u`` and one of corrections per batch).

        ``ring_bits < 64``: the shares are correct modulo ``2**ring_bits`` only (fewer OTs
        and correction bits); the caller truncates them with :meth:`trunc` of the same
        ``ring_bits``, which returns shares over Z_2^64."""
        if not self.plain_products:
            raise ConfigError("products with a plaintext matrix need the ot provider")
        held = self._plain_mats(mats, dims)
        if held is None:
            return None
        peer, mine = held
        peer_y = ys.get(peer) if peer in dims else None
        peer_rows = dims[peer][0] if peer in dims else 0
        theirs, own = self.provider.plain_cross(  # type: ignore[attr-defined]
            mine,
            None if peer_y is None else peer_y.reshape(dims[peer][1], n),
            peer_rows,
            n,
            ring_bits,
        )
        out: dict[str, U64] = {}
        if peer in dims:
            out[peer] = theirs
        if mine is not None:
            y_own = ys[self.party]
            assert y_own is not None
            own += ring_matmul(mine, y_own.reshape(dims[self.party][1], n))
            out[self.party] = own
        return out

    def _plain_mats(
        self, mats: dict[str, U64 | None], dims: dict[str, tuple[int, int]]
    ) -> tuple[str, U64 | None] | None:
        """The checks of a product with plaintext matrices ``mats`` (shapes ``dims``, owners
        computing parties): None at a party that does not compute, else the peer and this
        party's own matrix (None if it holds none)."""
        for o in dims:
            if o not in self.compute:
                raise ConfigError(f"{o!r} holds a plaintext matrix but does not compute")
        if not self.is_compute:
            return None
        mine = mats.get(self.party) if self.party in dims else None
        if self.party in dims and (mine is None or mine.shape != dims[self.party]):
            raise ConfigError(f"this party's plaintext matrix is not {dims[self.party]}")
        return self.others[0], mine

    @property
    def plain_fixed(self) -> bool:
        """Whether :meth:`plain_fix` / :meth:`plain_fixed_matmul` are available (the ``ot``
        provider: choice bits on the plaintext matrices, OTs extended once)."""
        return self.plain_products and bool(
            getattr(self.provider, "supports_fixed_products", False)
        )

    def plain_fix(
        self,
        mats: dict[str, U64 | None],
        dims: dict[str, tuple[int, int]],
        bits: dict[str, int],
        block: int,
    ) -> object | None:
        """Extend once the OTs of every bit of the plaintext matrices ``M_o`` (``dims[o]``,
        ``bits[o]``: public; ``mats[o]`` at ``o``) for :meth:`plain_fixed_matmul`
        (:meth:`OtProvider.fixed_prepare`; stored by blocks of ``block`` rows). Returns the
        provider's handle (``None`` at a party that does not compute)."""
        if not self.plain_fixed:
            raise ConfigError("reused OT products need the ot provider")
        held = self._plain_mats(mats, dims)
        if held is None:
            return None
        peer, mine = held
        pair: object = self.provider.fixed_prepare(  # type: ignore[attr-defined]
            mine,
            bits.get(self.party, 0),
            dims.get(peer),
            bits.get(peer, 0),
            block,
        )
        return pair

    @ring_ops
    def plain_fixed_matmul(
        self,
        fixed: object | None,
        rows: slice | npt.NDArray[np.int64],
        mats: dict[str, U64 | None],
        ys: dict[str, U64 | None],
        dims: dict[str, tuple[int, int]],
        *,
        transpose: bool,
        ring_bits: int = 64,
    ) -> dict[str, U64] | None:
        """Shares of ``M_o[rows] @ y_o`` (``transpose``: ``M_o[rows]^T @ e``, the same
        shared ``e`` for every ``o``) for the matrices of :meth:`plain_fix` (``dims[o]``
        their full shapes; ``mats[o]``: the rows ``rows`` of ``M_o`` at ``o``, for the local
        term; ``ys[o]``: this party's share of the vector operand). The cross terms reuse the
        extended OTs (:meth:`OtProvider.fixed_cross`): one message each way, no ``u``.
        ``ring_bits < 64``: correct modulo ``2**ring_bits`` only."""
        if not self.plain_fixed:
            raise ConfigError("reused OT products need the ot provider")
        if not self.is_compute:
            return None
        peer = self.others[0]
        theirs, own = self.provider.fixed_cross(  # type: ignore[attr-defined]
            fixed,
            rows,
            ys.get(peer) if peer in dims else None,
            transpose=transpose,
            ring_bits=ring_bits,
        )
        out: dict[str, U64] = {}
        if peer in dims:
            out[peer] = theirs
        mine = mats.get(self.party)
        if self.party in dims:
            y_own = ys[self.party]
            assert mine is not None and y_own is not None
            m = mine.T if transpose else mine
            out[self.party] = own + ring_matmul(m, y_own.reshape(-1, 1)).reshape(-1)
        return out

    # ------------------------------------------------------------------------ truncation

    def prefetch_trunc(self, requests: Sequence[tuple[int, ...]]) -> None:
        """Announce future truncations ``(size, bits)`` or ``(size, bits, ring_bits)``
        (public: every party, same list) so
        that a provider that makes truncation pairs interactively (``ot``) generates them
        now in bulk, off the online path; a no-op for the others."""
        if self.replicated or self.truncation != "pair":
            return
        prefetch = getattr(self.provider, "prefetch_trunc_pairs", None)
        if prefetch is not None:
            prefetch(list(requests))

    @ring_ops
    def trunc(self, x: U64 | None, shape: Shape, frac_bits: int, ring_bits: int = 64) -> U64 | None:
        """Shares of ``x / 2**frac_bits`` (signed), within one unit in the last place.

        ``ring_bits < 64`` (pair truncation with a provider that makes such pairs, ``ot``):
        ``x`` is shared modulo ``2**ring_bits`` only (its shares' higher bits are
        arbitrary) and ``|x| < 2**(ring_bits − 2)``; the result is shared over Z_2^64 (the
        pair's ``r >> f`` and ``msb`` are). Opens ``c = x + 2**(ring_bits−2) + r mod
        2**ring_bits`` for a uniform ``r`` of ``ring_bits`` bits: uniform, as for 64."""
        if frac_bits == 0 and ring_bits == 64:
            return x
        if ring_bits != 64:
            return self._trunc_ring(x, shape, frac_bits, ring_bits)
        f = np.uint64(frac_bits)
        if self.replicated:
            return self._rss_trunc(x, shape, frac_bits)
        if self.truncation == "local":
            if x is None:
                return None
            if self.is_leader:
                return x >> f
            return -((-x) >> f)
        pair = self.provider.trunc_pair(shape, frac_bits)
        if not self.is_compute:
            return None
        assert x is not None and pair is not None
        r, r_hi, r_msb = pair
        shifted = self.add_public(x, np.asarray(u64(1 << 62), dtype=np.uint64))
        assert shifted is not None
        opened = self.open([shifted + r])
        assert opened is not None
        _, out, pub = _pair_trunc_parts(opened[0], r_hi, r_msb, frac_bits)
        if self.is_leader:
            out += pub
        return out

    @ring_ops
    def _trunc_ring(self, x: U64 | None, shape: Shape, frac_bits: int, ring: int) -> U64 | None:
        """:meth:`trunc` from Z_2^ring into Z_2^64. With ``x' = x + 2**(ring−2)`` in
        ``[0, 2**(ring−1))`` and ``r < 2**ring``: ``x' + r = c + 2**ring·w`` where the wrap
        ``w = msb(r)·(1 − msb(c))`` (bits ``ring − 1``), so over the integers
        ``x' >> f = (c >> f) − (r >> f) + w·2**(ring−f)`` minus 0 or 1 (the low bits' borrow):
        the pair's Z_2^64 shares of ``r >> f`` and ``msb(r)`` make the result a Z_2^64 share."""
        if not self.ring_trunc:
            raise ConfigError("truncation from a smaller ring needs pair truncation with ot")
        pair = self.provider.trunc_pair(shape, frac_bits, ring)  # type: ignore[call-arg]
        if not self.is_compute:
            return None
        assert x is not None and pair is not None
        r, r_hi, r_msb = pair
        low = u64((1 << ring) - 1)
        shifted = self.add_public(x, np.asarray(u64(1 << (ring - 2)), dtype=np.uint64))
        assert shifted is not None
        opened = self.open([(shifted + r) & low])
        assert opened is not None
        c = opened[0] & low
        not_cmsb = _ONE - (c >> np.uint64(ring - 1))
        out = r_msb * (not_cmsb << np.uint64(ring - frac_bits)) - r_hi
        if self.is_leader:
            out += (c >> np.uint64(frac_bits)) - u64(1 << (ring - 2 - frac_bits))
        return out

    # ------------------------------------------------ SS-LR with a masked design (dealer)

    @property
    def masked_design(self) -> bool:
        """Whether :meth:`mask_design`, :meth:`design_forward` and :meth:`design_backward`
        are available: pair truncation and a provider that derives products with a design
        mask it keeps (the dealer)."""
        return (
            not self.replicated
            and self.truncation == "pair"
            and bool(getattr(self.provider, "supports_masked_design", False))
        )

    def mask_design(self, x: U64 | None, y: U64 | None, n: int, k: int) -> MaskedDesign:
        """Open ``E = X − A`` and ``Fy = y − β`` once (one round, ``n·k + n`` words) for a
        shared ``X`` (n x k) and ``y`` (n); ``A``, ``β`` uniform, from the dealer, which keeps
        them for the products of :meth:`design_forward` / :meth:`design_backward` (the same
        ``A`` serves every product with ``X``, as in SecureML; each product's other operand
        gets a fresh mask)."""
        if not self.masked_design:
            raise ConfigError("a masked design needs the dealer's material and pair truncation")
        got = self.provider.design_mask(n, k)  # type: ignore[attr-defined]
        if not self.is_compute:
            return MaskedDesign(n, k, None, None, None)
        assert x is not None and y is not None and got is not None
        a, beta = got
        opened = self.open([x.reshape(n, k) - a, y.reshape(n) - beta])
        assert opened is not None
        return MaskedDesign(n, k, opened[0], opened[1], a)

    @ring_ops
    def design_forward(
        self,
        h: MaskedDesign,
        rows: slice | npt.NDArray[np.int64],
        w: U64 | None,
        raw: U64 | None = None,
        frac_bits: int = 0,
    ) -> tuple[U64, U64] | None:
        """``(w', X_b · w')`` for the rows ``rows`` of the masked design, untruncated.

        Without ``frac_bits`` (0): ``w' = w``; one round opens ``w − B``. With ``frac_bits``
        (and ``raw``, k values, at the computing parties): ``w' = w − trunc(raw, frac_bits)``
        (the pair truncation of :meth:`trunc`, same error) **in the same round**:
        ``c = raw + 2**62 + r`` and ``V − B`` are opened together, ``V = w + (r >> f) − T``,
        ``T = msb(r)·2**(64−f)``;
        then ``w' = V + P1 + P2 ⊙ T`` with public ``P1 = 2**(62−f) − (c >> f)``,
        ``P2 = msb(c)``, and ``X_b w' = E_b w' + A_b (V − B + P1) + C + D P2`` with the
        dealer's ``C = A_b B`` and ``D = A_b ⊙ T`` (columns scaled)."""
        m = h.count(rows)
        k = h.k
        fuse = frac_bits > 0
        item = self.provider.design_forward(  # type: ignore[attr-defined]
            rows, m, k, frac_bits if fuse else None
        )
        if not self.is_compute:
            return None
        assert w is not None and item is not None and h.e is not None and h.a is not None
        e_b, a_b = h.e[rows], h.a[rows]
        if not fuse:
            b, c = item
            opened = self.open([w - b])
            assert opened is not None
            z = ring_matmul(e_b, w) + ring_matmul(a_b, opened[0]) + c
            return w, np.asarray(z, dtype=np.uint64)
        assert raw is not None
        b, r, c, r_hi, r_msb, d = item
        f = np.uint64(frac_bits)
        t = r_msb << np.uint64(64 - frac_bits)
        v = w + r_hi - t
        shifted = self.add_public(raw, np.asarray(u64(1 << 62), dtype=np.uint64))
        assert shifted is not None
        opened = self.open([shifted + r, v - b])
        assert opened is not None
        cs, fv = opened
        p1 = u64(1 << (62 - frac_bits)) - (cs >> f)
        p2 = cs >> np.uint64(63)
        w_new = v + p2 * t
        if self.is_leader:
            w_new += p1
        z = ring_matmul(e_b, w_new) + ring_matmul(a_b, fv + p1) + c
        z += np.sum(d[:, p2 == _ONE], axis=1, dtype=np.uint64)
        return np.asarray(w_new, dtype=np.uint64), np.asarray(z, dtype=np.uint64)

    @ring_ops
    def design_backward(
        self,
        h: MaskedDesign,
        rows: slice | npt.NDArray[np.int64],
        s: U64 | None,
        y: U64 | None,
        frac_bits: int,
        offset: int = 0,
    ) -> tuple[U64, U64] | None:
        """``(p, X_bᵀ (p − y_b))`` with ``p = trunc(s, frac_bits) + offset`` (``s``: m values,
        ``y``: this party's share of the labels of the rows ``rows``; ``offset`` a public ring
        value), untruncated: **one round**, the truncation's opening ``c = s + 2**62 + r``.
        ``p = [P] − (r >> f) + (1 − msb(c)) ⊙ Tp`` (``P = (c >> f) − 2**(62−f) + offset``
        public, ``Tp = msb(r)·2**(64−f)``), and ``X_bᵀ (p − y_b) = E_bᵀ (p − y_b) +
        A_bᵀ (P − Fy_b) − J + Dpᵀ (1 − msb(c))`` with the dealer's ``J = A_bᵀ (r >> f +
        β_b)`` and ``Dp = A_b ⊙ Tp`` (rows scaled): no product needs an opening of its own."""
        m = h.count(rows)
        item = self.provider.design_backward(rows, m, h.k, frac_bits)  # type: ignore[attr-defined]
        if not self.is_compute:
            return None
        assert s is not None and y is not None and item is not None
        assert h.e is not None and h.a is not None and h.fy is not None
        r, r_hi, r_msb, j, dp = item
        shifted = self.add_public(s, np.asarray(u64(1 << 62), dtype=np.uint64))
        assert shifted is not None
        opened = self.open([shifted + r])
        assert opened is not None
        keep, p, pub = _pair_trunc_parts(opened[0], r_hi, r_msb, frac_bits)
        pub += u64(offset)
        if self.is_leader:
            p += pub
        err = p - y
        e_b, a_b = h.e[rows], h.a[rows]
        g = ring_matmul(e_b.T, err) + ring_matmul(a_b.T, pub - h.fy[rows]) - j
        g += np.sum(dp[keep == _ONE], axis=0, dtype=np.uint64)
        return np.asarray(p, dtype=np.uint64), np.asarray(g, dtype=np.uint64)

    # ------------------------------------------------------------------------ comparison

    @ring_ops
    def _random_bits(self, shape: Shape) -> tuple[U64, U64] | None:
        if self.provider.supports_random_bits:
            return self.provider.random_bits(shape)
        # Generic fallback from triples: XOR of one private random bit vector per party.
        if self.is_compute and not self._bits_seed:
            self._bits_seed = self.ctx.random.bytes(32)
        counter = self._bits_counter
        self._bits_counter += 1
        bshape = (64, *shape)
        acc: U64 | None = None
        for j, p in enumerate(self.compute):
            mine: U64 | None = None
            if self.is_compute:
                if p == self.party:
                    raw = expand_uint64(self._bits_seed, prod(bshape), stream=counter)
                    mine = (raw & _ONE).reshape(bshape)
                else:
                    mine = np.zeros(bshape, dtype=np.uint64)
            if j == 0:
                acc = mine
                continue
            prodbits = self.mul(acc, mine, bshape)
            if self.is_compute:
                assert acc is not None and mine is not None and prodbits is not None
                acc = acc + mine - (prodbits << _ONE)
        if acc is None:
            return None
        weights = (_ONE << np.arange(64, dtype=np.uint64)).reshape((64,) + (1,) * len(shape))
        r = np.asarray(np.sum(acc * weights, axis=0, dtype=np.uint64), dtype=np.uint64)
        return r, acc

    @ring_ops
    def msb(self, x: U64 | None, shape: Shape) -> U64 | None:
        """Shares (in Z_2^64, values 0/1) of the most significant bit of ``x``, i.e. ``x < 0``.

        Protocol: open ``c = x + r`` for a random ``r`` with shared bits (uniform: reveals
        nothing), then ``x = c + ~r + 1``; the top bit is ``c_63 xor ~r_63 xor carry_63`` where
        the carry is computed by a log-depth generate/propagate tree on the bit shares
        (6 rounds of Beaver multiplications on 0/1 values) and one final XOR. Exact.
        """
        bits = self._random_bits(shape)
        if not self.is_compute:
            # Keep the dealer / other parties in lockstep with the multiplications below.
            self._carry_tree(None, None, None, shape)
            return None
        assert x is not None and bits is not None
        r, rbits = bits
        opened = self.open([x + r])
        assert opened is not None
        c = opened[0]
        idx = np.arange(64, dtype=np.uint64).reshape((64,) + (1,) * len(shape))
        cbits = (c[None, ...] >> idx) & _ONE  # public
        nr = self._one_minus(rbits)  # shares of the bits of ~r
        g = cbits * nr  # c_i AND ~r_i: linear since c is public
        p = nr - ((cbits * nr) << _ONE)  # c_i XOR ~r_i (the leader adds the public c_i)
        if self.is_leader:
            p += cbits
        return self._carry_tree(g, p, (cbits[63], nr[63]), shape)

    @ring_ops
    def _one_minus(self, s: U64) -> U64:
        return (_ONE - s) if self.is_leader else (np.uint64(0) - s)

    @ring_ops
    def _carry_tree(
        self, g: U64 | None, p: U64 | None, top: tuple[U64, U64] | None, shape: Shape
    ) -> U64 | None:
        n = prod(shape)
        G: U64 | None = None
        P: U64 | None = None
        if g is not None and p is not None:
            g2 = g[:63].reshape(63, n)
            p2 = p[:63].reshape(63, n)
            # fold the carry-in 1 into bit 0: (g0 + p0, 0); pad bit 63 with identity (0, 1)
            G = np.concatenate([(g2[0] + p2[0])[None], g2[1:], np.zeros((1, n), np.uint64)])
            ident = self.public_share(np.ones((1, n), dtype=np.uint64))
            assert ident is not None
            P = np.concatenate([np.zeros((1, n), np.uint64), p2[1:], ident])
        width = 64
        while width > 1:
            half = width // 2
            if G is not None and P is not None:
                lo_g, hi_g = G[0::2], G[1::2]
                lo_p, hi_p = P[0::2], P[1::2]
                prods = self.mul(
                    np.concatenate([hi_p, hi_p]), np.concatenate([lo_g, lo_p]), (2 * half, n)
                )
                assert prods is not None
                G = hi_g + prods[:half]
                P = prods[half:]
            else:
                self.mul(None, None, (2 * half, n))
            width = half
        # msb = (c_63 xor ~r_63) xor carry
        if top is None or G is None:
            self.mul(None, None, (n,))
            return None
        c63, nr63 = top
        c63f = c63.reshape(n)
        t = nr63.reshape(n) - ((c63f * nr63.reshape(n)) << _ONE)  # c_63 XOR ~r_63
        if self.is_leader:
            t = t + c63f
        carry = G[0]
        prod_tc = self.mul(t, carry, (n,))
        assert prod_tc is not None
        return np.asarray((t + carry - (prod_tc << _ONE)).reshape(shape), dtype=np.uint64)

    # ----------------------------------------------------- packed-bit comparison (XOR shares)

    @property
    def packed_bits(self) -> bool:
        """Whether comparisons run on packed XOR-shared bits (provider support)."""
        return bool(getattr(self.provider, "supports_packed_bits", False))

    @ring_ops
    def and_words(self, x: U64 | None, y: U64 | None, shape: Shape) -> U64 | None:
        """XOR-shares of ``x & y`` for XOR-shared 64-bit words: 64 ANDs per word with one
        boolean Beaver triple word, one round."""
        if self.replicated:
            return self._rss_and(x, y, shape)
        triple = self.provider.bool_triple(shape)
        if not self.is_compute:
            return None
        assert x is not None and y is not None and triple is not None
        a, b, c = triple
        size = prod(shape)
        buf = np.empty(2 * size, dtype=np.uint64)
        e = buf[:size].reshape(shape)
        f = buf[size:].reshape(shape)
        np.bitwise_xor(x, a, out=e)
        np.bitwise_xor(y, b, out=f)
        self.open_flat(buf, 0)
        if self.is_leader:
            t = np.bitwise_xor(b, f)
            np.bitwise_and(t, e, out=t)
        else:
            t = np.bitwise_and(e, b)
        z = np.bitwise_and(f, a)
        z ^= t
        z ^= c
        return z

    @property
    def paired_ands(self) -> bool:
        """Whether the provider offers shared-operand AND triples (:meth:`and_words_pair`), or
        the sharing is replicated (products need no triples)."""
        return self.replicated or bool(getattr(self.provider, "supports_bool_pairs", False))

    @ring_ops
    def and_words_pair(
        self, x: U64 | None, y1: U64 | None, y2: U64 | None, shape: Shape
    ) -> tuple[U64, U64] | None:
        """XOR-shares of ``x & y1`` and ``x & y2`` with one shared-operand triple
        ``(a, b1, b2, a & b1, a & b2)``: ``x ^ a`` is opened once for both products (3 words
        instead of 4, and half the OTs for an OT provider). One round."""
        if self.replicated:
            if not self.is_compute:
                return None
            assert x is not None and y1 is not None and y2 is not None
            xs, a1, a2 = (np.broadcast_to(v, shape) for v in (x, y1, y2))
            xn, n1, n2 = self._rss_pairs([xs, a1, a2])  # x sent once for both products
            beta = self.provider.xor_zero_share((2, *shape))  # type: ignore[attr-defined]
            out = []
            for k, (y, yn) in enumerate(((a1, n1), (a2, n2))):
                z = xs & y
                z ^= xs & yn
                z ^= xn & y
                z ^= beta[k]
                out.append(np.asarray(z, dtype=np.uint64))
            return out[0], out[1]
        triple = self.provider.bool_triple_pair(shape)  # type: ignore[attr-defined]
        if not self.is_compute:
            return None
        assert x is not None and y1 is not None and y2 is not None and triple is not None
        a, b1, b2, c1, c2 = triple
        size = prod(shape)
        buf = np.empty(3 * size, dtype=np.uint64)
        e = buf[:size].reshape(shape)
        f1 = buf[size : 2 * size].reshape(shape)
        f2 = buf[2 * size :].reshape(shape)
        np.bitwise_xor(x, a, out=e)
        np.bitwise_xor(y1, b1, out=f1)
        np.bitwise_xor(y2, b2, out=f2)
        self.open_flat(buf, 0)
        out = []
        for f, b, c in ((f1, b1, c1), (f2, b2, c2)):
            t = np.bitwise_and(np.bitwise_xor(b, f), e) if self.is_leader else np.bitwise_and(e, b)
            z = np.bitwise_and(f, a)
            z ^= t
            z ^= c
            out.append(z)
        return out[0], out[1]

    def _and_level(
        self, p: U64 | None, y1: U64 | None, y2: U64 | None, n: int
    ) -> tuple[U64, U64] | None:
        """``(p & y1, p & y2)`` for one Kogge-Stone level: a shared-operand triple if the
        provider has them, else two AND words in one round."""
        if self.paired_ands:
            return self.and_words_pair(p, y1, y2, (n,))
        if not self.is_compute:
            self.and_words(None, None, (2 * n,))
            return None
        assert p is not None and y1 is not None and y2 is not None
        both = self.and_words(np.concatenate([p, p]), np.concatenate([y1, y2]), (2 * n,))
        assert both is not None
        return both[:n], both[n:]

    @property
    def multi_ands(self) -> bool:
        """Whether the comparisons use :meth:`and_terms` (``and_fan_in=4`` and products of
        several XOR-shared words in one round from the provider: the dealer)."""
        return (
            self.fan_in == 4
            and not self.replicated
            and bool(getattr(self.provider, "supports_bool_products", False))
        )

    @property
    def bool_products(self) -> bool:
        """Whether the provider makes the material of :meth:`and_terms` (the dealer)."""
        return not self.replicated and bool(getattr(self.provider, "supports_bool_products", False))

    def _radix2_level(
        self, g: U64 | None, p: U64 | None, s: int, keeps: dict[int, U64], words: int
    ) -> tuple[U64, U64] | None:
        """One Kogge-Stone level of span ``s`` (``G' = G ^ P G1``, ``P' = P P1``) in one round
        with :meth:`and_terms`: ``p`` and ``g`` are opened once each (2 words per word instead
        of the 3 of a shared-operand triple): the shifted ``P1`` is a public map of ``p``'s
        opening, its mask the same map of ``p``'s mask."""
        ones = np.full(words, _ALL, np.uint64)
        maps = [(0, 0, ones), (0, s, keeps[s]), (1, s, keeps[s])]  # P, P1, G1
        got = self.and_terms([p, g], maps, [[0, 2], [0, 1]], (words,))
        if got is None:
            return None
        assert g is not None
        return g ^ got[0], got[1]

    @staticmethod
    def _subsets(terms: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
        """Every subset of at least two factors of some term, each once, in a fixed order."""
        seen: dict[tuple[int, ...], None] = {}
        for term in terms:
            f = sorted(term)
            for mask in range(1, 1 << len(f)):
                sub = tuple(f[i] for i in range(len(f)) if mask >> i & 1)
                if len(sub) >= 2:
                    seen.setdefault(sub, None)
        return list(seen)

    @ring_ops
    def and_terms(
        self,
        xs: Sequence[U64 | None],
        maps: Sequence[tuple[int, int, U64]],
        terms: Sequence[Sequence[int]],
        shape: Shape,
    ) -> list[U64] | None:
        """XOR-shares of ``AND_{i in T} L_i`` for each term ``T`` (factor indices), with the
        factors ``L_i = (x_j << s) & keep`` (``maps[i] = (j, s, keep)``, public shifts and
        masks) of XOR-shared words ``xs``: **one round** whatever the fan-in.

        Each ``x_j`` is opened once masked by a uniform word ``M_j`` (``U_j = x_j ^ M_j``);
        then ``L_i = L_i(U) ^ L_i(M)`` (linear), and a product expands into
        ``XOR_{S ⊆ T} (AND_{i ∉ S} L_i(U)) & (AND_{i ∈ S} L_i(M))`` whose public factors are
        known and whose mask products (``|S| >= 2``) the dealer provides
        (:meth:`DealerProvider.bool_products`)."""
        subsets = self._subsets(terms)
        got = self.provider.bool_products(  # type: ignore[attr-defined]
            shape, len(xs), maps, subsets
        )
        if not self.is_compute:
            return None
        assert got is not None
        masks = got[: len(xs)]
        mprod = dict(zip(subsets, got[len(xs) :], strict=True))
        buf = np.empty(len(xs) * prod(shape), dtype=np.uint64)
        size = prod(shape)
        for j, x in enumerate(xs):
            assert x is not None
            np.bitwise_xor(x, masks[j], out=buf[j * size : (j + 1) * size].reshape(shape))
        self.open_flat(buf, 0)
        opened = [buf[j * size : (j + 1) * size].reshape(shape) for j in range(len(xs))]
        pub_f = [(opened[j] << np.uint64(sh)) & keep for j, sh, keep in maps]
        mask_f = [(masks[j] << np.uint64(sh)) & keep for j, sh, keep in maps]
        pubs: dict[tuple[int, ...], U64] = {}

        def pub(idx: tuple[int, ...]) -> U64:
            if idx not in pubs:
                v = pub_f[idx[0]].copy()
                for i in idx[1:]:
                    v &= pub_f[i]
                pubs[idx] = v
            return pubs[idx]

        out = []
        tmp = np.empty(shape, np.uint64)
        for term in terms:
            f = sorted(term)
            acc = pub(tuple(f)).copy() if self.is_leader else np.zeros(shape, np.uint64)
            for mask in range(1, 1 << len(f)):
                sub = tuple(f[i] for i in range(len(f)) if mask >> i & 1)
                rest = tuple(f[i] for i in range(len(f)) if not mask >> i & 1)
                share = mask_f[sub[0]] if len(sub) == 1 else mprod[sub]
                if rest:
                    np.bitwise_and(share, pub(rest), out=tmp)
                    acc ^= tmp
                else:
                    acc ^= share
            out.append(acc)
        return out

    def _radix4_level(
        self, g: U64 | None, p: U64 | None, s: int, keeps: dict[int, U64], words: int
    ) -> tuple[U64, U64] | None:
        """One Kogge-Stone level of span ``s`` and radix 4 in one round (:meth:`and_terms`):
        ``G' = G ^ P G1 ^ P P1 G2 ^ P P1 P2 G3``, ``P' = P P1 P2 P3`` with ``X_j`` the word
        shifted by ``j s`` within its lanes (``keeps[j s]`` clears what crossed a lane)."""
        ones = np.full(words, _ALL, np.uint64)
        maps = [(0, 0, ones)]  # P0
        maps += [(0, j * s, keeps[j * s]) for j in (1, 2, 3)]  # P1, P2, P3
        maps += [(1, j * s, keeps[j * s]) for j in (1, 2, 3)]  # G1, G2, G3
        terms = [[0, 4], [0, 1, 5], [0, 1, 2, 6], [0, 1, 2, 3]]
        got = self.and_terms([p, g], maps, terms, (words,))
        if got is None:
            return None
        assert g is not None
        return g ^ got[0] ^ got[1] ^ got[2], got[3]

    @ring_ops
    def msb_bool(self, x: U64 | None, shape: Shape) -> U64 | None:
        """XOR-shares of ``msb(x)`` (``x < 0``) in bit 0 of a word per element; exact.

        Protocol: open ``c = x + r`` for an edaBit ``r`` (uniform, so ``c`` reveals nothing);
        ``x = c + ~r + 1`` and ``msb(x) = c_63 ^ ~r_63 ^ carry_63``. With ``c`` public and
        ``~r`` XOR-shared as one packed word, generate ``g = c & ~r`` and propagate
        ``p = c ^ ~r`` are local; the carry into bit 63 is a Kogge-Stone prefix over the packed
        word: 6 levels ``G ^= P & (G << s)``, ``P &= P << s`` (s = 1, 2, ..., 32), each one
        round of boolean AND triples on 2 words per element (1 on the last level). Rounds: 7;
        traffic per element: 8 bytes for ``c`` + 11 words for the ANDs.
        """
        n = prod(shape)
        eda = self._edabits(n)
        shifts = (1, 2, 4, 8, 16, 32)
        if not self.is_compute:
            for s in shifts:
                if s == 32:
                    self.and_words(None, None, (n,))
                else:
                    self._and_level(None, None, None, n)
            return None
        assert x is not None and eda is not None
        r, rb = eda
        buf = np.add(x.reshape(n), r)
        c = self.open_flat(buf, n)
        nr = ~rb if self.is_leader else rb  # XOR-shares of ~r
        g = c & nr
        p = nr ^ c if self.is_leader else nr.copy()
        g ^= p & _ONE  # carry-in 1 folded into bit 0: g0 | p0 (g, p are exclusive)
        p &= ~_ONE  # bit 0 is a complete group: it never propagates
        for s in shifts:
            sh = np.uint64(s)
            if s == 32:
                z = self.and_words(p, g << sh, (n,))
                assert z is not None
                g ^= z
                break
            both = self._and_level(p, g << sh, p << sh, n)
            assert both is not None
            g ^= both[0]
            p = both[1]
        top = (g >> np.uint64(62)) ^ (nr >> np.uint64(63))
        if self.is_leader:
            top ^= c >> np.uint64(63)
        return np.asarray((top & _ONE).reshape(shape), dtype=np.uint64)

    @ring_ops
    def msb_bool_window(self, x: U64 | None, shape: Shape, low: int) -> U64 | None:
        """Like :meth:`msb_bool` but on the 32-bit window ``[low, low + 32)`` of ``x``:
        XOR-shares (bit 0) of the sign of ``floor(x / 2**low)`` read as a 32-bit integer,
        **ignoring the borrow from the low bits**. Correct whenever
        ``-2**(low + 31) <= x < 2**(low + 31)``, except that ``x`` in ``[-2**low, 0)`` may be
        reported as non-negative (an error of one unit of ``2**low``).

        Two elements share one packed word (32-bit lanes), and the carry chain is 31 bits:
        5 AND levels, a quarter of the AND triples of :meth:`msb_bool`; 6 rounds.
        """
        n = prod(shape)
        half = (n + 1) // 2
        eda = self._edabits(n)
        shifts = (1, 2, 4, 8, 16)
        if not self.is_compute:
            for s in shifts:
                if s == 16:
                    self.and_words(None, None, (half,))
                else:
                    self._and_level(None, None, None, half)
            return None
        assert x is not None and eda is not None
        r, rb = eda
        c = self.open_flat(np.add(x.reshape(n), r), n)
        lo = np.uint64(low)

        def lanes(v: U64) -> U64:
            w = (v >> lo) & _M32
            if n % 2:
                w = np.concatenate([w, np.zeros(1, np.uint64)])
            return np.asarray(w[:half] | (w[half:] << np.uint64(32)), dtype=np.uint64)

        cw = lanes(c)
        nr = lanes(rb)
        if self.is_leader:
            nr ^= _ALL  # ~r within both lanes
            p = nr ^ cw
        else:
            p = nr.copy()
        g = cw & nr
        g ^= p & _LANE0
        p &= ~_LANE0
        for s in shifts:
            sh = np.uint64(s)
            keep = _lane_keep(s)
            if s == 16:
                z = self.and_words(p, (g << sh) & keep, (half,))
                assert z is not None
                g ^= z
                break
            both = self._and_level(p, (g << sh) & keep, (p << sh) & keep, half)
            assert both is not None
            g ^= both[0]
            p = both[1]
        top = (g << _ONE) ^ nr  # carry into bit 31 (63) is G at bit 30 (62)
        if self.is_leader:
            top ^= cw
        bits = np.concatenate([(top >> np.uint64(31)) & _ONE, (top >> np.uint64(63)) & _ONE])
        return np.asarray(bits[:n].reshape(shape), dtype=np.uint64)

    @ring_ops
    def _knot_bits(
        self, x: U64 | None, n: int, knots: U64, low: int, inner_low: int
    ) -> tuple[U64, U64, U64] | None:
        """XOR-shares (0/1 per element) of ``g_lo = [x < t_0]``, ``g_hi = [x < t_{k−1}]`` and
        the unguarded inner bits ``b_j`` (``(k − 2)·n``, knot-major) for ``n`` shared elements
        ``x`` and ``k >= 3`` sorted public ring values ``t_j``; the guard is applied by
        :meth:`msb_knots` or :meth:`msb_knots_select`.

        One edaBit ``r`` per element masks ``x`` once (``c = x + r`` is opened; then
        ``x - t_j + r = c - t_j`` is public for every knot). The outer knots ``t_0`` and
        ``t_{k-1}`` are compared on the 32-bit window ``[low, low + 32)`` (as
        :meth:`msb_bool_window`: valid for ``|x - t| < 2**(low + 31)``, values in
        ``[-2**low, 0)`` may read as non-negative), the inner ones on 16-bit lanes (four per
        word) of the window ``[inner_low, inner_low + 16)``, which is only valid for
        ``|x - t_j| < 2**(inner_low + 15)``: a garbled inner bit is replaced by the outer
        ones, ``[x < t_j] = g_lo ^ ((g_lo ^ g_hi) & b_j)`` with ``g_lo = [x < t_0]`` and
        ``g_hi = [x < t_{k-1}]`` (exact when ``t_0 <= x < t_{k-1}`` keeps every inner
        difference in range). Both lane widths share the Kogge-Stone levels: 6 rounds
        (opening, 4 levels, the last 32-bit level; 4 with radix 4), the guard one more in
        :meth:`msb_knots` and none in :meth:`msb_knots_select`; AND material per
        element ``(5 + (k - 2)) / 2`` words-levels instead of ``5 k / 2``, and one edaBit
        instead of ``k``."""
        k = len(knots)
        inner = k - 2
        w16 = -(-inner * n // 4)
        words = n + w16
        eda = self._edabits(n)
        radix4 = self.multi_ands
        keeps = {
            sh: np.concatenate(
                [np.full(n, _lane_keep(sh), np.uint64), np.full(w16, _lane_keep16(sh), np.uint64)]
            )
            for sh in ((1, 2, 3, 4, 8, 12) if radix4 else (1, 2, 4, 8))
        }
        if not self.is_compute:
            if radix4:
                for s in (1, 4):
                    self._radix4_level(None, None, s, keeps, words)
            elif self.bool_products:
                for s in (1, 2, 4, 8):
                    self._radix2_level(None, None, s, keeps, words)
            else:
                for _ in range(4):
                    self._and_level(None, None, None, words)
            self.and_words(None, None, (n,))
            return None
        assert x is not None and eda is not None
        r, rb = eda
        c = self.open_flat(np.add(x.reshape(n), r), n)
        t = np.asarray(knots, dtype=np.uint64)
        m16 = np.uint64(0xFFFF)
        # 32-bit words: lane 0 compares with t_0, lane 1 with t_{k-1}
        lo32 = np.uint64(low)
        c_lo = ((c - t[0]) >> lo32) & _M32
        c_hi = ((c - t[-1]) >> lo32) & _M32
        r32 = (rb >> lo32) & _M32
        # 16-bit words: inner value j * n + e sits in lane i of word w (j * n + e = i * w16 + w)
        lo16 = np.uint64(inner_low)
        flat_c = np.zeros(4 * w16, dtype=np.uint64)
        flat_c[: inner * n] = (((c[None, :] - t[1:-1, None]) >> lo16) & m16).reshape(-1)
        flat_r = np.zeros(4 * w16, dtype=np.uint64)
        flat_r[: inner * n] = np.tile((rb >> lo16) & m16, inner)
        lanes = np.arange(4, dtype=np.uint64).reshape(4, 1) * np.uint64(16)
        cw = np.concatenate(
            [c_lo | (c_hi << np.uint64(32)), np.bitwise_or.reduce(flat_c.reshape(4, w16) << lanes)]
        )
        nr = np.concatenate(
            [r32 | (r32 << np.uint64(32)), np.bitwise_or.reduce(flat_r.reshape(4, w16) << lanes)]
        )
        lane0 = np.concatenate([np.full(n, _LANE0, np.uint64), np.full(w16, _LANE0_16, np.uint64)])
        if self.is_leader:
            nr ^= _ALL  # ~r within every lane (the lanes fill the words)
            p = nr ^ cw
        else:
            p = nr.copy()
        g = cw & nr
        g ^= p & lane0
        p &= ~lane0
        if radix4:  # two levels of radix 4 (spans 1, 4): groups of 16 bits
            for s in (1, 4):
                lvl = self._radix4_level(g, p, s, keeps, words)
                assert lvl is not None
                g, p = lvl
        elif self.bool_products:  # radix 2, p and g opened once per level
            for s in (1, 2, 4, 8):
                lvl = self._radix2_level(g, p, s, keeps, words)
                assert lvl is not None
                g, p = lvl
        else:
            for s in (1, 2, 4, 8):
                sh = np.uint64(s)
                keep = keeps[s]
                both = self._and_level(p, (g << sh) & keep, (p << sh) & keep, words)
                assert both is not None
                g ^= both[0]
                p = both[1]  # (spent on the 16-bit words after the level s = 8)
        g32, p32 = g[:n], p[:n]
        z = self.and_words(p32, (g32 << np.uint64(16)) & _lane_keep(16), (n,))
        assert z is not None
        g32 ^= z
        top = (g << _ONE) ^ nr  # the carry into a lane's top bit sits one bit below it
        if self.is_leader:
            top ^= cw
        g_lo = (top[:n] >> np.uint64(31)) & _ONE
        g_hi = (top[:n] >> np.uint64(63)) & _ONE
        t16 = top[n:]
        inner_bits = np.concatenate([(t16 >> np.uint64(16 * i + 15)) & _ONE for i in range(4)])[
            : inner * n
        ]
        return g_lo, g_hi, inner_bits

    @ring_ops
    def msb_knots(self, x: U64 | None, n: int, knots: U64, low: int, inner_low: int) -> U64 | None:
        """XOR-shares (bit 0 of a word) of ``[x < t_j]`` (see :meth:`_knot_bits`), the inner
        bits guarded by the outer ones, ``[x < t_j] = g_lo ^ ((g_lo ^ g_hi) & b_j)``, on packed
        bits in one AND round: 7 rounds in all (5 with ``and_fan_in=4``)."""
        inner = len(knots) - 2
        wm = -(-inner * n // 64)
        got = self._knot_bits(x, n, knots, low, inner_low)
        if got is None:
            self.and_words(None, None, (wm,))
            return None
        g_lo, g_hi, inner_bits = got
        mask = np.tile(g_lo ^ g_hi, inner)
        pm = self._pack_words(mask, wm)
        pb = self._pack_words(inner_bits, wm)
        both_and = self.and_words(pm, pb, (wm,))
        assert both_and is not None
        guarded = self._unpack(both_and, inner * n, (inner, n)) ^ g_lo[None, :]
        out = np.concatenate([g_lo[None, :], guarded, g_hi[None, :]])
        return np.asarray(out, dtype=np.uint64)

    @property
    def knot_inject(self) -> bool:
        """Whether :meth:`msb_knots_select` is available (the dealer's guarded daBits)."""
        return not self.replicated and bool(getattr(self.provider, "supports_knot_inject", False))

    @ring_ops
    def msb_knots_select(
        self, x: U64 | None, n: int, knots: U64, low: int, inner_low: int, y: U64 | None
    ) -> tuple[U64, U64] | None:
        """Additive shares of ``B_j = [x < t_j]`` and of ``B_j · y`` (shape ``(k, n)``, ``y``
        n values broadcast over the knots): the bits of :meth:`_knot_bits`, the guard and the
        conversion with the product **in one round** (6 in all; 4 with ``and_fan_in=4``).

        With ``h = g_lo ^ g_hi`` (``h = 1`` implies ``g_lo = 0``) the guarded bits are
        arithmetically ``B_0 = g_lo``, ``B_j = g_lo + h·b_j``, ``B_{k−1} = g_lo + h``. The
        dealer's material (:meth:`DealerProvider.knot_inject`): daBits ``u_lo``, ``u_h``,
        ``u_j``, the products ``u_h·u_j`` and, with a uniform ``mask`` of ``y``,
        ``u·mask`` and ``u_h·u_j·mask``. One message opens ``g_lo ^ u_lo``, ``h ^ u_h``,
        ``b_j ^ u_j`` (packed bits) and ``F = y − mask``; with public ``m`` and ``s = 1 − 2m``
        every bit is ``m + s·u``, ``h·b_j = m_h m_j + m_h s_j u_j + s_h m_j u_h + s_h s_j u_h
        u_j`` and a product with ``y = F + mask`` expands the same way into the dealer's
        products: all local."""
        inner = len(knots) - 2
        bits = self._knot_bits(x, n, knots, low, inner_low)
        item = self.provider.knot_inject(n, inner)  # type: ignore[attr-defined]
        if not self.is_compute:
            return None
        assert bits is not None and item is not None and y is not None
        g_lo, g_hi, ib = bits
        mask, ulo, ulo_x, uh, uh_x, uj, uj_x, uhuj, ulo_m, uh_m, uj_m, uhuj_m = item
        masked = np.concatenate([g_lo ^ ulo_x, g_lo ^ g_hi ^ uh_x, ib ^ uj_x.reshape(-1)]) & _ONE
        packed = np.packbits(masked.astype(np.uint8), bitorder="little")
        words = np.zeros((packed.size + 7) // 8 * 8, dtype=np.uint8)
        words[: packed.size] = packed
        opened = self.open([y.reshape(n) - mask], xor=[words.view("<u8").astype(np.uint64)])
        assert opened is not None
        f = opened[0]
        m = self._unpack(opened[1], (2 + inner) * n, ((2 + inner) * n,))
        m_lo, m_h, m_j = m[:n], m[n : 2 * n], m[2 * n :].reshape(inner, n)
        s_lo, s_h, s_j = _ONE - (m_lo << _ONE), _ONE - (m_h << _ONE), _ONE - (m_j << _ONE)
        g = s_lo * ulo
        h = s_h * uh
        hb = s_h * s_j * uhuj + m_h * s_j * uj + s_h * m_j * uh
        if self.is_leader:
            g += m_lo
            h += m_h
            hb += m_h * m_j
        y_lo = f * g + m_lo * mask + s_lo * ulo_m
        y_h = f * h + m_h * mask + s_h * uh_m
        y_j = f * hb + m_h * m_j * mask + m_h * s_j * uj_m + s_h * m_j * uh_m + s_h * s_j * uhuj_m
        out_b = np.concatenate([g[None, :], g[None, :] + hb, (g + h)[None, :]])
        out_by = np.concatenate([y_lo[None, :], y_lo[None, :] + y_j, (y_lo + y_h)[None, :]])
        return np.asarray(out_b, dtype=np.uint64), np.asarray(out_by, dtype=np.uint64)

    @staticmethod
    def _pack_words(bits: U64, words: int) -> U64:
        """0/1 per element -> packed little-endian bits in ``words`` 64-bit words."""
        packed = np.packbits(bits.astype(np.uint8), bitorder="little")
        buf = np.zeros(8 * words, dtype=np.uint8)
        buf[: packed.size] = packed
        return buf.view("<u8").astype(np.uint64)

    @ring_ops
    def bit_inject(
        self, bits: U64 | None, y: U64 | None, shape: Shape, y_shape: Shape | None
    ) -> tuple[U64, U64 | None] | None:
        """Additive shares of ``b`` and, if ``y_shape`` is given, of ``b * y`` for XOR-shared
        bits ``b`` (bit 0 of each word) of ``shape`` and an additive ``y`` of ``y_shape``
        (broadcast to ``shape``). One round.

        With a daBit triple ``(u, mask, u * mask)`` the parties open ``m = b ^ u`` (packed, 1
        bit per element) and ``f = y - mask`` (``y``'s size, shared by every bit it is
        broadcast against) in one message; then ``u y = u mask + u f``, ``b = m + u - 2 m u``
        and ``b y = m y + (1 - 2m) u y``, local since ``m`` and ``f`` are public.
        """
        if y_shape is None:
            da = self._rss_dabits(shape) if self.replicated else self.provider.dabits(shape)
            tri = None
        else:
            tri = (
                self._rss_dabit_triple(shape, y_shape)
                if self.replicated
                else self.provider.dabit_triple(shape, y_shape)
            )
            da = None if tri is None else (tri[0], tri[1])
        if not self.is_compute:
            return None
        assert bits is not None and da is not None
        u_a, u_b = da
        masked = (bits ^ u_b) & _ONE
        packed = np.packbits(masked.ravel().astype(np.uint8), bitorder="little")
        words = np.zeros((packed.size + 7) // 8 * 8, dtype=np.uint8)
        words[: packed.size] = packed
        size = prod(shape)
        sums = [] if tri is None or y is None else [y - tri[2]]
        opened = self.open(sums, xor=[words.view("<u8").astype(np.uint64)])
        assert opened is not None
        m = self._unpack(opened[-1], size, shape)
        b_arith = u_a - ((m * u_a) << _ONE)
        if self.is_leader:
            b_arith += m
        if tri is None or y is None:
            return np.asarray(b_arith, dtype=np.uint64), None
        uy = tri[3] + u_a * opened[0]
        by = m * y + uy - ((m * uy) << _ONE)
        return np.asarray(b_arith, dtype=np.uint64), np.asarray(by, dtype=np.uint64)

    @staticmethod
    def _unpack(words: U64, size: int, shape: Shape) -> U64:
        raw = np.ascontiguousarray(words).view(np.uint8)
        bits = np.unpackbits(raw, count=size, bitorder="little")
        return bits.astype(np.uint64).reshape(shape)
