"""The ``psi`` job component: wires the PSI roles to a job's parameters and inputs."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.data.validate import column_of
from privfin.errors import ConfigError, InputError
from privfin.psi.ids import DUPLICATE_RULES, NORMALIZERS, PreparedIds, prepare_ids
from privfin.runtime import Context

__all__ = ["PROTOCOLS", "PsiParams", "aligned_output", "psi_component"]

PROTOCOLS = ("ecdh", "unbalanced")
REVEAL = ("receiver", "both")
MISSING_RULES = ("error", "drop")


@dataclass(frozen=True)
class PsiParams:
    """Validated parameters of a PSI run (every party must use the same ones, except
    ``id_column``, which is local).

    Attributes
    ----------
    protocol:
        ``"ecdh"`` (two parties: receiver/sender; three or more: leader/members) or
        ``"unbalanced"`` (client/server OPRF-PSI).
    reveal_to:
        ``"receiver"``: only the receiver (leader, client) learns the result; ``"both"``: it
        sends the result on to the other parties (each learns only the intersection of its
        own set).
    cardinality_only:
        Reveal only the size of the intersection.
    normalize, duplicates:
        Declared id rules (:mod:`privfin.psi.ids`).
    id_column:
        Column of the ``table`` input holding the ids.
    missing:
        What to do with missing ids (``None``, NaN, or empty after trimming) in this party's
        input: ``"error"`` (default) refuses the input with an
        :class:`~privfin.errors.InputError` naming the column and the count; ``"drop"`` leaves
        them out of the set (counted in ``PreparedIds.n_missing``). Local: the
        parties need not agree on it.
    """

    protocol: str = "ecdh"
    reveal_to: str = "receiver"
    cardinality_only: bool = False
    normalize: str = "trim"
    duplicates: str = "first"
    id_column: str = "id"
    missing: str = "error"

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> PsiParams:
        known = {f for f in cls.__dataclass_fields__}
        extra = set(params) - known - {"max_items_per_query", "max_items_per_window"}
        if extra:
            raise ConfigError(f"unknown psi parameters {sorted(extra)}; known: {sorted(known)}")
        p = cls(**{k: v for k, v in params.items() if k in known})
        if p.protocol not in PROTOCOLS:
            raise ConfigError(f"psi protocol {p.protocol!r} unknown; use one of {PROTOCOLS}")
        if p.reveal_to not in REVEAL and p.reveal_to != "all":
            raise ConfigError(f"reveal_to must be one of {REVEAL}, got {p.reveal_to!r}")
        if not isinstance(p.cardinality_only, bool):
            raise ConfigError("cardinality_only must be true or false")
        if p.normalize not in NORMALIZERS:
            raise ConfigError(f"normalize must be one of {list(NORMALIZERS)}")
        if p.duplicates not in DUPLICATE_RULES:
            raise ConfigError(f"duplicates must be one of {list(DUPLICATE_RULES)}")
        if p.missing not in MISSING_RULES:
            raise ConfigError(f"missing must be one of {list(MISSING_RULES)}")
        return p

    @property
    def reveal_all(self) -> bool:
        return self.reveal_to in ("both", "all")

    def agreed(self) -> dict[str, Any]:
        """The parameters all parties must agree on (checked in the handshake)."""
        return {
            "reveal_to": "both" if self.reveal_all else "receiver",
            "cardinality_only": self.cardinality_only,
            "normalize": self.normalize,
            "duplicates": self.duplicates,
        }


def _prepare(inputs: Mapping[str, Any], p: PsiParams) -> tuple[PreparedIds, Any]:
    prepared, table, column = _prepare_ids(inputs, p)
    missing = prepared.n_missing
    if column is not None and p.normalize == "exact" and prepared.index_of("") is not None:
        missing += 1  # an empty cell of an id column is no id, even under "exact"
    if missing and p.missing == "error":
        raise InputError(
            f"psi input, column {column or 'ids'!r}: a missing or empty id in {missing} row(s); "
            "fix them, or set missing: drop to leave them out (no id is shown here or sent "
            "to peers)",
            column=column or "ids",
            rows=missing,
        )
    return prepared, table


def _prepare_ids(inputs: Mapping[str, Any], p: PsiParams) -> tuple[PreparedIds, Any, str | None]:
    """``(prepared ids, table or None, id column name or None for a plain list of ids)``."""
    table = inputs.get("table")
    if table is not None:
        column = column_of(table, p.id_column, what="id")
        step = 250_000  # a slice of the column at a time: no full list of Python ids
        chunks_of = (column.iloc[a : a + step].tolist() for a in range(0, len(column), step))
        prepared = prepare_ids(chunks_of, p.normalize, p.duplicates, chunked=True)
        return prepared, table, p.id_column
    if "chunks" in inputs:
        chunks: Iterable[Iterable[object]] = inputs["chunks"]
        prepared = prepare_ids(chunks, p.normalize, p.duplicates, chunked=True)
        return prepared, None, str(getattr(chunks, "column", p.id_column))
    if "ids" in inputs:
        ids = inputs["ids"]
        if isinstance(ids, (str, bytes)):
            raise ConfigError("the 'ids' input must be a list of ids, not one string")
        return prepare_ids(list(ids), p.normalize, p.duplicates), None, None
    raise ConfigError("psi needs an input 'ids' (a list), 'table' (a DataFrame) or 'chunks'")


def aligned_output(
    prepared: PreparedIds, matched: Sequence[int] | npt.NDArray[np.int64], table: Any = None
) -> dict[str, Any]:
    """What a party returns when it learns the intersection: its own ids, rows and (if it gave
    a table) table rows, in the agreed order (ascending normalised key), so every party that
    learns the intersection ends with its rows in the same order."""
    # UTF-8 byte order is code point order: sorting the bytes sorts the keys
    positions = [int(i) for i in matched]
    kb = [prepared.key_bytes(i) for i in positions]
    order = [positions[j] for j in sorted(range(len(positions)), key=kb.__getitem__)]
    del kb
    all_rows = prepared.rows
    rows = [int(all_rows[i]) for i in order]
    keys = [prepared.key(i) for i in order]
    out: dict[str, Any] = {
        "ids": prepared.spellings(order, keys),
        "keys": keys,
        "rows": rows,
        "size": len(order),
        "table": None,
    }
    if table is not None:
        out["table"] = table.iloc[rows].reset_index(drop=True)
    return out


def _nothing(size: int | None = None) -> dict[str, Any]:
    return {"ids": None, "keys": None, "rows": None, "size": size, "table": None}


def psi_component(
    ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]
) -> dict[str, Any]:
    """Private set intersection as a job component.

    Parameters (``params``)
        ``protocol`` (``"ecdh"``, ``"unbalanced"``), ``reveal_to`` (``"receiver"``/``"both"``),
        ``cardinality_only``, ``normalize`` (``"exact"``, ``"trim"``, ``"trim_casefold"``),
        ``duplicates`` (``"first"``, ``"error"``), ``id_column``; unbalanced only:
        ``max_items_per_query``, ``max_items_per_window`` (server rate limit).
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
        phase timings (``psi.seconds.*``) and counters, kept local.

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

        return run_unbalanced(ctx, p, params, inputs, _prepare)
    t0 = time.perf_counter()
    prepared, table = _prepare(inputs, p)
    ctx.metrics.add("psi.seconds.prepare_ids", time.perf_counter() - t0)
    if len(parties) < 2:
        raise ConfigError("psi needs at least two parties")
    if len(parties) == 2:
        out = _two_party(ctx, p, prepared, table, parties)
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
    if ctx.party == receiver:
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
            return _nothing()
        out = got
    if isinstance(out, int):
        return _nothing(out)
    t = time.perf_counter()
    aligned = aligned_output(prepared, out, table)
    ctx.metrics.add("psi.seconds.align_output", time.perf_counter() - t)
    return aligned


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
            return _nothing()
        out = got
    if isinstance(out, int):
        return _nothing(out)
    return aligned_output(prepared, out, table)
