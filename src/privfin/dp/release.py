"""Differentially private releases over a table: count, sum, mean, histogram, quantiles and
contingency tables, each with stated error bars, and the dummy-item count of a DP
PSI-cardinality.

Privacy unit. With ``id_column`` set, the unit is **one customer**: the release first keeps at
most ``max_rows_per_id`` rows of each customer (the first ones, in table order), and every
sensitivity below is for adding or removing one customer with all their kept rows. Without it,
the unit is one row. Bounds (``lower``, ``upper``), categories and bins are declared by the
caller — they must not be read from the data — and values outside the bounds are clamped.

Every release validates its parameters, then (with a :class:`Charge`) reserves its cost in
the budget ledger **before** it touches the data (``data`` may be a loader called only after
the reservation), computes, and commits. What it returns holds only noisy values and error
bars derived from the mechanism's noise law (never from the data).

Mechanisms: counts and histograms add exact discrete Laplace noise; sums and means snap each
value to a power-of-two grid and add discrete Laplace noise in grid units; quantiles use the
exponential mechanism over a fine, declared grid (sampled exactly over the data's intervals).
All are pure epsilon-DP; the dummy count of :func:`psi_dummy_count` is (epsilon, delta)-DP.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from privfin.crypto.random import RandomSource
from privfin.dp import _sample
from privfin.dp.ledger import BudgetLedger
from privfin.dp.mechanisms import (
    DiscreteLaplace,
    PrivacyCost,
    check_epsilon,
    check_resolution,
    grid_resolution,
)
from privfin.errors import ConfigError

__all__ = [
    "Charge",
    "DummyCount",
    "DummyLaw",
    "Estimate",
    "Release",
    "contingency",
    "count",
    "dummy_delta",
    "dummy_shift",
    "histogram",
    "mean",
    "psi_dummy_count",
    "quantiles",
    "sum_",
]

Data = pd.DataFrame | Callable[[], pd.DataFrame]


@dataclass(frozen=True)
class Charge:
    """Where a release's cost is charged: the node's ledger, the dataset, the party that
    receives the release, the job (and step) and who asked."""

    ledger: BudgetLedger
    dataset: str
    party: str
    job: str
    who: str
    step: str | None = None


@dataclass(frozen=True)
class Estimate:
    """One noisy value and the interval that holds the true value with probability
    ``confidence`` (over the noise only; the interval is a function of the noisy value)."""

    value: float
    low: float
    high: float
    confidence: float

    def to_json(self) -> dict[str, float | None]:
        """As JSON (an interval that is not stated, as for quantiles, is ``None``)."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {"value": self.value, "low": num(self.low), "high": num(self.high)}


@dataclass(frozen=True)
class Release:
    """The result of a DP release: estimates by key, what it cost, how it was made."""

    query: str
    estimates: dict[str, Estimate]
    cost: PrivacyCost
    mechanism: str
    unit: str
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """The single estimate's value (count, sum, mean)."""
        if len(self.estimates) != 1:
            raise ConfigError(f"{self.query} has {len(self.estimates)} estimates; index them")
        return next(iter(self.estimates.values())).value

    def frame(self) -> pd.DataFrame:
        """The estimates as a table (key, value, low, high)."""
        return pd.DataFrame(
            [{"key": k, **e.to_json()} for k, e in self.estimates.items()],
            columns=["key", "value", "low", "high"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "estimates": {k: e.to_json() for k, e in self.estimates.items()},
            "confidence": next(iter(self.estimates.values())).confidence
            if self.estimates
            else None,
            "epsilon": self.cost.epsilon,
            "delta": self.cost.delta,
            "mechanism": self.mechanism,
            "unit": self.unit,
            "notes": self.notes,
        }


# -- validation


def _confidence(c: float) -> float:
    if not (isinstance(c, (int, float)) and 0 < c < 1):
        raise ConfigError(f"confidence must be in (0, 1), got {c!r}")
    return float(c)


def _bounds(lower: float, upper: float) -> tuple[float, float]:
    for name, v in (("lower", lower), ("upper", upper)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"bound {name} must be a finite number, got {v!r}")
    if not lower < upper:
        raise ConfigError(
            f"invalid bounds: lower ({lower!r}) must be below upper ({upper!r}); declare "
            "bounds from domain knowledge, never from the data"
        )
    return float(lower), float(upper)


def _limit(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"max_rows_per_id must be an integer >= 1, got {k!r}")
    return k


def _unit(id_column: str | None, k: int) -> str:
    if id_column is None:
        return "one row"
    return f"one customer ({id_column!r}, at most {k} row(s) each)"


def _charged(
    charge: Charge | None,
    cost: PrivacyCost,
    mechanism: str,
    compute: Callable[[], Release],
) -> Release:
    if charge is None:
        return compute()
    with charge.ledger.spend(
        charge.dataset,
        cost,
        party=charge.party,
        job=charge.job,
        mechanism=mechanism,
        who=charge.who,
        step=charge.step,
    ):
        return compute()


def _frame(data: Data, columns: Sequence[str], id_column: str | None, k: int) -> pd.DataFrame:
    df = data() if callable(data) else data
    if not isinstance(df, pd.DataFrame):
        raise ConfigError("data must be a pandas DataFrame (or a function returning one)")
    need = [*columns, *([id_column] if id_column else [])]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ConfigError(f"the table has no column(s) {', '.join(map(repr, missing))}")
    if id_column is None:
        return df
    if df[id_column].isna().any():
        raise ConfigError(f"id column {id_column!r} has missing values: each row needs its id")
    return df.groupby(id_column, sort=False, group_keys=False).head(k)


def _numeric(df: pd.DataFrame, column: str) -> np.ndarray:
    try:
        x = pd.to_numeric(df[column], errors="raise").to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise ConfigError(f"column {column!r} is not numeric") from None
    return x


def _counts(
    laplace: DiscreteLaplace,
    truth: Mapping[str, int],
    confidence: float,
    rng: RandomSource | None,
    *,
    clamp_zero: bool,
) -> dict[str, Estimate]:
    src = _sample.source(rng)
    h = laplace.halfwidth(confidence)
    out = {}
    for key, v in truth.items():
        noisy = laplace.release(int(v), src)
        low, high = noisy - h, noisy + h
        if clamp_zero:  # a count is >= 0: post-processing
            noisy, low, high = max(noisy, 0), max(low, 0), max(high, 0)
        out[key] = Estimate(float(noisy), float(low), float(high), confidence)
    return out


# -- releases


def count(
    data: Data,
    epsilon: float,
    *,
    id_column: str | None = None,
    max_rows_per_id: int = 1,
    confidence: float = 0.95,
    charge: Charge | None = None,
    rng: RandomSource | None = None,
) -> Release:
    """The number of rows (each customer's first ``max_rows_per_id``), with discrete Laplace
    noise of scale ``max_rows_per_id / epsilon``. Pure ``epsilon``-DP."""
    eps, k, conf = check_epsilon(epsilon), _limit(max_rows_per_id), _confidence(confidence)
    mech = DiscreteLaplace(eps, k)

    def compute() -> Release:
        df = _frame(data, [], id_column, k)
        est = _counts(mech, {"count": len(df)}, conf, rng, clamp_zero=True)
        return Release("count", est, mech.cost(), mech.name, _unit(id_column, k))

    return _charged(charge, mech.cost(), "count:discrete_laplace", compute)


#: Default grid of sums and means: the per-row bound over this many steps (a power of two).
_SUM_STEPS = 1 << 20


def _grid_units(x: np.ndarray, g: float, src: RandomSource) -> np.ndarray:
    """``x / g`` rounded to an integer at random, up with probability the fractional part
    (unbiased: a rounding that always went the same way would bias a sum of many equal
    values). Each result stays within ``ceil(|x| / g)``, so the sensitivity holds."""
    scaled = x / g
    low = np.floor(scaled)
    up = _sample._uniforms(src, len(x)) <= (scaled - low)
    out: np.ndarray = (low + up).astype(np.int64)
    return out


def sum_(
    data: Data,
    column: str,
    epsilon: float,
    *,
    lower: float,
    upper: float,
    id_column: str | None = None,
    max_rows_per_id: int = 1,
    resolution: float | None = None,
    confidence: float = 0.95,
    charge: Charge | None = None,
    rng: RandomSource | None = None,
) -> Release:
    """The sum of ``column`` clamped to ``[lower, upper]``: each value is rounded at random
    (unbiased) to a grid of ``resolution`` (a power of two, default about ``max(|lower|,
    |upper|) / 2**20``), the integer sum gets discrete Laplace noise of scale ``k *
    max(ceil(|lower| / g), ceil(|upper| / g)) / epsilon`` in grid units ``g``. Pure
    ``epsilon``-DP. Missing values count as 0."""
    eps, k, conf = check_epsilon(epsilon), _limit(max_rows_per_id), _confidence(confidence)
    lo, hi = _bounds(lower, upper)
    g = resolution if resolution is not None else grid_resolution(max(abs(lo), abs(hi)), _SUM_STEPS)
    check_resolution(g)
    per_row = max(math.ceil(abs(lo) / g), math.ceil(abs(hi) / g), 1)
    mech = DiscreteLaplace(eps, k * per_row)

    def compute() -> Release:
        df = _frame(data, [column], id_column, k)
        x = np.nan_to_num(_numeric(df, column), nan=0.0)
        src = _sample.source(rng)
        total = int(_grid_units(np.clip(x, lo, hi), g, src).sum())
        noisy = mech.release(total, src)
        h = mech.halfwidth(conf)
        est = Estimate(noisy * g, (noisy - h) * g, (noisy + h) * g, conf)
        notes = {"resolution": g, "lower": lo, "upper": hi}
        return Release(f"sum({column})", {"sum": est}, mech.cost(), mech.name,
                       _unit(id_column, k), notes)  # fmt: skip

    return _charged(charge, mech.cost(), "sum:grid_laplace", compute)


def mean(
    data: Data,
    column: str,
    epsilon: float,
    *,
    lower: float,
    upper: float,
    id_column: str | None = None,
    max_rows_per_id: int = 1,
    resolution: float | None = None,
    public_count: bool = False,
    confidence: float = 0.95,
    charge: Charge | None = None,
    rng: RandomSource | None = None,
) -> Release:
    """The mean of ``column`` clamped to ``[lower, upper]`` (missing values dropped): a noisy
    count (``epsilon / 2``) and a noisy sum of the values centred on the middle of the bounds
    (``epsilon / 2``, so the noise scales with ``(upper - lower) / 2``), divided, clamped to
    the bounds. The interval combines the two noise intervals (each at ``1 - (1 -
    confidence) / 2``; union bound). Pure ``epsilon``-DP, unit one customer (add/remove).

    ``public_count=True`` is for a table whose number of values ``n`` is public anyway (a
    published portfolio size): ``n`` is then used exactly and **released** (``notes["count"]``),
    all of ``epsilon`` goes to the sum, and the guarantee is pure ``epsilon``-DP for the
    **replace-one** relation (bounded DP: one customer's values replaced by any others, ``n``
    unchanged; sensitivity ``max_rows_per_id * (upper - lower)``), the unit of IBM
    diffprivlib's ``mean`` and of OpenDP's mean over a sized domain. It protects nothing of
    ``n`` and is no add/remove guarantee: use it only when ``n`` is public.
    """
    eps, k, conf = check_epsilon(epsilon), _limit(max_rows_per_id), _confidence(confidence)
    lo, hi = _bounds(lower, upper)
    mid = (lo + hi) / 2
    half = (hi - lo) / 2
    g = resolution if resolution is not None else grid_resolution(half, _SUM_STEPS)
    check_resolution(g)
    per_row = max(math.ceil(half / g), 1)  # |centred value| <= half, rounded outwards at most
    if not isinstance(public_count, bool):
        raise ConfigError("public_count must be true or false")
    count_mech = DiscreteLaplace(eps / 2, k)
    sum_mech = DiscreteLaplace(eps / 2, k * per_row)
    cost = PrivacyCost(eps)
    each = 1 - (1 - conf) / 2
    if public_count:
        # replace-one: a row's centred, rounded value moves by at most 2 * per_row units
        sum_mech = DiscreteLaplace(eps, k * 2 * per_row)
        each = conf

    def compute() -> Release:
        df = _frame(data, [column], id_column, k)
        x = _numeric(df, column)
        x = x[~np.isnan(x)]
        src = _sample.source(rng)
        centred = _grid_units(np.clip(np.clip(x, lo, hi) - mid, -half, half), g, src)
        if public_count:
            return _mean_public(x.size, int(centred.sum()), src)
        c = count_mech.release(len(x), src)
        s = sum_mech.release(int(centred.sum()), src)
        hc, hs = count_mech.halfwidth(each), sum_mech.halfwidth(each)
        value = mid + (s * g / c if c > 0 else 0.0)
        value = min(max(value, lo), hi)
        if c - hc > 0:
            corners = [(s + ds) * g / (c + dc) for ds in (-hs, hs) for dc in (-hc, hc)]
            low = min(max(mid + min(corners), lo), hi)
            high = min(max(mid + max(corners), lo), hi)
        else:  # the count may be 0: nothing better than the bounds
            low, high = lo, hi
        est = Estimate(value, low, high, conf)
        notes = {"resolution": g, "lower": lo, "upper": hi, "noisy_count": c}
        return Release(f"mean({column})", {"mean": est}, cost, "discrete_laplace x2",
                       _unit(id_column, k), notes)  # fmt: skip

    def _mean_public(n: int, total: int, src: RandomSource) -> Release:
        if n == 0:
            raise ConfigError(f"mean({column}): no values (and public_count says n is public)")
        s = sum_mech.release(total, src)
        h = sum_mech.halfwidth(conf)
        value = min(max(mid + s * g / n, lo), hi)
        low = min(max(mid + (s - h) * g / n, lo), hi)
        high = min(max(mid + (s + h) * g / n, lo), hi)
        notes = {"resolution": g, "lower": lo, "upper": hi, "count": n, "public_count": True}
        unit = f"replace one {_unit(id_column, k).removeprefix('one ')} (bounded DP: n public)"
        return Release(f"mean({column})", {"mean": Estimate(value, low, high, conf)}, cost,
                       "discrete_laplace", unit, notes)  # fmt: skip

    return _charged(charge, cost, "mean:grid_laplace", compute)


def _check_categories(categories: Sequence[Any], what: str) -> list[Any]:
    cats = list(categories)
    if not cats:
        raise ConfigError(f"{what}: declare at least one category")
    if len({str(c) for c in cats}) != len(cats):
        raise ConfigError(f"{what}: categories must be distinct")
    return cats


def histogram(
    data: Data,
    column: str,
    epsilon: float,
    *,
    categories: Sequence[Any] | None = None,
    bins: Sequence[float] | None = None,
    id_column: str | None = None,
    max_rows_per_id: int = 1,
    confidence: float = 0.95,
    charge: Charge | None = None,
    rng: RandomSource | None = None,
) -> Release:
    """Counts of ``column`` per declared category (``categories``) or per numeric bin
    (``bins``: increasing edges, ``[e_i, e_{i+1})``, the last bin closed); rows in no
    category or bin are not counted. Each count gets discrete Laplace noise of scale
    ``max_rows_per_id / epsilon`` (a customer's rows change the counts by at most that in
    L1). Pure ``epsilon``-DP; each bin's interval holds with probability ``confidence``."""
    eps, k, conf = check_epsilon(epsilon), _limit(max_rows_per_id), _confidence(confidence)
    if (categories is None) == (bins is None):
        raise ConfigError("histogram: declare exactly one of categories or bins")
    edges: list[float] = []
    cats: list[Any] = []
    if bins is not None:
        edges = [float(b) for b in bins]
        if len(edges) < 2 or not all(math.isfinite(e) for e in edges):
            raise ConfigError("histogram: bins need at least two finite edges")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ConfigError("histogram: bin edges must be strictly increasing")
    else:
        assert categories is not None
        cats = _check_categories(categories, "histogram")
    mech = DiscreteLaplace(eps, k)

    def compute() -> Release:
        df = _frame(data, [column], id_column, k)
        if edges:
            x = _numeric(df, column)
            idx = np.searchsorted(edges, x, side="right") - 1
            idx[x == edges[-1]] = len(edges) - 2
            ok = (idx >= 0) & (idx < len(edges) - 1) & ~np.isnan(x)
            counts = np.bincount(idx[ok], minlength=len(edges) - 1)
            keys = [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(edges)]
            keys[-1] = keys[-1][:-1] + "]"
            truth = dict(zip(keys, (int(c) for c in counts), strict=True))
        else:
            vc = df[column].value_counts()
            truth = {str(c): int(vc.get(c, 0)) for c in cats}
        est = _counts(mech, truth, conf, rng, clamp_zero=True)
        return Release(f"histogram({column})", est, mech.cost(), mech.name, _unit(id_column, k))

    return _charged(charge, mech.cost(), "histogram:discrete_laplace", compute)


def contingency(
    data: Data,
    columns: Sequence[str],
    epsilon: float,
    *,
    categories: Mapping[str, Sequence[Any]],
    id_column: str | None = None,
    max_rows_per_id: int = 1,
    confidence: float = 0.95,
    charge: Charge | None = None,
    rng: RandomSource | None = None,
) -> Release:
    """Counts of every combination of the declared ``categories`` of ``columns`` (a
    contingency table, keys ``"a|b"``), each with discrete Laplace noise of scale
    ``max_rows_per_id / epsilon``. Pure ``epsilon``-DP."""
    eps, k, conf = check_epsilon(epsilon), _limit(max_rows_per_id), _confidence(confidence)
    cols = list(columns)
    if len(cols) < 2 or len(set(cols)) != len(cols):
        raise ConfigError("contingency: give at least two distinct columns")
    cats = {}
    for c in cols:
        if c not in categories:
            raise ConfigError(f"contingency: declare the categories of column {c!r}")
        cats[c] = _check_categories(categories[c], f"contingency column {c!r}")
    mech = DiscreteLaplace(eps, k)

    def compute() -> Release:
        df = _frame(data, cols, id_column, k)
        sizes = df.groupby(cols, dropna=True).size()
        truth = {}
        for combo in itertools.product(*(cats[c] for c in cols)):
            key = "|".join(str(v) for v in combo)
            truth[key] = int(sizes.get(combo, 0))
        est = _counts(mech, truth, conf, rng, clamp_zero=True)
        return Release(
            f"contingency({', '.join(cols)})", est, mech.cost(), mech.name, _unit(id_column, k)
        )

    return _charged(charge, mech.cost(), "contingency:discrete_laplace", compute)


#: Default number of grid steps of a quantile release (the grid has one point more).
QUANTILE_GRID = 1 << 32
_MAX_GRID = 1 << 52


def _quantile_groups(
    t: np.ndarray, grid: int, num: int, den: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group the grid points ``0 .. grid`` by score, given the data's grid indices ``t``
    (sorted): every distinct index is a group of one point, every run of points strictly
    between two of them (or before the first, after the last) a group. Returns ``(first
    point, size, score)`` per non-empty group, score ``|(den - num) #{t < c} - num #{t > c}|``.
    """
    n = int(t.size)
    vals, counts = np.unique(t, return_counts=True)
    before = (np.cumsum(counts) - counts).astype(np.int64)  # values below each distinct one
    # singletons at each distinct data index
    s_first, s_size = vals, np.ones_like(vals)
    s_below, s_above = before, n - before - counts
    # gaps: before the first value, then after each value up to the next one (or the end)
    g_first = np.concatenate([[0], vals + 1])
    g_end = np.concatenate([vals, [grid + 1]])  # exclusive
    g_below = np.concatenate([[0], before + counts])
    g_above = n - g_below
    first = np.concatenate([s_first, g_first])
    size = np.concatenate([s_size, g_end - g_first])
    below = np.concatenate([s_below, g_below])
    above = np.concatenate([s_above, g_above])
    keep = size > 0
    first, size, below, above = first[keep], size[keep], below[keep], above[keep]
    if (den * (n + 1)).bit_length() >= 62:
        raise ConfigError(f"quantile level {num}/{den} has too many digits for {n} rows; round it")
    score = np.abs((den - num) * below - num * above)
    return first.astype(np.int64), size.astype(np.int64), score


def quantiles(
    data: Data,
    column: str,
    qs: Sequence[float],
    epsilon: float,
    *,
    lower: float,
    upper: float,
    candidates: int = QUANTILE_GRID,
    id_column: str | None = None,
    max_rows_per_id: int = 1,
    confidence: float = 0.95,
    charge: Charge | None = None,
    rng: RandomSource | None = None,
) -> Release:
    """Quantiles of ``column`` (clamped to ``[lower, upper]``, missing values dropped) by the
    exponential mechanism over the ``candidates + 1`` evenly spaced points ``c_j`` of the
    bounds (default ``2**32`` steps), score ``|(1 - q) #{x < c} - q #{x > c}|`` counted on
    the values rounded to the nearest grid point (a value equal to ``c`` counts on neither
    side, so a value shared by many rows scores well), sensitivity ``max_rows_per_id *
    max(q, 1 - q)`` (add/remove), ``epsilon / len(qs)`` each. Pure ``epsilon``-DP.

    The grid points between two consecutive data values share one score, so the mechanism
    is sampled exactly over these groups (:func:`~privfin.dp._sample.exponential_groups`:
    a group with probability proportional to its number of points times ``exp(-epsilon *
    score / (2 sensitivity))``, then a uniform point of it) in time linear in the number of
    rows, whatever the grid's size: the interval mechanism of Smith (2011) with its output
    on a fixed, data-independent grid.

    Error bars are in ranks, not values (a value interval would have to be read from the
    data): with probability ``confidence`` every released point's score exceeds the best
    candidate's by at most ``notes["rank_error"]`` (the usual exponential-mechanism bound,
    union over the levels); the grid's spacing is ``notes["spacing"]``.
    """
    eps, k, conf = check_epsilon(epsilon), _limit(max_rows_per_id), _confidence(confidence)
    lo, hi = _bounds(lower, upper)
    levels = [float(q) for q in qs]
    if not levels or not all(0 <= q <= 1 for q in levels):
        raise ConfigError(f"quantile levels must be in [0, 1], got {list(qs)!r}")
    if isinstance(candidates, bool) or not isinstance(candidates, int):
        raise ConfigError("candidates must be an integer")
    if not 1 <= candidates <= _MAX_GRID:
        raise ConfigError(f"candidates must be in [1, 2**52], got {candidates!r}")
    each = eps / len(levels)
    cost = PrivacyCost(eps)
    step = (hi - lo) / candidates
    # failure probability shared by the levels (union bound)
    fail = (1 - conf) / len(levels)
    sens = {q: k * max(q, 1 - q) for q in levels}  # in score units (ranks)
    rank_error = {
        f"q{q:g}": 2 * sens[q] / each * (math.log(candidates + 1) + math.log(1 / fail))
        for q in levels
    }

    def compute() -> Release:
        df = _frame(data, [column], id_column, k)
        x = _numeric(df, column)
        x = np.clip(x[~np.isnan(x)], lo, hi)
        # each value to its nearest grid point: a per-row map, so the sensitivity holds
        t = np.sort(np.clip(np.rint((x - lo) / step), 0, candidates).astype(np.int64))
        src = _sample.source(rng)
        out = {}
        for q in levels:
            # integer scores: the level as the exact decimal it was written as, num / den
            fq = Fraction(repr(q))
            num, den = fq.numerator, fq.denominator
            first, size, score = _quantile_groups(t, candidates, num, den)
            gamma = Fraction(each) / (2 * k * max(num, den - num))
            # only score differences matter: the best candidate's score is subtracted
            g, i = _sample.exponential_groups(src, size, score - score.min(), gamma)
            j = int(first[g]) + i
            value = hi if j == candidates else lo + j * step
            out[f"q{q:g}"] = Estimate(float(value), math.nan, math.nan, conf)
        notes = {
            "rank_error": rank_error,
            "spacing": step,
            "lower": lo,
            "upper": hi,
        }
        return Release(f"quantiles({column})", out, cost, "exponential",
                       _unit(id_column, k), notes)  # fmt: skip

    return _charged(charge, cost, "quantiles:exponential", compute)


def _dummy_mass(r: float, s: int, m: int) -> float:
    """``P(|N - s| <= m)`` for the dummy count ``N`` (discrete Laplace of ratio ``r``
    centred on ``s``, conditioned on ``[0, 2 s]``)."""
    return (1 + r - 2 * r ** (m + 1)) / (1 + r - 2 * r ** (s + 1))


def dummy_delta(epsilon: float, shift: int, sensitivity: int = 1) -> float:
    """The exact ``delta`` of the dummy count with this ``shift``: ``P(N <= sensitivity -
    1)``, the mass of the outputs one neighbour can produce and the other cannot (the
    hockey-stick divergence at ``e**epsilon``; every other output's ratio is at most
    ``e**epsilon``)."""
    r = math.exp(-check_epsilon(epsilon) / sensitivity)
    if shift < sensitivity:
        return 1.0
    norm = (1 + r - 2 * r ** (shift + 1)) / (1 - r)
    return sum(r ** (shift - n) for n in range(sensitivity)) / norm


@dataclass(frozen=True)
class DummyLaw:
    """The public law of the dummy count of a DP PSI-cardinality: what both parties derive
    from the agreed ``epsilon``, ``delta`` and ``sensitivity``.

    ``count = shift + Z`` with ``Z`` discrete Laplace of scale ``sensitivity / epsilon``
    **conditioned on** ``|Z| <= shift`` (redrawn until it is), so ``0 <= count <= 2 shift =
    slots``: the number of dummy slots each party fills is public and fixed, and the
    revealed size ``true + count`` determines nothing else. ``shift`` is the smallest with
    :func:`dummy_delta` at most ``delta``: then the revealed size is (epsilon,
    delta)-DP for the true size (add/remove one customer changes it by at most
    ``sensitivity``). The receiver estimates ``true`` as ``revealed - shift`` (unbiased:
    the law is symmetric about ``shift``), with the exact interval of the law."""

    epsilon: float
    delta: float
    sensitivity: int = 1

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        _limit(self.sensitivity)
        dummy_shift(self.epsilon, self.delta, self.sensitivity)  # validates delta

    @property
    def shift(self) -> int:
        return dummy_shift(self.epsilon, self.delta, self.sensitivity)

    @property
    def slots(self) -> int:
        """Dummy items each party adds (the largest possible count)."""
        return 2 * self.shift

    @property
    def cost(self) -> PrivacyCost:
        return PrivacyCost(self.epsilon, self.delta)

    def halfwidth(self, confidence: float = 0.95) -> int:
        """The smallest ``m`` with ``P(|count - shift| <= m) >= confidence`` (exact law)."""
        conf = _confidence(confidence)
        r = math.exp(-self.epsilon / self.sensitivity)
        s = self.shift
        for m in range(s + 1):
            if _dummy_mass(r, s, m) >= conf:
                return m
        return s

    def estimate(
        self, revealed: int, confidence: float = 0.95, upper: int | None = None
    ) -> Estimate:
        """The true size estimated from the revealed size ``true + count``, with the interval
        holding it with probability ``confidence`` over the noise; clamped to ``[0, upper]``
        (``upper``: the smaller set size, public) — post-processing."""
        h = self.halfwidth(confidence)
        top = math.inf if upper is None else upper
        v = revealed - self.shift

        def clamp(x: float) -> float:
            return float(min(max(x, 0), top))

        return Estimate(clamp(v), clamp(v - h), clamp(v + h), confidence)

    def draw(self, rng: RandomSource | None = None) -> int:
        """One dummy count, sampled exactly (discrete Laplace, CKS 2020, redrawn until
        within the slots)."""
        s = self.shift
        if 2 * s > MAX_DUMMY_SLOTS:
            raise ConfigError(
                f"epsilon {self.epsilon} and delta {self.delta} need {2 * s} dummy items; "
                "raise epsilon"
            )
        scale = DiscreteLaplace(self.epsilon, self.sensitivity).scale
        src = _sample.source(rng)
        while True:
            z = _sample.discrete_laplace(src, scale)
            if abs(z) <= s:
                return s + z


@dataclass(frozen=True)
class DummyCount:
    """One drawn dummy count and its law (:class:`DummyLaw`)."""

    count: int
    shift: int
    epsilon: float
    delta: float
    sensitivity: int

    @property
    def law(self) -> DummyLaw:
        return DummyLaw(self.epsilon, self.delta, self.sensitivity)

    @property
    def slots(self) -> int:
        return 2 * self.shift

    @property
    def cost(self) -> PrivacyCost:
        return PrivacyCost(self.epsilon, self.delta)

    def estimate(
        self, revealed: int, confidence: float = 0.95, upper: int | None = None
    ) -> Estimate:
        return self.law.estimate(revealed, confidence, upper)


def dummy_shift(epsilon: float, delta: float, sensitivity: int = 1) -> int:
    """The smallest ``s >= sensitivity`` with :func:`dummy_delta` ``(epsilon, s) <=
    delta``."""
    eps = check_epsilon(epsilon)
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not (0 < delta < 1):
        raise ConfigError(f"delta must be in (0, 1) (the truncation's probability), got {delta!r}")
    r = math.exp(-eps / sensitivity)
    # untruncated estimate: r**(s - sensitivity + 1) / (1 + r) * (1 + ...) ~ delta
    s = max(sensitivity, math.ceil(math.log(delta * (1 - r)) / math.log(r)))
    while dummy_delta(eps, s, sensitivity) > delta:
        s += 1
    while s > sensitivity and dummy_delta(eps, s - 1, sensitivity) <= delta:
        s -= 1
    return s


#: Largest number of dummy slots a DP PSI-cardinality may need (epsilon and delta so small
#: that more would be unusable anyway).
MAX_DUMMY_SLOTS = 1 << 22


def psi_dummy_count(
    epsilon: float,
    delta: float,
    *,
    sensitivity: int = 1,
    rng: RandomSource | None = None,
) -> DummyCount:
    """Draw the number of dummy intersection items of a DP PSI-cardinality (see
    :class:`DummyLaw`; ``privfin.psi`` SPEC.md §10 for the protocol that makes them match
    on the receiver's side). (epsilon, delta)-DP for the intersection size with
    ``sensitivity`` (1: one customer is in the intersection at most once)."""
    law = DummyLaw(check_epsilon(epsilon), delta, _limit(sensitivity))
    return DummyCount(law.draw(rng), law.shift, law.epsilon, float(delta), sensitivity)


QUERIES = ("count", "sum", "mean", "histogram", "quantiles", "contingency")


@dataclass(frozen=True)
class ReleaseParams:
    """Parameters of a DP release step (the ``dp_release`` pipeline component).

    Attributes
    ----------
    query:
        One of count, sum, mean, histogram, quantiles, contingency.
    epsilon:
        Privacy loss of the release (> 0; a small 0.1 unless given), charged to the
        dataset's budget before the data is read.
    column:
        The column (sum, mean, histogram, quantiles).
    columns:
        The columns of a contingency table.
    lower, upper:
        Declared bounds (sum, mean, quantiles); values outside are clamped.
    categories:
        Declared categories (histogram: a list; contingency: column -> list).
    bins:
        Declared bin edges (numeric histogram).
    qs:
        Quantile levels.
    id_column:
        The customer id: the privacy unit is one customer (else one row).
    max_rows_per_id:
        Rows kept per customer.
    confidence:
        Confidence of the stated intervals.
    """

    query: str = "count"
    epsilon: float = 0.1
    column: str | None = None
    columns: list[str] | None = None
    lower: float | None = None
    upper: float | None = None
    categories: Any = None
    bins: list[float] | None = None
    qs: list[float] | None = None
    id_column: str | None = None
    max_rows_per_id: int = 1
    confidence: float = 0.95

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> ReleaseParams:
        known = set(cls.__dataclass_fields__)
        extra = set(params) - known
        if extra:
            raise ConfigError(
                f"unknown dp_release parameters {sorted(extra)}; known: {sorted(known)}"
            )
        p = cls(**dict(params))
        if p.query not in QUERIES:
            raise ConfigError(f"dp_release query must be one of {QUERIES}, got {p.query!r}")
        check_epsilon(p.epsilon)
        _limit(p.max_rows_per_id)
        _confidence(p.confidence)
        if p.query in ("sum", "mean", "histogram", "quantiles") and not p.column:
            raise ConfigError(f"dp_release {p.query} needs parameter 'column'")
        if p.query in ("sum", "mean", "quantiles"):
            if p.lower is None or p.upper is None:
                raise ConfigError(f"dp_release {p.query} needs declared bounds 'lower' and 'upper'")
            _bounds(p.lower, p.upper)
        if p.query == "quantiles" and not p.qs:
            raise ConfigError("dp_release quantiles needs parameter 'qs' (levels in [0, 1])")
        if p.query == "contingency" and (not p.columns or not isinstance(p.categories, Mapping)):
            raise ConfigError("dp_release contingency needs 'columns' and 'categories' per column")
        return p

    def cost(self) -> PrivacyCost:
        """What the release costs (known from the parameters alone)."""
        return PrivacyCost(float(self.epsilon))

    def dp_charges(self) -> list[tuple[PrivacyCost, str]]:
        """What the scheduler reserves before the data is read: one charge."""
        return [(self.cost(), self.mechanism)]

    @property
    def mechanism(self) -> str:
        return {
            "count": "count:discrete_laplace",
            "sum": "sum:grid_laplace",
            "mean": "mean:grid_laplace",
            "histogram": "histogram:discrete_laplace",
            "quantiles": "quantiles:exponential",
            "contingency": "contingency:discrete_laplace",
        }[self.query]


def run_release(
    p: ReleaseParams,
    data: Data,
    *,
    charge: Charge | None = None,
    rng: RandomSource | None = None,
) -> Release:
    """The release ``p`` describes, over ``data``."""
    common: dict[str, Any] = {
        "id_column": p.id_column,
        "max_rows_per_id": p.max_rows_per_id,
        "confidence": p.confidence,
        "charge": charge,
        "rng": rng,
    }
    if p.query == "count":
        return count(data, p.epsilon, **common)
    column = str(p.column)
    lo = float(p.lower) if p.lower is not None else 0.0  # from_mapping checked bounds
    hi = float(p.upper) if p.upper is not None else 1.0
    if p.query == "sum":
        return sum_(data, column, p.epsilon, lower=lo, upper=hi, **common)
    if p.query == "mean":
        return mean(data, column, p.epsilon, lower=lo, upper=hi, **common)
    if p.query == "histogram":
        return histogram(data, column, p.epsilon, categories=p.categories, bins=p.bins, **common)
    if p.query == "quantiles":
        qs = list(p.qs or ())
        return quantiles(data, column, qs, p.epsilon, lower=lo, upper=hi, **common)
    return contingency(data, list(p.columns or ()), p.epsilon, categories=p.categories, **common)


def check_release_json(raw: object) -> dict[str, Any]:
    """Validate a release received from another party (types, sizes, finite numbers): what
    a result party accepts. Raises :class:`~privfin.errors.DecodeError`."""
    from privfin.errors import DecodeError

    if not isinstance(raw, dict) or set(raw) != {
        "query", "estimates", "confidence", "epsilon", "delta", "mechanism", "unit", "notes",
    }:  # fmt: skip
        raise DecodeError("a DP release must be a mapping with its fixed fields")
    est = raw["estimates"]
    if not isinstance(est, dict) or not 1 <= len(est) <= 100_000:
        raise DecodeError("a DP release needs between 1 and 100000 estimates")
    for key, e in est.items():
        if not isinstance(key, str) or len(key) > 1000 or not isinstance(e, dict):
            raise DecodeError("malformed estimate in a DP release")
        if set(e) != {"value", "low", "high"}:
            raise DecodeError("an estimate holds exactly value, low and high")
        for name, v in e.items():
            if v is None and name != "value":
                continue  # an interval not stated
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise DecodeError("estimates must be numbers")
        if not math.isfinite(e["value"]):
            raise DecodeError("an estimate's value must be finite")
    for name in ("epsilon", "delta", "confidence"):
        v = raw[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise DecodeError(f"a DP release's {name} must be a finite number")
    if not isinstance(raw["query"], str) or not isinstance(raw["mechanism"], str):
        raise DecodeError("a DP release names its query and mechanism")
    if not isinstance(raw["unit"], str) or not isinstance(raw["notes"], dict):
        raise DecodeError("a DP release states its privacy unit and notes")
    return raw
