"""The ``psi`` job component: wires the PSI roles to a job's parameters and inputs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError
from privfin.psi._prepare import PROTOCOLS, PsiParams, aligned_output, nothing, prepare
from privfin.psi.ids import PreparedIds
from privfin.runtime import Context

__all__ = ["PROTOCOLS", "PsiParams", "aligned_output", "psi_component"]


def psi_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Private set intersection as a job component.

    Parameters (``params``)
        ``protocol`` (``"ecdh"``, ``"kkrt"``, ``"rr22"``, ``"unbalanced"``), ``reveal_to``
        (``"receiver"``/``"both"``),
        ``cardinality_only``, ``normalize`` (``"exact"``, ``"trim"``, ``"trim_casefold"``),
        ``duplicates`` (``"first"``, ``"error"``), ``id_column``; unbalanced only:
        ``max_items_per_query``, ``max_items_per_window`` (server rate limit); DP
        cardinality (SPEC.md §10): ``dp_epsilon``, ``dp_delta``, ``segments``,
        ``segment_values``.
    Inputs
        ``ids`` (a list), ``table`` (a DataFrame with ``id_column``) or ``chunks`` (an iterable
        of id lists, for streaming); unbalanced server: optionally ``server``, a prepared
        :class:`~privfin.psi.unbalanced.OprfServer` (offline phase done); client: optionally
        ``filter_cache``, an :class:`~privfin.psi.unbalanced.FilterCache`.
    Roles
        Two-party ECDH: ``receiver`` and ``sender`` (default: the first party name in sorted
        order receives). n-party ECDH: one ``leader`` (default: the first) and members.
        Unbalanced: ``client`` and ``server``.

    Returns
    -------
    dict
        ``{"ids", "keys", "rows", "size", "table"}``: the party's own intersecting ids (as
        given), normalised keys, input rows, the size and aligned table rows, all in the agreed
        order; ``ids``/``keys``/``rows`` are ``None`` where the party learns only the size or
        nothing (then ``size`` is ``None`` too). ECDH runs add ``"stats"``: this party's own
        phase timings (``psi.seconds.*``) and counters, kept local. A DP cardinality adds
        ``"dp"``: the receiver's release (per segment: revealed size, estimate, interval;
        epsilon, delta, unit), ``None`` at the sender.

    Security
    --------
    Semi-honest parties; each learns only what SPEC.md states for the protocol (set sizes, and
    the intersection or its size where entitled). Keys never leave their owner.
    """
    p = PsiParams.from_mapping(params)
    parties = sorted(ctx.roles)
    if ctx.party not in parties:
        raise ConfigError(f"party {ctx.party!r} has no role in this job")
    if p.protocol == "unbalanced":
        from privfin.psi.unbalanced.component import run_unbalanced

        return run_unbalanced(ctx, p, params, inputs)
    t0 = time.perf_counter()
    prepared, table = prepare(inputs, p)
    ctx.metrics.add("psi.seconds.prepare_ids", time.perf_counter() - t0)
    if len(parties) < 2:
        raise ConfigError("psi needs at least two parties")
    if p.dp_epsilon is not None and len(parties) != 2:
        raise ConfigError("a DP cardinality runs between exactly two parties (ecdh)")
    if len(parties) == 2:
        out = _two_party(ctx, p, prepared, table, parties)
    elif p.protocol in ("kkrt", "rr22"):
        raise ConfigError(f"{p.protocol} psi runs between exactly two parties; use ecdh for more")
    else:
        out = _n_party(ctx, p, prepared, table, parties)
    ctx.metrics.add("psi.seconds.total", time.perf_counter() - t0)
    out["stats"] = {k: v for k, v in ctx.metrics.snapshot().items() if k.startswith("psi.")}
    return out


def _two_party(
    ctx: Context, p: PsiParams, prepared: PreparedIds, table: Any, parties: list[str]
) -> dict[str, Any]:
    from privfin.psi.receiver import run_receiver
    from privfin.psi.sender import run_sender

    receivers = ctx.parties_with("receiver") or parties[:1]
    if len(receivers) != 1:
        raise ConfigError("two-party psi needs exactly one 'receiver'")
    receiver = receivers[0]
    sender = next(x for x in parties if x != receiver)
    agreed = p.agreed()
    if p.dp_epsilon is not None:
        return _two_party_dp(ctx, p, prepared, table, receiver, sender)
    out: npt.NDArray[np.int64] | int
    if p.protocol in ("kkrt", "rr22"):
        if p.protocol == "kkrt":
            from privfin.psi.kkrt_receiver import run_kkrt_receiver as run_r
            from privfin.psi.kkrt_sender import run_kkrt_sender as run_s
        else:
            from privfin.psi.rr22_receiver import run_rr22_receiver as run_r
            from privfin.psi.rr22_sender import run_rr22_sender as run_s

        if ctx.party == receiver:
            out = run_r(ctx, prepared, sender, agreed, reveal_to_sender=p.reveal_all)
        else:
            theirs = run_s(ctx, prepared, receiver, agreed, reveal_to_sender=p.reveal_all)
            if theirs is None:
                return nothing()
            out = theirs
    elif ctx.party == receiver:
        out = run_receiver(
            ctx,
            prepared,
            sender,
            agreed,
            cardinality_only=p.cardinality_only,
            reveal_to_sender=p.reveal_all,
        )
    else:
        got = run_sender(
            ctx,
            prepared,
            receiver,
            agreed,
            cardinality_only=p.cardinality_only,
            reveal_to_sender=p.reveal_all,
        )
        if got is None:
            return nothing()
        out = got
    if isinstance(out, int):
        return nothing(out)
    t = time.perf_counter()
    aligned = aligned_output(prepared, out, table, p.output)
    ctx.metrics.add("psi.seconds.align_output", time.perf_counter() - t)
    return aligned


def _two_party_dp(
    ctx: Context, p: PsiParams, prepared: PreparedIds, table: Any, receiver: str, sender: str
) -> dict[str, Any]:
    """DP PSI-cardinality (SPEC.md §10): the receiver gets a DP release per segment (never the
    exact size); the sender gets nothing. The sender's scheduler has charged each segment's
    (epsilon, delta) to its dataset's budget before the data was read."""
    from privfin.psi.dpca import segment_positions
    from privfin.psi.receiver import run_dp_receiver
    from privfin.psi.sender import run_dp_sender

    law = p.dp_law()
    labels = p.segment_labels()
    if ctx.party == receiver:
        release = run_dp_receiver(ctx, prepared, sender, p.agreed(), law, labels)
        return {**nothing(), "dp": release}
    segments = segment_positions(prepared, table, p.segments, labels)
    run_dp_sender(ctx, prepared, receiver, p.agreed(), law, segments)
    return {**nothing(), "dp": None}


def _n_party(
    ctx: Context, p: PsiParams, prepared: PreparedIds, table: Any, parties: list[str]
) -> dict[str, Any]:
    from privfin.psi.leader import run_leader
    from privfin.psi.member import run_member

    leaders = ctx.parties_with("leader") or parties[:1]
    if len(leaders) != 1:
        raise ConfigError("n-party psi needs exactly one 'leader'")
    leader = leaders[0]
    members = [x for x in parties if x != leader]
    agreed = p.agreed()
    if ctx.party == leader:
        out = run_leader(
            ctx,
            prepared,
            members,
            agreed,
            cardinality_only=p.cardinality_only,
            reveal_all=p.reveal_all,
        )
    else:
        got = run_member(
            ctx,
            prepared,
            leader,
            members,
            agreed,
            cardinality_only=p.cardinality_only,
            reveal_all=p.reveal_all,
        )
        if got is None:
            return nothing()
        out = got
    if isinstance(out, int):
        return nothing(out)
    return aligned_output(prepared, out, table, p.output)
