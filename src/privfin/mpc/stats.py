"""Secure statistics on secret-shared columns, and the ``mpc_stats`` job component.

Functions take a shared matrix ``x`` (rows x columns) and return shared results; nothing is
revealed until the caller reveals a result to a result party. Shapes (number of rows and
columns) are public. Accuracy at 16 fractional bits: sums exact up to the input encoding
(``n * 2**-17``); means, variances within ``1e-4`` relative for moderate data; min, max,
histograms and quantile ranks exact (comparisons are exact); quantile values within the
bisection resolution ``(max - min) / 2**iterations``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from privfin.data.validate import check_column, column_of
from privfin.errors import ConfigError
from privfin.mpc import functions as F
from privfin.mpc.session import Session
from privfin.mpc.tensor import SharedTensor, concatenate
from privfin.runtime import Context

__all__ = [
    "STATISTICS",
    "histogram",
    "maximum",
    "mean",
    "minimum",
    "mpc_stats",
    "pearson",
    "quantiles",
    "row_sums",
    "variance",
    "weighted_sum",
]

STATISTICS = ("count", "sum", "mean", "var", "std", "min", "max")


def mean(x: SharedTensor) -> SharedTensor:
    """Column means."""
    return x.mean(axis=0)


def variance(x: SharedTensor, ddof: int = 0) -> SharedTensor:
    """Column variances ``sum((x - mean)**2) / (n - ddof)`` (centred: no cancellation)."""
    n = x.shape[0]
    d = x - x.mean(axis=0)
    return (d * d).sum(axis=0) * (1.0 / (n - ddof))


def weighted_sum(x: SharedTensor, w: SharedTensor) -> SharedTensor:
    """``w @ x``: per-column sums weighted by a shared (or public) weight vector."""
    return w @ x


def _reduce(x: SharedTensor, pick_max: bool) -> SharedTensor:
    cur = x
    while cur.shape[0] > 1:
        half = cur.shape[0] // 2
        a, b = cur[:half], cur[half : 2 * half]
        best = F.maximum(a, b) if pick_max else F.minimum(a, b)
        cur = concatenate([best, cur[2 * half :]], axis=0) if cur.shape[0] % 2 else best
    return cur[0]


def maximum(x: SharedTensor) -> SharedTensor:
    """Column maxima by a comparison tree (``ceil(log2 n)`` comparison rounds; exact)."""
    return _reduce(x, True)


def minimum(x: SharedTensor) -> SharedTensor:
    """Column minima by a comparison tree (exact)."""
    return _reduce(x, False)


def histogram(x: SharedTensor, edges: Sequence[float]) -> SharedTensor:
    """Counts of ``x`` in the public bins ``[e_k, e_k+1)`` (last bin closed), per column:
    shape ``(len(edges) - 1, columns)``, integers. One batched comparison of every value with
    every edge; the counts are exact."""
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
        raise ConfigError("histogram edges must be a strictly increasing list of >= 2 numbers")
    # last edge: closed bin -> compare with the next representable value above it
    shifted = e.copy()
    shifted[-1] += 2.0**-x.session.frac_bits
    stacked = concatenate([(x - float(t)).reshape(1, *x.shape) for t in shifted], axis=0)
    below = x.session.msb(stacked)  # x < e_k
    at_least = 1 - below
    counts = at_least.sum(axis=1)  # (edges, columns)
    return counts[:-1] - counts[1:]


def quantiles(x: SharedTensor, qs: Sequence[float], *, iterations: int = 24) -> SharedTensor:
    """Column quantiles ``q`` (numpy's ``inverted_cdf``: the k-th smallest, k = ceil(q n)) by
    secret bisection between the secure min and max. Only comparisons of secret values are
    computed; no count or threshold is opened. Shape ``(len(qs), columns)``; resolution
    ``(max - min) / 2**iterations`` (plus fixed-point ulps)."""
    n = x.shape[0]
    qv = np.asarray(qs, dtype=np.float64)
    if qv.ndim != 1 or np.any(qv <= 0) or np.any(qv > 1):
        raise ConfigError("quantiles must lie in (0, 1]")
    ranks = np.ceil(qv * n).astype(np.int64)  # public target counts
    d = x.shape[1] if x.ndim == 2 else 1
    x2 = x.reshape(n, d)
    lo = minimum(x2).reshape(1, d).broadcast_to((len(qv), d))
    hi = maximum(x2).reshape(1, d).broadcast_to((len(qv), d))
    lo = lo - 2.0**-x.session.frac_bits  # invariant: count(x <= lo) < k <= count(x <= hi)
    for _ in range(iterations):
        mid = (lo + hi) * 0.5
        # count(x <= mid) per (q, column): comparisons of shape (Q, n, d)
        diff = mid.reshape(len(qv), 1, d) - x2.reshape(1, n, d)
        above = x.session.msb(diff)  # mid < x
        count = n - above.sum(axis=1)  # integers (Q, d)
        enough = 1 - x.session.msb(count - ranks.reshape(-1, 1))  # count >= k
        hi = F.where(enough, mid, hi)
        lo = F.where(enough, lo, mid)
    return hi


def pearson(x: SharedTensor, *, standardized: bool = False) -> SharedTensor:
    """Pearson correlation matrix of the columns.

    With ``standardized=True`` every column already has mean 0 and variance 1 (in a vertical
    partition each owner standardises its own columns locally, learning nothing new), and the
    correlation is one secure product ``x.T @ x / n``: exact up to fixed point. Otherwise the
    covariance is normalised with :func:`~privfin.mpc.functions.inv_sqrt`, valid for column
    variances in [0.05, 200].
    """
    n = x.shape[0]
    if standardized:
        return (x.T @ x) * (1.0 / n)
    d = x - x.mean(axis=0)
    cov = (d.T @ d) * (1.0 / n)
    var = (d * d).sum(axis=0) * (1.0 / n)
    inv = F.inv_sqrt(var)
    return cov * inv.reshape(1, -1) * inv.reshape(-1, 1)


# --------------------------------------------------------------------------- component


def _table(inputs: Mapping[str, Any], columns: Sequence[str], party: str) -> np.ndarray:
    """The declared columns of the party's ``table`` input as float64, each checked (numbers,
    finite, none missing): :class:`~privfin.errors.InputError` names the column and the count
    of bad rows, never a value."""
    table = inputs.get("table")
    if table is None:
        raise ConfigError(f"data party {party!r} has no 'table' input")
    cols = []
    for c in columns:
        values = column_of(table, c, source=f"data party {party!r}: input 'table'")
        cols.append(np.asarray(check_column(values, c, source="input 'table'"), np.float64))
    return np.stack(cols, axis=1)


def compute_statistics(
    s: Any,
    x: SharedTensor,
    params: Mapping[str, Any],
    names: Sequence[str],
    standardized: Callable[[], SharedTensor],
    weight_column: Callable[[str], SharedTensor],
) -> dict[str, SharedTensor]:
    """The shared results :func:`mpc_stats` reveals, from the shared table ``x`` (columns
    ``names``): ``standardized()`` shares the locally standardised columns (vertical
    ``pearson``), ``weight_column(party)`` the weight column. Also run on shapes alone by
    :mod:`privfin.mpc.cost` (``s`` a tracing session)."""
    stats = list(params.get("statistics", STATISTICS))
    local_std = bool(params.get("pearson")) and params.get("partition", "vertical") == "vertical"
    results: dict[str, SharedTensor] = {}
    if "sum" in stats:
        results["sum"] = x.sum(axis=0)
    if "mean" in stats:
        results["mean"] = mean(x)
    if "var" in stats or "std" in stats:
        results["var"] = variance(x)
    if "min" in stats:
        results["min"] = minimum(x)
    if "max" in stats:
        results["max"] = maximum(x)
    for col, edges in dict(params.get("bins", {})).items():
        if col not in names:
            raise ConfigError(f"bins given for unknown column {col!r}")
        j = list(names).index(col)
        results[f"histogram.{col}"] = histogram(x[:, j : j + 1], edges)[:, 0]
    if params.get("quantiles"):
        results["quantiles"] = quantiles(
            x, list(params["quantiles"]), iterations=int(params.get("quantile_iterations", 24))
        )
    if params.get("pearson"):
        results["pearson"] = pearson(standardized(), standardized=True) if local_std else pearson(x)
    weights = params.get("weights")
    if weights:
        results["weighted_sum"] = weighted_sum(x, weight_column(str(weights["party"])))
    for total, cols in dict(params.get("row_sums") or {}).items():
        results[f"row_sums.{total}"] = row_sums(x, names, [str(c) for c in cols])
    return results


def row_sums(x: SharedTensor, names: Sequence[str], columns: Sequence[str]) -> SharedTensor:
    """Per row, the sum of every column of ``x`` whose name is in ``columns`` (of whichever
    parties hold one): local, exact; one value per row."""
    idx = [j for j, n in enumerate(names) if n in set(columns)]
    missing = set(columns) - set(names)
    if missing or not idx:
        raise ConfigError(f"row_sums of unknown columns {sorted(missing)}")
    return concatenate([x[:, j : j + 1] for j in idx], axis=1).sum(axis=1)


def mpc_stats(ctx: Context, params: Mapping[str, Any], inputs: Mapping[str, Any]) -> Any:
    """Secure statistics over columns held by several data parties.

    Parameters (``params``)
    -----------------------
    partition:
        ``"vertical"`` (``columns``: ``{party: [column, ...]}``, same rows in the same order)
        or ``"horizontal"`` (``columns``: ``[column, ...]`` held by every data party).
    statistics:
        Subset of ``count, sum, mean, var, std, min, max`` (default: all).
    bins:
        ``{column: [edges]}``: histograms on public bins.
    quantiles:
        ``[q, ...]`` in (0, 1]: quantiles of every column by secure comparison.
    pearson:
        ``true``: the correlation matrix of all columns (vertical: owners standardise locally).
    weights:
        ``{"party": p, "column": c}``: weighted column sums with a weight column of ``p``
        (vertical only).
    row_sums:
        ``{total: [column, ...]}`` (vertical only): per row, the sum of every listed column
        over every party that holds one (e.g. a borrower's balance over all lenders), revealed
        row by row as ``out["row_sums"][total]``.
    triples, dealer, frac_bits, truncation, paillier_bits:
        See :class:`~privfin.mpc.session.Session`.

    Returns
    -------
    At each result party a dict of statistics (lists per column); ``None`` elsewhere.

    Leakage: result parties learn exactly the requested statistics (with ``row_sums``, one
    total per row); every party learns the number of rows and columns (shapes are public).
    """
    s = Session.from_params(ctx, params)
    partition = params.get("partition", "vertical")
    spec = params.get("columns")
    stats = list(params.get("statistics", STATISTICS))
    unknown = set(stats) - set(STATISTICS)
    if unknown:
        raise ConfigError(f"unknown statistics {sorted(unknown)}; known: {list(STATISTICS)}")
    names: list[str] = []
    parts: list[SharedTensor] = []
    if partition == "vertical":
        if not isinstance(spec, Mapping):
            raise ConfigError("vertical mpc_stats needs columns: {party: [column, ...]}")
        for owner in sorted(spec):
            cols = [str(c) for c in spec[owner]]
            names += cols
            value = _table(inputs, cols, owner) if ctx.party == owner else None
            parts.append(s.share(owner, value))
        x = concatenate(parts, axis=1)
    elif partition == "horizontal":
        if not isinstance(spec, Sequence) or isinstance(spec, str):
            raise ConfigError("horizontal mpc_stats needs columns: [column, ...]")
        names = [str(c) for c in spec]
        for owner in s.roles.data:
            value = _table(inputs, names, owner) if ctx.party == owner else None
            parts.append(s.share(owner, value))
        x = concatenate(parts, axis=0)
    else:
        raise ConfigError(f"partition must be 'vertical' or 'horizontal', got {partition!r}")
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ConfigError("a data party's table does not match the declared columns")

    def standardized() -> SharedTensor:
        # vertical: each owner standardises its own columns locally and shares them again
        assert isinstance(spec, Mapping)
        std_parts = []
        for owner in sorted(spec):
            own = None
            if ctx.party == owner:
                tab = _table(inputs, [str(c) for c in spec[owner]], owner)
                sd = tab.std(axis=0)
                own = (tab - tab.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
            std_parts.append(s.share(owner, own))
        return concatenate(std_parts, axis=1)

    def weight_column(owner: str) -> SharedTensor:
        assert isinstance(weights, Mapping)
        wv = _table(inputs, [str(weights["column"])], owner)[:, 0] if ctx.party == owner else None
        return s.share(owner, wv)

    weights = params.get("weights")
    if weights and partition != "vertical":
        raise ConfigError("weighted sums take a weight column of one party (vertical)")
    if params.get("row_sums") and partition != "vertical":
        raise ConfigError("row_sums add the columns of several parties row by row (vertical)")
    results = compute_statistics(s, x, params, names, standardized, weight_column)

    out: dict[str, Any] = {"columns": names, "count": x.shape[0]}
    mine = ctx.party in s.roles.result
    for party in s.roles.result:
        for key, res in results.items():
            got = res.reveal(party, label=key)
            if got is not None and mine:
                out[key] = got.tolist()
    if not mine:
        return None
    if "std" in stats:
        out["std"] = np.sqrt(np.maximum(np.asarray(out["var"]), 0.0)).tolist()
        if "var" not in stats:
            del out["var"]
    if "count" not in stats:
        del out["count"]
    sums = {k.split(".", 1)[1]: out.pop(k) for k in list(out) if k.startswith("row_sums.")}
    if sums:
        out["row_sums"] = sums
    return out
