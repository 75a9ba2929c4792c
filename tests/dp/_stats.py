"""Goodness-of-fit helpers for the sampler tests: every test runs at a fixed false-alarm rate
ALPHA on a seeded source (so a run is reproducible), and a test of the same samples against a
slightly wrong distribution shows that the check can fail."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np
from scipy import stats

#: False-alarm rate of each goodness-of-fit test.
ALPHA = 1e-3


def chi2_pvalue(
    samples: Iterable[int], pmf: Callable[[np.ndarray], np.ndarray], span: int
) -> float:
    """Chi-square p-value of integer ``samples`` against ``pmf`` on ``[-span, span]`` (the
    caller picks a span outside which the mass is negligible: a sample there fails): bins with
    fewer than 5 expected are merged into the two tails."""
    xs = list(samples)
    n = len(xs)
    grid = np.arange(-span, span + 1)
    p = pmf(grid)
    p = p / p.sum()  # normalised over the span; the mass outside is checked by tails
    counts = Counter(xs)
    obs = np.array([counts.get(int(k), 0) for k in grid], dtype=float)
    assert obs.sum() == n, "samples outside the span where the mass is negligible"
    exp = p * n
    keep = exp >= 5
    lo = ~keep & (grid < 0)
    hi = ~keep & (grid >= 0)
    o = np.array([*obs[keep], obs[lo].sum() + obs[hi].sum()])
    e = np.array([*exp[keep], exp[lo].sum() + exp[hi].sum()])
    if e[-1] < 1e-9:  # no tail mass to speak of: a tail sample is a failure
        assert o[-1] == 0, "samples where the distribution has (almost) no mass"
        o, e = o[:-1], e[:-1]
    return float(stats.chisquare(o, e * o.sum() / e.sum()).pvalue)
