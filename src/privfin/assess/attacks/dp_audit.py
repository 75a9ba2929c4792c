"""DP auditing: an empirical lower bound on epsilon, compared with what the accountant claims.

Follows Jagielski, Ullman, Oprea, "Auditing Differentially Private Machine Learning: How
Private is Private SGD?" (NeurIPS 2020) and Nasr et al. (S&P 2021) for the white-box,
worst-case setting: the mechanism audited is privfin's :class:`~privfin.dp.mechanisms.
GaussianVector` — the noisy sum of clipped contributions at the heart of DP-SGD
(:mod:`privfin.dp.sgd`) and of client-level DP in horizontal FL — run many times on two
neighbouring inputs: a fixed set of other contributions with and without a **canary**, a
contribution of norm exactly ``clip`` along the first axis (a "Dirac canary": the worst case for
the Gaussian mechanism). The distinguisher thresholds the released sum's first coordinate.

For a threshold the false-positive rate ``FPR`` and false-negative rate ``FNR`` bound epsilon
from below: any (ε, δ)-DP mechanism has ``FPR + e^ε FNR ≥ 1 − δ`` and vice versa, so
``ε ≥ max(log((1 − δ − FNR)/FPR), log((1 − δ − FPR)/FNR))``. The rates are replaced by their
one-sided Clopper-Pearson upper bounds at 97.5 % each (95 % jointly), and the threshold is
chosen on one half of the trials and evaluated on the other (choosing it on the same trials
would bias the bound upwards). The result holds with 95 % confidence: if the lower bound
exceeds the accountant's epsilon, the mechanism (or its accounting) is wrong.

Positive control: a **buggy** mechanism whose noise is 10× smaller than the one the accountant
was told about (the kind of scaling bug audits exist to catch). Negative control: the correct
mechanism, whose lower bound must stay at or below the claimed epsilon.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from privfin.assess.attacks._metrics import _binom_cdf, clopper_pearson, roc_result
from privfin.assess.model import AttackResult
from privfin.crypto.random import SeededRandom
from privfin.dp.accounting import Accountant
from privfin.dp.mechanisms import GaussianVector, PrivacyCost
from privfin.dp.sgd import DPSGDClassifier

__all__ = [
    "CONFIDENCE",
    "audit_dp_sgd_one_run",
    "audit_gaussian_vector",
    "epsilon_lower_bound",
    "one_run_epsilon_lower_bound",
]

Arr = npt.NDArray[np.float64]

#: Joint confidence of every lower bound reported.
CONFIDENCE = 0.95
NOISE_MULTIPLIER = 2.0
CLIP = 1.0
DIM = 8
DELTA = 1e-5
BUG_FACTOR = 10.0


def epsilon_lower_bound(
    out: Arr, inn: Arr, threshold: float, delta: float, confidence: float = CONFIDENCE
) -> float:
    """Clopper-Pearson lower bound on epsilon of the test "score > threshold" on the scores of
    trials without (``out``) and with (``inn``) the canary."""
    fp = int(np.sum(out > threshold))
    fn = int(np.sum(inn <= threshold))
    # the upper end of a two-sided interval at `confidence` is a one-sided bound at
    # 1 - (1 - confidence)/2; both rates hold together with `confidence` (union bound)
    fpr_hi = clopper_pearson(fp, len(out), confidence)[1]
    fnr_hi = clopper_pearson(fn, len(inn), confidence)[1]
    best = 0.0
    for a, b in ((fnr_hi, fpr_hi), (fpr_hi, fnr_hi)):
        if 1 - delta - a > 0 and b > 0:
            best = max(best, math.log((1 - delta - a) / b))
    return best


def _point_epsilon(out: Arr, inn: Arr, threshold: float, delta: float) -> float:
    fpr = max(float(np.mean(out > threshold)), 1 / len(out))
    fnr = max(float(np.mean(inn <= threshold)), 1 / len(inn))
    vals = [
        math.log(max(1 - delta - fnr, 1e-300) / fpr),
        math.log(max(1 - delta - fpr, 1e-300) / fnr),
    ]
    return max(vals)


def claimed_epsilon(noise_multiplier: float = NOISE_MULTIPLIER) -> float:
    """The accountant's epsilon (RDP, as DP-SGD reports by default) of one release."""
    acc = Accountant("rdp")
    GaussianVector(noise_multiplier, CLIP).account(acc, DIM)
    return acc.epsilon(DELTA)


def audit_gaussian_vector(*, buggy: bool, quick: bool = True, seed: int = 0) -> AttackResult:
    """Audit the Gaussian vector mechanism (``buggy``: with noise 10× below its claim)."""
    trials = 2000 if quick else 20000
    released = GaussianVector(NOISE_MULTIPLIER / BUG_FACTOR if buggy else NOISE_MULTIPLIER, CLIP)
    claim = claimed_epsilon()
    rng = np.random.default_rng(seed)
    others = rng.normal(size=(10, DIM))
    canary = np.zeros(DIM)
    canary[0] = CLIP
    base = released.round(others).sum(axis=0)
    with_canary = base + released.round(canary[None, :]).sum(axis=0)
    src = SeededRandom(f"dp-audit/{seed}/{buggy}")
    out_rel = released.noise_sum(np.tile(base, (trials, 1)), src)
    in_rel = released.noise_sum(np.tile(with_canary, (trials, 1)), src)
    base_sum = base.astype(np.float64) * released.grid
    out_s = out_rel[:, 0] - base_sum[0]
    in_s = in_rel[:, 0] - base_sum[0]
    half = trials // 2
    # choose the threshold on the first half, bound epsilon on the second
    grid = np.quantile(np.concatenate([out_s[:half], in_s[:half]]), np.linspace(0.01, 0.99, 197))
    tau = float(max(grid, key=lambda t: _point_epsilon(out_s[:half], in_s[:half], t, DELTA)))
    lower = epsilon_lower_bound(out_s[half:], in_s[half:], tau, DELTA)
    caught = lower > claim
    target = (
        f"GaussianVector with a bug (noise {BUG_FACTOR:g}x below its claim)"
        if buggy
        else "GaussianVector (privfin.dp.mechanisms, as in DP-SGD and client-level DP)"
    )
    detail = (
        f"{trials} releases per world (canary in / out), threshold chosen on half, bounded on "
        f"the other half; Clopper-Pearson at {CONFIDENCE:.0%} confidence; noise multiplier "
        f"claimed {NOISE_MULTIPLIER}, used {released.noise_multiplier:g}; accountant (RDP) "
        f"epsilon {claim:.3f} at delta {DELTA:g}; empirical lower bound {lower:.3f}: "
        + ("EXCEEDS the claim (the audit catches a bug)" if caught else "within the claim")
    )
    members = np.concatenate([np.zeros(trials - half), np.ones(trials - half)])
    return roc_result(
        "dp-audit/canary", target, protected=not buggy, members=members,
        scores=np.concatenate([out_s[half:], in_s[half:]]), metric="epsilon_lower_bound",
        value=lower, detail=detail,
    )  # fmt: skip


# -- one-run audit of DP-SGD training (Steinke, Nasr, Jagielski 2023)

ONE_RUN_SGD = {"noise_multiplier": 4.0, "sampling_rate": 0.1, "steps": 200, "learning_rate": 2.0}
#: The one-run audit is weaker than the repeated-trial one (its bound saturates at about 3.5
#: with 100 guesses), so its planted bug is larger: noise 100x below the claim.
ONE_RUN_BUG_FACTOR = 100.0


def one_run_epsilon_lower_bound(correct: int, guesses: int, beta: float) -> float:
    """The largest epsilon with ``P[Bin(guesses, e^ε/(1+e^ε)) >= correct] <= beta``: an
    epsilon-DP algorithm makes at least ``correct`` right guesses with probability at most
    that (Steinke et al. 2023, Theorem 1), so observing them bounds epsilon from below with
    confidence ``1 - beta``."""
    if correct <= guesses / 2:
        return 0.0

    def tail(p: float) -> float:  # P[Bin(guesses, p) >= correct], increasing in p
        return 1.0 - _binom_cdf(correct - 1, guesses, p)

    if tail(0.5) > beta:
        return 0.0
    lo, hi = 0.5, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if tail(mid) <= beta:
            lo = mid
        else:
            hi = mid
    return math.log(lo / (1 - lo))


def audit_dp_sgd_one_run(*, buggy: bool, quick: bool = True, seed: int = 0) -> AttackResult:
    """One DP-SGD training run (:class:`privfin.dp.sgd.DPSGDClassifier`) with ``m`` canaries,
    each included with probability 1/2; the auditor guesses "in" for the ``m/20`` canaries the
    model fits best and "out" for the ``m/20`` it fits worst."""
    m, d = (400, 2000) if quick else (1000, 4000)
    rng = np.random.default_rng(seed)
    base_x = rng.normal(size=(50, d)) / math.sqrt(d)
    base_y = (rng.random(50) < 0.5).astype(np.float64)
    canaries = rng.normal(size=(m, d))
    canaries /= np.linalg.norm(canaries, axis=1, keepdims=True)  # norm = clip: worst case
    labels = (rng.random(m) < 0.5).astype(np.float64)
    inside = rng.random(m) < 0.5
    x = np.vstack([base_x, canaries[inside]])
    y = np.concatenate([base_y, labels[inside]])
    claimed = DPSGDClassifier("logistic", clip=1.0, **ONE_RUN_SGD).privacy_cost(d)  # type: ignore[arg-type]
    used = dict(ONE_RUN_SGD)
    if buggy:
        used["noise_multiplier"] = ONE_RUN_SGD["noise_multiplier"] / ONE_RUN_BUG_FACTOR
    model = _Claimed("logistic", clip=1.0, seed=seed, **used)  # type: ignore[arg-type]
    model.claimed = claimed
    model.fit(x, y)
    margin = (canaries @ model.coef_[0]) * (2 * labels - 1)
    order = np.argsort(-margin)
    k = m // 20
    correct = int(inside[order[:k]].sum() + (~inside[order[-k:]]).sum())
    beta = (1 - CONFIDENCE) - 2 * m * claimed.delta
    lower = one_run_epsilon_lower_bound(correct, 2 * k, beta)
    caught = lower > claimed.epsilon
    target = (
        f"DP-SGD with a bug (noise {ONE_RUN_BUG_FACTOR:g}x below its claim)"
        if buggy
        else "DP-SGD (privfin.dp.sgd.DPSGDClassifier)"
    )
    detail = (
        f"one training run, {m} canaries (unit norm, random label, each in with prob. 1/2) + 50 "
        f"rows, {d} features; {2 * k} guesses, {correct} right; noise multiplier claimed "
        f"{ONE_RUN_SGD['noise_multiplier']}, used {used['noise_multiplier']:g}; q "
        f"{ONE_RUN_SGD['sampling_rate']}, {ONE_RUN_SGD['steps']} steps; accountant (RDP) epsilon "
        f"{claimed.epsilon:.3f} at delta {claimed.delta:g}; empirical lower bound {lower:.3f} at "
        f"{CONFIDENCE:.0%} confidence (2·m·delta taken off the failure probability): "
        + ("EXCEEDS the claim (the audit catches a bug)" if caught else "within the claim")
    )
    return roc_result(
        "dp-audit/one-run", target, protected=not buggy, members=inside.astype(int),
        scores=margin, metric="epsilon_lower_bound", value=lower, detail=detail,
    )  # fmt: skip


class _Claimed(DPSGDClassifier):
    """DP-SGD trained with the given noise but reporting an externally fixed claim (the
    planted bug: the accountant was told another noise multiplier)."""

    claimed: PrivacyCost

    def privacy_cost(self, n_features: int) -> PrivacyCost:
        return self.claimed
