"""A node process on the store named by ``store:`` in node.yaml (a PostgreSQL database, or a
SQLite file outside the state directory): it migrates the store at start and keeps its jobs
and messages there; a job over mutual TLS with a node on the default SQLite store completes
with the plaintext result."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import func, select

from privfin.federation.mailbox import messages
from privfin.mpc.exposure import plaintext_exposure
from privfin.node.cluster import cluster_up
from privfin.node.runner import jobs_table
from privfin.store import current_revisions, head_revisions, open_engine

pytestmark = pytest.mark.cluster
PARTIES = ["bank_a", "bank_b"]


def test_a_node_runs_a_job_on_the_configured_store(tmp_path: Path, store_url: str) -> None:
    rng = random.Random(9)
    ids = [f"C{i:04d}" for i in range(60)]
    tables, paths = {}, {}
    for p in PARTIES:
        rows = [(i, rng.randrange(1, 10**8)) for i in ids if rng.random() < 0.6]
        tables[p] = pd.DataFrame(rows, columns=["id", "outstanding_cents"])
        paths[p] = tmp_path / f"{p}.csv"
        tables[p].to_csv(paths[p], index=False)
    cluster = cluster_up(
        PARTIES,
        tmp_path / "cluster",
        datasets={p: {"loans": paths[p]} for p in PARTIES},
        message_timeout=30,
    )
    try:
        cluster.kill("bank_a")  # restart bank_a on the store under test
        config_path = cluster.config_path("bank_a")
        config = yaml.safe_load(config_path.read_text())
        config["store"] = store_url
        config_path.write_text(yaml.safe_dump(config))
        cluster.start("bank_a")
        cluster.wait_healthy()
        spec = {
            "job": "exp-store",
            "component": "exposure",
            "roles": {"bank_a": ["lender", "result"], "bank_b": ["lender"]},
            "params": {"ids": ids},
            "inputs": {p: {"loans": "loans"} for p in PARTIES},
        }
        out = cluster.run_job(spec, timeout=120)
        assert out["bank_a"]["totals"] == plaintext_exposure(ids, tables)
    finally:
        cluster.down()
    engine = open_engine(store_url)
    try:
        assert current_revisions(engine) == head_revisions()
        with engine.connect() as conn:
            status = conn.execute(
                select(jobs_table.c.status).where(jobs_table.c.job == "exp-store")
            ).scalar_one()
            received = conn.execute(
                select(func.count()).where(messages.c.job == "exp-store")
            ).scalar_one()
        assert status == "done"
        assert received > 0  # bank_b's messages landed in this store
    finally:
        engine.dispose()
