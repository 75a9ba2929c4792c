"""MPC components between node processes over mutual TLS: the same results as in-process,
the trusted dealer refused by a production node, which runs dealer-free OT triples instead
(two computing parties) or replicated sharing (three)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from privfin.errors import ProtocolAbort
from privfin.mpc import mpc_stats, ss_lr
from privfin.node.cluster import Cluster, cluster_up
from privfin.runtime import simulate

pytestmark = pytest.mark.cluster
ROLES = {"bank_a": ["data", "compute", "result"], "tel_b": ["data", "compute"]}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    root = tmp_path_factory.mktemp("mpc-data")
    a = pd.DataFrame(x[:, :4], columns=[f"a{i}" for i in range(4)]).assign(y=y)
    b = pd.DataFrame(x[:, 4:9], columns=[f"b{i}" for i in range(5)])
    a.to_csv(root / "a.csv", index=False)
    b.to_csv(root / "b.csv", index=False)
    return {"a": a, "b": b, "paths": {"bank_a": root / "a.csv", "tel_b": root / "b.csv"}}


def _cluster(root: Path, tables: dict[str, Any], mode: str, transport: str = "http") -> Cluster:
    return cluster_up(
        list(ROLES),
        root,
        datasets={p: {"table": tables["paths"][p]} for p in ROLES},
        mode=mode,
        message_timeout=60,
        transport=transport,
    )


@pytest.fixture(scope="module", params=["http", "stream"])
def dev_cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tables: dict[str, Any],
) -> Iterator[Cluster]:
    """Two development nodes whose job messages go over HTTPS or the streaming transport."""
    c = _cluster(tmp_path_factory.mktemp("mpc-dev"), tables, "development", request.param)
    try:
        yield c
    finally:
        c.down()


def _run(cluster: Cluster, job: str, component: str, params: dict[str, Any]) -> dict[str, Any]:
    spec = {
        "job": job,
        "component": component,
        "roles": ROLES,
        "params": params,
        "inputs": {p: {"table": "table"} for p in ROLES},
    }
    out = cluster.run_job(spec, timeout=240)
    return out


STATS = {
    "partition": "vertical",
    "columns": {"bank_a": ["a0", "a1"], "tel_b": ["b0"]},
    "statistics": ["count", "sum", "mean", "var"],
    "triples": "dealer",
    "dealer": "bank_a",
}


def test_mpc_stats_over_nodes_matches_memory(dev_cluster: Cluster, tables: dict[str, Any]) -> None:
    over_http = _run(dev_cluster, "stats-1", "mpc_stats", STATS)["bank_a"]
    from privfin.config import Settings

    in_memory = simulate(
        mpc_stats,
        ROLES,
        params=STATS,
        settings=Settings(mode="development"),
        inputs={"bank_a": {"table": tables["a"]}, "tel_b": {"table": tables["b"]}},
    )["bank_a"]
    assert set(over_http) == set(in_memory)
    for name in ("count", "sum", "mean", "var"):
        np.testing.assert_allclose(over_http[name], in_memory[name], rtol=1e-3, atol=1e-2)
    cols = pd.concat([tables["a"][["a0", "a1"]], tables["b"][["b0"]]], axis=1).to_numpy()
    np.testing.assert_allclose(over_http["mean"], cols.mean(0), atol=1e-3)


def test_ss_lr_over_nodes_matches_memory(dev_cluster: Cluster, tables: dict[str, Any]) -> None:
    params = {
        "partition": "vertical",
        "features": {"bank_a": ["a0", "a1", "a2", "a3"], "tel_b": ["b0", "b1", "b2", "b3", "b4"]},
        "label": {"party": "bank_a", "column": "y"},
        "epochs": 2,
        "batch_size": 128,
        "learning_rate": 0.5,
        "shuffle_seed": 1,
        "triples": "dealer",
        "dealer": "bank_a",
    }
    over_http = _run(dev_cluster, "sslr-1", "ss_lr", params)["bank_a"]
    from privfin.config import Settings

    in_memory = simulate(
        ss_lr,
        ROLES,
        params=params,
        settings=Settings(mode="development"),
        inputs={"bank_a": {"table": tables["a"]}, "tel_b": {"table": tables["b"]}},
    )["bank_a"]
    np.testing.assert_allclose(over_http["coef"], in_memory["coef"], atol=2e-3)
    assert abs(over_http["intercept"] - in_memory["intercept"]) < 2e-3


def test_production_nodes_refuse_the_dealer_and_run_dealer_free_ot_triples(
    tmp_path: Path, tables: dict[str, Any]
) -> None:
    """A production node refuses the trusted dealer; without ``triples`` the same jobs run with
    dealer-free OT triples (the production default) and match the in-memory dealer runs."""
    from privfin.config import Settings

    dev = Settings(mode="development")
    inputs = {"bank_a": {"table": tables["a"]}, "tel_b": {"table": tables["b"]}}
    cluster = _cluster(tmp_path / "prod", tables, "production")
    try:
        with pytest.raises(ProtocolAbort, match="insecure"):
            _run(cluster, "stats-prod", "mpc_stats", STATS)
        stats = {k: v for k, v in STATS.items() if k not in ("triples", "dealer")}
        got = _run(cluster, "stats-ot", "mpc_stats", stats)["bank_a"]
        ref = simulate(mpc_stats, ROLES, params=STATS, settings=dev, inputs=inputs)["bank_a"]
        for name in ("count", "sum", "mean", "var"):
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-3, atol=1e-2)
        lr = {
            "partition": "vertical",
            "features": {"bank_a": ["a0", "a1", "a2", "a3"], "tel_b": ["b0", "b1", "b2"]},
            "label": {"party": "bank_a", "column": "y"},
            "epochs": 1,
            "batch_size": 128,
            "learning_rate": 0.5,
            "shuffle_seed": 1,
        }
        got_lr = _run(cluster, "sslr-ot", "ss_lr", lr)["bank_a"]
        ref_lr = simulate(
            ss_lr, ROLES, params={**lr, "triples": "dealer"}, settings=dev, inputs=inputs
        )["bank_a"]
        np.testing.assert_allclose(got_lr["coef"], ref_lr["coef"], atol=2e-3)
        assert abs(got_lr["intercept"] - ref_lr["intercept"]) < 2e-3
    finally:
        cluster.down()


def test_three_production_nodes_run_stats_and_ss_lr_with_replicated_sharing(
    tmp_path: Path, tables: dict[str, Any]
) -> None:
    """Three node processes in production mode: with three computing parties the default is
    replicated sharing (no dealer, no triples); the results match the in-memory dealer runs.
    The third computing party holds no data (JR/T 0196: computing party only)."""
    from privfin.config import Settings

    roles = {**ROLES, "calc_c": ["compute"]}
    cluster = cluster_up(
        list(roles),
        tmp_path / "prod3",
        datasets={p: {"table": tables["paths"][p]} for p in ROLES},
        mode="production",
        message_timeout=60,
    )
    inputs = {"bank_a": {"table": tables["a"]}, "tel_b": {"table": tables["b"]}}
    dev = Settings(mode="development")

    def run(job: str, component: str, params: dict[str, Any]) -> dict[str, Any]:
        spec = {
            "job": job,
            "component": component,
            "roles": roles,
            "params": params,
            "inputs": {p: {"table": "table"} for p in ROLES},
        }
        return cluster.run_job(spec, timeout=240)["bank_a"]

    try:
        stats = {k: v for k, v in STATS.items() if k not in ("triples", "dealer")}
        got = run("stats-rss3", "mpc_stats", stats)
        ref = simulate(mpc_stats, ROLES, params=STATS, settings=dev, inputs=inputs)["bank_a"]
        for name in ("count", "sum", "mean", "var"):
            np.testing.assert_allclose(got[name], ref[name], rtol=1e-3, atol=1e-2)
        lr = {
            "partition": "vertical",
            "features": {"bank_a": ["a0", "a1", "a2", "a3"], "tel_b": ["b0", "b1", "b2"]},
            "label": {"party": "bank_a", "column": "y"},
            "epochs": 1,
            "batch_size": 128,
            "learning_rate": 0.5,
            "shuffle_seed": 1,
        }
        got_lr = run("sslr-rss3", "ss_lr", lr)
        ref_lr = simulate(
            ss_lr, ROLES, params={**lr, "triples": "dealer"}, settings=dev, inputs=inputs
        )["bank_a"]
        np.testing.assert_allclose(got_lr["coef"], ref_lr["coef"], atol=2e-3)
    finally:
        cluster.down()
