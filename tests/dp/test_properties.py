"""[12] Property tests: laws the mechanisms and the accountant obey for any input."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.crypto.random import SeededRandom
from privfin.dp import _sample
from privfin.dp.accounting import Accountant
from privfin.dp.mechanisms import DiscreteLaplace, GridLaplace, clip_l2, grid_resolution

finite = st.floats(-1e9, 1e9, allow_nan=False)


@settings(max_examples=60)
@given(value=finite, eps=st.floats(0.01, 10), sens=st.floats(1e-3, 1e6), seed=st.integers(0))
def test_grid_laplace_output_is_on_the_grid(
    value: float, eps: float, sens: float, seed: int
) -> None:
    m = GridLaplace(eps, sens)
    out = m.release(value, SeededRandom(seed))
    assert out / m.grid == int(out / m.grid)
    assert m.grid <= sens / 4096 < 2 * m.grid  # the default grid: a power of two


@settings(max_examples=60)
@given(
    rows=st.lists(st.lists(finite, min_size=3, max_size=3), min_size=1, max_size=5),
    bound=st.floats(1e-3, 1e3),
)
def test_clipping_bounds_the_norm_and_is_idempotent(rows: list[list[float]], bound: float) -> None:
    a = np.array(rows)
    c = clip_l2(a, bound)
    assert np.all(np.linalg.norm(c, axis=1) <= bound * (1 + 1e-12))
    assert np.allclose(clip_l2(c, bound), c)
    small = np.linalg.norm(a, axis=1) <= bound
    assert np.allclose(c[small], a[small])


@settings(max_examples=30)
@given(eps=st.floats(0.05, 5), k=st.integers(1, 20))
def test_pure_composition_is_monotone_and_below_basic(eps: float, k: int) -> None:
    one = Accountant("rdp").pure(eps, count=k).epsilon(1e-6)
    more = Accountant("rdp").pure(eps, count=k + 1).epsilon(1e-6)
    assert one <= more <= (k + 1) * eps * (1 + 1e-12)


@settings(max_examples=40)
@given(num=st.integers(0, 60), den=st.integers(1, 20), seed=st.integers(0))
def test_bernoulli_exp_of_large_gamma_is_rarely_true(num: int, den: int, seed: int) -> None:
    g = Fraction(num, den)
    src = _sample.BufferedSource(SeededRandom(seed))
    hits = sum(_sample.bernoulli_exp(src, g) for _ in range(50))
    # P(hits == 50) = exp(-g)^50: never for g >= 1 at this sample size
    if g >= 1:
        assert hits < 50
    assert 0 <= hits <= 50


@settings(max_examples=40)
@given(eps=st.floats(0.01, 10), conf=st.floats(0.5, 0.999))
def test_laplace_halfwidth_is_the_smallest_covering(eps: float, conf: float) -> None:
    m = DiscreteLaplace(eps)
    h = m.halfwidth(conf)
    r = math.exp(-eps)
    tail = lambda x: 2 * r ** (x + 1) / (1 + r)  # noqa: E731
    assert tail(h) <= 1 - conf + 1e-12
    assert h == 0 or tail(h - 1) > 1 - conf - 1e-12
    assert grid_resolution(1.0) == 2.0**-12
