"""Pipelines between node processes over mutual TLS: the same steps and results as the
in-process run; a node killed mid-pipeline resumes (between steps, and inside a SecureBoost
step, which restarts at every party under a new attempt)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from privfin.config import Settings
from privfin.jobs.local import run_local
from privfin.jobs.spec import parse_spec_data
from privfin.node.cluster import cluster_up

from ._pipeline_data import pipeline_spec, split

pytestmark = pytest.mark.cluster


def _write(tmp_path: Path) -> dict[str, dict[str, Path]]:
    out: dict[str, dict[str, Path]] = {}
    for party, tables in split().items():
        for name, df in tables.items():
            path = tmp_path / "data" / f"{name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(path, index=False)
            out.setdefault(party, {})[name] = path
    return out


def _read(state: Path, job: str, summary: dict[str, Any], step: str, name: str) -> Any:
    info = summary["steps"][step]["outputs"][name]
    path = state / "jobs" / job / info["path"]
    if info["kind"] == "scores":
        return pd.read_csv(path)
    if info["kind"] == "table":
        return pd.read_parquet(path)
    return json.loads(path.read_text())


def test_pipeline_over_nodes_matches_local(tmp_path: Path) -> None:
    spec = pipeline_spec("credit-nodes")
    local = run_local(
        parse_spec_data(spec), split(), tmp_path / "local", settings=Settings(mode="development")
    )
    paths = _write(tmp_path)
    cluster = cluster_up(["bank", "telco"], tmp_path / "c", mode="development", datasets=paths)
    try:
        out = cluster.run_job(spec, timeout=300)
    finally:
        cluster.down()
    assert set(out["bank"]["steps"]) == set(spec["steps"])
    assert "evaluate" not in out["telco"]["steps"]  # the telco takes no part in evaluation
    for s in out["bank"]["steps"].values():
        assert s["status"] == "done" and s["attempt"] == 1
    state = tmp_path / "c" / "bank" / "state"
    # PSI is deterministic: same aligned rows as in-process
    aligned = _read(state, "credit-nodes", out["bank"], "psi", "aligned")
    pd.testing.assert_frame_equal(aligned, local.output("bank", "psi", "aligned"))
    # the scores of the held-back applicants keep their ids; only the bank has them
    scores = _read(state, "credit-nodes", out["bank"], "score", "scores")
    assert list(scores.columns) == ["id", "score"]
    assert set(scores["id"]) <= set(split()["bank"]["bank_new"]["id"])
    assert "scores" not in out["telco"]["steps"]["score"]["outputs"]
    local_scores = local.output("bank", "score", "scores")
    assert len(scores) == len(local_scores)
    metrics = _read(state, "credit-nodes", out["bank"], "evaluate", "metrics")
    # hetero LR is exact arithmetic: the same model, the same AUC as in-process
    assert metrics["auc"] == pytest.approx(local.output("bank", "evaluate", "metrics")["auc"])
    assert metrics["auc"] > 0.7
    model = _read(state, "credit-nodes", out["bank"], "train", "model")
    assert model["format"] == "privfin.model" and model["format_version"] == 1
    assert model["lineage"]["table"].startswith("psi.aligned:")
