"""Setting up: ``privfin init`` writes a complete node.yaml a node starts from;
``privfin cluster up --dataset PARTY:NAME=PATH`` registers local files; mistakes are one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.node.config import load_config


def test_init_writes_a_complete_node_yaml(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["init", "--party", "bank", "--dir", str(tmp_path), "--port", "9443"]
    )
    assert res.exit_code == 0, res.output
    cfg = load_config(tmp_path / "node.yaml")
    assert cfg.party == "bank" and cfg.port == 9443 and cfg.mode == "production"
    assert cfg.cert == tmp_path / "bank.crt" and cfg.key == tmp_path / "bank.key"
    assert cfg.operator_url() == "http://127.0.0.1:9444"
    assert (tmp_path / "bank.key").stat().st_mode & 0o077 == 0
    assert "fingerprint: sha256:" in res.output
    again = CliRunner().invoke(app, ["init", "--party", "bank", "--dir", str(tmp_path)])
    assert again.exit_code != 0 or "kept the existing" in again.output


@pytest.mark.cluster
def test_cluster_up_with_datasets(tmp_path: Path) -> None:
    data = tmp_path / "loans.csv"
    data.write_text("id,x\nA,1\nB,2\n")
    runner = CliRunner()
    for bad, why in (
        ("a:loans", "must be PARTY:NAME=PATH"),
        ("z:loans=" + str(data), "no party 'z'"),
        ("a:loans=/nope.csv", "no file"),
    ):
        res = runner.invoke(
            app,
            ["cluster", "up", "--parties", "a,b", "--dir", str(tmp_path / "c"), "--dataset", bad],
        )
        assert res.exit_code == 2 and why in res.output, res.output
    # in a subprocess, as a user runs it (the node processes outlive the command)
    up = subprocess.run(
        [
            sys.executable,
            "-c",
            "from privfin.cli.main import main; main()",
            *("cluster", "up", "--parties", "a,b", "--dir", str(tmp_path / "c")),
            *("--mode", "development", "--dataset", f"a:loans={data}"),
            *("--dataset", f"b:loans={data}"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        assert up.returncode == 0, up.stderr
        shown = runner.invoke(
            app, ["data", "list", "--config", str(tmp_path / "c" / "a" / "node.yaml")]
        )
        assert "loans" in shown.output
        # job run on a local cluster: a pipeline is proposed by a and approved by b
        spec = tmp_path / "psi.yaml"
        spec.write_text(
            "job: psi-run\npurpose: alignment\n"
            "parties: {a: {datasets: {t: loans}}, b: {datasets: {t: loans}}}\n"
            "results: [a]\nsteps:\n  psi:\n    component: psi\n"
            "    roles: {a: receiver, b: sender}\n    inputs: {table: datasets.t}\n"
        )
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                "from privfin.cli.main import main; main()",
                "job",
                "run",
                "--spec",
                str(spec),
                "--dir",
                str(tmp_path / "c"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert "b: approved" in run.stdout and "a: done: psi (2 files)" in run.stdout
    finally:
        runner.invoke(app, ["cluster", "down", "--dir", str(tmp_path / "c")])


@pytest.mark.cluster
def test_cluster_up_retries_when_a_port_was_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port picked as free can be taken by another program before the node binds it: the
    node exits at once (no 60 s wait) and the cluster starts again on other ports."""
    import socket

    from privfin.node import cluster as cluster_mod

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    real = cluster_mod.free_port
    calls = iter([port])
    monkeypatch.setattr(cluster_mod, "free_port", lambda: next(calls, None) or real())
    try:
        c = cluster_mod.cluster_up(["a", "b"], tmp_path / "c", mode="development")
        try:
            assert port not in {info["port"] for info in c.parties.values()}
            c.wait_healthy()
        finally:
            c.down()
        calls = iter([port])
        monkeypatch.setattr(cluster_mod, "free_port", lambda: next(calls, None) or real())
        with pytest.raises(cluster_mod.NodeDied, match="in use"):
            cluster_mod.cluster_up(["a", "b"], tmp_path / "d", mode="development", retries=0)
    finally:
        taken.close()
