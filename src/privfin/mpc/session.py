"""An MPC session: roles, correlated randomness and the online protocol for one component run.

Every party of the job builds a :class:`Session` with the same parameters and runs the same
program with it::

    s = Session.from_params(ctx, params)
    x = s.share("bank", inputs.get("income"))      # data party -> computing parties
    y = s.share("telco", inputs.get("arpu"))
    out = (x * y).sum().reveal(to="bank")           # only a result party may receive it

Security property (semi-honest): computing parties see only their shares and uniformly masked
openings; a data party learns nothing it did not input; result parties learn exactly the values
revealed to them. Against a dealer the protocol is insecure (see
:mod:`privfin.mpc.providers.dealer`). Control flow must not depend on secret values, and a
program must not branch on values revealed to only some parties.
"""

from __future__ import annotations

from collections.abc import Mapping
from math import prod
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.crypto.prg import expand_uint64
from privfin.errors import ConfigError, ProtocolAbort
from privfin.mpc import functions
from privfin.mpc.messages import InputHeader, InputShare
from privfin.mpc.protocol import Engine
from privfin.mpc.providers.base import CorrelatedRandomness
from privfin.mpc.ring import decode_fixed, encode_fixed, ring_ops, to_ring, to_signed
from privfin.mpc.roles import DATA, MPCRoles, RevealDenied
from privfin.mpc.tensor import PlainTensor, SharedTensor, matmul_shape
from privfin.runtime import Context

__all__ = ["PROVIDERS", "RevealDenied", "Session", "check_shape", "make_provider"]

PROVIDERS = ("auto", "ot", "rss3", "dealer", "paillier")
_TAG_INPUT = "mpc.input"


def make_provider(
    ctx: Context, roles: MPCRoles, name: str, *, paillier_bits: int = 2048
) -> CorrelatedRandomness:
    """Build the correlated-randomness provider ``name`` for this party.

    ``"auto"``, in production mode: dealer-free OT triples (``"ot"``) for 2 computing
    parties, replicated sharing (``"rss3"``) for 3; otherwise the dealer (development mode, or
    more than 3 computing parties, where the dealer is refused in production with an error
    naming the secure alternatives)."""
    if name == "auto":
        production = ctx.settings.mode == "production"
        if production and len(roles.compute) in (2, 3):
            name = "ot" if len(roles.compute) == 2 else "rss3"
        else:
            name = "dealer"
    if name == "rss3":
        from privfin.mpc.providers.rss3 import Rss3Provider

        return Rss3Provider(ctx, roles.compute)
    if name == "ot":
        from privfin.mpc.providers.ot import OtProvider

        return OtProvider(ctx, roles.compute)
    if name == "dealer":
        from privfin.mpc.providers.dealer import DealerProvider

        dealer = roles.dealer or roles.compute[0]
        return DealerProvider(ctx, roles.compute, dealer)
    if name == "paillier":
        from privfin.mpc.providers.paillier import PaillierProvider

        return PaillierProvider(ctx, roles.compute, n_bits=paillier_bits)
    raise ConfigError(f"triples must be one of {PROVIDERS}, got {name!r}")


class Session:
    """Roles, provider and protocol engine of one party in one MPC component run.

    Parameters
    ----------
    triples:
        ``"auto"`` (default, production mode: ``"ot"`` for 2 computing parties, ``"rss3"``
        for 3; else ``"dealer"``), ``"ot"`` (dealer-free OT extension, 2 computing parties),
        ``"rss3"`` (three-party replicated sharing, honest majority, no dealer), ``"dealer"``
        (insecure against the dealer; refused in production unless enabled) or
        ``"paillier"`` (dealer-free, 2 computing parties, slow: small workloads).
    dealer:
        The dealer party (default: the party with role ``dealer``, else the first computing
        party).
    frac_bits:
        Fractional bits of the fixed-point encoding (default 16: resolution 1.5e-5, values up
        to 2**47 in magnitude, products up to 2**31 before truncation error grows).
    truncation:
        ``"auto"``, ``"pair"`` or ``"local"`` (see :class:`~privfin.mpc.protocol.Engine`).
    and_fan_in:
        2 (default) or 4: radix-4 comparison levels with the dealer (2 rounds fewer per
        knot comparison, more CPU; see :class:`~privfin.mpc.protocol.Engine`).
    """

    def __init__(
        self,
        ctx: Context,
        *,
        triples: str = "auto",
        dealer: str | None = None,
        frac_bits: int = 16,
        truncation: str = "auto",
        paillier_bits: int = 2048,
        provider: CorrelatedRandomness | None = None,
        and_fan_in: int = 2,
    ) -> None:
        if not 0 <= frac_bits <= 30:
            raise ConfigError(f"frac_bits must lie in [0, 30], got {frac_bits}")
        self.ctx = ctx
        self.roles = MPCRoles.from_roles(ctx.roles, dealer)
        self.frac_bits = frac_bits
        self.provider = provider or make_provider(
            ctx, self.roles, triples, paillier_bits=paillier_bits
        )
        self.provider.setup()
        self.engine = Engine(
            ctx, self.roles, self.provider, truncation=truncation, and_fan_in=and_fan_in
        )

    @classmethod
    def from_params(cls, ctx: Context, params: Mapping[str, Any]) -> Session:
        """Build from job parameters ``triples``, ``dealer``, ``frac_bits``, ``truncation``,
        ``paillier_bits``, ``and_fan_in``."""
        return cls(
            ctx,
            triples=str(params.get("triples", "auto")),
            dealer=params.get("dealer"),
            frac_bits=int(params.get("frac_bits", 16)),
            truncation=str(params.get("truncation", "auto")),
            and_fan_in=int(params.get("and_fan_in", 2)),
            paillier_bits=int(params.get("paillier_bits", 2048)),
        )

    @property
    def is_compute(self) -> bool:
        return self.engine.is_compute

    # -------------------------------------------------------------------------- inputs

    @ring_ops
    def share(
        self,
        owner: str,
        value: npt.ArrayLike | None = None,
        *,
        fixed: bool = True,
    ) -> SharedTensor:
        """Secret-share ``value`` of data party ``owner`` among the computing parties.

        Every party calls this; only ``owner`` passes ``value`` (others pass ``None``). The
        shape is public (it is announced to every party); the values are not: a computing party
        receives a uniformly random share (a PRG seed, or explicit ring elements for one of
        them).

        Parameters
        ----------
        fixed:
            Encode as fixed-point reals (default) or as integers (``value`` must be integral).
        """
        if owner not in self.roles.data:
            raise ConfigError(f"{owner!r} provides an input but has no role {DATA!r}")
        frac = self.frac_bits if fixed else 0
        ctx = self.ctx
        compute = self.roles.compute
        if ctx.party == owner:
            if value is None:
                raise ConfigError(f"data party {owner!r} must provide a value to share")
            arr = np.asarray(value)
            if fixed:
                enc = encode_fixed(arr, frac)
            else:
                if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
                    raise ConfigError("an integer input needs an integer array")
                enc = to_ring(arr)
            shape = list(enc.shape)
            holder = owner if owner in compute else compute[-1]
            rest = enc.copy()
            for p in compute:
                if p == holder:
                    continue
                seed = ctx.random.bytes(32)
                rest -= expand_uint64(seed, enc.size).reshape(enc.shape)
                ctx.channel.send(p, _TAG_INPUT, InputShare(shape=shape, seed=seed))
            if holder != owner:
                ctx.channel.send(holder, _TAG_INPUT, InputShare(shape=shape, values=rest))
            for p in ctx.roles:
                if p != owner and p not in compute:
                    ctx.channel.send(p, _TAG_INPUT, InputHeader(shape=shape))
            own = rest if owner in compute else None
            return SharedTensor(self, own, shape, frac)
        if ctx.party in compute:
            msg = ctx.channel.recv(owner, _TAG_INPUT, expect=InputShare)
            if msg.seed is not None:
                share = expand_uint64(msg.seed, prod(msg.shape)).reshape(msg.shape)
            else:
                assert msg.values is not None
                share = msg.values
            return SharedTensor(self, share, msg.shape, frac)
        header = ctx.channel.recv(owner, _TAG_INPUT, expect=InputHeader)
        return SharedTensor(self, None, header.shape, frac)

    def plain_input(
        self,
        owner: str,
        value: npt.ArrayLike | None = None,
        *,
        bits: bool = False,
        bound: float | None = None,
    ) -> PlainTensor:
        """A 2-D fixed-point input that computing party ``owner`` keeps in plaintext (it is not
        shared): products with shared operands then run through :meth:`plain_matmul`. Every
        party calls this; ``owner`` passes ``value`` and announces its shape (one header
        message to every other party of the job, checked for size and type).

        ``bits`` (for :meth:`plain_fix`): the header also announces ``K`` with every element
        ``|x| < 2**(K − 1)`` in fixed point: from the public ``bound`` (``|x| < bound``, the
        same at every party; the owner refuses data beyond it with :class:`ConfigError`
        before anything is sent, and the others check the announced ``K``), or, without a
        bound, from the owner's data (then ``K`` tells the others ``⌈log2 max|x|⌉``)."""
        if owner not in self.roles.data or owner not in self.roles.compute:
            raise ConfigError(f"{owner!r} keeps a plaintext input but is not data and compute")
        ctx = self.ctx
        stated = None if bound is None else _bound_bits(bound, self.frac_bits)
        if ctx.party == owner:
            if value is None:
                raise ConfigError(f"data party {owner!r} must provide a value")
            enc = encode_fixed(np.asarray(value), self.frac_bits)
            if enc.ndim != 2:
                raise ConfigError("a plaintext input is a 2-D matrix")
            k: int | None = None
            if bits and bound is not None and enc.size:
                top = float(np.abs(np.asarray(value, dtype=np.float64)).max())
                if not top < bound:
                    raise ConfigError(
                        f"data party {owner!r}: a value of its plaintext input exceeds the "
                        f"job's feature_bound {bound}"
                    )
            if bits:
                top = int(np.abs(enc.view(np.int64)).max()) if enc.size else 0
                need = max(2, top.bit_length() + 1)
                if stated is not None and need > stated:
                    raise ConfigError(
                        f"data party {owner!r}: a value of its plaintext input exceeds the "
                        f"job's feature_bound {bound} (|x| < 2**{stated - 1 - self.frac_bits})"
                    )
                k = stated if stated is not None else need
                if k > 63:
                    raise ConfigError(f"data party {owner!r}: values too large for 63 bits")
            for p in ctx.roles:
                if p != owner:
                    ctx.channel.send(p, _TAG_INPUT, InputHeader(shape=list(enc.shape), bits=k))
            return PlainTensor(owner, enc, enc.shape, self.frac_bits, k)
        header = ctx.channel.recv(owner, _TAG_INPUT, expect=InputHeader)
        if len(header.shape) != 2:
            raise ProtocolAbort(
                f"data party {owner!r} announced a plaintext input of shape {header.shape}",
                party=owner,
            )
        if bits and (header.bits is None or (stated is not None and header.bits != stated)):
            raise ProtocolAbort(
                f"data party {owner!r} announced {header.bits} bits for its plaintext input, "
                f"expected {stated if stated is not None else 'a count'}",
                party=owner,
            )
        return PlainTensor(owner, None, header.shape, self.frac_bits, header.bits if bits else None)

    def plain_fix(self, blocks: list[PlainTensor], block: int) -> object | None:
        """Extend once the OTs on the bits of these plaintext matrices (at most one per
        computing party, each with announced ``bits``: :meth:`plain_input`) for
        :meth:`plain_fixed_matmul` (:meth:`Engine.plain_fix`), stored by blocks of ``block``
        rows (the batch size: a product with a whole block uses its OTs without a copy)."""
        owners = [m.owner for m in blocks]
        if len(set(owners)) != len(owners) or any(m.bits is None for m in blocks):
            raise ConfigError("plain_fix: one plaintext matrix with announced bits per party")
        return self.engine.plain_fix(
            {m.owner: m.value for m in blocks},
            {m.owner: (m.shape[0], m.shape[1]) for m in blocks},
            {m.owner: int(m.bits or 0) for m in blocks},
            block,
        )

    def plain_fixed_matmul(
        self,
        fixed: object | None,
        rows: slice | npt.NDArray[np.int64],
        pairs: list[tuple[PlainTensor, PlainTensor, SharedTensor]],
        *,
        transpose: bool,
        ring_bits: int = 64,
    ) -> list[SharedTensor]:
        """For each ``(full, taken, y)``: ``taken @ y`` (``transpose``: ``taken.T @ y``),
        ``taken = full[rows]``, from the OTs :meth:`plain_fix` extended for ``full``, exact
        at scale ``M.frac_bits + y.frac_bits`` (untruncated; ``ring_bits < 64``: modulo
        ``2**ring_bits`` only). One message each way for all pairs."""
        dims = {f.owner: (f.shape[0], f.shape[1]) for f, _, _ in pairs}
        for f, t, y in pairs:
            want = t.shape[0] if transpose else t.shape[1]
            count = (
                len(range(*rows.indices(f.shape[0])))
                if isinstance(rows, slice)
                else np.asarray(rows).size
            )
            if t.shape != (count, f.shape[1]) or y.shape != (want,):
                raise ConfigError(f"plain_fixed_matmul: {t.shape} with {y.shape}")
        got = self.engine.plain_fixed_matmul(
            fixed,
            rows,
            {t.owner: t.value for _, t, _ in pairs},
            {t.owner: y.share for _, t, y in pairs},
            dims,
            transpose=transpose,
            ring_bits=ring_bits,
        )
        out = []
        for _, t, y in pairs:
            shape = (t.shape[1],) if transpose else (t.shape[0],)
            share = None if got is None else got[t.owner].reshape(shape)
            out.append(SharedTensor(self, share, shape, t.frac_bits + y.frac_bits))
        return out

    def plain_matmul(
        self, pairs: list[tuple[PlainTensor, SharedTensor]], *, ring_bits: int = 64
    ) -> list[SharedTensor]:
        """``M @ Y`` for each pair of a plaintext matrix (at most one per computing party) and
        a shared 1-D/2-D operand with the same number of columns ``n`` in every pair, exact
        at scale ``M.frac_bits + Y.frac_bits`` (untruncated); one OT exchange for all pairs
        (:meth:`Engine.plain_matmul`). ``ring_bits < 64``: correct modulo ``2**ring_bits``
        only, for :meth:`truncate` with the same ``ring_bits``."""
        owners = [m.owner for m, _ in pairs]
        if len(set(owners)) != len(owners):
            raise ConfigError("plain_matmul: one plaintext matrix per computing party")
        ns = {1 if y.ndim == 1 else y.shape[1] for _, y in pairs}
        if len(ns) != 1:
            raise ConfigError("plain_matmul: every operand has the same number of columns")
        n = ns.pop()
        for m, y in pairs:
            if m.shape[1] != y.shape[0]:
                raise ConfigError(f"plain_matmul: {m.shape} @ {y.shape}")
        got = self.engine.plain_matmul(
            {m.owner: m.value for m, _ in pairs},
            {m.owner: y.share for m, y in pairs},
            {m.owner: (m.shape[0], m.shape[1]) for m, _ in pairs},
            n,
            ring_bits,
        )
        out = []
        for m, y in pairs:
            shape = (m.shape[0],) if y.ndim == 1 else (m.shape[0], n)
            share = None if got is None else got[m.owner].reshape(shape)
            out.append(SharedTensor(self, share, shape, m.frac_bits + y.frac_bits))
        return out

    @ring_ops
    def public(self, value: npt.ArrayLike, *, fixed: bool = True) -> SharedTensor:
        """A public value as a (trivially) shared tensor."""
        arr = np.asarray(value)
        if fixed:
            enc = encode_fixed(arr, self.frac_bits)
        else:
            if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
                raise ConfigError("an integer constant needs an integer array")
            enc = to_ring(arr)
        return SharedTensor(
            self, self.engine.public_share(enc), enc.shape, self.frac_bits if fixed else 0
        )

    # ------------------------------------------------------------------------- outputs

    @ring_ops
    def reveal(self, t: SharedTensor, to: str, label: str = "") -> npt.NDArray[Any] | None:
        """Reconstruct ``t`` at result party ``to`` only (see :meth:`Engine.reveal`)."""
        if t.session is not self:
            raise ConfigError("the tensor belongs to another session")
        raw = self.engine.reveal(t.share, t.shape, to, label)
        if raw is None:
            return None
        if t.frac_bits == 0:
            return to_signed(raw).copy()
        return decode_fixed(raw, t.frac_bits)

    def reveal_to_all_results(self, t: SharedTensor, label: str = "") -> dict[str, Any]:
        """Reveal ``t`` to every result party; returns ``{party: value}`` holding only this
        party's entry (if it is a result party)."""
        out: dict[str, Any] = {}
        for p in self.roles.result:
            got = self.reveal(t, p, label)
            if got is not None:
                out[p] = got
        return out

    def check_result_party(self, party: str) -> None:
        """Raise :class:`RevealDenied` unless ``party`` is a result party."""
        self.roles.check_result_party(party)

    # ----------------------------------------------------------------------- arithmetic

    def truncate(self, t: SharedTensor, bits: int, *, ring_bits: int = 64) -> SharedTensor:
        """Divide by ``2**bits`` (see the truncation error bound of the engine). With
        ``ring_bits < 64``, ``t`` is shared modulo ``2**ring_bits`` only (a product from
        :meth:`plain_matmul` with that ``ring_bits``), ``|t| < 2**(ring_bits − 2)`` in ring
        units, and the result is an ordinary share (:meth:`Engine.trunc`)."""
        share = self.engine.trunc(t.share, t.shape, bits, ring_bits)
        return SharedTensor(self, share, t.shape, t.frac_bits - bits)

    def mul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor:
        """Element-wise product (Beaver), broadcast; truncated back to the larger scale."""
        shape = np.broadcast_shapes(x.shape, y.shape)
        xs = None if x.share is None else np.broadcast_to(x.share, shape)
        ys = None if y.share is None else np.broadcast_to(y.share, shape)
        z = self.engine.mul(xs, ys, shape)
        out = SharedTensor(self, z, shape, x.frac_bits + y.frac_bits)
        return self._rescale_product(out, x.frac_bits, y.frac_bits)

    def matmul(self, x: SharedTensor, y: SharedTensor, *, truncate: bool = True) -> SharedTensor:
        """Matrix product (Beaver matmul triple) of 1-D/2-D shared tensors; with
        ``truncate=False`` the exact product at scale ``x.frac_bits + y.frac_bits``."""
        shape = matmul_shape(x.shape, y.shape)
        m = x.shape[0] if x.ndim == 2 else 1
        k = x.shape[-1]
        n = y.shape[1] if y.ndim == 2 else 1
        z = self.engine.matmul(x.share, y.share, m, k, n)
        out = SharedTensor(
            self, None if z is None else z.reshape(shape), shape, x.frac_bits + y.frac_bits
        )
        if not truncate:
            return out
        return self._rescale_product(out, x.frac_bits, y.frac_bits)

    def _rescale_product(self, out: SharedTensor, fa: int, fb: int) -> SharedTensor:
        if fa > 0 and fb > 0:
            return self.truncate(out, min(fa, fb))
        return out

    def divide(self, x: SharedTensor, y: SharedTensor) -> SharedTensor:
        """``x / y`` for a shared positive ``y`` (:func:`privfin.mpc.functions.divide`)."""
        return functions.divide(x, y)

    def msb(self, x: SharedTensor) -> SharedTensor:
        """Shared 0/1 bits of ``x < 0`` (exact).

        With a provider of packed-bit material (the dealer) the comparison runs on XOR-shared
        64-bit words (:meth:`Engine.msb_bool`, 7 rounds) and one daBit conversion (1 round);
        otherwise on 0/1 ring elements (:meth:`Engine.msb`, 8 rounds, 64x the traffic)."""
        if self.engine.packed_bits:
            bits = self.engine.msb_bool(x.share, x.shape)
            got = self.engine.bit_inject(bits, None, x.shape, None)
            return SharedTensor(self, None if got is None else got[0], x.shape, 0)
        return SharedTensor(self, self.engine.msb(x.share, x.shape), x.shape, 0)

    def msb_select(
        self, x: SharedTensor, y: SharedTensor, *, window: int | None = None
    ) -> tuple[SharedTensor, SharedTensor]:
        """``(msb(x) * y, msb(x))``: ``y`` where ``x < 0`` else 0, with ``y`` broadcast to
        ``x``'s shape, and the bits; exact, no truncation. With packed bits the conversion of
        the bits and the product share one round (:meth:`Engine.bit_inject`): 8 rounds.

        ``window=low`` compares only bits ``[low, low + 32)`` of ``x``
        (:meth:`Engine.msb_bool_window`: 7 rounds, a quarter of the AND material): requires
        ``|x| < 2**(low + 31)``; values in ``[-2**low, 0)`` may count as non-negative. Ignored
        (exact comparison) without packed bits."""
        shape = np.broadcast_shapes(x.shape, y.shape)
        if shape != x.shape:
            raise ConfigError(f"msb_select: {y.shape} does not broadcast to {x.shape}")
        if not self.engine.packed_bits:
            m = self.msb(x)
            return m * y, m
        if window is not None:
            bits = self.engine.msb_bool_window(x.share, x.shape, window)
        else:
            bits = self.engine.msb_bool(x.share, x.shape)
        got = self.engine.bit_inject(bits, y.share, x.shape, y.shape)
        b_share, by_share = (None, None) if got is None else got
        return (
            SharedTensor(self, by_share, x.shape, y.frac_bits),
            SharedTensor(self, b_share, x.shape, 0),
        )

    def msb_select_knots(
        self, x: SharedTensor, knots: npt.ArrayLike, y: SharedTensor, *, low: int, inner_low: int
    ) -> tuple[SharedTensor, SharedTensor]:
        """``([x < t_j] * y, [x < t_j])`` of shape ``(k, *x.shape)`` for sorted public knots
        ``t_j`` (at ``x``'s scale, ``k >= 3``) and ``y`` broadcast to that shape: the outer
        knots on the 32-bit window at ``low``, the inner ones on 16-bit lanes at
        ``inner_low``, guarded by the outer ones (:meth:`Engine.msb_knots`; 8 rounds with
        the conversion; with the dealer and ``y`` broadcast over the knots only, the guard,
        the conversion and the product share one round, :meth:`Engine.msb_knots_select`:
        7, or 5 with ``and_fan_in=4``). Requires packed bits (see :meth:`msb_select`)."""
        t = np.asarray(knots, dtype=np.float64)
        shape = (t.size, *x.shape)
        if np.broadcast_shapes(shape, y.shape) != shape:
            raise ConfigError(f"msb_select_knots: {y.shape} does not broadcast to {shape}")
        enc = encode_fixed(t, x.frac_bits)
        lead = y.shape[: len(y.shape) - x.ndim]
        if self.engine.knot_inject and y.shape[len(lead) :] == x.shape and prod(lead) == 1:
            # the guard and the conversion with the product in one round (the dealer)
            fused = self.engine.msb_knots_select(
                x.share, x.size, enc, low, inner_low, None if y.share is None else y.share
            )
            by = None if fused is None else fused[1].reshape(shape)
            b = None if fused is None else fused[0].reshape(shape)
            return SharedTensor(self, by, shape, y.frac_bits), SharedTensor(self, b, shape, 0)
        bits = self.engine.msb_knots(x.share, x.size, enc, low, inner_low)
        if bits is not None:
            bits = bits.reshape(shape)
        got = self.engine.bit_inject(bits, y.share, shape, y.shape)
        b_share, by_share = (None, None) if got is None else got
        return (
            SharedTensor(self, by_share, shape, y.frac_bits),
            SharedTensor(self, b_share, shape, 0),
        )

    def msb_mul(self, x: SharedTensor, y: SharedTensor) -> SharedTensor:
        """``msb(x) * y`` (see :meth:`msb_select`; exact)."""
        return self.msb_select(x, y)[0]

    # -------------------------------------------------------------------------- traffic

    def traffic(self) -> dict[str, int]:
        """Bytes and messages this party sent and received in this component so far."""
        stats = self.ctx.channel.stats.as_dict()
        stats["rounds"] = self.engine.rounds
        stats["comm_ms"] = int(self.engine.comm_seconds * 1000)
        return stats


def check_shape(t: SharedTensor, shape: tuple[int, ...], what: str) -> None:
    """Abort if a shared input does not have the shape the job declared."""
    if t.shape != shape:
        raise ProtocolAbort(f"{what} has shape {t.shape}, the job declared {shape}")


def _bound_bits(bound: float, frac_bits: int) -> int:
    """``K`` with ``|x| < bound`` implying ``|round(x·2**f)| < 2**(K − 1)``."""
    if not bound > 0 or not np.isfinite(bound):
        raise ConfigError("feature_bound must be a positive number")
    top = int(np.ceil(float(bound) * 2.0**frac_bits))
    return max(2, top.bit_length() + 1)


def reuse_ots_wanted(params: Mapping[str, Any], bound: float | None) -> bool:
    """Whether SS-LR's plaintext products reuse OTs on the owners' bits: as the job says,
    and by default only when it states a public ``feature_bound`` (without one the owners
    would announce their data's bit counts)."""
    raw = params.get("reuse_ots")
    return bound is not None if raw is None else bool(raw)
