"""[12] DP PSI-cardinality between two node processes, over both transports: the sender's
owner sets the budget with the CLI, each segment's count is charged to it (audited as
``dp_spend``), the receiver's summary holds only the DP release, and a job over budget fails
before the sender's dataset is read."""

from __future__ import annotations

import json
from pathlib import Path

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

TIERS = ["gold", "silver", "bronze"]


def _spec(job: str, epsilon: float) -> dict[str, object]:
    return {
        "job": job,
        "purpose": "marketing: shared customers per segment",
        "retention_days": 7,
        "parties": {
            "bank": {"datasets": {"t": "customers"}},
            "shop": {"datasets": {"t": "buyers"}},
        },
        "results": ["bank"],
        "steps": {
            "overlap": {
                "component": "psi",
                "roles": {"bank": "receiver", "shop": "sender"},
                "params": {
                    "cardinality_only": True,
                    "dp_epsilon": epsilon,
                    "segments": "tier",
                    "segment_values": TIERS,
                },
                "inputs": {"table": "datasets.t"},
            }
        },
    }


@pytest.mark.parametrize("transport", ["http", "stream"])
def test_dp_cardinality_between_nodes(tmp_path: Path, transport: str) -> None:
    customers = pd.DataFrame({"id": [f"c{i}" for i in range(200)]})
    buyers = pd.DataFrame(
        {"id": [f"c{i}" for i in range(100, 250)], "tier": [TIERS[i % 3] for i in range(150)]}
    )
    paths = {"customers": tmp_path / "customers.csv", "buyers": tmp_path / "buyers.csv"}
    customers.to_csv(paths["customers"], index=False)
    buyers.to_csv(paths["buyers"], index=False)
    cluster = cluster_up(
        ["bank", "shop"],
        tmp_path / "c",
        mode="development",
        datasets={"bank": {"customers": paths["customers"]}, "shop": {"buyers": paths["buyers"]}},
        transport=transport,
    )
    try:
        config = cluster.config_path("shop")
        res = CliRunner().invoke(
            app,
            [
                "data",
                "budget",
                "buyers",
                "--config",
                str(config),
                "--epsilon",
                "1.0",
                "--delta",
                "1e-4",
            ],
        )
        assert res.exit_code == 0, res.output
        out = cluster.run_job(_spec("dpca-nodes-1", 0.3), timeout=120)
        info = out["bank"]["steps"]["overlap"]["outputs"]["summary"]
        got = json.loads((tmp_path / "c" / "bank" / "state" / "jobs" / "dpca-nodes-1" /
                          info["path"]).read_text())  # fmt: skip
        release = got["dp_cardinality"]
        assert "intersection_size" not in got and release["epsilon"] == 0.3
        truth = buyers[buyers["id"].isin(customers["id"])]["tier"].value_counts()
        for tier in TIERS:
            est = release["segments"][tier]
            assert 0 <= est["revealed"] - truth[tier] <= release["slots"]
        with pytest.raises(ProtocolAbort):  # 0.9 spent, 3 x 0.3 more is over budget
            cluster.run_job(_spec("dpca-nodes-2", 0.3), timeout=120)
        shown = CliRunner().invoke(app, ["data", "show", "buyers", "--config", str(config)])
        assert "dp spent:    epsilon 0.9" in shown.output, shown.output
    finally:
        cluster.down()
    engine = open_engine(load_config(config).store_url())
    log = AuditLog(engine, node="shop")
    kinds = [(e.job, e.evidence["event"]) for e in log.entries() if e.action == "dp_spend"]
    assert kinds.count(("dpca-nodes-1", "commit")) == 3
    assert ("dpca-nodes-2", "refuse") in kinds
    assert not any(e.action == "data_access" and e.job == "dpca-nodes-2" for e in log.entries())
    engine.dispose()
