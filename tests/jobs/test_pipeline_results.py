"""Results as files, models exported from one job and imported to score in a later one, and
many pipelines at once on the same nodes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.errors import ProtocolAbort
from privfin.node.cluster import cluster_up

from ._pipeline_data import SMALL_KEYS, pipeline_spec, split

pytestmark = pytest.mark.cluster


def _datasets(tmp_path: Path) -> dict[str, dict[str, Path]]:
    out: dict[str, dict[str, Path]] = {}
    for party, tables in split().items():
        for name, df in tables.items():
            path = tmp_path / "data" / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            df.to_parquet(path, index=False)
            out.setdefault(party, {})[name] = path
    return out


def _train_and_score(job: str) -> dict[str, Any]:
    spec = pipeline_spec(job)
    spec["steps"] = {
        k: v for k, v in spec["steps"].items() if k in ("psi", "train", "psi_new", "score")
    }
    return spec


def _cli(*args: str) -> Any:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


def test_results_export_import_and_score_in_a_later_job(tmp_path: Path) -> None:
    cluster = cluster_up(
        ["bank", "telco"], tmp_path / "c", mode="development", datasets=_datasets(tmp_path)
    )
    c = str(tmp_path / "c")
    try:
        first = tmp_path / "first.yaml"
        first.write_text(yaml.safe_dump(_train_and_score("sb-train"), sort_keys=False))
        _cli("job", "submit", str(first), "--dir", c)
        with cluster.client("telco") as client:
            client.wait_proposal("sb-train")
        inbox = _cli("job", "inbox", "--dir", c, "--party", "telco").output
        assert "sb-train: pending (proposed by bank)" in inbox
        assert "dataset train: telco_train: id (C2)" in inbox
        _cli("job", "approve", "sb-train", "--dir", c, "--party", "telco")
        for party in ("bank", "telco"):
            res = _cli("job", "status", "sb-train", "--dir", c, "--party", party, "--watch")
            assert "done" in res.output
        logs = _cli("job", "logs", "sb-train", "--dir", c, "--party", "bank").output
        for event in (
            "proposal_sent",
            "approval",
            "job_started",
            "data_access",
            "step_done",
            "job_finished",
        ):
            assert event in logs, (event, logs)
        # results: this party's files and a manifest with digests and lineage
        out = tmp_path / "results"
        res = _cli("job", "results", "sb-train", "--dir", c, "--party", "bank", "--out", str(out))
        manifest = json.loads((out / "manifest.json").read_text())
        files = {f["file"] for f in manifest["files"]}
        assert {"psi/aligned.parquet", "train/model.json", "score/scores.csv"} <= files
        first_scores = pd.read_csv(out / "score" / "scores.csv")
        assert list(first_scores.columns) == ["id", "score"]
        # the telco gets no scores
        tout = tmp_path / "telco-results"
        _cli("job", "results", "sb-train", "--dir", c, "--party", "telco", "--out", str(tout))
        assert not (tout / "score").exists()
        # a file given as --out is a one-line error, no traceback
        bad = CliRunner().invoke(
            app,
            [
                "job",
                "results",
                "sb-train",
                "--dir",
                c,
                "--party",
                "bank",
                "--out",
                str(out / "manifest.json"),
            ],
        )
        assert bad.exit_code == 2 and "is a file" in bad.output and "Traceback" not in bad.output
        # export each party's slice, import it under a name, score in a new job
        for party in ("bank", "telco"):
            f = tmp_path / f"{party}-model.json"
            _cli(
                "model",
                "export",
                "--job",
                "sb-train",
                "--step",
                "train",
                "--out",
                str(f),
                "--dir",
                c,
                "--party",
                party,
            )
            _cli("model", "import", str(f), "--name", "sb", "--dir", c, "--party", party)
        res = _cli("model", "list", "--dir", c, "--party", "bank")
        assert "secureboost" in res.output
        later = _train_and_score("sb-score")
        later["steps"] = {"psi_new": later["steps"]["psi_new"], "score": later["steps"]["score"]}
        later["steps"]["score"]["inputs"]["model"] = "models.sb"
        for party in ("bank", "telco"):
            later["parties"][party]["models"] = {"sb": "sb"}
        second = tmp_path / "second.yaml"
        second.write_text(yaml.safe_dump(later, sort_keys=False))
        _cli("job", "validate", str(second))
        _cli("job", "submit", str(second), "--dir", c)
        with cluster.client("telco") as client:
            client.wait_proposal("sb-score")
        _cli("job", "approve", "sb-score", "--dir", c, "--party", "telco")
        _cli("job", "status", "sb-score", "--dir", c, "--party", "bank", "--watch")
        out2 = tmp_path / "results2"
        _cli("job", "results", "sb-score", "--dir", c, "--party", "bank", "--out", str(out2))
        second_scores = pd.read_csv(out2 / "score" / "scores.csv")
        pd.testing.assert_frame_equal(second_scores, first_scores)
        # a model file with an unknown format version is refused with a clear reason
        env = json.loads((tmp_path / "bank-model.json").read_text())
        env["format_version"] = 99
        (tmp_path / "future.json").write_text(json.dumps(env))
        res = CliRunner().invoke(
            app,
            [
                "model",
                "import",
                str(tmp_path / "future.json"),
                "--name",
                "future",
                "--dir",
                c,
                "--party",
                "bank",
            ],
        )
        assert res.exit_code != 0
        _audit_trail(cluster)
    finally:
        cluster.down()


def _audit_trail(cluster: Any) -> None:
    """Every data access, step, job end, result delivery and model import is in the bank's
    hash-chained audit log; ``privfin audit verify`` passes, and fails once an entry is
    edited."""
    import sqlalchemy as sa

    from privfin.audit.sealer import read_heads
    from privfin.node.config import load_config
    from privfin.store import open_engine

    cfg = cluster.config_path("bank")
    # the node sealed its log when each job ended (housekeeping: may lag a moment)
    heads_file = load_config(cfg).heads_file()
    deadline = time.monotonic() + 20
    while not heads_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert read_heads(heads_file), "no signed head written at a job's end"
    verified = _cli("audit", "verify", "--config", str(cfg))
    assert "signed heads matched" in verified.output, verified.output
    engine = open_engine(load_config(cfg).store_url())
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT seq, action, job, dataset FROM audit_entries"))
            entries = [tuple(r) for r in rows]
        actions = [e[1] for e in entries]
        for action in (
            "job_started",
            "data_access",
            "step_started",
            "step_done",
            "job_finished",
            "result_delivered",
            "artifact_imported",
            "checkpoint",
        ):
            assert action in actions, action
        assert ("data_access", "sb-train", "bank_train") in [e[1:] for e in entries]
        seq = next(e[0] for e in entries if e[1] == "data_access")
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE audit_entries SET dataset = 'other' WHERE seq = :s"), {"s": seq}
            )
    finally:
        engine.dispose()
    res = CliRunner().invoke(app, ["audit", "verify", "--config", str(cfg)])
    assert res.exit_code == 1 and str(seq) in res.output, res.output


def test_ten_concurrent_pipelines(tmp_path: Path) -> None:
    """Ten pipelines submitted at once to the same two nodes all complete, each with its own
    results (PSI, hetero LR, scoring)."""
    cluster = cluster_up(
        ["bank", "telco"], tmp_path / "c", mode="development", datasets=_datasets(tmp_path)
    )
    try:
        specs = []
        for i in range(10):
            spec = pipeline_spec(f"many-{i}")
            spec["steps"] = {
                k: v for k, v in spec["steps"].items() if k in ("psi", "lr", "lr_score")
            }
            spec["steps"]["lr"]["params"]["max_iter"] = 1
            specs.append(spec)
        for spec in specs:
            with cluster.client("bank") as client:
                client.propose(spec)
        for spec in specs:
            with cluster.client("telco") as client:
                client.wait_proposal(spec["job"])
                client.decide(spec["job"], "approve")
        for spec in specs:
            for party in ("bank", "telco"):
                with cluster.client(party) as client:
                    status = client.wait(spec["job"], timeout=600)
                assert all(s["status"] == "done" for s in status["steps"].values())
            with cluster.client("bank") as client:
                names = {(a["step"], a["name"]) for a in client.artifacts(spec["job"])}
            assert ("lr_score", "scores") in names
        # a job over its timeout stops at every party
        slow = pipeline_spec("too-slow")
        slow["timeout"] = 2.0
        slow["steps"] = {k: v for k, v in slow["steps"].items() if k in ("psi", "train")}
        slow["steps"]["train"]["params"]["n_trees"] = 200
        with cluster.client("bank") as client:
            client.propose(slow)
        with cluster.client("telco") as client:
            client.wait_proposal("too-slow")
            client.decide("too-slow", "approve")
        for party in ("bank", "telco"):
            with cluster.client(party) as client, pytest.raises(ProtocolAbort):
                client.wait("too-slow", timeout=120)
        with cluster.client("bank") as client:
            # its own timeout, or the telco's (whose abort may arrive first, saying why)
            error = client.status("too-slow")["error"]
            assert "job timeout" in error or (
                "party 'telco' aborted the job: telco: the job's time limit was reached" in error
            )
    finally:
        cluster.down()


del SMALL_KEYS
