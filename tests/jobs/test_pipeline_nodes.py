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

from ._pipeline_data import job_status, negotiate, pipeline_spec, split, until, write_datasets

pytestmark = pytest.mark.cluster


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
    paths = write_datasets(tmp_path)
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
    # the steps' secret checkpoints (PSI's per-role keys) are gone once the job has ended
    assert not list((state / "jobs" / "credit-nodes" / "steps").rglob("*.key"))
    assert list((state / "jobs" / "credit-nodes" / "steps").rglob("*"))  # others are kept
    model = _read(state, "credit-nodes", out["bank"], "train", "model")
    assert model["format"] == "privfin.model" and model["format_version"] == 1
    assert model["lineage"]["table"].startswith("psi.aligned:")


def _kill_run(
    tmp_path: Path, job: str, victim: str, when: Any, transport: str = "http"
) -> tuple[dict[str, Any], Any]:
    """Run the pipeline; kill -9 ``victim``'s node as soon as ``when(status of victim)`` holds,
    restart it, and return every party's summary after the job completes."""
    spec = pipeline_spec(job)
    spec["steps"]["train"]["params"]["n_trees"] = 6
    paths = write_datasets(tmp_path)
    cluster = cluster_up(
        ["bank", "telco"], tmp_path / "c", mode="development", datasets=paths, transport=transport
    )
    try:
        negotiate(cluster, spec)

        def hit() -> dict[str, Any] | None:
            status = job_status(cluster, victim, job)
            return status if when(status) else None

        seen = until(hit)
        cluster.kill(victim)
        cluster.start(victim)
        cluster.wait_healthy()
        out = {}
        for party in ("bank", "telco"):
            until(lambda p=party: job_status(cluster, p, job))
            with cluster.client(party) as c:
                out[party] = c.wait(job, timeout=300)["result"]
    finally:
        cluster.down()
    return out, seen


@pytest.mark.parametrize("transport", ["http", "stream"])
def test_kill_between_steps_resumes_from_last_completed_step(
    tmp_path: Path, transport: str
) -> None:
    """The telco's node dies after training completed there: it resumes from its next step
    (done steps are not rerun, their files are read back) and the results equal a local run —
    over HTTP and over the streaming transport (whose receiver writes behind: a step is done
    only once its messages are on the peer's disk)."""
    out, seen = _kill_run(
        tmp_path,
        "credit-kill-a",
        "telco",
        lambda s: s.get("steps", {}).get("train", {}).get("status") == "done",
        transport,
    )
    assert seen["steps"]["psi"]["status"] == "done"
    # the kill follows the poll that saw training done: the telco may have started its next
    # step meanwhile, which (not resumable in place) then restarts once, at both parties
    done_before = {n for n, st in seen["steps"].items() if st.get("status") == "done"}
    assert {"psi", "train"} <= done_before
    for party in ("bank", "telco"):
        for name, step in out[party]["steps"].items():
            assert step["status"] == "done", (party, name)
            if name in done_before:  # done steps are not rerun: resumed after them
                assert step["attempt"] == 1, (party, name)
            else:
                assert step["attempt"] <= 2, (party, name)
    spec = pipeline_spec("credit-kill-a")
    spec["steps"]["train"]["params"]["n_trees"] = 6
    local = run_local(
        parse_spec_data(spec), split(), tmp_path / "local", settings=Settings(mode="development")
    )
    state = tmp_path / "c" / "bank" / "state"
    scores = _read(state, "credit-kill-a", out["bank"], "score", "scores")
    pd.testing.assert_frame_equal(scores, local.output("bank", "score", "scores"))


def test_kill_inside_secureboost_restarts_the_step_at_every_party(tmp_path: Path) -> None:
    """The bank (guest, key holder) dies inside SecureBoost training: SecureBoost cannot resume
    in place (fresh keys), so the step restarts at both parties as attempt 2, under new message
    keys; PSI's outputs are untouched and the final scores equal an uninterrupted run."""
    out, seen = _kill_run(
        tmp_path,
        "credit-kill-b",
        "bank",
        lambda s: (s.get("progress") or {}).get("step") == "train",
    )
    assert seen["steps"]["psi"]["status"] == "done"
    for party in ("bank", "telco"):
        steps = out[party]["steps"]
        assert steps["psi"]["attempt"] == 1
        assert steps["train"]["attempt"] == 2, party
        assert all(s["status"] == "done" for s in steps.values())
    spec = pipeline_spec("credit-kill-b")
    spec["steps"]["train"]["params"]["n_trees"] = 6
    local = run_local(
        parse_spec_data(spec), split(), tmp_path / "local", settings=Settings(mode="development")
    )
    state = tmp_path / "c" / "bank" / "state"
    scores = _read(state, "credit-kill-b", out["bank"], "score", "scores")
    expected = local.output("bank", "score", "scores")
    assert list(scores["id"]) == list(expected["id"])
    # same trees: the decrypted gradient sums do not depend on the (fresh) keys
    assert scores["score"].to_numpy() == pytest.approx(expected["score"].to_numpy(), abs=1e-9)
