"""Exact samplers over the integers (Canonne, Kamath, Steinke 2020, "The Discrete Gaussian for
Differential Privacy", Algorithms 1-3), and a vectorised sampler for large noise vectors.

The scalar samplers use only uniform integers drawn from a :class:`RandomSource` and integer
arithmetic: their output distribution is exactly the stated one (no floating point anywhere,
so none of the attacks on floating-point noise, Mironov 2012, applies). The production source
is the operating system's CSPRNG (:class:`privfin.crypto.random.SystemRandom`); tests inject
:class:`privfin.crypto.random.SeededRandom`.

:func:`discrete_gaussian_array` is for many coordinates at once (DP-SGD, vector releases): it
runs the same rejection algorithm vectorised with numpy, on 53-bit uniforms from the same
source, with acceptance probabilities computed in float64. Its output lies on the integers
(no porous floating-point support), and each acceptance probability is within a relative
``2**-50`` of the exact one, so its distribution is within that factor of the discrete
Gaussian's pointwise (the privacy map absorbs it: see ``SPEC.md``).
"""

from __future__ import annotations

import bisect
import itertools
import math
from fractions import Fraction
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from privfin.crypto.random import RandomSource, SystemRandom

__all__ = [
    "BufferedSource",
    "bernoulli",
    "bernoulli_exp",
    "discrete_gaussian",
    "discrete_gaussian_array",
    "discrete_laplace",
    "exponential_groups",
    "randbelow",
    "source",
]

_BUFFER = 4096


class BufferedSource:
    """A :class:`RandomSource` read in blocks (one system call per 4 KiB, not per draw).

    The buffered bytes stay in this process's memory only; they are used once.
    """

    def __init__(self, inner: RandomSource) -> None:
        self._inner = inner
        self._buf = b""
        self._pos = 0

    def bytes(self, n: int) -> bytes:
        if n > _BUFFER:
            return self._inner.bytes(n)
        if self._pos + n > len(self._buf):
            self._buf = self._inner.bytes(_BUFFER)
            self._pos = 0
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def below(self, bound: int) -> int:
        return randbelow(self, bound)


def source(rng: RandomSource | None) -> RandomSource:
    """``rng``, or the operating system's CSPRNG when ``None``, buffered."""
    if isinstance(rng, BufferedSource):
        return rng
    return BufferedSource(SystemRandom() if rng is None else rng)


def randbelow(rng: RandomSource, bound: int) -> int:
    """A uniform integer in ``[0, bound)``, exactly (rejection, no modulo bias)."""
    if bound <= 0:
        raise ValueError(f"bound must be positive, got {bound}")
    if bound == 1:
        return 0
    bits = (bound - 1).bit_length()
    nbytes = (bits + 7) // 8
    mask = (1 << bits) - 1
    while True:
        v = int.from_bytes(rng.bytes(nbytes), "big") & mask
        if v < bound:
            return v


def bernoulli(rng: RandomSource, num: int, den: int) -> bool:
    """True with probability ``num/den`` exactly (``0 <= num <= den``)."""
    if den <= 0 or not 0 <= num <= den:
        raise ValueError(f"need 0 <= num <= den and den > 0, got {num}/{den}")
    return randbelow(rng, den) < num


def _bernoulli_exp_le1(rng: RandomSource, num: int, den: int) -> bool:
    # CKS Algorithm 1, gamma = num/den in [0, 1]: K = first k with A_k = 0, A_k ~ B(gamma/k).
    k = 1
    while bernoulli(rng, num, den * k):
        k += 1
    return k % 2 == 1


def bernoulli_exp(rng: RandomSource, gamma: Fraction) -> bool:
    """True with probability ``exp(-gamma)`` exactly, for a rational ``gamma >= 0``."""
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    num, den = gamma.numerator, gamma.denominator
    whole = num // den
    for _ in range(whole):
        if not _bernoulli_exp_le1(rng, 1, 1):
            return False
    return _bernoulli_exp_le1(rng, num - whole * den, den)


def discrete_laplace(rng: RandomSource, scale: Fraction) -> int:
    """An integer ``x`` with probability proportional to ``exp(-|x| / scale)``, exactly.

    CKS Algorithm 2 with ``scale = t/s``.
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    t, s = scale.numerator, scale.denominator
    while True:
        u = randbelow(rng, t)
        if not bernoulli_exp(rng, Fraction(u, t)):
            continue
        v = 0
        while _bernoulli_exp_le1(rng, 1, 1):
            v += 1
        y = (u + t * v) // s
        negative = randbelow(rng, 2) == 1
        if negative and y == 0:
            continue
        return -y if negative else y


def discrete_gaussian(rng: RandomSource, sigma2: Fraction) -> int:
    """An integer ``x`` with probability proportional to ``exp(-x**2 / (2 sigma2))``, exactly.

    CKS Algorithm 3: a discrete Laplace proposal of scale ``t = floor(sigma) + 1``, accepted
    with probability ``exp(-(|y| - sigma2/t)**2 / (2 sigma2))``.
    """
    if sigma2 <= 0:
        raise ValueError(f"sigma2 must be > 0, got {sigma2}")
    t = math.isqrt(sigma2.numerator // sigma2.denominator) + 1
    shift = sigma2 / t
    two_s2 = 2 * sigma2
    while True:
        y = discrete_laplace(rng, Fraction(t))
        d = abs(y) - shift
        if bernoulli_exp(rng, d * d / two_s2):
            return y


def _uniforms(rng: RandomSource, n: int) -> npt.NDArray[np.float64]:
    """``n`` uniforms in ``(0, 1]`` with 53 random bits each."""
    raw = np.frombuffer(rng.bytes(8 * n), dtype=np.uint64)
    return ((raw >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53


def _ints_below(rng: RandomSource, bound: int, n: int) -> npt.NDArray[np.int64]:
    """``n`` uniform integers in ``[0, bound)`` (exact: rejection on 64-bit words)."""
    limit = (2**64 // bound) * bound
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        need = n - out.size
        raw = np.frombuffer(rng.bytes(8 * (need + need // 8 + 8)), dtype=np.uint64)
        if limit < 2**64:
            raw = raw[raw < np.uint64(limit)]
        out = np.concatenate([out, (raw % np.uint64(bound)).astype(np.int64)[:need]])
    return out


def discrete_gaussian_array(rng: RandomSource, sigma2: float, size: int) -> npt.NDArray[np.int64]:
    """``size`` independent discrete Gaussians of variance parameter ``sigma2`` (vectorised).

    The rejection algorithm of :func:`discrete_gaussian`, with the Bernoulli(exp(-g)) tests
    done as ``u <= exp(-g)`` on 53-bit uniforms ``u`` and the geometric part by inversion;
    see the module docstring for how far this is from exact. ``sigma2`` must be in
    ``[1, 2**80]``.
    """
    if not (1.0 <= sigma2 <= 2.0**80) or not math.isfinite(sigma2):
        raise ValueError(f"sigma2 must be in [1, 2**80], got {sigma2}")
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    t = math.isqrt(int(sigma2)) + 1
    shift = sigma2 / t
    out = np.empty(size, dtype=np.int64)
    filled = 0
    while filled < size:
        n = max(64, int((size - filled) * 1.7))
        u = _ints_below(rng, t, n)
        keep = _uniforms(rng, n) <= np.exp(-u / t)
        u = u[keep]
        m = u.size
        # geometric with P(v) = (1 - e^-1) e^-v: v = floor(-log(w)), w uniform in (0, 1]
        v = np.floor(-np.log(_uniforms(rng, m))).astype(np.int64)
        y = u + t * v
        neg = _ints_below(rng, 2, m) == 1
        ok = ~(neg & (y == 0))
        y = np.where(neg, -y, y)[ok]
        d = np.abs(y) - shift
        acc = _uniforms(rng, y.size) <= np.exp(-(d * d) / (2.0 * sigma2))
        y = y[acc]
        take = min(y.size, size - filled)
        out[filled : filled + take] = y[:take]
        filled += take
    return out


# -- the exponential mechanism over groups of equal-score candidates

#: Fixed-point precision (bits) of the proposal weights of :func:`exponential_groups`.
_EM_BITS = 64


@lru_cache(maxsize=4096)
def _exp_neg_int_bounds(m: int, bits: int) -> tuple[int, int]:
    """Integers ``lo <= 2**bits * exp(-m) <= hi`` with ``hi - lo <= 2`` (``m >= 0``).

    Rigorous: ``exp(-1)`` lies between consecutive partial sums of its alternating series
    ``sum (-1)**k / k!`` (terms decreasing); both bounds are raised to the power ``m`` as
    exact rationals and rounded outwards.
    """
    if m == 0:
        return 1 << bits, 1 << bits
    want = bits + 2 * m.bit_length() + 16
    total, term, k = Fraction(1), Fraction(1), 0  # S_0 = 1
    while True:  # S_K for K even is above exp(-1), S_K - 1/(K+1)! below
        k += 1
        term = term / k
        if k % 2 == 1 and term < Fraction(1, 1 << want):
            hi1, lo1 = total, total - term
            break
        total += -term if k % 2 == 1 else term
    lo = math.floor(lo1**m * (1 << bits))
    hi = math.ceil(hi1**m * (1 << bits))
    return lo, hi


def _below_exp_neg(rng: RandomSource, u: int, bits: int, m: int) -> bool:
    """Whether a uniform ``V`` in ``[u, u + 1) / 2**bits`` lies below ``exp(-m)``: exact,
    drawing further bits of ``V`` until rigorous bounds on ``exp(-m)`` decide."""
    while True:
        lo, hi = _exp_neg_int_bounds(m, bits)
        if u < lo:  # V < u + 1 <= lo <= 2**bits exp(-m)
            return True
        if u >= hi:
            return False
        u = (u << 32) | int.from_bytes(rng.bytes(4), "big")
        bits += 32


def exponential_groups(
    rng: RandomSource,
    sizes: npt.NDArray[np.int64],
    scores: npt.NDArray[np.int64],
    gamma: Fraction,
) -> tuple[int, int]:
    """Sample the exponential mechanism over candidates grouped by equal score, exactly.

    Group ``g`` holds ``sizes[g] >= 1`` candidates, each of score ``scores[g] >= 0`` (lower
    is better); a candidate is selected with probability proportional to ``exp(-gamma *
    score)``. Returns ``(g, i)``: the group and a uniform index ``i < sizes[g]`` in it.

    Exact (no floating-point value decides anything): with ``m_g`` an integer in ``[0,
    gamma * score_g]`` (a float estimate rounded down with a margin far above its error, at
    most ``C = 46``), a group is proposed with probability proportional to ``sizes[g] *
    W(m_g)``, where ``W(m) >= 2**64 exp(-m)`` is an integer (two levels: a level ``m`` by its
    total weight, then a group of that level by its size), and accepted with probability
    ``exp(-(gamma score_g - m_g)) * 2**64 exp(-m_g) / W(m_g)``: an exact
    Bernoulli(exp(-rational)) trial, and an exact comparison of a uniform with rigorous,
    lazily refined bounds on ``2**64 exp(-m)``. Proposal times acceptance is proportional to
    ``sizes[g] exp(-gamma score_g)``. A round accepts with probability about ``exp(-1) /
    3`` or more, except for groups beyond level ``C`` (proposed with probability below
    ``2**-64`` per candidate relative to the best one); work per call is ``O(len(sizes))``
    in numpy plus a few big-integer operations.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.int64)
    if sizes.ndim != 1 or sizes.shape != scores.shape or sizes.size == 0:
        raise ValueError("sizes and scores must be non-empty 1-D arrays of the same length")
    if bool((sizes < 1).any()) or bool((scores < 0).any()):
        raise ValueError("sizes must be >= 1 and scores >= 0")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    bits = _EM_BITS
    cap = int(bits * math.log(2)) + 2  # from here on 2**bits exp(-m) < 1: W(m) = 1
    approx = float(gamma) * scores.astype(np.float64)  # within 2**-51 relative of exact
    level = np.clip(np.floor(approx * (1 - 2.0**-40)), 0, cap).astype(np.int64)
    weight = [_exp_neg_int_bounds(m, bits)[1] if m < cap else 1 for m in range(cap + 1)]
    order = np.argsort(level, kind="stable")
    starts = np.searchsorted(level[order], np.arange(cap + 2))
    members = [order[starts[m] : starts[m + 1]] for m in range(cap + 1)]
    cum_sizes = [np.cumsum(sizes[idx]) for idx in members]
    level_weight = [(int(c[-1]) if c.size else 0) * weight[m] for m, c in enumerate(cum_sizes)]
    cum = list(itertools.accumulate(level_weight))
    while True:
        m = bisect.bisect_right(cum, randbelow(rng, cum[-1]))
        cs = cum_sizes[m]
        g = int(members[m][int(np.searchsorted(cs, randbelow(rng, int(cs[-1])), side="right"))])
        rest = gamma * int(scores[g]) - m
        if rest < 0:  # cannot happen: level is rounded down with a wide margin
            raise AssertionError("exponential_groups: level above gamma * score")
        if not bernoulli_exp(rng, rest):
            continue
        if m < cap:
            if not _below_exp_neg(rng, randbelow(rng, weight[m]), bits, m):
                continue
        elif not _below_exp_neg(rng, 0, bits, m):  # W = 1: accept w.p. 2**bits exp(-m)
            continue
        return g, randbelow(rng, int(sizes[g]))
