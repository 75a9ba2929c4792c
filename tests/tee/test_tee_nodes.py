"""[14] A ``tee`` step between three nodes over mutual TLS: the approvals inbox shows which
enclave measurement will see the data and that it is simulated; each data party's key release
is an audit entry of its node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.node.cluster import cluster_up
from privfin.node.config import load_config
from privfin.store import open_engine
from privfin.tee.enclave import measure_component

pytestmark = pytest.mark.cluster


def _cli(*args: str) -> Any:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


def test_tee_step_between_nodes(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    n = 300
    ids = np.arange(n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 + x2 > 0).astype(int)
    paths = {"bank": tmp_path / "bank.csv", "telco": tmp_path / "telco.csv"}
    pd.DataFrame({"id": ids, "x1": x1, "y": y}).to_csv(paths["bank"], index=False)
    pd.DataFrame({"id": ids, "x2": x2}).to_csv(paths["telco"], index=False)
    spec = {
        "job": "tee-nodes",
        "purpose": "joint credit model in an enclave",
        "results": ["bank"],
        "parties": {
            "bank": {"datasets": {"train": "bank_train"}},
            "telco": {"datasets": {"train": "telco_train"}},
            "host": {},
        },
        "steps": {
            "train": {
                "component": "tee",
                "roles": {"bank": ["data", "result"], "telco": "data", "host": "enclave_host"},
                "params": {"model": "lr"},
                "party_inputs": {
                    "bank": {"table": "datasets.train"},
                    "telco": {"table": "datasets.train"},
                },
            }
        },
    }
    cluster = cluster_up(
        ["bank", "telco", "host"],
        tmp_path / "c",
        mode="development",
        datasets={"bank": {"bank_train": paths["bank"]}, "telco": {"telco_train": paths["telco"]}},
    )
    c = str(tmp_path / "c")
    try:
        job = tmp_path / "job.yaml"
        job.write_text(yaml.safe_dump(spec, sort_keys=False))
        _cli("job", "submit", str(job), "--dir", c)
        with cluster.client("telco") as client:
            client.wait_proposal("tee-nodes")
        inbox = _cli("job", "inbox", "--dir", c, "--party", "telco").output
        measurement = measure_component("train_model")[0].hex()
        assert f"enclave: train_model measurement {measurement}" in inbox
        assert "SIMULATED ENCLAVE" in inbox
        for party in ("telco", "host"):
            with cluster.client(party) as client:
                client.wait_proposal("tee-nodes")
            _cli("job", "approve", "tee-nodes", "--dir", c, "--party", party)
        for party in ("bank", "telco", "host"):
            res = _cli("job", "status", "tee-nodes", "--dir", c, "--party", party, "--watch")
            assert "done" in res.output
        for party in ("bank", "telco"):
            engine = open_engine(load_config(cluster.config_path(party)).store_url())
            try:
                with engine.connect() as conn:
                    rows = conn.execute(
                        sa.text("SELECT action, job, party FROM audit_entries")
                    ).all()
            finally:
                engine.dispose()
            assert ("key_release", "tee-nodes", party) in [tuple(r) for r in rows]
    finally:
        cluster.down()
