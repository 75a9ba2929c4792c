"""What every attack reports: ROC curve, AUC, advantage, TPR at low FPR, and Clopper-Pearson
confidence bounds (for DP auditing)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score, roc_curve

from privfin.assess.model import AttackResult

__all__ = ["clopper_pearson", "roc_result", "value_result"]

#: False-positive rates at which the true-positive rate is reported.
FPRS = (0.01, 0.1)
#: Most ROC points kept in a result (for plots; the AUC uses every point).
MAX_ROC_POINTS = 101


def _downsample(
    fpr: npt.NDArray[np.float64], tpr: npt.NDArray[np.float64]
) -> list[tuple[float, float]]:
    if len(fpr) > MAX_ROC_POINTS:
        idx = np.unique(np.linspace(0, len(fpr) - 1, MAX_ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[idx], tpr[idx]
    return [(round(float(f), 6), round(float(t), 6)) for f, t in zip(fpr, tpr, strict=True)]


def roc_result(
    attack: str,
    target: str,
    *,
    protected: bool,
    members: npt.ArrayLike,
    scores: npt.ArrayLike,
    detail: str = "",
    metric: str = "",
    value: float | None = None,
) -> AttackResult:
    """An :class:`AttackResult` from an attacker's ``scores`` (higher: "member" / "positive")
    and the truth ``members`` (0/1), one entry per trial.

    ``advantage`` is ``max(TPR - FPR)`` over thresholds (0: chance, 1: perfect); ``tpr_at_fpr``
    the highest TPR whose FPR does not exceed 0.01 and 0.1.
    """
    y = np.asarray(members, dtype=np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape or len(np.unique(y)) != 2:
        raise ValueError("an ROC needs scores and both outcomes, one per trial")
    s = np.nan_to_num(s, nan=0.0, posinf=1e300, neginf=-1e300)
    fpr, tpr, _ = roc_curve(y, s)
    auc = float(roc_auc_score(y, s))
    at = {f: float(tpr[fpr <= f + 1e-12].max()) for f in FPRS}
    return AttackResult(
        attack=attack,
        target=target,
        protected=protected,
        trials=len(y),
        auc=auc,
        advantage=float(np.max(tpr - fpr)),
        tpr_at_fpr=at,
        roc=tuple(_downsample(fpr, tpr)),
        metric=metric,
        value=value,
        detail=detail,
    )


def value_result(
    attack: str,
    target: str,
    *,
    protected: bool,
    trials: int,
    metric: str,
    value: float,
    detail: str,
) -> AttackResult:
    """An attack whose outcome is one number (a reconstruction similarity, a recovery rate)."""
    return AttackResult(
        attack=attack,
        target=target,
        protected=protected,
        trials=trials,
        metric=metric,
        value=float(value),
        detail=detail,
    )


def _binom_cdf(k: int, n: int, p: float) -> float:
    """P(Bin(n, p) <= k), summed in log space (no scipy dependency)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    logfact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])
    i = np.arange(k + 1)
    logpmf = logfact[n] - logfact[i] - logfact[n - i] + i * math.log(p) + (n - i) * math.log1p(-p)
    top = float(logpmf.max())
    return float(min(1.0, math.exp(top) * np.exp(logpmf - top).sum()))


def _solve(f: Callable[[float], float], target: float) -> float:
    """The p in [0, 1] where the decreasing ``f`` crosses ``target`` (bisection)."""
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """Two-sided exact (Clopper-Pearson) interval of a binomial rate at ``confidence``: the
    upper end solves ``P(Bin(n, p) <= k) = alpha/2``, the lower ``P(Bin(n, p) >= k) =
    alpha/2``."""
    if not 0 <= successes <= trials or trials < 1 or not 0 < confidence < 1:
        raise ValueError("need 0 <= successes <= trials, trials >= 1, 0 < confidence < 1")
    a = (1.0 - confidence) / 2
    k, n = successes, trials
    hi = 1.0 if k == n else _solve(lambda p: _binom_cdf(k, n, p), a)
    lo = 0.0 if k == 0 else _solve(lambda p: _binom_cdf(k - 1, n, p), 1.0 - a)
    return lo, hi


def logit_confidence(p_true: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """LiRA's logit scaling ``log(p / (1 - p))`` of the probability of the true label."""
    p = np.clip(np.asarray(p_true, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.asarray(np.log(p) - np.log1p(-p), dtype=np.float64)


def summary(results: Sequence[AttackResult]) -> str:
    """One line per result (for logs and the benchmark script)."""
    lines = []
    for r in results:
        parts = [f"{r.attack} vs {r.target} ({'protected' if r.protected else 'control'})"]
        if r.auc is not None:
            parts.append(f"auc={r.auc:.3f} adv={r.advantage:.3f}")
            parts += [f"tpr@{f}={t:.3f}" for f, t in r.tpr_at_fpr.items()]
        if r.value is not None:
            parts.append(f"{r.metric}={r.value:.4g}")
        parts.append(f"n={r.trials}")
        lines.append(" ".join(parts))
    return "\n".join(lines)


def finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0
