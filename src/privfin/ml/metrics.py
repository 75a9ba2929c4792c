"""Evaluation of binary classifiers as credit risk does it: AUC, KS, lift/gain, confusion, PSI.

Every function takes labels ``y_true`` in ``{0, 1}`` (1 = the event, e.g. default) and scores
``y_score`` (higher = more likely the event) as array-likes, validates them once, and returns
plain floats, numpy arrays or small dataclasses that carry the curve data needed for plots.
Results agree with scikit-learn where it has the same metric (tested).

Security: these are plaintext, party-local computations. In a vertical federation the guest
(label holder) evaluates scores it learned through joint scoring; the outputs (curves, tables)
are aggregates over the evaluated population and reveal what aggregates reveal: release them
to other parties only under the job's agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError

__all__ = [
    "BinaryReport",
    "GainTable",
    "KSResult",
    "PSIResult",
    "binary_report",
    "confusion_at",
    "gain_table",
    "ks_statistic",
    "population_stability_index",
    "roc_auc",
    "roc_curve",
]

FloatArray = npt.NDArray[np.float64]


def _check(y_true: Any, y_score: Any) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(y_true, dtype=np.float64).reshape(-1)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ConfigError(f"y_true has {y.size} values but y_score has {s.size}")
    if y.size == 0:
        raise ConfigError("cannot evaluate an empty sample")
    if not np.all((y == 0) | (y == 1)):
        raise ConfigError("y_true must hold 0/1 labels (1 = the event)")
    if not np.all(np.isfinite(s)):
        raise ConfigError("y_score holds NaN or infinite values")
    if y.min() == y.max():
        raise ConfigError("y_true holds a single class: AUC/KS are undefined")
    return y, s


def roc_curve(y_true: Any, y_score: Any) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ROC curve: ``(fpr, tpr, thresholds)``, thresholds decreasing, starting at ``+inf``.

    One point per distinct score (ties are one point), as scikit-learn with
    ``drop_intermediate=False``.
    """
    y, s = _check(y_true, y_score)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return fpr, tpr, thresholds


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve (ties count one half), as ``sklearn.metrics.roc_auc_score``."""
    fpr, tpr, _ = roc_curve(y_true, y_score)
    return float(np.trapezoid(tpr, fpr))


@dataclass(frozen=True)
class KSResult:
    """Kolmogorov–Smirnov statistic: ``max |TPR - FPR|`` and where it is reached.

    ``curve`` holds, per threshold, the cumulative share of events (``tpr``) and non-events
    (``fpr``) at or above it: plot both against ``thresholds`` for the usual KS chart.
    """

    ks: float
    threshold: float
    thresholds: FloatArray
    tpr: FloatArray
    fpr: FloatArray


def ks_statistic(y_true: Any, y_score: Any) -> KSResult:
    """KS of a score: the largest gap between the cumulative distributions of events and
    non-events (the standard separation measure of credit scorecards)."""
    fpr, tpr, thr = roc_curve(y_true, y_score)
    gap = np.abs(tpr - fpr)
    i = int(np.argmax(gap))
    return KSResult(float(gap[i]), float(thr[i]), thr, tpr, fpr)


@dataclass(frozen=True)
class GainTable:
    """Lift and gain by score bucket (bucket 1 = highest scores).

    Columns (numpy arrays, one entry per bucket): ``count``, ``events``, ``event_rate``,
    ``cum_count_share`` (x of the gain chart), ``cum_gain`` (share of all events captured, y of
    the gain chart), ``lift`` (bucket event rate / overall rate) and ``cum_lift``.
    """

    count: npt.NDArray[np.int64]
    events: FloatArray
    event_rate: FloatArray
    cum_count_share: FloatArray
    cum_gain: FloatArray
    lift: FloatArray
    cum_lift: FloatArray

    def as_rows(self) -> list[dict[str, float]]:
        """The table as a list of dicts (for printing or JSON)."""
        keys = ("count", "events", "event_rate", "cum_count_share", "cum_gain", "lift", "cum_lift")
        return [
            {"bucket": float(i + 1), **{k: float(getattr(self, k)[i]) for k in keys}}
            for i in range(len(self.count))
        ]


def gain_table(y_true: Any, y_score: Any, n_buckets: int = 10) -> GainTable:
    """Lift/gain table over ``n_buckets`` equal-count buckets of descending score.

    Rows are sorted by score (stable, so ties keep input order) and cut into buckets whose
    sizes differ by at most one.
    """
    y, s = _check(y_true, y_score)
    if not 1 <= n_buckets <= y.size:
        raise ConfigError(f"n_buckets must be in [1, {y.size}], got {n_buckets}")
    order = np.argsort(-s, kind="mergesort")
    y_sorted = y[order]
    edges = (np.arange(n_buckets + 1) * y.size) // n_buckets
    count = np.diff(edges).astype(np.int64)
    events = np.add.reduceat(y_sorted, edges[:-1])
    rate = events / count
    overall = y.mean()
    cum_count = np.cumsum(count)
    cum_events = np.cumsum(events)
    return GainTable(
        count=count,
        events=events,
        event_rate=rate,
        cum_count_share=cum_count / y.size,
        cum_gain=cum_events / y.sum(),
        lift=rate / overall,
        cum_lift=(cum_events / cum_count) / overall,
    )


def confusion_at(y_true: Any, y_score: Any, threshold: float = 0.5) -> dict[str, float]:
    """Confusion matrix and derived rates when predicting the event for ``score >= threshold``.

    Returns ``tn, fp, fn, tp`` (counts) and ``accuracy, precision, recall, specificity, f1``
    (``0.0`` where a denominator is zero).
    """
    y, s = _check(y_true, y_score)
    pred = s >= threshold
    pos = y == 1
    tp = float(np.sum(pred & pos))
    fp = float(np.sum(pred & ~pos))
    fn = float(np.sum(~pred & pos))
    tn = float(np.sum(~pred & ~pos))

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
        "accuracy": ratio(tp + tn, y.size),
        "precision": precision,
        "recall": recall,
        "specificity": ratio(tn, tn + fp),
        "f1": ratio(2 * precision * recall, precision + recall),
    }


@dataclass(frozen=True)
class PSIResult:
    """Population stability index between an expected (e.g. training) and an actual (e.g.
    recent) distribution: ``sum (a - e) * ln(a / e)`` over bins.

    Rules of thumb: below 0.1 stable, 0.1–0.25 some shift, above 0.25 a major shift.
    ``edges`` are the bin edges (from the expected sample), ``expected``/``actual`` the
    per-bin shares and ``contributions`` the per-bin terms (they sum to ``psi``).
    """

    psi: float
    edges: FloatArray
    expected: FloatArray
    actual: FloatArray
    contributions: FloatArray


def population_stability_index(
    expected: Any, actual: Any, n_bins: int = 10, *, epsilon: float = 1e-6
) -> PSIResult:
    """PSI of ``actual`` against ``expected`` over quantile bins of ``expected``.

    Bins are the (deduplicated) deciles of ``expected`` (``n_bins`` quantiles), open at both
    ends, so every value of ``actual`` falls in a bin. Empty shares are floored at ``epsilon``
    so the index stays finite.
    """
    e = np.asarray(expected, dtype=np.float64).reshape(-1)
    a = np.asarray(actual, dtype=np.float64).reshape(-1)
    if e.size == 0 or a.size == 0:
        raise ConfigError("PSI needs two non-empty samples")
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(a))):
        raise ConfigError("PSI samples hold NaN or infinite values")
    if n_bins < 2:
        raise ConfigError(f"n_bins must be at least 2, got {n_bins}")
    inner = np.unique(np.quantile(e, np.linspace(0, 1, n_bins + 1)[1:-1]))
    edges = np.r_[-np.inf, inner, np.inf]
    e_share = np.bincount(np.searchsorted(inner, e, side="right"), minlength=inner.size + 1)
    a_share = np.bincount(np.searchsorted(inner, a, side="right"), minlength=inner.size + 1)
    e_frac = np.maximum(e_share / e.size, epsilon)
    a_frac = np.maximum(a_share / a.size, epsilon)
    contrib = (a_frac - e_frac) * np.log(a_frac / e_frac)
    return PSIResult(float(contrib.sum()), edges, e_frac, a_frac, contrib)


@dataclass(frozen=True)
class BinaryReport:
    """Everything :func:`binary_report` computes (curves included, for plots)."""

    auc: float
    ks: KSResult
    gain: GainTable
    confusion: dict[str, float]
    roc: tuple[FloatArray, FloatArray, FloatArray]

    def summary(self) -> dict[str, float]:
        """Scalar figures only: ``auc``, ``ks``, ``ks_threshold``, top-bucket lift, accuracy."""
        return {
            "auc": self.auc,
            "ks": self.ks.ks,
            "ks_threshold": self.ks.threshold,
            "lift_top_bucket": float(self.gain.lift[0]),
            "accuracy": self.confusion["accuracy"],
        }


def binary_report(
    y_true: Any, y_score: Any, *, threshold: float = 0.5, n_buckets: int = 10
) -> BinaryReport:
    """AUC, KS, lift/gain and the confusion matrix at ``threshold`` in one call."""
    roc = roc_curve(y_true, y_score)
    return BinaryReport(
        auc=float(np.trapezoid(roc[1], roc[0])),
        ks=ks_statistic(y_true, y_score),
        gain=gain_table(y_true, y_score, n_buckets),
        confusion=confusion_at(y_true, y_score, threshold),
        roc=roc,
    )
