"""[12] Statistical tests of every sampler: seeded sources, chi-square at a fixed false-alarm
rate (ALPHA), and a power check (the same samples against a slightly wrong law fail)."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from privfin.crypto.random import SeededRandom, SystemRandom
from privfin.dp import _sample
from privfin.dp.mechanisms import (
    DiscreteGaussian,
    DiscreteLaplace,
    ExponentialMechanism,
    GaussianVector,
    GridLaplace,
    RandomizedResponse,
)
from privfin.errors import ConfigError

from ._stats import ALPHA, chi2_pvalue

N = 20_000


def _rng(seed: int) -> _sample.BufferedSource:
    return _sample.BufferedSource(SeededRandom(seed))


def _dlap_pmf(scale: float):  # type: ignore[no-untyped-def]
    return lambda k: np.exp(-np.abs(k) / scale)


def _dgauss_pmf(sigma2: float):  # type: ignore[no-untyped-def]
    return lambda k: np.exp(-(k.astype(float) ** 2) / (2 * sigma2))


def test_randbelow_is_uniform() -> None:
    rng = _rng(1)
    xs = [_sample.randbelow(rng, 7) for _ in range(N)]
    counts = np.bincount(xs, minlength=7)
    assert stats.chisquare(counts).pvalue > ALPHA
    with pytest.raises(ValueError):
        _sample.randbelow(rng, 0)


@pytest.mark.parametrize("gamma", [Fraction(0), Fraction(3, 10), Fraction(1), Fraction(27, 10)])
def test_bernoulli_exp(gamma: Fraction) -> None:
    rng = _rng(2)
    hits = sum(_sample.bernoulli_exp(rng, gamma) for _ in range(N))
    p = math.exp(-gamma)
    if p == 1:
        assert hits == N
        return
    assert stats.binomtest(hits, N, p).pvalue > ALPHA


@pytest.mark.parametrize("scale", [Fraction(1, 2), Fraction(3), Fraction(25, 2)])
def test_discrete_laplace_exact_law(scale: Fraction) -> None:
    rng = _rng(3)
    xs = [_sample.discrete_laplace(rng, scale) for _ in range(N)]
    span = int(40 * scale) + 5
    assert chi2_pvalue(xs, _dlap_pmf(float(scale)), span) > ALPHA
    # power: a 10% larger scale is rejected on the same samples
    assert chi2_pvalue(xs, _dlap_pmf(float(scale) * 1.1), span) < ALPHA


@pytest.mark.parametrize("sigma2", [Fraction(1, 4), Fraction(5, 2), Fraction(400)])
def test_discrete_gaussian_exact_law(sigma2: Fraction) -> None:
    rng = _rng(4)
    xs = [_sample.discrete_gaussian(rng, sigma2) for _ in range(N)]
    span = int(12 * math.sqrt(sigma2)) + 5
    assert chi2_pvalue(xs, _dgauss_pmf(float(sigma2)), span) > ALPHA
    assert chi2_pvalue(xs, _dgauss_pmf(float(sigma2) * 1.1), span) < ALPHA


@pytest.mark.parametrize("sigma2", [1.0, 30.25, 1e6])
def test_discrete_gaussian_vectorised_law(sigma2: float) -> None:
    xs = _sample.discrete_gaussian_array(_rng(5), sigma2, 200_000)
    assert xs.dtype == np.int64 and xs.size == 200_000
    if sigma2 < 100:
        span = int(12 * math.sqrt(sigma2)) + 5
        assert chi2_pvalue(xs.tolist(), _dgauss_pmf(sigma2), span) > ALPHA
        assert chi2_pvalue(xs.tolist(), _dgauss_pmf(sigma2 * 1.05), span) < ALPHA
    else:
        # large sigma: the discrete Gaussian is N(0, sigma2) rounded to within 1e-300
        ks = stats.kstest(
            xs + _sample._uniforms(_rng(6), xs.size) - 0.5,
            "norm",
            args=(0, math.sqrt(sigma2 + 1 / 12)),
        )
        assert ks.pvalue > ALPHA
        wrong = stats.kstest(xs, "norm", args=(0, math.sqrt(sigma2) * 1.02))
        assert wrong.pvalue < ALPHA


def test_production_source_is_the_os_csprng() -> None:
    src = _sample.source(None)
    assert isinstance(src, _sample.BufferedSource)
    assert isinstance(src._inner, SystemRandom)
    xs = [_sample.discrete_laplace(src, Fraction(2)) for _ in range(2000)]
    assert len(set(xs)) > 5


def test_seeded_sources_reproduce() -> None:
    a = [DiscreteLaplace(0.5).release(0, SeededRandom(9)) for _ in range(3)]
    b = [DiscreteLaplace(0.5).release(0, SeededRandom(9)) for _ in range(3)]
    assert a == b


def test_grid_laplace_stays_on_its_grid_and_has_its_law() -> None:
    m = GridLaplace(epsilon=1.0, sensitivity=1.0, resolution=2.0**-3)
    assert m.integer.sensitivity == 9  # floor(1 / 2**-3) + 1: rounding's extra step
    rng = _rng(7)
    outs = [m.release(0.3, rng) for _ in range(N)]
    units = [o / m.grid for o in outs]
    assert all(u == int(u) for u in units)  # on the grid, whatever the input
    centre = round(0.3 / m.grid)
    ks = [int(u) - centre for u in units]
    assert chi2_pvalue(ks, _dlap_pmf(9.0), 200) > ALPHA


def test_gaussian_vector_noise_law() -> None:
    m = GaussianVector(noise_multiplier=1.0, clip=1.0, resolution=2.0**-3)
    zero = np.zeros(N, dtype=np.int64)
    noisy = m.noise_sum(zero, _rng(8))
    units = np.rint(noisy / m.grid).astype(int)
    assert np.allclose(units * m.grid, noisy)
    assert chi2_pvalue(units.tolist(), _dgauss_pmf(64.0), 100) > ALPHA
    # clipping: the rounded rows have norm at most clip + resolution * sqrt(d) / 2
    rows = np.random.default_rng(0).normal(size=(50, 10)) * 5
    r = m.round(rows) * m.grid
    assert np.all(np.linalg.norm(r, axis=1) <= 1.0 + m.grid * math.sqrt(10) / 2 + 1e-12)
    assert m.effective_noise_multiplier(10) == pytest.approx(8 / (8 + math.sqrt(10) / 2))
    assert 0.999 < GaussianVector(1.0, 1.0).effective_noise_multiplier(10) < 1.0


def test_exponential_mechanism_law() -> None:
    utilities = [0, 1, 2, 5, 5]
    m = ExponentialMechanism(epsilon=1.0, sensitivity=1.0)
    rng = _rng(10)
    picks = Counter(m.select(utilities, rng) for _ in range(N))
    w = np.exp(np.array(utilities) / 2.0)
    obs = np.array([picks[i] for i in range(5)])
    assert stats.chisquare(obs, w / w.sum() * N).pvalue > ALPHA
    w_wrong = np.exp(np.array(utilities) / 1.8)
    assert stats.chisquare(obs, w_wrong / w_wrong.sum() * N).pvalue < ALPHA
    mono = ExponentialMechanism(epsilon=1.0, monotonic=True)
    picks = Counter(mono.select([0, 1], rng) for _ in range(N))
    assert stats.binomtest(picks[1], N, math.e / (1 + math.e)).pvalue > ALPHA


def test_randomized_response_law_and_debias() -> None:
    m = RandomizedResponse(epsilon=1.0, k=3)
    labels = [0] * 12_000 + [1] * 6_000 + [2] * 2_000
    out = m.release_many(labels, _rng(11))
    kept = sum(a == b for a, b in zip(labels, out, strict=True))
    assert stats.binomtest(kept, len(labels), m.keep_probability).pvalue > ALPHA
    assert abs(m.keep_probability - math.e / (math.e + 2)) < 1e-15
    est = m.debias(np.bincount(out, minlength=3))
    assert np.allclose(est, [12_000, 6_000, 2_000], atol=600)
    with pytest.raises(ConfigError, match="labels"):
        m.release_many([3])


def test_discrete_gaussian_mechanism_interval_covers() -> None:
    m = DiscreteGaussian(sigma=4.0)
    h = m.halfwidth(0.95)
    rng = _rng(12)
    inside = sum(abs(m.release(100, rng) - 100) <= h for _ in range(5000))
    assert stats.binomtest(inside, 5000, 0.95, alternative="less").pvalue > ALPHA
    d = DiscreteLaplace(epsilon=0.5)
    h2 = d.halfwidth(0.9)
    inside = sum(abs(d.release(0, rng)) <= h2 for _ in range(5000))
    assert stats.binomtest(inside, 5000, 0.9, alternative="less").pvalue > ALPHA


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_non_positive_epsilon_is_rejected(bad: float) -> None:
    with pytest.raises(ConfigError, match="epsilon must be"):
        DiscreteLaplace(bad)
    with pytest.raises(ConfigError, match="epsilon must be"):
        ExponentialMechanism(bad)
    with pytest.raises(ConfigError, match="epsilon must be"):
        RandomizedResponse(bad)


def test_grid_resolution_must_be_a_power_of_two() -> None:
    with pytest.raises(ConfigError, match="power of two"):
        GridLaplace(1.0, 1.0, resolution=0.3)


@pytest.mark.parametrize("bits", [64, 6])
def test_exponential_groups_exact_law(bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Groups of equal-score candidates: group g is drawn with probability proportional to
    size_g * exp(-gamma * score_g), the index inside it uniformly. ``bits=6`` lowers the
    proposal's precision so that the levels beyond it (weight 1, lazily refined bounds) are
    exercised too."""
    monkeypatch.setattr(_sample, "_EM_BITS", bits)
    src = _sample.source(SeededRandom(21))
    sizes = np.array([3, 1, 400, 1, 5, 2000, 7], dtype=np.int64)
    scores = np.array([0, 1, 3, 2, 0, 12, 9], dtype=np.int64)
    gamma = Fraction(7, 10)
    w = sizes * np.exp(-float(gamma) * scores)
    p = w / w.sum()
    n = 5_000
    got = Counter()
    inside = Counter()
    for _ in range(n):
        g, i = _sample.exponential_groups(src, sizes, scores, gamma)
        assert 0 <= i < sizes[g]
        got[g] += 1
        if g == 2:
            inside[i * 4 // 400] += 1
    obs = np.array([got.get(g, 0) for g in range(len(sizes))], dtype=float)
    keep = p * n >= 5
    o = np.array([*obs[keep], obs[~keep].sum()])
    e = np.array([*(p * n)[keep], (p * n)[~keep].sum()])
    assert stats.chisquare(o, e).pvalue > ALPHA
    assert stats.chisquare([inside[q] for q in range(4)]).pvalue > ALPHA  # uniform inside
    # power: the same counts against a law with gamma 10% off
    w2 = sizes * np.exp(-0.77 * scores)
    e2 = (w2 / w2.sum()) * n
    assert stats.chisquare(o, np.array([*e2[keep], e2[~keep].sum()])).pvalue < ALPHA


def test_exp_neg_bounds_are_rigorous() -> None:
    import decimal

    decimal.getcontext().prec = 120
    for m in (1, 2, 17, 45, 80):
        for bits in (64, 128):
            lo, hi = _sample._exp_neg_int_bounds(m, bits)
            exact = decimal.Decimal(2**bits) * decimal.Decimal(-m).exp()
            assert lo <= exact <= hi and hi - lo <= 2
