"""Parameters of the MPC components as pipeline steps (``ss_lr``, ``mpc_stats``), validated
before a job is proposed: unknown keys, wrong types and out-of-range values are refused with
the list of what is known. The components read the same mapping (every party receives the same
public values)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from privfin.errors import ConfigError
from privfin.mpc.functions import SIGMOIDS as _SIGMOIDS
from privfin.mpc.protocol import TRUNCATIONS as _TRUNCATION
from privfin.mpc.session import PROVIDERS as _TRIPLES
from privfin.mpc.stats import STATISTICS as _STATISTICS

__all__ = ["MpcStatsParams", "SSLRParams"]


def _check_columns(value: Any, partition: str, what: str) -> None:
    if partition == "vertical":
        if not isinstance(value, Mapping) or not value:
            raise ConfigError(f"vertical {what} needs {{party: [column, ...]}}")
        for party, cols in value.items():
            if not isinstance(party, str) or not _names(cols):
                raise ConfigError(f"{what}: {party!r} needs a non-empty list of column names")
    elif partition == "horizontal":
        if not _names(value):
            raise ConfigError(f"horizontal {what} needs a non-empty list of column names")
    else:
        raise ConfigError(f"partition must be 'vertical' or 'horizontal', got {partition!r}")


def _names(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(isinstance(c, str) and c for c in value)
    )


def _session(values: Mapping[str, Any]) -> None:
    """The :class:`~privfin.mpc.session.Session` parameters shared by every MPC step."""
    if values.get("triples", "auto") not in _TRIPLES:
        raise ConfigError(f"triples must be one of {list(_TRIPLES)}")
    if values.get("truncation", "auto") not in _TRUNCATION:
        raise ConfigError(f"truncation must be one of {list(_TRUNCATION)}")
    dealer = values.get("dealer")
    if dealer is not None and not isinstance(dealer, str):
        raise ConfigError("dealer must be a party name")
    _int(values, "frac_bits", 0, 30)
    _int(values, "paillier_bits", 512, 8192)


def _int(values: Mapping[str, Any], name: str, lo: int, hi: int) -> None:
    v = values.get(name)
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")


def _from(cls: type[Any], name: str, params: Mapping[str, Any]) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(params) - known - {"id_column", "label_column"}
    if unknown:
        raise ConfigError(f"unknown {name} parameters {sorted(unknown)}; known: {sorted(known)}")
    try:
        return cls(**{k: v for k, v in params.items() if k in known})
    except TypeError as exc:
        raise ConfigError(f"invalid {name} parameters: {exc}") from None


@dataclass(frozen=True)
class SSLRParams:
    """Logistic regression trained on secret-shared data (``ss_lr``).

    Attributes
    ----------
    features:
        Vertical: ``{party: [column, ...]}`` (rows aligned, e.g. by a PSI step). Horizontal:
        ``[column, ...]`` held by every data party.
    label:
        Vertical: ``{party: p, column: c}``. Horizontal: the label column of every data party.
    partition:
        ``vertical`` or ``horizontal``.
    epochs:
        Passes over the data.
    batch_size:
        Rows per gradient step.
    learning_rate:
        Step size.
    l2:
        L2 penalty.
    fit_intercept:
        Whether to fit an intercept.
    shuffle_seed:
        Shuffle the rows each epoch with this public seed (none: keep the order).
    sigmoid:
        ``auto``, ``piecewise``, ``poly``, ``t1`` or ``t3`` (accuracy against rounds: see
        privfin.mpc.functions). ``t1`` with ``ot`` needs logits below 2**14 in magnitude.
    average:
        Return the average of the last epoch's iterates.
    reveal_model:
        Result parties receive the coefficients (false: the model stays secret-shared).
    reuse_ots:
        With ``ot``: each computing party's own columns choose the products' OTs with their
        bits, extended once and reused by every product (about 16 % fewer bytes; false: fresh
        OTs per product, chosen by the shared operand's bits). None (default): reused when
        the job states ``feature_bound``.
    feature_bound:
        With ``reuse_ots``: every feature of a computing party is below this in magnitude
        (public; checked by each owner before anything is sent). Without it and with
        ``reuse_ots: true``, each owner announces the bit count of its own largest value.
    triples:
        Correlated randomness: ``auto`` (production: ``ot`` for two computing parties,
        ``rss3`` for three), ``ot``, ``rss3``, ``paillier``, or the insecure ``dealer``.
    dealer:
        The dealer party with ``triples: dealer`` (development mode only).
    frac_bits:
        Fixed-point fractional bits.
    truncation:
        ``auto``, ``pair`` or ``local`` (see privfin.mpc.protocol).
    paillier_bits:
        Paillier modulus size with ``triples: paillier``.
    and_fan_in:
        2 (default) or 4: with ``triples: dealer``, the piecewise sigmoid's knot comparison
        in radix-4 levels (2 rounds fewer per iteration, a third of its AND bytes, more CPU
        for the dealer's material: for high-latency links).
    """

    features: Any
    label: Any
    partition: str = "vertical"
    epochs: int = 5
    batch_size: int = 256
    learning_rate: float = 0.5
    l2: float = 0.0
    fit_intercept: bool = True
    shuffle_seed: int | None = None
    sigmoid: str = "auto"
    average: bool = False
    reveal_model: bool = True
    reuse_ots: bool | None = None
    feature_bound: float | None = None
    triples: str = "auto"
    dealer: str | None = None
    frac_bits: int = 16
    truncation: str = "auto"
    paillier_bits: int = 2048
    and_fan_in: int = 2

    def __post_init__(self) -> None:
        _check_columns(self.features, self.partition, "ss_lr features")
        if self.partition == "vertical":
            if not (
                isinstance(self.label, Mapping)
                and isinstance(self.label.get("party"), str)
                and isinstance(self.label.get("column"), str)
            ):
                raise ConfigError("vertical ss_lr needs label: {party: p, column: c}")
        elif not isinstance(self.label, str) or not self.label:
            raise ConfigError("horizontal ss_lr needs label: <column>")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        _int(values, "epochs", 1, 10_000)
        _int(values, "batch_size", 1, 10_000_000)
        if self.shuffle_seed is not None:
            _int(values, "shuffle_seed", 0, 2**63 - 1)
        for name in ("learning_rate", "l2"):
            v = values[name]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e6:
                raise ConfigError(f"{name} must be a number in [0, 1e6), got {v!r}")
        for name in ("fit_intercept", "average", "reveal_model"):
            if not isinstance(values[name], bool):
                raise ConfigError(f"{name} must be true or false")
        if self.sigmoid not in _SIGMOIDS:
            raise ConfigError(f"sigmoid must be one of {list(_SIGMOIDS)}, got {self.sigmoid!r}")
        if self.and_fan_in not in (2, 4):
            raise ConfigError(f"and_fan_in must be 2 or 4, got {self.and_fan_in!r}")
        _session(values)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> SSLRParams:
        out: SSLRParams = _from(cls, "ss_lr", params)
        return out


@dataclass(frozen=True)
class MpcStatsParams:
    """Secure statistics over columns of several data parties (``mpc_stats``).

    Attributes
    ----------
    columns:
        Vertical: ``{party: [column, ...]}`` (same rows in the same order). Horizontal:
        ``[column, ...]`` held by every data party.
    partition:
        ``vertical`` or ``horizontal``.
    statistics:
        Some of ``count, sum, mean, var, std, min, max``.
    bins:
        ``{column: [edges]}``: histograms on public bins.
    quantiles:
        ``[q, ...]`` in (0, 1]: quantiles of every column by secure comparison.
    pearson:
        The correlation matrix of all columns.
    weights:
        ``{party: p, column: c}``: weighted column sums (vertical only).
    row_sums:
        ``{total: [column, ...]}``: per row, the sum of the listed columns over every party
        holding one, revealed row by row (vertical only; e.g. each applicant's debt over all
        lenders).
    triples:
        As for ``ss_lr``.
    dealer:
        As for ``ss_lr``.
    frac_bits:
        As for ``ss_lr``.
    truncation:
        As for ``ss_lr``.
    paillier_bits:
        As for ``ss_lr``.
    """

    columns: Any
    partition: str = "vertical"
    statistics: list[str] = field(default_factory=lambda: list(_STATISTICS))
    bins: dict[str, list[float]] | None = None
    quantiles: list[float] | None = None
    pearson: bool = False
    weights: dict[str, str] | None = None
    row_sums: dict[str, list[str]] | None = None
    triples: str = "auto"
    dealer: str | None = None
    frac_bits: int = 16
    truncation: str = "auto"
    paillier_bits: int = 2048

    def __post_init__(self) -> None:
        _check_columns(self.columns, self.partition, "mpc_stats columns")
        if self.row_sums is not None:
            if self.partition != "vertical":
                raise ConfigError("row_sums are for a vertical partition")
            if not isinstance(self.row_sums, Mapping) or not self.row_sums:
                raise ConfigError("row_sums must map a total's name to a list of columns")
            known = {str(c) for cols in self.columns.values() for c in cols}
            for total, cols in self.row_sums.items():
                if not isinstance(total, str) or not total or not _names(cols):
                    raise ConfigError(f"row_sums: {total!r} needs a non-empty list of columns")
                if set(cols) - known:
                    raise ConfigError(
                        f"row_sums: {total!r} names unknown columns {sorted(set(cols) - known)}"
                    )
        if not _names(self.statistics) or set(self.statistics) - set(_STATISTICS):
            raise ConfigError(f"statistics must be some of {list(_STATISTICS)}")
        if self.quantiles is not None and not (
            isinstance(self.quantiles, Sequence)
            and all(
                isinstance(q, (int, float)) and not isinstance(q, bool) and 0 < q <= 1
                for q in self.quantiles
            )
        ):
            raise ConfigError("quantiles must be a list of numbers in (0, 1]")
        if self.bins is not None and not (
            isinstance(self.bins, Mapping)
            and all(
                isinstance(e, Sequence)
                and len(e) >= 2
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in e)
                for e in self.bins.values()
            )
        ):
            raise ConfigError("bins must map a column to a list of at least two edges")
        if not isinstance(self.pearson, bool):
            raise ConfigError("pearson must be true or false")
        if self.weights is not None and not (
            isinstance(self.weights, Mapping)
            and isinstance(self.weights.get("party"), str)
            and isinstance(self.weights.get("column"), str)
        ):
            raise ConfigError("weights must be {party: p, column: c}")
        _session({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> MpcStatsParams:
        out: MpcStatsParams = _from(cls, "mpc_stats", params)
        return out
