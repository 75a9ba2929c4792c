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

from privfin.assess.attacks._metrics import clopper_pearson, roc_result
from privfin.assess.model import AttackResult
from privfin.crypto.random import SeededRandom
from privfin.dp.accounting import Accountant
from privfin.dp.mechanisms import GaussianVector

__all__ = ["CONFIDENCE", "audit_gaussian_vector", "epsilon_lower_bound"]

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
