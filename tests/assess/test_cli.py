"""``privfin assess`` end to end with hand-made measurements and attacks standing in for
privfin.assess.measure / .attacks: progress on stderr, report.json + report.html (+ pdf), a
usage error in one line with exit code 2; and the dashboard's Assessments page lists and shows
a stored report (escaped), serves its files as downloads and refuses other paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from privfin.assess.report import find_chromium, load_report
from privfin.cli.main import app

from ._handmade import HOSTILE, patch_parts

TECHS = "vfl-he,mpc,tee,dp-central,pooled-plaintext"


def test_assess_technology_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    patch_parts(monkeypatch)
    out = tmp_path / "t"
    res = CliRunner().invoke(app, ["assess", "technology", "mpc", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "mpc: deviating-party probes" in res.output  # progress
    assert "mpc: measuring (hand-made)" in res.output
    assert "functionality=5" in res.output
    a = load_report(out / "report.json")
    assert a.to_dict()["subject"] == "mpc"
    assert "<svg" in (out / "report.html").read_text()


def test_assess_compare_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    patch_parts(monkeypatch)
    out = tmp_path / "c"
    args = ["assess", "compare", "--scenario", "credit", "--technologies", TECHS,
            "--out", str(out)]  # fmt: skip
    if find_chromium() is not None:
        args.append("--pdf")
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    data = json.loads((out / "report.json").read_text())
    assert data["scenario"] == "credit"
    assert [a["subject"] for a in data["assessments"]] == TECHS.split(",")
    if find_chromium() is not None:
        assert (out / "report.pdf").read_bytes().startswith(b"%PDF-")
    bad = CliRunner().invoke(
        app, ["assess", "compare", "--scenario", "credit", "--technologies", "mpc,nope"]
    )
    assert bad.exit_code == 2 and "unknown technology 'nope'" in bad.output


def test_dashboard_assessments_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.test_dashboard_web import Node
    from privfin.assess.assess import assess_technology
    from privfin.assess.model import Assessment
    from privfin.assess.report import write_report

    patch_parts(monkeypatch)
    node = Node(tmp_path)
    try:
        a = assess_technology("psi")
        hostile = Assessment(
            "job", HOSTILE, a.threat_model, HOSTILE, a.perspectives, a.created, a.environment
        )
        root = node.config.state_dir / "assessments"
        write_report(a, root / "technology-psi-1")
        write_report(hostile, root / "job-x-2")
        (root / "job-broken-3").mkdir()
        (root / "job-broken-3" / "report.json").write_text("{}")
        node.login()
        page = node.client.get("/assessments")
        assert page.status_code == 200
        assert 'href="/assessments"' in page.text and 'aria-current="page"' in page.text
        for name in ("technology-psi-1", "job-x-2", "job-broken-3"):
            assert f'href="/assessments/{name}"' in page.text
        assert "unreadable" in page.text and "<script>alert" not in page.text
        one = node.client.get("/assessments/job-x-2")
        assert one.status_code == 200
        assert "<script>alert" not in one.text and "&lt;script&gt;" in one.text
        assert 'class="radar"' in one.text and "Ratings and reasons" in one.text
        assert "probe: edited audit entry" in one.text
        dl = node.client.get("/assessments/job-x-2/report.html")
        assert dl.status_code == 200 and dl.headers["content-disposition"].startswith("attachment")
        for bad in ("/assessments/..%2Fstate", "/assessments/job-x-2/node.sqlite",
                    "/assessments/job-broken-3", "/assessments/nothing"):  # fmt: skip
            assert node.client.get(bad).status_code == 404, bad
    finally:
        node.close()
