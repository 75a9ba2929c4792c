"""Differentially private mechanisms, each with its declared privacy map.

Every mechanism states what it guarantees (``epsilon`` for pure DP, ``rho`` for zCDP), for
which sensitivity, and can add itself to an :class:`~privfin.dp.accounting.Accountant`.
None uses floating-point noise: integer-valued queries get exact discrete noise
(Canonne, Kamath, Steinke 2020); real-valued queries are snapped to a grid of power-of-two
resolution, noised in the integers and scaled back, with the rounding's effect on the
sensitivity included in the privacy map (so the output's support never depends on the input:
no Mironov 2012 attack). Randomness comes from a :class:`~privfin.crypto.random.RandomSource`:
the OS CSPRNG by default, a seeded one in tests.

Privacy unit: the neighbouring relation is **add or remove one unit** whose influence on the
query is bounded by the stated sensitivity; :mod:`privfin.dp.release` makes the unit one
customer by bounding each customer's contribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from privfin.crypto.random import RandomSource
from privfin.dp import _sample
from privfin.dp.accounting import Accountant
from privfin.errors import ConfigError

__all__ = [
    "DiscreteGaussian",
    "DiscreteLaplace",
    "ExponentialMechanism",
    "GaussianVector",
    "GridLaplace",
    "PrivacyCost",
    "RandomizedResponse",
    "check_epsilon",
    "check_resolution",
    "clip_l2",
    "discrete_laplace_tail",
    "grid_resolution",
    "zcdp_to_approx",
]


def check_epsilon(epsilon: float, what: str = "epsilon") -> float:
    """``epsilon`` as a float if it is finite and > 0; else a clear :class:`ConfigError`."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise ConfigError(f"{what} must be a number > 0, got {epsilon!r}")
    if not math.isfinite(epsilon) or epsilon <= 0:
        raise ConfigError(
            f"{what} must be a finite number > 0 (a privacy loss of 0 or less cannot be "
            f"achieved by adding noise), got {epsilon!r}"
        )
    return float(epsilon)


@dataclass(frozen=True)
class PrivacyCost:
    """What a release costs in (epsilon, delta)-DP: what the budget ledger charges."""

    epsilon: float
    delta: float = 0.0

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        if not (0 <= self.delta < 1):
            raise ConfigError(f"delta must be in [0, 1), got {self.delta!r}")


def zcdp_to_approx(rho: float, delta: float) -> float:
    """The epsilon of (epsilon, delta)-DP implied by rho-zCDP (Canonne, Kamath, Steinke 2020,
    Prop. 12 minimised numerically over alpha > 1, tighter than Bun-Steinke's
    ``rho + 2 sqrt(rho log(1/delta))``)."""
    if rho <= 0 or not (0 < delta < 1):
        raise ConfigError(f"need rho > 0 and delta in (0, 1), got rho={rho}, delta={delta}")
    alphas = np.concatenate([1 + np.logspace(-4, 4, 4000)])
    eps = alphas * rho + (
        np.log(1 / delta) + (alphas - 1) * np.log(1 - 1 / alphas) - np.log(alphas)
    ) / (alphas - 1)
    return float(max(0.0, np.min(eps)))


def discrete_laplace_tail(scale: float, m: int) -> float:
    """``P(|Z| > m)`` for ``Z`` discrete Laplace with ``P(x) ~ exp(-|x|/scale)``."""
    r = math.exp(-1.0 / scale)
    return 2 * r ** (m + 1) / (1 + r)


def _dlap_halfwidth(scale: float, confidence: float) -> int:
    """The smallest ``m`` with ``P(|Z| <= m) >= confidence``."""
    r = math.exp(-1.0 / scale)
    alpha = 1 - confidence
    # 2 r^(m+1) / (1 + r) <= alpha
    m = math.ceil(math.log(alpha * (1 + r) / 2) / math.log(r) - 1)
    return max(0, m)


def _check_confidence(confidence: float) -> float:
    if not (0 < confidence < 1):
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    return float(confidence)


@dataclass(frozen=True)
class DiscreteLaplace:
    """Add exact discrete Laplace noise (``P(x) ~ exp(-|x| epsilon / sensitivity)``) to an
    integer query of L1 sensitivity ``sensitivity``: pure ``epsilon``-DP."""

    epsilon: float
    sensitivity: int = 1
    name: str = field(default="discrete_laplace", init=False)

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        if not isinstance(self.sensitivity, int) or self.sensitivity < 1:
            raise ConfigError(f"sensitivity must be an integer >= 1, got {self.sensitivity!r}")

    @property
    def scale(self) -> Fraction:
        """The noise's scale, exactly ``sensitivity / epsilon`` (epsilon read exactly)."""
        return self.sensitivity / Fraction(self.epsilon)

    def cost(self) -> PrivacyCost:
        return PrivacyCost(self.epsilon)

    def release(self, value: int, rng: RandomSource | None = None) -> int:
        return int(value) + _sample.discrete_laplace(_sample.source(rng), self.scale)

    def release_many(self, values: Sequence[int], rng: RandomSource | None = None) -> list[int]:
        """Noise each value independently (each value's query must have this sensitivity;
        for a histogram the sensitivity is the L1 norm across all its bins)."""
        src = _sample.source(rng)
        return [int(v) + _sample.discrete_laplace(src, self.scale) for v in values]

    def halfwidth(self, confidence: float = 0.95) -> int:
        """Half-width of the interval around the noisy value that holds the true value with
        probability ``confidence`` (exact quantile of the noise)."""
        return _dlap_halfwidth(float(self.scale), _check_confidence(confidence))

    def account(self, acc: Accountant, count: int = 1) -> Accountant:
        return acc.discrete_laplace(float(self.scale), self.sensitivity, count=count)


def grid_resolution(sensitivity: float, steps: int = 1 << 12) -> float:
    """The largest power of two at most ``sensitivity / steps`` (the default grid)."""
    if not (sensitivity > 0 and math.isfinite(sensitivity)):
        raise ConfigError(f"sensitivity must be finite and > 0, got {sensitivity!r}")
    return float(2.0 ** math.floor(math.log2(sensitivity / steps)))


def check_resolution(g: float) -> float:
    if not (g > 0 and math.isfinite(g)):
        raise ConfigError(f"resolution must be finite and > 0, got {g!r}")
    m, _e = math.frexp(g)
    if m != 0.5:
        raise ConfigError(f"resolution must be a power of two (e.g. 2**-10), got {g!r}")
    return float(g)


@dataclass(frozen=True)
class GridLaplace:
    """Laplace noise for a real-valued query, done safely: the value is rounded to the
    nearest multiple of ``resolution`` (a power of two), discrete Laplace noise is added in
    grid units and the result scaled back. Rounding can move two neighbouring values one
    grid step further apart, so the sensitivity in grid units is
    ``floor(sensitivity / resolution) + 1`` and the noise scale is that over ``epsilon``:
    pure ``epsilon``-DP for a query of L1 sensitivity ``sensitivity``."""

    epsilon: float
    sensitivity: float
    resolution: float | None = None
    name: str = field(default="grid_laplace", init=False)

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        if not (isinstance(self.sensitivity, (int, float)) and self.sensitivity > 0):
            raise ConfigError(f"sensitivity must be > 0, got {self.sensitivity!r}")
        if not math.isfinite(self.sensitivity):
            raise ConfigError(f"sensitivity must be finite, got {self.sensitivity!r}")
        if self.resolution is None:
            object.__setattr__(self, "resolution", grid_resolution(self.sensitivity))
        else:
            check_resolution(self.resolution)

    @property
    def grid(self) -> float:
        assert self.resolution is not None  # set in __post_init__
        return self.resolution

    @property
    def integer(self) -> DiscreteLaplace:
        """The discrete mechanism in grid units."""
        units = math.floor(self.sensitivity / self.grid) + 1
        return DiscreteLaplace(self.epsilon, units)

    def cost(self) -> PrivacyCost:
        return PrivacyCost(self.epsilon)

    def release(self, value: float, rng: RandomSource | None = None) -> float:
        if not math.isfinite(value):
            raise ConfigError("the value to release must be finite")
        k = round(value / self.grid)
        return self.grid * self.integer.release(k, rng)

    def halfwidth(self, confidence: float = 0.95) -> float:
        return self.grid * (self.integer.halfwidth(confidence) + 0.5)

    def account(self, acc: Accountant, count: int = 1) -> Accountant:
        m = self.integer
        return acc.discrete_laplace(float(m.scale), m.sensitivity, count=count)


@dataclass(frozen=True)
class DiscreteGaussian:
    """Add exact discrete Gaussian noise of parameter ``sigma`` (``P(x) ~ exp(-x**2 /
    (2 sigma**2))``) to an integer query of L2 sensitivity ``sensitivity``:
    ``rho``-zCDP with ``rho = sensitivity**2 / (2 sigma**2)`` (CKS 2020, Thm. 4)."""

    sigma: float
    sensitivity: int = 1
    name: str = field(default="discrete_gaussian", init=False)

    def __post_init__(self) -> None:
        check_epsilon(self.sigma, "sigma")
        if not isinstance(self.sensitivity, int) or self.sensitivity < 1:
            raise ConfigError(f"sensitivity must be an integer >= 1, got {self.sensitivity!r}")

    @property
    def rho(self) -> float:
        return self.sensitivity**2 / (2 * self.sigma**2)

    def cost(self, delta: float = 1e-6) -> PrivacyCost:
        """(epsilon, delta)-DP at this ``delta`` (PLD of the discrete Gaussian)."""
        return PrivacyCost(self.account(Accountant("pld")).epsilon(delta), delta)

    def release(self, value: int, rng: RandomSource | None = None) -> int:
        s2 = Fraction(self.sigma) ** 2
        return int(value) + _sample.discrete_gaussian(_sample.source(rng), s2)

    def halfwidth(self, confidence: float = 0.95) -> int:
        """The smallest ``m`` with ``P(|Z| <= m) >= confidence`` (computed from the pmf)."""
        _check_confidence(confidence)
        top = int(self.sigma * 40) + 10
        xs = np.arange(-top, top + 1, dtype=np.float64)
        w = np.exp(-(xs**2) / (2 * self.sigma**2))
        p = w / w.sum()
        cum = np.cumsum(p[top:] * 2) - p[top]  # P(|Z| <= m), m = 0, 1, ...
        return int(np.searchsorted(cum, confidence))

    def account(self, acc: Accountant, count: int = 1) -> Accountant:
        return acc.discrete_gaussian(self.sigma, self.sensitivity, count=count)


def clip_l2(v: npt.ArrayLike, bound: float) -> npt.NDArray[np.float64]:
    """``v`` scaled down (rows of a 2-D array each) to L2 norm at most ``bound``."""
    if not (bound > 0 and math.isfinite(bound)):
        raise ConfigError(f"clipping bound must be finite and > 0, got {bound!r}")
    a = np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ConfigError("the vector to clip has NaN or infinite entries")
    norms = np.linalg.norm(a, axis=-1, keepdims=True)
    factor = np.minimum(1.0, bound / np.maximum(norms, 1e-300))
    return np.asarray(a * factor, dtype=np.float64)


@dataclass(frozen=True)
class GaussianVector:
    """The Gaussian mechanism for vectors (model updates, DP-SGD gradient sums), done safely.

    Each contribution is clipped to L2 norm ``clip`` and rounded to the grid of
    ``resolution`` (a power of two; default ``clip * 2**-12``); the sum of the rounded
    contributions is noised with a discrete Gaussian of parameter ``noise_multiplier *
    clip / resolution`` per coordinate and scaled back. Rounding grows a contribution's norm
    by at most ``resolution * sqrt(d) / 2``, which the privacy map includes:
    ``rho``-zCDP with ``rho = Delta**2 / (2 sigma**2)`` in grid units, i.e. the Gaussian
    mechanism of noise multiplier :meth:`effective_noise_multiplier` (slightly below
    ``noise_multiplier``). The vectorised sampler's deviation from the exact discrete
    Gaussian is stated in ``SPEC.md``. Privacy unit: adding or removing one contribution.
    """

    noise_multiplier: float
    clip: float
    resolution: float | None = None
    name: str = field(default="gaussian_vector", init=False)

    def __post_init__(self) -> None:
        check_epsilon(self.noise_multiplier, "noise_multiplier")
        check_epsilon(self.clip, "clip")
        if self.resolution is None:
            object.__setattr__(self, "resolution", grid_resolution(self.clip))
        else:
            check_resolution(self.resolution)

    @property
    def grid(self) -> float:
        assert self.resolution is not None  # set in __post_init__
        return self.resolution

    def sensitivity_units(self, dim: int) -> float:
        """L2 sensitivity in grid units of a sum of rounded, clipped contributions."""
        return self.clip / self.grid + math.sqrt(dim) / 2

    def sigma_units(self) -> float:
        return self.noise_multiplier * self.clip / self.grid

    def effective_noise_multiplier(self, dim: int) -> float:
        """Noise standard deviation over the true sensitivity (what accountants take)."""
        return self.sigma_units() / self.sensitivity_units(dim)

    def rho(self, dim: int) -> float:
        return 1.0 / (2 * self.effective_noise_multiplier(dim) ** 2)

    def round(self, contributions: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Clip each row of ``contributions`` to ``clip`` and round it to the grid (in grid
        units). Summing these and calling :meth:`noise_sum` is the mechanism."""
        a = clip_l2(contributions, self.clip)
        return np.rint(a / self.grid).astype(np.int64)

    def noise_sum(
        self, total_units: npt.NDArray[np.int64], rng: RandomSource | None = None
    ) -> npt.NDArray[np.float64]:
        """Add the noise to a sum of :meth:`round` outputs and scale back to reals."""
        s2 = self.sigma_units() ** 2
        if s2 < 1:
            raise ConfigError(
                "noise below one grid step: lower the resolution or raise noise_multiplier"
            )
        noise = _sample.discrete_gaussian_array(_sample.source(rng), s2, total_units.size)
        return (total_units + noise.reshape(total_units.shape)).astype(np.float64) * self.grid

    def release(
        self, contributions: npt.ArrayLike, rng: RandomSource | None = None
    ) -> npt.NDArray[np.float64]:
        """The noisy sum of the clipped rows of ``contributions`` (a 2-D array)."""
        units = self.round(np.atleast_2d(np.asarray(contributions, dtype=np.float64)))
        return self.noise_sum(units.sum(axis=0), rng)

    def account(
        self, acc: Accountant, dim: int, *, sampling_rate: float = 1.0, count: int = 1
    ) -> Accountant:
        return acc.gaussian(
            self.effective_noise_multiplier(dim), sampling_rate=sampling_rate, count=count
        )


def _exact(x: float | int | Fraction) -> Fraction | int:
    if isinstance(x, Fraction):
        return x
    if isinstance(x, float) and not math.isfinite(x):
        raise ConfigError("utilities must be finite numbers")
    return Fraction(x)


@dataclass(frozen=True)
class ExponentialMechanism:
    """Select one candidate with probability proportional to ``exp(epsilon * u / (2
    sensitivity))`` (``epsilon * u / sensitivity`` when ``monotonic``: every utility moves
    the same way between neighbours): pure ``epsilon``-DP (McSherry, Talwar 2007).

    Sampled exactly: a uniform candidate is accepted with probability ``exp(-epsilon *
    (u_max - u) / (2 sensitivity))`` by exact Bernoulli trials (utilities and epsilon are
    read as exact rationals), until one is accepted. The expected number of trials is the
    number of candidates over the sum of these probabilities.
    """

    epsilon: float
    sensitivity: float = 1.0
    monotonic: bool = False
    name: str = field(default="exponential", init=False)

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        check_epsilon(self.sensitivity, "sensitivity")

    def cost(self) -> PrivacyCost:
        return PrivacyCost(self.epsilon)

    def select(
        self, utilities: Sequence[float | int | Fraction], rng: RandomSource | None = None
    ) -> int:
        """The index of the selected candidate."""
        if len(utilities) == 0:
            raise ConfigError("the exponential mechanism needs at least one candidate")
        us = [u if type(u) is int else _exact(u) for u in utilities]
        top = max(us)
        factor = Fraction(self.epsilon) / (
            Fraction(self.sensitivity) * (1 if self.monotonic else 2)
        )
        src = _sample.source(rng)
        n = len(us)
        while True:
            i = _sample.randbelow(src, n)
            if _sample.bernoulli_exp(src, factor * (top - us[i])):
                return i

    def account(self, acc: Accountant, count: int = 1) -> Accountant:
        return acc.pure(self.epsilon, count=count)


@dataclass(frozen=True)
class RandomizedResponse:
    """k-ary randomized response for labels: keep the true label with probability
    ``e**eps / (e**eps + k - 1)``, else answer one of the ``k - 1`` others uniformly; pure
    ``epsilon``-DP per label (privacy unit: one record's label). Sampled exactly (a uniform
    candidate, accepted with probability 1 if true and ``exp(-epsilon)`` otherwise)."""

    epsilon: float
    k: int = 2
    name: str = field(default="randomized_response", init=False)

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon)
        if not isinstance(self.k, int) or self.k < 2:
            raise ConfigError(f"k (the number of labels) must be an integer >= 2, got {self.k!r}")

    @property
    def keep_probability(self) -> float:
        e = math.exp(self.epsilon)
        return e / (e + self.k - 1)

    def cost(self) -> PrivacyCost:
        return PrivacyCost(self.epsilon)

    def release(self, label: int, rng: RandomSource | None = None) -> int:
        return self.release_many([label], rng)[0]

    def release_many(self, labels: Sequence[int], rng: RandomSource | None = None) -> list[int]:
        """Each of ``labels`` (integers in ``[0, k)``) randomised independently."""
        src = _sample.source(rng)
        eps = Fraction(self.epsilon)
        out = []
        for y in labels:
            if not (0 <= int(y) < self.k):
                raise ConfigError(f"labels must be integers in [0, {self.k}), got {y!r}")
            while True:
                c = _sample.randbelow(src, self.k)
                if c == y or _sample.bernoulli_exp(src, eps):
                    out.append(c)
                    break
        return out

    def debias(self, noisy_counts: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Unbiased estimates of the true label counts from the counts of released labels."""
        c = np.asarray(noisy_counts, dtype=np.float64)
        n = c.sum()
        p = self.keep_probability
        q = (1 - p) / (self.k - 1)
        return np.asarray((c - n * q) / (p - q), dtype=np.float64)

    def account(self, acc: Accountant, count: int = 1) -> Accountant:
        return acc.pure(self.epsilon, count=count)
