"""A column that is not there is reported with the file (or input) it was looked up in and the
columns that are there, never as ``KeyError: 'default'``; command-line mistakes (``--out`` a
file, a party name with a space) are one-line errors, not tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from privfin.config import Settings
from privfin.data.loaders import read_table
from privfin.data.validate import column_of
from privfin.errors import ConfigError
from privfin.runtime import simulate

DEV = Settings(mode="development")
KEYS = {"key_bits": 768, "insecure_allow_small_keys": True}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n = 40
    guest = pd.DataFrame({"id": [f"c{i}" for i in range(n)], "y": rng.integers(0, 2, n)})
    guest["x0"], guest["x1"] = rng.normal(size=n), rng.normal(size=n)
    host = pd.DataFrame({"id": guest["id"], "h0": rng.normal(size=n), "h1": rng.normal(size=n)})
    paths = {"bank": tmp_path / "bank.csv", "telco": tmp_path / "telco.parquet"}
    guest.to_csv(paths["bank"], index=False)
    host.to_parquet(paths["telco"], index=False)
    return paths


def _tables(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {p: {"table": read_table(f)} for p, f in files.items()}


def test_column_of_names_the_file_and_lists_the_columns(files: dict[str, Path]) -> None:
    bank = read_table(files["bank"])
    assert column_of(bank, "y").tolist() == bank["y"].tolist()
    with pytest.raises(ConfigError) as info:
        column_of(bank, "default", what="label")
    assert str(info.value) == (
        f"input 'table' (file {files['bank']}) has no label column 'default'; "
        "columns: id, y, x0, x1"
    )
    telco = read_table(files["telco"])
    with pytest.raises(
        ConfigError, match=r"telco\.parquet\) has no id column 'ID'; columns: id, h0"
    ):
        column_of(telco, "ID", what="id")
    # The path is not written into the table (pandas stores attrs in Parquet metadata).
    assert not telco.attrs
    telco.to_parquet(files["telco"].with_name("out.parquet"))
    assert str(files["telco"]) not in str(pq.read_schema(files["telco"].with_name("out.parquet")))
    # A table derived from it is named by its input only.
    with pytest.raises(ConfigError, match=r"^input 'table' has no column 'ID'"):
        column_of(telco.iloc[5:], "ID")
    # A table built in memory is named by its input; long schemas are cut.
    wide = pd.DataFrame(np.zeros((1, 50)), columns=[f"c{j}" for j in range(50)])
    with pytest.raises(ConfigError) as info:
        column_of(wide, "x", source="input 'X'")
    assert str(info.value).startswith("input 'X' has no column 'x'; columns: c0, c1,")
    assert str(info.value).endswith("c39, ... (10 more)")
    assert column_of({"a": [1], "b": [2]}, "b") == [2]  # a mapping of columns is a table too
    with pytest.raises(ConfigError, match="has no column 'c'; columns: a, b"):
        column_of({"a": [1], "b": [2]}, "c")
    with pytest.raises(ConfigError, match="must be a table with named columns"):
        column_of(np.zeros((2, 2)), "y")


VERTICAL = {"bank": ["guest"], "telco": ["host"]}


@pytest.mark.parametrize(
    ("component", "roles", "params"),
    [
        ("hetero_lr", {**VERTICAL, "arb": ["arbiter"]},
         {**KEYS, "feature_counts": {"bank": 3, "telco": 2}}),
        ("secureboost", VERTICAL, {"key_bits": 1024, "insecure_allow_small_keys": True}),
        ("hetero_binning", VERTICAL, KEYS),
        ("ss_lr", {"bank": ["data", "compute", "result"], "telco": ["data", "compute"]},
         {"features": {"bank": ["x0"], "telco": ["h0"]}, "triples": "dealer"}),
    ],
)  # fmt: skip
def test_a_wrong_label_column_names_the_file(
    files: dict[str, Path], component: str, roles: dict[str, list[str]], params: dict[str, Any]
) -> None:
    from privfin.jobs.registry import get_component

    label: Any = "default"
    if component == "ss_lr":
        label = {"party": "bank", "column": "default"}
    inputs = _tables(files)
    with pytest.raises(ConfigError) as info:
        simulate(
            get_component(component), roles, params={**params, "label": label}, inputs=inputs,
            settings=DEV, seed=1, timeout=30,
        )  # fmt: skip
    msg = str(info.value)
    assert f"(file {files['bank']}) has no label column 'default'" in msg, msg
    assert msg.endswith("columns: id, y, x0, x1"), msg


@pytest.mark.parametrize(
    ("component", "params", "inputs", "expected"),
    [
        ("mpc_stats", {"columns": {"bank": ["x0"], "telco": ["h9"]}, "triples": "dealer"}, None,
         "data party 'telco': input 'table' (file {telco}) has no column 'h9'; "
         "columns: id, h0, h1"),
        ("psi", {"id_column": "customer"}, None,
         "input 'table' (file {bank}) has no id column 'customer'; columns: id, y, x0, x1"),
        ("exposure", {"ids": ["c1"]}, "loans",
         "input 'loans' (file {bank}) has no column 'outstanding_cents'; columns: id, y, x0, x1"),
    ],
)  # fmt: skip
def test_other_column_lookups_name_the_file(
    files: dict[str, Path], component: str, params: dict[str, Any], inputs: str | None,
    expected: str,
) -> None:  # fmt: skip
    from privfin.jobs.registry import get_component

    roles: dict[str, list[str]] = {
        "mpc_stats": {"bank": ["data", "compute", "result"], "telco": ["data", "compute"]},
        "psi": {"bank": ["receiver"], "telco": ["sender"]},
        "exposure": {"bank": ["lender", "result"], "telco": ["lender"]},
    }[component]
    tables = _tables(files)
    # Only one party's lookup fails (which party fails first would be a race otherwise).
    if component == "psi":
        tables["telco"]["table"] = tables["telco"]["table"].rename(columns={"id": "customer"})
    if component == "exposure":
        tables["telco"]["table"] = tables["telco"]["table"].assign(outstanding_cents=100)
    if inputs:
        tables = {p: {inputs: t["table"]} for p, t in tables.items()}
    with pytest.raises(ConfigError) as info:
        simulate(
            get_component(component), roles, params=params, inputs=tables, settings=DEV,
            seed=1, timeout=30,
        )  # fmt: skip
    assert str(info.value) == expected.format(**{p: f for p, f in files.items()})


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "privfin.cli.main", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_cli_mistakes_are_one_line_errors(files: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    bank, telco = f"bank={files['bank']}", f"telco={files['telco']}"
    for args, expected in [
        (["--out", "taken"], "error: --out taken is a file; give a directory"),
        (["--out", "o"], None),
    ]:
        run = _cli("psi", "--party", bank, "--party", telco, "--transport", "memory", *args,
                   cwd=tmp_path)  # fmt: skip
        if expected is None:
            assert run.returncode == 0, run.stderr
            assert (tmp_path / "o" / "bank.csv").is_file()
            continue
        assert run.returncode == 2 and run.stderr.startswith(expected), run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    spaced = _cli("psi", "--party", f"my bank={files['bank']}", "--party", telco, "--out", "o2",
                  cwd=tmp_path)  # fmt: skip
    assert spaced.returncode == 2, spaced.stderr
    assert spaced.stderr.strip() == (
        "error: party 'my bank' must be 1-64 characters of letters, digits, _ . - (not only dots)"
    )
    assert not (tmp_path / "o2").exists()  # refused before anything was started or written
    init = _cli("init", "--party", "my bank", "--dir", "keys", cwd=tmp_path)
    assert init.returncode == 2 and len(init.stderr.strip().splitlines()) == 1, init.stderr
    assert "party 'my bank' must be" in init.stderr
