"""The insecure-mode refusal gives advice that works: the environment variables it names are
read where simulations and estimators build their default settings, and ``privfin simulate``
takes ``--mode development``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.config import Settings
from privfin.errors import ConfigError, InsecureModeError
from privfin.mpc.stats import mpc_stats
from privfin.runtime import simulate

ROLES = {"a": ("data", "compute", "result"), "b": ("data", "compute")}
TABLES = {"a": pd.DataFrame({"x": [1.0, 2.0, 3.0]}), "b": pd.DataFrame({"z": [4.0, 5.0, 6.0]})}
PARAMS = {"columns": {"a": ["x"], "b": ["z"]}, "statistics": ["sum"], "triples": "dealer"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PRIVFIN_MODE", raising=False)
    monkeypatch.delenv("PRIVFIN_ALLOW_INSECURE", raising=False)


def _dealer_job() -> dict[str, object]:
    return simulate(
        mpc_stats, ROLES, params=PARAMS, seed=1,
        inputs={p: {"table": t} for p, t in TABLES.items()},
    )  # fmt: skip


def test_settings_from_env() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"PRIVFIN_ALLOW_INSECURE": "1"}).allow_insecure
    assert Settings.from_env({"PRIVFIN_MODE": "Development"}).mode == "development"
    assert not Settings.from_env({"PRIVFIN_ALLOW_INSECURE": "0"}).allow_insecure
    with pytest.raises(ConfigError, match="PRIVFIN_ALLOW_INSECURE"):
        Settings.from_env({"PRIVFIN_ALLOW_INSECURE": "maybe"})
    with pytest.raises(ConfigError, match="mode"):
        Settings.from_env({"PRIVFIN_MODE": "prod"})


def test_dealer_refusal_names_the_secure_alternative_and_switches_that_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(InsecureModeError) as info:
        _dealer_job()
    msg = str(info.value)
    assert "triples='ot'" in msg  # the secure alternative first
    assert "PRIVFIN_ALLOW_INSECURE=1" in msg and "PRIVFIN_MODE=development" in msg
    assert "privfin simulate --mode development" in msg
    # Following the advice works.
    monkeypatch.setenv("PRIVFIN_ALLOW_INSECURE", "1")
    assert _dealer_job()["a"]["sum"] == pytest.approx([6.0, 15.0], abs=1e-3)
    monkeypatch.delenv("PRIVFIN_ALLOW_INSECURE")
    monkeypatch.setenv("PRIVFIN_MODE", "development")
    assert _dealer_job()["a"]["sum"] == pytest.approx([6.0, 15.0], abs=1e-3)
    # An explicit Settings wins over the environment.
    with pytest.raises(InsecureModeError):
        simulate(
            mpc_stats, ROLES, params=PARAMS, seed=1, settings=Settings(),
            inputs={p: {"table": t} for p, t in TABLES.items()},
        )  # fmt: skip


def test_simulate_command_takes_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for party, table in TABLES.items():
        table.to_csv(tmp_path / f"{party}.csv", index=False)
    spec = {
        "component": "mpc_stats",
        "roles": {p: list(r) for p, r in ROLES.items()},
        "params": PARAMS,
        "inputs": {"a": {"table": "a.csv"}, "b": {"table": "b.csv"}},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(spec))
    cmd = ["simulate", "--spec", str(tmp_path / "job.yaml"), "--seed", "1"]
    refused = CliRunner().invoke(app, cmd)
    assert isinstance(refused.exception, InsecureModeError)
    assert "--mode development" in str(refused.exception)
    for extra, env in ((["--mode", "development"], None), ([], "1")):
        if env:
            monkeypatch.setenv("PRIVFIN_ALLOW_INSECURE", env)
        ok = CliRunner().invoke(app, cmd + extra)
        assert ok.exit_code == 0, ok.output
        assert 'a: {"columns": ["x", "z"], "sum": [6.0, 15.0]}' in ok.output
    monkeypatch.delenv("PRIVFIN_ALLOW_INSECURE")
    production = CliRunner().invoke(app, [*cmd, "--mode", "production"])
    assert isinstance(production.exception, InsecureModeError)
    bad = CliRunner().invoke(app, [*cmd, "--mode", "dev"])
    assert isinstance(bad.exception, ConfigError) and "mode must be one of" in str(bad.exception)
