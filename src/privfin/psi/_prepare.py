"""PSI parameters, input preparation and output alignment: the part of the ``psi`` component
that every protocol shares (:mod:`privfin.psi.component` and
:mod:`privfin.psi.unbalanced.component` both build on it, neither on the other)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.data.validate import column_of
from privfin.errors import ConfigError, InputError
from privfin.psi.ids import DUPLICATE_RULES, NORMALIZERS, PreparedIds, prepare_ids
from privfin.psi.messages import CURVES

__all__ = [
    "MISSING_RULES",
    "PROTOCOLS",
    "REVEAL",
    "PsiParams",
    "aligned_output",
    "nothing",
    "prepare",
]

PROTOCOLS = ("ecdh", "kkrt", "rr22", "unbalanced")
REVEAL = ("receiver", "both")
MISSING_RULES = ("error", "drop")
#: What a party's output holds: everything (``aligned``) or only the row numbers (``rows``).
OUTPUTS = ("aligned", "rows")


@dataclass(frozen=True)
class PsiParams:
    """Validated parameters of a PSI run (every party must use the same ones, except
    ``id_column``, which is local).

    Attributes
    ----------
    protocol:
        ``"ecdh"`` (two parties: receiver/sender; three or more: leader/members),
        ``"kkrt"`` (two parties: receiver/sender, OT-based batched OPRF; the fastest for
        large sets), ``"rr22"`` (two parties: receiver/sender, silent VOLE + OKVS; the
        least communication) or ``"unbalanced"`` (client/server OPRF-PSI).
    reveal_to:
        ``"receiver"``: only the receiver (leader, client) learns the result; ``"both"``: it
        sends the result on to the other parties (each learns only the intersection of its
        own set).
    cardinality_only:
        Reveal only the size of the intersection.
    normalize, duplicates:
        Declared id rules (:mod:`privfin.psi.ids`).
    curve:
        Group of ECDH-PSI (two-party and n-party; ignored by ``kkrt``, ``rr22`` and ``unbalanced``):
        ``"x25519"`` (default: X25519 with an Elligator 2 hash, the faster) or
        ``"ristretto255"`` (the original suite; a job that names it runs exactly as before,
        also against a peer that predates the parameter).
    id_column:
        Column of the ``table`` input holding the ids.
    missing:
        What to do with missing ids (``None``, NaN, or empty after trimming) in this party's
        input: ``"error"`` (default) refuses the input with an
        :class:`~privfin.errors.InputError` naming the column and the count; ``"drop"`` leaves
        them out of the set (counted in ``PreparedIds.n_missing``). Local: the
        parties need not agree on it.
    dp_epsilon:
        Make the revealed size a differentially private release (two-party ECDH,
        ``cardinality_only``, ``reveal_to: receiver``; SPEC.md §10): the sender adds a secret
        number of matching dummy items; ``(dp_epsilon, dp_delta)`` per segment is charged to
        the sender's dataset budget before its data is read.
    dp_delta:
        The ``delta`` of each DP count (default ``1e-6``).
    segments:
        DP mode: a column of the sender's table; one DP count per declared value.
    segment_values:
        The declared segment values (never read from the data; rows with another value are
        left out).
    output:
        What this party's output holds when it learns the intersection: ``"aligned"``
        (default) its ids, keys, row numbers and table rows in the agreed order; ``"rows"``
        no ids (``ids`` and ``keys`` are ``None``; rows, size and table rows as with
        ``aligned``): for a caller that reads the rows from its own file, as ``privfin psi``
        does (at 1M rows this keeps ~18 MB of JSON out of the job's stored result). Local: the
        parties need not agree.
    """

    protocol: str = "ecdh"
    reveal_to: str = "receiver"
    cardinality_only: bool = False
    normalize: str = "trim"
    duplicates: str = "first"
    curve: str = "x25519"
    id_column: str = "id"
    missing: str = "error"
    dp_epsilon: float | None = None
    dp_delta: float = 1e-6
    segments: str | None = None
    segment_values: list[Any] | None = None
    output: str = "aligned"

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
        if p.protocol in ("kkrt", "rr22") and p.cardinality_only:
            raise ConfigError(
                f"{p.protocol} reveals the intersection to the receiver; for the size only use ecdh"
            )
        if p.normalize not in NORMALIZERS:
            raise ConfigError(f"normalize must be one of {list(NORMALIZERS)}")
        if p.duplicates not in DUPLICATE_RULES:
            raise ConfigError(f"duplicates must be one of {list(DUPLICATE_RULES)}")
        if p.curve not in CURVES:
            raise ConfigError(f"curve must be one of {list(CURVES)}, got {p.curve!r}")
        if p.missing not in MISSING_RULES:
            raise ConfigError(f"missing must be one of {list(MISSING_RULES)}")
        if p.output not in OUTPUTS:
            raise ConfigError(f"output must be one of {list(OUTPUTS)}, got {p.output!r}")
        p._check_dp()
        return p

    def _check_dp(self) -> None:
        if self.dp_epsilon is None:
            if self.segments is not None or self.segment_values is not None:
                raise ConfigError("psi segments are for a DP cardinality: set dp_epsilon")
            return
        from privfin.dp.release import DummyLaw

        if self.protocol != "ecdh" or not self.cardinality_only:
            raise ConfigError("dp_epsilon needs protocol ecdh with cardinality_only: true")
        if self.reveal_all:
            raise ConfigError(
                "a DP cardinality is revealed to the receiver only (the sender knows its dummy "
                "count, so it would learn the exact size): set reveal_to: receiver"
            )
        from privfin.dp.release import MAX_DUMMY_SLOTS

        law = DummyLaw(self.dp_epsilon, self.dp_delta)  # validates epsilon and delta

        if law.slots > MAX_DUMMY_SLOTS:
            raise ConfigError(f"dp_epsilon {self.dp_epsilon} needs too many dummy items")
        if (self.segments is None) != (self.segment_values is None):
            raise ConfigError("psi segments need both 'segments' (column) and 'segment_values'")
        if self.segment_values is not None:
            vals = self.segment_values
            if not isinstance(vals, list) or not 1 <= len(vals) <= 1000:
                raise ConfigError("segment_values must be a list of 1 to 1000 declared values")
            if any(isinstance(v, bool) or not isinstance(v, (str, int)) for v in vals):
                raise ConfigError("segment_values must be strings or integers")
            if len({str(v) for v in vals}) != len(vals):
                raise ConfigError("segment_values must be distinct")
            if not isinstance(self.segments, str) or not self.segments:
                raise ConfigError("segments must name a column of the sender's table")

    def dp_law(self) -> Any:
        """The dummy-count law of a DP cardinality (``None`` when not in DP mode)."""
        if self.dp_epsilon is None:
            return None
        from privfin.dp.release import DummyLaw

        return DummyLaw(float(self.dp_epsilon), float(self.dp_delta))

    def segment_labels(self) -> list[str]:
        """One label per DP count: the declared segment values, or ``["all"]``."""
        if self.segment_values is None:
            return ["all"]
        return [str(v) for v in self.segment_values]

    def dp_charges(self) -> list[tuple[Any, str]]:
        """What the sender's scheduler reserves before its data is read: ``(dp_epsilon,
        dp_delta)`` for each segment's count (none outside DP mode)."""
        law = self.dp_law()
        if law is None:
            return []
        return [(law.cost, f"psi_cardinality:dummy_dlap[{label}]") for label in
                self.segment_labels()]  # fmt: skip

    @property
    def reveal_all(self) -> bool:
        return self.reveal_to in ("both", "all")

    def agreed(self) -> dict[str, Any]:
        """The parameters all parties must agree on (checked in the handshake). ``curve`` is
        included unless it is ``ristretto255``, so a ristretto255 job's handshake is the
        original one."""
        agreed: dict[str, Any] = {
            "reveal_to": "both" if self.reveal_all else "receiver",
            "cardinality_only": self.cardinality_only,
            "normalize": self.normalize,
            "duplicates": self.duplicates,
            **(
                {}
                if self.dp_epsilon is None
                else {
                    "dp_epsilon": self.dp_epsilon,
                    "dp_delta": self.dp_delta,
                    "segments": self.segments,
                    "segment_values": self.segment_labels(),
                }
            ),
        }
        if self.protocol == "ecdh" and self.curve != "ristretto255":
            agreed["curve"] = self.curve
        return agreed


def prepare(inputs: Mapping[str, Any], p: PsiParams) -> tuple[PreparedIds, Any]:
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
    prepared: PreparedIds,
    matched: Sequence[int] | npt.NDArray[np.int64],
    table: Any = None,
    output: str = "aligned",
) -> dict[str, Any]:
    """What a party returns when it learns the intersection: its own ids, rows and (if it gave
    a table) table rows, in the agreed order (ascending normalised key), so every party that
    learns the intersection ends with its rows in the same order. ``output="rows"``: the
    row numbers and size only (:class:`PsiParams`)."""
    # UTF-8 byte order is code point order: sorting the bytes sorts the keys
    rows_only = output == "rows"
    at, keys = prepared.in_key_order(
        np.asarray(matched, dtype=np.int64).reshape(-1), with_keys=not rows_only
    )
    order: list[int] = at.tolist()
    rows: list[int] = prepared.rows[at].tolist() if at.size else []
    out: dict[str, Any] = {
        "ids": None if rows_only else prepared.spellings(order, keys),
        "keys": None if rows_only else keys,
        "rows": rows,
        "size": len(order),
        "table": None,
    }
    if table is not None:
        out["table"] = table.iloc[rows].reset_index(drop=True)
    return out


def nothing(size: int | None = None) -> dict[str, Any]:
    return {"ids": None, "keys": None, "rows": None, "size": size, "table": None}
