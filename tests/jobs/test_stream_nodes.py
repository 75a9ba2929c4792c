"""The same pipelines between node processes whose peers are configured with the streaming
transport (one long-lived mutual-TLS connection per peer pair): results equal the in-process
run, and a node killed inside SecureBoost resumes (attempt 2) over the stream too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from privfin.config import Settings
from privfin.jobs.local import run_local
from privfin.jobs.spec import parse_spec_data
from privfin.node.cluster import cluster_up
from privfin.node.config import load_config

from ._pipeline_data import job_status, negotiate, pipeline_spec, split, until, write_datasets

pytestmark = pytest.mark.cluster


def _scores(cluster: Any, job: str) -> pd.DataFrame:
    import io

    with cluster.client("bank") as c:
        return pd.read_csv(io.BytesIO(c.download(job, "score", "scores")))


def test_pipeline_over_the_stream_transport(tmp_path: Path) -> None:
    spec = pipeline_spec("stream-1")
    spec["steps"]["train"]["params"]["n_trees"] = 4
    local = run_local(
        parse_spec_data(spec), split(), tmp_path / "local", settings=Settings(mode="development")
    )
    cluster = cluster_up(
        ["bank", "telco"],
        tmp_path / "c",
        mode="development",
        datasets=write_datasets(tmp_path),
        transport="stream",
    )
    try:
        cfg = load_config(cluster.config_path("bank"))
        assert cfg.peers["telco"].transport == "stream" and cfg.stream_port is not None
        out = cluster.run_job(spec, timeout=300)
        assert all(s["status"] == "done" for s in out["bank"]["steps"].values())
        pd.testing.assert_frame_equal(
            _scores(cluster, "stream-1"), local.output("bank", "score", "scores")
        )
        # killed inside SecureBoost: restarts as attempt 2 at both parties, over the stream
        again = pipeline_spec("stream-2")
        again["steps"]["train"]["params"]["n_trees"] = 6
        negotiate(cluster, again)
        until(
            lambda: (
                (job_status(cluster, "bank", "stream-2").get("progress") or {}).get("step")
                == "train"
            )
        )
        cluster.kill("bank")
        cluster.start("bank")
        cluster.wait_healthy()
        for party in ("bank", "telco"):
            until(lambda p=party: job_status(cluster, p, "stream-2"))
            with cluster.client(party) as c:
                steps = c.wait("stream-2", timeout=300)["steps"]
            assert steps["train"]["attempt"] == 2 and all(
                s["status"] == "done" for s in steps.values()
            )
        log = (cluster.root / "bank" / "node.log").read_text()
        assert "Traceback" not in log
    finally:
        cluster.down()
