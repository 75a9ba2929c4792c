"""[12] DP releases over a DataFrame: values near the truth, intervals that cover at their
stated rate, contribution limits, clear refusals, and the ledger charged before the data is
read."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from scipy import stats

from privfin.crypto.random import SeededRandom
from privfin.dp import release
from privfin.dp.ledger import BudgetExceeded, BudgetLedger
from privfin.dp.release import Charge
from privfin.errors import ConfigError
from privfin.store import open_engine, upgrade

from ._stats import ALPHA, chi2_pvalue


@pytest.fixture(scope="module")
def loans() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 1500
    ids = rng.integers(0, 1000, size=n).astype(str)  # ~ 3 rows per customer
    return pd.DataFrame(
        {
            "cust": ids,
            "amount": rng.gamma(2.0, 20_000.0, size=n).round(2),
            "grade": rng.choice(["A", "B", "C"], size=n, p=[0.5, 0.3, 0.2]),
            "default": rng.choice([0, 1], size=n, p=[0.8, 0.2]),
        }
    )


def _bounded(df: pd.DataFrame, k: int) -> pd.DataFrame:
    return df.groupby("cust", sort=False).head(k)


def test_count_bounds_contributions_and_covers(loans: pd.DataFrame) -> None:
    truth = len(_bounded(loans, 2))
    r = release.count(loans, 1.0, id_column="cust", max_rows_per_id=2, rng=SeededRandom(1))
    est = r.estimates["count"]
    assert est.low <= truth <= est.high
    assert abs(est.value - truth) < 40
    assert r.unit.startswith("one customer") and r.cost.epsilon == 1.0
    # coverage of the stated 90% interval over repetitions
    src = SeededRandom(2)
    hits = 0
    reps = 400
    for _ in range(reps):
        e = release.count(loans, 0.5, confidence=0.9, rng=src).estimates["count"]
        hits += e.low <= len(loans) <= e.high
    assert stats.binomtest(hits, reps, 0.9, alternative="less").pvalue > ALPHA


def test_sum_and_mean(loans: pd.DataFrame) -> None:
    bounded = _bounded(loans, 1)
    clipped = bounded["amount"].clip(0, 100_000)
    r = release.sum_(
        loans, "amount", 1.0, lower=0, upper=100_000, id_column="cust", rng=SeededRandom(3)
    )
    e = r.estimates["sum"]
    assert e.low <= clipped.sum() <= e.high
    assert abs(e.value - clipped.sum()) / clipped.sum() < 0.02
    m = release.mean(
        loans, "amount", 1.0, lower=0, upper=100_000, id_column="cust", rng=SeededRandom(4)
    )
    e = m.estimates["mean"]
    assert e.low <= clipped.mean() <= e.high
    assert abs(e.value - clipped.mean()) / clipped.mean() < 0.05
    assert m.cost.epsilon == 1.0


def test_mean_interval_coverage() -> None:
    df = pd.DataFrame({"x": np.linspace(0, 10, 200)})
    src = SeededRandom(5)
    hits, reps = 0, 300
    for _ in range(reps):
        e = release.mean(df, "x", 0.5, lower=0, upper=10, confidence=0.8, rng=src).estimates["mean"]
        hits += e.low <= 5.0 <= e.high
    assert stats.binomtest(hits, reps, 0.8, alternative="less").pvalue > ALPHA


def test_histogram_and_contingency(loans: pd.DataFrame) -> None:
    r = release.histogram(loans, "grade", 2.0, categories=["A", "B", "C", "D"],
                          rng=SeededRandom(6))  # fmt: skip
    vc = loans["grade"].value_counts()
    for g in "ABC":
        e = r.estimates[g]
        assert e.low <= vc[g] <= e.high
    assert r.estimates["D"].value < 10  # a declared empty category is released too
    b = release.histogram(loans, "amount", 2.0, bins=[0, 10_000, 50_000, 1e6],
                          rng=SeededRandom(7))  # fmt: skip
    true_bins = np.histogram(loans["amount"], bins=[0, 10_000, 50_000, 1e6])[0]
    got = [e.value for e in b.estimates.values()]
    assert np.allclose(got, true_bins, atol=15)
    assert list(b.estimates) == ["[0, 10000)", "[10000, 50000)", "[50000, 1e+06]"]
    c = release.contingency(
        loans, ["grade", "default"], 2.0,
        categories={"grade": ["A", "B", "C"], "default": [0, 1]}, rng=SeededRandom(8),
    )  # fmt: skip
    tab = loans.groupby(["grade", "default"]).size()
    assert len(c.estimates) == 6
    for (g, d), v in tab.items():
        e = c.estimates[f"{g}|{d}"]
        assert abs(e.value - v) < 15
    frame = c.frame()
    assert list(frame.columns) == ["key", "value", "low", "high"]


def test_quantiles(loans: pd.DataFrame) -> None:
    r = release.quantiles(loans, "amount", [0.25, 0.5, 0.9], 3.0, lower=0, upper=200_000,
                          rng=SeededRandom(9))  # fmt: skip
    x = np.sort(loans["amount"].clip(0, 200_000))
    n, step = len(x), r.notes["spacing"]
    for q in (0.25, 0.5, 0.9):
        v = r.estimates[f"q{q:g}"].value
        err = r.notes["rank_error"][f"q{q:g}"]
        # the stated accuracy: rank within rank_error of q n, up to one grid step
        assert np.searchsorted(x, v - step) - err <= q * n <= np.searchsorted(x, v + step) + err
        assert abs(v - np.quantile(x, q)) < 0.1 * np.quantile(x, 0.9)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_non_positive_epsilon_is_rejected(loans: pd.DataFrame, bad: float) -> None:
    with pytest.raises(ConfigError, match="epsilon must be a finite number > 0"):
        release.count(loans, bad)
    with pytest.raises(ConfigError, match="epsilon must be a finite number > 0"):
        release.mean(loans, "amount", bad, lower=0, upper=1)


@pytest.mark.parametrize(
    ("lower", "upper", "message"),
    [
        (10.0, 10.0, "lower .* must be below upper"),
        (5.0, 1.0, "lower .* must be below upper"),
        (0.0, math.inf, "bound upper must be a finite number"),
        (math.nan, 1.0, "bound lower must be a finite number"),
    ],
)
def test_invalid_bounds_are_rejected(
    loans: pd.DataFrame, lower: float, upper: float, message: str
) -> None:
    for fn in (release.sum_, release.mean):
        with pytest.raises(ConfigError, match=message):
            fn(loans, "amount", 1.0, lower=lower, upper=upper)
    with pytest.raises(ConfigError, match=message):
        release.quantiles(loans, "amount", [0.5], 1.0, lower=lower, upper=upper)


def test_other_invalid_parameters(loans: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="max_rows_per_id"):
        release.count(loans, 1.0, id_column="cust", max_rows_per_id=0)
    with pytest.raises(ConfigError, match="exactly one of categories or bins"):
        release.histogram(loans, "grade", 1.0)
    with pytest.raises(ConfigError, match="strictly increasing"):
        release.histogram(loans, "amount", 1.0, bins=[0, 5, 5])
    with pytest.raises(ConfigError, match="no column"):
        release.count(loans, 1.0, id_column="nope")
    with pytest.raises(ConfigError, match="not numeric"):
        release.sum_(loans, "grade", 1.0, lower=0, upper=1)
    with pytest.raises(ConfigError, match="quantile levels"):
        release.quantiles(loans, "amount", [1.5], 1.0, lower=0, upper=1)


def test_charged_to_the_ledger_before_the_data_is_read(loans: pd.DataFrame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = open_engine(tmp_path / "store.sqlite")
    upgrade(engine)
    ledger = BudgetLedger(engine)
    ledger.set_budget("loans", 1.0, who="owner")
    charge = Charge(ledger, "loans", "telco", "job-1", "bank-node", step="count")
    reads = []

    def load() -> pd.DataFrame:
        reads.append(1)
        return loans

    r = release.count(load, 0.75, charge=charge, rng=SeededRandom(10))
    assert r.cost.epsilon == 0.75 and reads == [1]
    with pytest.raises(BudgetExceeded, match=r"0\.25 of 1 remains"):
        release.mean(load, "amount", 0.5, lower=0, upper=1, charge=charge)
    assert reads == [1]  # refused before the data was touched
    hist = ledger.history("loans")
    assert [(h.state, h.mechanism, h.job, h.step) for h in hist] == [
        ("committed", "count:discrete_laplace", "job-1", "count")
    ]

    def broken() -> pd.DataFrame:
        raise ConfigError("source changed")

    with pytest.raises(ConfigError):
        release.count(broken, 0.25, charge=charge)
    assert ledger.spent("loans")[0] == pytest.approx(0.75)  # released: nothing left
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from dp_spends")).scalar() == 2
    engine.dispose()


def _hockey_stick(eps: float, shift: int, sens: int) -> float:
    """max over neighbours (true sizes 0 and sens) of sum_o max(0, P(o) - e**eps P'(o)) for
    the revealed size true + N, N the dummy count: enumerated from the pmf, not the formula
    under test."""
    r = math.exp(-eps / sens)
    w = {n: r ** abs(n - shift) for n in range(2 * shift + 1)}
    total = sum(w.values())
    p0 = {n: v / total for n, v in w.items()}  # output o = 0 + n
    p1 = {n + sens: v / total for n, v in w.items()}  # output o = sens + n
    outs = set(p0) | set(p1)
    d01 = sum(max(0.0, p0.get(o, 0) - math.exp(eps) * p1.get(o, 0)) for o in outs)
    d10 = sum(max(0.0, p1.get(o, 0) - math.exp(eps) * p0.get(o, 0)) for o in outs)
    return max(d01, d10)


@pytest.mark.parametrize(("eps", "delta", "sens"), [(1.0, 1e-6, 1), (0.1, 1e-5, 1), (2.0, 1e-4, 2)])
def test_psi_dummy_count_delta_is_exact(eps: float, delta: float, sens: int) -> None:
    shift = release.dummy_shift(eps, delta, sens)
    hs = _hockey_stick(eps, shift, sens)
    assert hs == pytest.approx(release.dummy_delta(eps, shift, sens), rel=1e-9)
    assert hs <= delta < _hockey_stick(eps, shift - 1, sens)


def test_psi_dummy_count() -> None:
    law = release.DummyLaw(1.0, 1e-6)
    assert (law.shift, law.slots) == (14, 28)  # smallest with delta <= 1e-6 (test above)
    src = SeededRandom(11)
    draws = [release.psi_dummy_count(1.0, 1e-6, rng=src) for _ in range(10_000)]
    assert all(0 <= d.count <= law.slots and d.shift == law.shift for d in draws)
    noise = [d.count - law.shift for d in draws]
    assert chi2_pvalue(noise, lambda k: math.exp(-1.0) ** np.abs(k), law.shift) > ALPHA
    assert chi2_pvalue(noise, lambda k: math.exp(-0.9) ** np.abs(k), law.shift) < ALPHA
    d = draws[0]
    assert (d.cost.epsilon, d.cost.delta) == (1.0, 1e-6)
    est = d.estimate(500 + d.count)
    assert est.value == 500 + d.count - 14 and est.low <= 500 <= est.high
    # the interval is the exact law's: 95% of draws cover the truth
    assert np.mean([abs(x) <= law.halfwidth(0.95) for x in noise]) >= 0.94
    assert law.estimate(3, upper=10).low == 0.0  # clamped to [0, min set size]
    with pytest.raises(ConfigError, match="delta"):
        release.psi_dummy_count(1.0, 0.0)


def test_quantile_release_has_the_exponential_mechanism_law() -> None:
    """End to end on a small grid: the released points' frequencies against the exponential
    mechanism's law computed from the definition (every grid point scored directly), with
    ties on grid points, values outside the bounds and a level other than 1/2."""
    x = np.array([0.9, 1.0, 1.0, 1.0, 2.6, 3.2, 7.0, 12.0, -1.0])
    df = pd.DataFrame({"v": x})
    grid = np.linspace(0.0, 8.0, 9)  # candidates=8: points 0, 1, ..., 8
    t = np.rint(np.clip(x, 0, 8))  # values rounded to the nearest grid point
    q, eps = 0.25, 1.5
    score = np.array([abs(0.75 * np.sum(t < c) - 0.25 * np.sum(t > c)) for c in grid])
    w = np.exp(-eps * (score - score.min()) / (2 * 0.75))
    p = w / w.sum()
    src = SeededRandom(9)
    n = 1500
    counts = np.zeros(len(grid))
    for _ in range(n):
        r = release.quantiles(df, "v", [q], eps, lower=0, upper=8, candidates=8, rng=src)
        v = r.estimates["q0.25"].value
        j = round(v)
        assert v == grid[j]  # always a grid point
        counts[j] += 1
    keep = p * n >= 5

    def pvalue(expected: np.ndarray) -> float:
        o, e = list(counts[keep]), list(expected[keep])
        if not keep.all():  # the rare points pooled
            o.append(counts[~keep].sum())
            e.append(expected[~keep].sum())
        return float(stats.chisquare(o, e).pvalue)

    assert pvalue(p * n) > ALPHA
    w2 = np.exp(-1.3 * eps * (score - score.min()) / (2 * 0.75))  # a 30% sharper law
    assert pvalue(w2 / w2.sum() * n) < ALPHA
