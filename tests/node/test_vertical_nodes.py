"""Vertical FL components between node processes over mutual TLS give the same model as the
in-process run (hetero LR with an arbiter; exact arithmetic, so the results agree closely)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privfin.config import Settings
from privfin.errors import ProtocolAbort
from privfin.fl.vertical.hetero_lr import hetero_lr_component
from privfin.node.cluster import cluster_up
from privfin.runtime import simulate

pytestmark = pytest.mark.cluster
ROLES = {"bank": ["guest"], "telco": ["host"], "arb": ["arbiter"]}
PARAMS = {
    "key_bits": 768,
    "insecure_allow_small_keys": True,
    "max_iter": 3,
    "batch_size": 64,
    "label": "y",
    # Public, agreed: the key holder decrypts exactly these sizes (a node requires them).
    "feature_counts": {"bank": 3, "telco": 4},
}


def _tables(seed: int = 3, n: int = 150) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    xg, xh = rng.normal(size=(n, 3)), rng.normal(size=(n, 4))
    z = xg @ [1.0, -0.5, 0.3] + xh @ [0.8, 0.0, -0.7, 0.2]
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    ids = [f"C{i:04d}" for i in range(n)]  # rows already aligned: stands for PSI's output
    guest = pd.DataFrame(xg, columns=["g0", "g1", "g2"]).assign(id=ids, y=y)
    host = pd.DataFrame(xh, columns=["h0", "h1", "h2", "h3"]).assign(id=ids)
    return {"bank": guest, "telco": host}


def test_hetero_lr_over_nodes_matches_memory(tmp_path: Path) -> None:
    tables = _tables()
    paths = {}
    for party, df in tables.items():
        paths[party] = tmp_path / f"{party}.csv"
        df.to_csv(paths[party], index=False)
    in_memory = simulate(
        hetero_lr_component,
        ROLES,
        params=PARAMS,
        settings=Settings(mode="development"),
        inputs={p: {"table": tables[p]} for p in tables},
        timeout=120,
    )
    cluster = cluster_up(
        list(ROLES),
        tmp_path / "c",
        mode="development",
        datasets={p: {"table": paths[p]} for p in tables},
    )
    try:
        spec = {
            "job": "hlr-1",
            "component": "hetero_lr",
            "roles": ROLES,
            "params": PARAMS,
            "inputs": {p: {"table": "table"} for p in tables},
        }
        out = cluster.run_job(spec, timeout=180)
        # A node requires the agreed feature counts: it never falls back to a count a peer
        # declares. Each party fails locally with an error naming the parameter.
        unagreed = {k: v for k, v in PARAMS.items() if k != "feature_counts"}
        with pytest.raises(ProtocolAbort, match="needs the parameter 'feature_counts'"):
            cluster.run_job({**spec, "job": "hlr-2", "params": unagreed}, timeout=60)
    finally:
        cluster.down()
    # Batches are taken in a fixed order, so both runs do the same arithmetic.
    np.testing.assert_allclose(out["bank"]["coef"], in_memory["bank"]["coef"], atol=1e-6)
    np.testing.assert_allclose(out["telco"]["coef"], in_memory["telco"]["coef"], atol=1e-6)
    assert out["bank"]["intercept"] == pytest.approx(in_memory["bank"]["intercept"], abs=1e-6)
    assert "coef" not in out["arb"]


def test_secureboost_over_nodes_matches_memory(tmp_path: Path) -> None:
    from privfin.fl.vertical.secureboost.component import secureboost_component

    tables = _tables(seed=5, n=200)
    roles = {"bank": ["guest"], "telco": ["host"]}
    params = {
        "n_trees": 2,
        "max_depth": 2,
        "n_bins": 8,
        "key_bits": 1024,
        "insecure_allow_small_keys": True,
        "label": "y",
    }
    paths = {}
    for party, df in tables.items():
        paths[party] = tmp_path / f"{party}.csv"
        df.to_csv(paths[party], index=False)
    in_memory = simulate(
        secureboost_component,
        roles,
        params=params,
        settings=Settings(mode="development"),
        inputs={p: {"table": tables[p]} for p in tables},
        timeout=120,
        seed=1,
    )
    cluster = cluster_up(
        list(roles),
        tmp_path / "c",
        mode="development",
        datasets={p: {"table": paths[p]} for p in tables},
    )
    try:
        spec = {
            "job": "sb-1",
            "component": "secureboost",
            "roles": roles,
            "params": params,
            "inputs": {p: {"table": "table"} for p in tables},
        }
        out = cluster.run_job(spec, timeout=240)
    finally:
        cluster.down()
    # Same seed for the guest's randomness is not available on nodes (OS randomness), but the
    # arithmetic is exact: the trees and training scores agree.
    np.testing.assert_allclose(out["bank"]["scores"], in_memory["bank"]["scores"], atol=1e-9)
    assert out["bank"]["model"] == json.loads(in_memory["bank"]["model"].to_json())
