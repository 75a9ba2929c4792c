"""[12] A DP release between two node processes: the data owner sets the budget with the
CLI, the job's release step is charged to it (audited as ``dp_spend``), the result party gets
the noisy values, ``privfin data show`` prints the epsilon spent, and a release over budget
fails the job before the dataset is read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from privfin.audit import AuditLog
from privfin.cli.main import app
from privfin.errors import ProtocolAbort
from privfin.node.cluster import cluster_up
from privfin.node.config import load_config
from privfin.store import open_engine

pytestmark = pytest.mark.cluster


def _spec(job: str, epsilon: float) -> dict[str, object]:
    return {
        "job": job,
        "purpose": "marketing statistics",
        "retention_days": 7,
        "parties": {"bank": {"datasets": {"loans": "loans"}}, "shop": {}},
        "results": ["shop"],
        "steps": {
            "stats": {
                "component": "dp_release",
                "roles": {"bank": "data", "shop": "result"},
                "params": {
                    "query": "histogram",
                    "epsilon": epsilon,
                    "column": "grade",
                    "categories": ["A", "B", "C"],
                },
                "inputs": {"table": "datasets.loans"},
            }
        },
    }


def test_dp_release_between_nodes(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    loans = pd.DataFrame(
        {"id": [f"c{i}" for i in range(300)], "grade": rng.choice(["A", "B", "C"], 300)}
    )
    path = tmp_path / "loans.csv"
    loans.to_csv(path, index=False)
    cluster = cluster_up(
        ["bank", "shop"], tmp_path / "c", mode="development", datasets={"bank": {"loans": path}}
    )
    try:
        config = cluster.config_path("bank")
        res = CliRunner().invoke(
            app, ["data", "budget", "loans", "--config", str(config), "--epsilon", "1.0"]
        )
        assert res.exit_code == 0, res.output
        out = cluster.run_job(_spec("dp-nodes-1", 0.7), timeout=120)
        info = out["shop"]["steps"]["stats"]["outputs"]["release"]
        got = json.loads((tmp_path / "c" / "shop" / "state" / "jobs" / "dp-nodes-1" /
                          info["path"]).read_text())  # fmt: skip
        truth = loans["grade"].value_counts()
        for g in "ABC":
            est = got["estimates"][g]
            assert abs(est["value"] - truth[g]) < 30 and est["low"] < est["high"]
        assert got["epsilon"] == 0.7
        with pytest.raises(ProtocolAbort):
            cluster.run_job(_spec("dp-nodes-2", 0.5), timeout=120)
        shown = CliRunner().invoke(app, ["data", "show", "loans", "--config", str(config)])
        assert "dp spent:    epsilon 0.7 of 1" in shown.output
    finally:
        cluster.down()
    engine = open_engine(load_config(config).store_url())
    log = AuditLog(engine, node="bank")
    spends = [e for e in log.entries() if e.action == "dp_spend"]
    kinds = [(e.job, e.evidence["event"]) for e in spends]
    assert ("dp-nodes-1", "reserve") in kinds and ("dp-nodes-1", "commit") in kinds
    assert ("dp-nodes-2", "refuse") in kinds
    assert not any(e.action == "data_access" and e.job == "dp-nodes-2" for e in log.entries())
    engine.dispose()
