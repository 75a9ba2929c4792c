"""Secure statistics against numpy, vertical and horizontal partitions."""

from __future__ import annotations

import numpy as np

from privfin.mpc.stats import mpc_stats
from privfin.runtime import simulate

from ._setups import DEV

RNG = np.random.default_rng(3)
N = 60
A = {"income": RNG.normal(50, 10, N), "debt": RNG.exponential(3, N)}
B = {"arpu": RNG.normal(0, 1, N) + 0.05 * A["income"]}
ROLES = {"a": ("data", "compute", "result"), "b": ("data", "compute")}


def test_vertical_statistics_match_numpy() -> None:
    params = {
        "columns": {"a": ["income", "debt"], "b": ["arpu"]},
        "bins": {"debt": [0, 1, 2, 5, 100]},
        "quantiles": [0.25, 0.5, 0.9],
        "quantile_iterations": 20,
        "pearson": True,
        "weights": {"party": "a", "column": "debt"},
    }
    out = simulate(
        mpc_stats,
        ROLES,
        params=params,
        inputs={"a": {"table": A}, "b": {"table": B}},
        settings=DEV,
        seed=1,
    )
    assert out["b"] is None  # not a result party
    r = out["a"]
    x = np.stack([A["income"], A["debt"], B["arpu"]], axis=1)
    assert r["columns"] == ["income", "debt", "arpu"] and r["count"] == N
    np.testing.assert_allclose(r["sum"], x.sum(0), atol=N * 2**-16)
    np.testing.assert_allclose(r["mean"], x.mean(0), atol=1e-4)
    np.testing.assert_allclose(r["var"], x.var(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(r["std"], x.std(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(r["min"], x.min(0), atol=2**-16)
    np.testing.assert_allclose(r["max"], x.max(0), atol=2**-16)
    assert r["histogram.debt"] == np.histogram(A["debt"], [0, 1, 2, 5, 100])[0].tolist()
    expected_q = np.quantile(x, [0.25, 0.5, 0.9], axis=0, method="inverted_cdf")
    resolution = (x.max(0) - x.min(0)) / 2**20 + 2**-14
    assert np.all(np.abs(np.asarray(r["quantiles"]) - expected_q) <= resolution)
    np.testing.assert_allclose(r["pearson"], np.corrcoef(x.T), atol=1e-3)
    np.testing.assert_allclose(r["weighted_sum"], A["debt"] @ x, rtol=1e-4, atol=1e-2)


def test_horizontal_statistics_match_numpy() -> None:
    roles = {"a": ("data", "compute"), "b": ("data", "compute"), "r": ("result",)}
    a = {"v": RNG.normal(1, 2, 30), "w": RNG.normal(0, 1, 30)}
    b = {"v": RNG.normal(2, 1, 20), "w": RNG.normal(0, 1, 20)}
    params = {"partition": "horizontal", "columns": ["v", "w"], "pearson": True}
    r = simulate(
        mpc_stats,
        roles,
        params=params,
        inputs={"a": {"table": a}, "b": {"table": b}},
        settings=DEV,
        seed=2,
    )["r"]
    x = np.stack([np.concatenate([a[c], b[c]]) for c in ("v", "w")], axis=1)
    assert r["count"] == 50
    np.testing.assert_allclose(r["mean"], x.mean(0), atol=1e-4)
    np.testing.assert_allclose(r["var"], x.var(0), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(r["min"], x.min(0), atol=2**-16)
    np.testing.assert_allclose(r["pearson"], np.corrcoef(x.T), atol=5e-3)


def test_row_sums_add_the_same_column_of_every_party_row_by_row() -> None:
    import pytest

    from privfin.errors import ConfigError
    from privfin.mpc.params import MpcStatsParams

    owed_a = RNG.integers(0, 10**7, N).astype(float)  # integer cents: the sums are exact
    owed_b = RNG.integers(0, 10**7, N).astype(float)
    late_b = np.where(RNG.random(N) < 0.3, owed_b, 0.0)
    params = {
        "columns": {"a": ["owed"], "b": ["owed", "late"]},
        "statistics": ["count"],
        "row_sums": {"owed": ["owed"], "owed_and_late": ["owed", "late"]},
    }
    MpcStatsParams.from_mapping(params)
    out = simulate(
        mpc_stats,
        ROLES,
        params=params,
        inputs={"a": {"table": {"owed": owed_a}}, "b": {"table": {"owed": owed_b, "late": late_b}}},
        settings=DEV,
        seed=4,
    )
    assert out["b"] is None
    sums = out["a"]["row_sums"]
    assert sums["owed"] == (owed_a + owed_b).tolist()  # exact, not approximately
    assert sums["owed_and_late"] == (owed_a + owed_b + late_b).tolist()
    assert set(out["a"]) == {"columns", "count", "row_sums"}
    with pytest.raises(ConfigError, match="unknown columns"):
        MpcStatsParams.from_mapping({**params, "row_sums": {"t": ["owed", "nope"]}})
    with pytest.raises(ConfigError, match="vertical"):
        MpcStatsParams.from_mapping(
            {"columns": ["owed"], "partition": "horizontal", "row_sums": {"t": ["owed"]}}
        )
