"""Compliance checks on a real job run between two node processes (a DP release: roles,
approvals, JR/T 0171 levels, the DP ledger and the audit chain all take part), through the API
and ``privfin assess job``; then the same store with an edited audit entry, and without one
party's approval, fails the matching mandatory check."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from privfin.assess.assess import assess_job
from privfin.assess.model import Perspective, Rating
from privfin.cli.main import app
from privfin.errors import ConfigError
from privfin.node.cluster import cluster_up
from privfin.node.config import load_config

pytestmark = pytest.mark.cluster

JOB = "assess-dp-1"


def _spec() -> dict[str, object]:
    return {
        "job": JOB,
        "purpose": "marketing statistics",
        "retention_days": 7,
        "parties": {
            "bank": {"datasets": {"loans": {"name": "loans", "fields": ["id", "grade"]}}},
            "shop": {},
        },
        "results": ["shop"],
        "steps": {
            "stats": {
                "component": "dp_release",
                "roles": {"bank": "data", "shop": "result"},
                "params": {
                    "query": "histogram",
                    "epsilon": 0.5,
                    "column": "grade",
                    "categories": ["A", "B"],
                },
                "inputs": {"table": "datasets.loans"},
            }
        },
    }


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bank's node.yaml after the job ran (the cluster is down again)."""
    root = tmp_path_factory.mktemp("assess-nodes")
    rng = np.random.default_rng(3)
    loans = pd.DataFrame({"id": [f"c{i}" for i in range(60)], "grade": rng.choice(["A", "B"], 60)})
    path = root / "loans.csv"
    loans.to_csv(path, index=False)
    cluster = cluster_up(
        ["bank", "shop"], root / "c", mode="development", datasets={"bank": {"loans": path}}
    )
    try:
        config = cluster.config_path("bank")
        res = CliRunner().invoke(
            app, ["data", "budget", "loans", "--config", str(config), "--epsilon", "1.0"]
        )
        assert res.exit_code == 0, res.output
        cluster.run_job(_spec(), timeout=120)
    finally:
        cluster.down()
    return Path(config)


def _copy(config: Path, dest: Path) -> Path:
    """A copy of the node's SQLite store (taken with SQLite's backup API)."""
    src = sqlite3.connect(load_config(config).store_url())
    dst = sqlite3.connect(dest)
    src.backup(dst)
    src.close()
    dst.close()
    return dest


def _checks(store: Path | str) -> dict[str, bool]:
    a = assess_job(store, JOB, node="bank")
    return {c.name: c.passed for c in a.perspectives[Perspective.COMPLIANCE].checks}


def test_assess_job_on_a_real_job_passes(node: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    res = CliRunner().invoke(
        app, ["assess", "job", JOB, "--node-config", str(node), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    data = json.loads((out / "report.json").read_text())
    assert data["kind"] == "job" and data["subject"] == JOB
    comp = next(p for p in data["perspectives"] if p["perspective"] == "compliance")
    assert comp["rating"] == 5, comp
    checks = {c["name"]: c for c in comp["checks"]}
    assert set(checks) == {
        "jrt0196-roles", "role-evidence", "approvals", "jrt0171-levels", "dp-budget",
        "audit-chain", "job-outcome",
    }  # fmt: skip
    assert all(c["passed"] for c in checks.values())
    assert all(c["clause"].startswith("JR/T 0") for c in checks.values())
    assert "signatures verified" in checks["approvals"]["detail"]
    assert checks["audit-chain"]["detail"].startswith("ok: ")
    assert "charged to the ledger and audited" in checks["dp-budget"]["detail"]
    assert "data parties ['bank']" in checks["jrt0196-roles"]["detail"]
    sec = next(p for p in data["perspectives"] if p["perspective"] == "security")
    assert sec["rating"] is not None and data["threat_model"] == "malicious"
    assert (out / "report.html").read_text().count("JR/T 0196-2020") >= 4
    # the state directory form and the default node name (from the audit log) agree
    a = assess_job(load_config(node).state_dir, JOB)
    assert a.perspectives[Perspective.COMPLIANCE].rating is Rating.EXCELLENT
    with pytest.raises(ConfigError, match="knows no job"):
        assess_job(load_config(node).state_dir, "no-such-job")
    # without --out the report goes to the node's state_dir/assessments (the dashboard's list)
    res = CliRunner().invoke(app, ["assess", "job", JOB, "--node-config", str(node)])
    assert res.exit_code == 0, res.output
    from privfin.node.dashboard.assessments import list_reports

    rows = list_reports(load_config(node).state_dir)
    assert [r["report"].subject for r in rows] == [JOB]
    assert rows[0]["name"].startswith(f"job-{JOB}-")
    res = CliRunner().invoke(app, ["assess", "job", "nope", "--node-config", str(node)])
    assert res.exit_code == 2 and "knows no job" in res.output


def test_an_edited_audit_entry_fails_the_chain(node: Path, tmp_path: Path) -> None:
    store = _copy(node, tmp_path / "edited.sqlite")
    with sqlite3.connect(store) as db:
        seq = db.execute(
            "SELECT seq FROM audit_entries WHERE action = 'data_access' AND job = ?", (JOB,)
        ).fetchone()[0]
        db.execute(
            'UPDATE audit_entries SET evidence = \'{"fields": ["grade"]}\' WHERE seq = ?',
            (seq,),
        )
    checks = _checks(store)
    assert checks["audit-chain"] is False
    assert checks["approvals"] is True
    a = assess_job(store, JOB, node="bank")
    comp = a.perspectives[Perspective.COMPLIANCE]
    assert comp.rating is not None and comp.rating <= Rating.WEAK
    assert any("audit-chain" in r and f"seq {seq}" in r for r in comp.reasons)


def test_a_missing_approval_fails(node: Path, tmp_path: Path) -> None:
    store = _copy(node, tmp_path / "unapproved.sqlite")
    with sqlite3.connect(store) as db:
        assert db.execute("DELETE FROM decisions WHERE party = 'shop'").rowcount
    checks = _checks(store)
    assert checks["approvals"] is False
    assert checks["audit-chain"] is True
    comp = assess_job(store, JOB, node="bank").perspectives[Perspective.COMPLIANCE]
    assert comp.rating is Rating.WEAK
    assert any("MISSING: ['shop']" in r for r in comp.reasons)


def test_a_c3_field_read_fails_the_jrt0171_check(node: Path, tmp_path: Path) -> None:
    store = _copy(node, tmp_path / "c3.sqlite")
    with sqlite3.connect(store) as db:
        accessed = [
            json.loads(e)["fields"]
            for (e,) in db.execute(
                "SELECT evidence FROM audit_entries WHERE action = 'data_access' AND job = ?",
                (JOB,),
            )
        ]
        assert accessed and all(isinstance(f, list) and "grade" in f for f in accessed)
        # the registry (re)classifies the field the job read as C3
        (fields,) = db.execute(
            "SELECT fields FROM registry_datasets WHERE name = 'loans'"
        ).fetchone()
        levels = [[n, t, "C3" if n == "grade" else lv] for n, t, lv in json.loads(fields)]
        db.execute(
            "UPDATE registry_datasets SET fields = ? WHERE name = 'loans'", (json.dumps(levels),)
        )
    a = assess_job(store, JOB, node="bank")
    comp = a.perspectives[Perspective.COMPLIANCE]
    checks = {c.name: c for c in comp.checks}
    assert not checks["jrt0171-levels"].passed
    assert "loans.grade" in checks["jrt0171-levels"].detail
    assert checks["audit-chain"].passed  # the registry is not the audit log
    assert comp.rating is Rating.WEAK
