"""Plaintext binning for credit scoring: quantile bins, chi-merge, WOE and IV.

Conventions: a feature's bins are given by increasing inner ``edges``; value ``x`` falls in
bin ``searchsorted(edges, x, side="right")`` (so bin ``i`` is ``(edges[i-1], edges[i]]``...
closed on the right edge's left side: ``edges[i-1] <= x < edges[i]``), ``len(edges) + 1`` bins.
NaN gets its own last bin when present. ``WOE_i = ln(share of non-events in i / share of events
in i)`` (the usual scorecard sign: higher WOE = lower risk), with ``adjustment`` added to empty
counts; ``IV = sum_i (share_non_events_i - share_events_i) * WOE_i``.

Security: plaintext and party-local. In the vertical protocol the guest runs :func:`woe_iv` and
:func:`chi_merge` on *counts* it decrypted; hosts run :func:`quantile_edges` on their own data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError

__all__ = [
    "WoeIv",
    "apply_bins",
    "bin_counts",
    "chi_merge",
    "merge_counts",
    "quantile_edges",
    "woe_iv",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def quantile_edges(x: npt.ArrayLike, n_bins: int) -> FloatArray:
    """Inner edges of (at most) ``n_bins`` equal-frequency bins of the finite values of ``x``.

    Duplicate quantiles are merged, so a feature with few distinct values gets fewer bins.
    """
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if n_bins < 1:
        raise ConfigError(f"n_bins must be at least 1, got {n_bins}")
    if v.size == 0 or n_bins == 1:
        return np.empty(0)
    qs = np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1], method="linear")
    edges = np.unique(qs)
    # An edge equal to the minimum makes an empty first bin: drop it.
    out: FloatArray = edges[edges > v.min()]
    return out


def apply_bins(x: npt.ArrayLike, edges: npt.ArrayLike) -> IntArray:
    """Bin index of every value (NaN -> ``len(edges) + 1``, the missing bin)."""
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    e = np.asarray(edges, dtype=np.float64).reshape(-1)
    idx = np.searchsorted(e, v, side="right").astype(np.int64)
    idx[np.isnan(v)] = e.size + 1
    return idx


def bin_counts(bins: npt.ArrayLike, y: npt.ArrayLike, n_bins: int) -> tuple[IntArray, IntArray]:
    """``(events, totals)`` per bin from bin indices and 0/1 labels."""
    b = np.asarray(bins, dtype=np.int64)
    yy = np.asarray(y, dtype=np.float64)
    totals = np.bincount(b, minlength=n_bins).astype(np.int64)
    events = np.rint(np.bincount(b, weights=yy, minlength=n_bins)).astype(np.int64)
    return events, totals


@dataclass(frozen=True)
class WoeIv:
    """WOE per bin, the feature's IV, and the per-bin event/non-event counts behind them."""

    woe: FloatArray
    iv: float
    iv_per_bin: FloatArray
    events: IntArray
    non_events: IntArray


def woe_iv(events: npt.ArrayLike, totals: npt.ArrayLike, *, adjustment: float = 0.5) -> WoeIv:
    """WOE and IV from per-bin event counts and bin sizes (empty bins get WOE 0, IV 0)."""
    ev = np.asarray(events, dtype=np.int64)
    tot = np.asarray(totals, dtype=np.int64)
    if ev.shape != tot.shape or np.any(ev < 0) or np.any(ev > tot):
        raise ConfigError("events must lie in [0, totals] bin by bin")
    non = tot - ev
    n_ev, n_non = int(ev.sum()), int(non.sum())
    if n_ev == 0 or n_non == 0:
        raise ConfigError("WOE needs both events and non-events")
    ev_adj = np.where(ev == 0, adjustment, ev) / n_ev
    non_adj = np.where(non == 0, adjustment, non) / n_non
    woe = np.where(tot > 0, np.log(non_adj / ev_adj), 0.0)
    per_bin = np.where(tot > 0, (non_adj - ev_adj) * woe, 0.0)
    return WoeIv(woe, float(per_bin.sum()), per_bin, ev, non)


def merge_counts(values: npt.ArrayLike, groups: list[list[int]]) -> IntArray:
    """Sum ``values`` over groups of adjacent bin indices."""
    v = np.asarray(values, dtype=np.int64)
    return np.array([int(v[g].sum()) for g in groups], dtype=np.int64)


def _chi2(a: tuple[int, int], b: tuple[int, int]) -> float:
    (e1, t1), (e2, t2) = a, b
    n = t1 + t2
    if n == 0:
        return 0.0
    ev, non = e1 + e2, n - e1 - e2
    chi = 0.0
    for e, t in ((e1, t1), (e2, t2)):
        for obs, col in ((e, ev), (t - e, non)):
            expected = t * col / n
            if expected > 0:
                chi += (obs - expected) ** 2 / expected
    return chi


def chi_merge(
    events: npt.ArrayLike,
    totals: npt.ArrayLike,
    *,
    max_bins: int = 8,
    threshold: float = 3.841,
    min_bin_share: float = 0.0,
) -> list[list[int]]:
    """Chi-merge (Kerber): repeatedly merge the adjacent pair of bins with the smallest chi2.

    Starts from fine ordered bins given by their counts; stops once every adjacent pair has
    ``chi2 >= threshold`` (3.841: 95 % for one degree of freedom) *and* at most ``max_bins``
    bins remain *and* every bin holds at least ``min_bin_share`` of the rows. Returns the groups
    of fine-bin indices that form each final bin (in order).
    """
    ev = [int(v) for v in np.asarray(events, dtype=np.int64)]
    tot = [int(v) for v in np.asarray(totals, dtype=np.int64)]
    if len(ev) != len(tot):
        raise ConfigError("events and totals must have the same length")
    if max_bins < 1:
        raise ConfigError("max_bins must be at least 1")
    groups = [[i] for i in range(len(ev))]
    stats = list(zip(ev, tot, strict=True))
    # Drop empty fine bins into their neighbour first.
    i = 0
    while i < len(groups) and len(groups) > 1:
        if stats[i][1] == 0:
            j = i - 1 if i > 0 else i + 1
            lo, hi = min(i, j), max(i, j)
            groups[lo] = groups[lo] + groups[hi]
            stats[lo] = (stats[lo][0] + stats[hi][0], stats[lo][1] + stats[hi][1])
            del groups[hi], stats[hi]
            i = max(0, lo - 1) if i > 0 else 0
            continue
        i += 1
    n = sum(t for _, t in stats)
    while len(groups) > 1:
        chis = [_chi2(stats[k], stats[k + 1]) for k in range(len(groups) - 1)]
        k = int(np.argmin(chis))
        small = [idx for idx, (_, t) in enumerate(stats) if t < min_bin_share * n]
        if chis[k] >= threshold and len(groups) <= max_bins and not small:
            break
        if small and chis[k] >= threshold and len(groups) <= max_bins:
            s = small[0]
            if s == 0:
                k = 0
            elif s == len(groups) - 1:
                k = s - 1
            else:
                k = s - 1 if chis[s - 1] <= chis[s] else s
        groups[k] = groups[k] + groups[k + 1]
        stats[k] = (stats[k][0] + stats[k + 1][0], stats[k][1] + stats[k + 1][1])
        del groups[k + 1], stats[k + 1]
    return groups
