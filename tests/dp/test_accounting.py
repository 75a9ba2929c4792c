"""[12] Accounting: pinned literals and figures computed independently of dp-accounting."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from privfin.dp.accounting import DEFAULT_ORDERS, Accountant, pure_dp_rdp
from privfin.dp.mechanisms import (
    DiscreteGaussian,
    DiscreteLaplace,
    ExponentialMechanism,
    GaussianVector,
    zcdp_to_approx,
)
from privfin.errors import ConfigError


def test_dpsgd_literals_rdp_and_pld() -> None:
    # measured for issue [12] with dp-accounting 0.6.0 (and the published DP-SGD figure of
    # sigma=1.1, q=0.01, 1000 steps, delta=1e-5)
    rdp = Accountant("rdp").gaussian(1.1, sampling_rate=0.01, count=1000)
    pld = Accountant("pld").gaussian(1.1, sampling_rate=0.01, count=1000)
    assert rdp.epsilon(1e-5) == pytest.approx(1.712, abs=5e-4)
    assert pld.epsilon(1e-5) == pytest.approx(1.515, abs=5e-4)


def _gaussian_rdp_by_hand(sigma: float, steps: int, delta: float) -> float:
    """Closed-form RDP of the Gaussian mechanism, alpha / (2 sigma**2) per step, composed and
    converted with the conversion of Balle et al. 2020 (Thm. 21), minimised over the orders."""
    best = math.inf
    for a in DEFAULT_ORDERS:
        r = steps * a / (2 * sigma**2)
        eps = r + math.log1p(-1 / a) - (math.log(delta) + math.log(a)) / (a - 1)
        best = min(best, eps)
    return best


def test_gaussian_rdp_without_subsampling_matches_the_closed_form() -> None:
    got = Accountant("rdp").gaussian(4.0, count=10).epsilon(1e-5)
    assert got == pytest.approx(_gaussian_rdp_by_hand(4.0, 10, 1e-5), rel=1e-9)
    # the classical conversion (Mironov 2017) is looser
    classic = min(10 * a / 32 + math.log(1e5) / (a - 1) for a in DEFAULT_ORDERS)
    assert got < classic


def _analytic_gaussian_delta(mu: float, eps: float) -> float:
    """Exact delta(eps) of the Gaussian mechanism with sensitivity/sigma = mu (Balle, Wang
    2018, Thm. 8)."""
    return float(
        stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(-eps / mu - mu / 2)
    )


def test_gaussian_pld_matches_the_analytic_gaussian() -> None:
    # 4 compositions at sigma = 2 are one Gaussian at sigma = 1 (mu = 1)
    acc = Accountant("pld").gaussian(2.0, count=4)
    exact = _analytic_gaussian_delta(1.0, 1.0)
    assert exact == pytest.approx(0.1269, abs=1e-4)
    assert acc.delta(1.0) == pytest.approx(exact, rel=2e-3)
    assert acc.delta(1.0) >= exact * (1 - 1e-6)  # pessimistic


def test_pure_dp_rdp_curve_is_the_randomized_response_divergence() -> None:
    eps, a = 0.7, 3.0
    p = math.exp(eps) / (1 + math.exp(eps))
    q = 1 - p
    by_hand = math.log(p**a * q ** (1 - a) + q**a * p ** (1 - a)) / (a - 1)
    assert pure_dp_rdp(eps, [a])[0] == pytest.approx(by_hand, rel=1e-12)
    assert np.all(pure_dp_rdp(eps, DEFAULT_ORDERS) <= eps + 1e-15)


def test_pure_composition_never_exceeds_basic_composition() -> None:
    for method in ("rdp", "pld"):
        acc = Accountant(method).pure(0.5, count=4)  # type: ignore[arg-type]
        assert acc.epsilon(1e-6) <= 2.0 + 1e-12
        assert acc.delta(2.0) == 0.0
    # many small pure steps: 1000 x 0.01 at delta 1e-6, against the exact optimal composition
    # computed by hand (the privacy loss of k randomized responses is eps (2 B - k) with B
    # binomial), 1.3654467 (basic composition: 10)
    exact = _optimal_pure_composition(0.01, 1000, 1e-6)
    assert exact == pytest.approx(1.3654467, abs=1e-6)
    assert Accountant("pld").pure(0.01, count=1000).epsilon(1e-6) == pytest.approx(exact, abs=1e-4)
    assert exact < Accountant("rdp").pure(0.01, count=1000).epsilon(1e-6) < 1.5


def _optimal_pure_composition(eps0: float, k: int, delta: float) -> float:
    p = math.exp(eps0) / (1 + math.exp(eps0))
    b = np.arange(k + 1)
    loss = eps0 * (2 * b - k)
    w = stats.binom.pmf(b, k, p)

    def excess(eps: float) -> float:
        return float(np.sum(w * np.clip(1 - np.exp(eps - loss), 0, None))) - delta

    return float(optimize.brentq(excess, 0.0, k * eps0))


def test_heterogeneous_composition() -> None:
    for method in ("rdp", "pld"):
        acc = Accountant(method)  # type: ignore[arg-type]
        DiscreteLaplace(0.5).account(acc, count=2)
        DiscreteGaussian(sigma=5.0).account(acc)
        ExponentialMechanism(0.3).account(acc)
        GaussianVector(1.0, clip=1.0).account(acc, dim=10, sampling_rate=0.05, count=100)
        eps = acc.epsilon(1e-6)
        # at least the largest part, at most the sum of each part's own epsilon
        parts = [
            Accountant(method).discrete_laplace(2.0, count=2).epsilon(1e-6),  # type: ignore[arg-type]
            Accountant(method).pure(0.3).epsilon(1e-6),  # type: ignore[arg-type]
        ]
        assert max(parts) < eps < 1.3 + 2.0 + 3.0
        assert len(acc.entries) == 4


def test_discrete_gaussian_zcdp_conversion() -> None:
    m = DiscreteGaussian(sigma=3.0)
    assert m.rho == pytest.approx(1 / 18)
    rdp_eps = Accountant("rdp").zcdp(m.rho).epsilon(1e-6)
    # Bun-Steinke's simple bound is looser than the numerical minimisation
    simple = m.rho + 2 * math.sqrt(m.rho * math.log(1e6))
    assert zcdp_to_approx(m.rho, 1e-6) < simple
    assert rdp_eps < simple
    # the exact PLD of the discrete Gaussian is tighter than its zCDP bound
    assert m.cost(1e-6).epsilon < rdp_eps


def test_accountant_rejects_bad_inputs() -> None:
    with pytest.raises(ConfigError, match="'rdp' or 'pld'"):
        Accountant("moments")  # type: ignore[arg-type]
    acc = Accountant()
    with pytest.raises(ConfigError, match="sampling_rate"):
        acc.gaussian(1.0, sampling_rate=1.5)
    with pytest.raises(ConfigError, match="noise_multiplier"):
        acc.gaussian(0.0)
    with pytest.raises(ConfigError, match="count"):
        acc.pure(1.0, count=0)
    with pytest.raises(ConfigError, match="delta"):
        acc.epsilon(1.0)
    with pytest.raises(ConfigError, match="RDP only"):
        Accountant("pld").zcdp(0.1)
    assert Accountant().epsilon(1e-5) == 0.0
