"""Streaming sources and the ``privfin psi`` command on local files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from privfin.cli.psi import psi
from privfin.errors import ConfigError
from privfin.psi.sources import iter_id_chunks


def test_iter_chunks_csv_and_parquet(tmp_path: Path) -> None:
    df = pd.DataFrame({"id": [f"c{i}" for i in range(10)], "v": range(10)})
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_parquet(tmp_path / "a.parquet")
    for name in ("a.csv", "a.parquet"):
        chunks = list(iter_id_chunks(tmp_path / name, "id", chunk_rows=4))
        assert [len(c) for c in chunks] == [4, 4, 2]
        assert [x for c in chunks for x in c] == df["id"].tolist()
    with pytest.raises(ConfigError, match="no column"):
        list(iter_id_chunks(tmp_path / "a.csv", "nope"))


def test_cli_two_files(tmp_path: Path) -> None:
    pd.DataFrame({"id": ["a", "b", " c", "d"], "x": [1, 2, 3, 4]}).to_csv(
        tmp_path / "a.csv", index=False
    )
    pd.DataFrame({"id": ["c", "b", "z"], "y": [30, 20, 0]}).to_parquet(tmp_path / "b.parquet")
    app = typer.Typer()
    app.command()(psi)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "--party",
            f"A={tmp_path / 'a.csv'}",
            "--party",
            f"B={tmp_path / 'b.parquet'}",
            "--id-column",
            "id",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    a = pd.read_csv(out / "A.csv")
    b = pd.read_csv(out / "B.csv")
    assert a["x"].tolist() == [2, 3]
    assert b["y"].tolist() == [20, 30]
    assert json.loads((out / "summary.json").read_text())["A"]["size"] == 2


@pytest.mark.parametrize("curve", ["x25519", "ristretto255", "p256"])
def test_cli_curve_option(tmp_path: Path, curve: str) -> None:
    pd.DataFrame({"id": ["a", "b", "c"]}).to_csv(tmp_path / "a.csv", index=False)
    pd.DataFrame({"id": ["c", "a", "q"]}).to_csv(tmp_path / "b.csv", index=False)
    app = typer.Typer()
    app.command()(psi)
    out = tmp_path / "out"
    args = ["--party", f"A={tmp_path / 'a.csv'}", "--party", f"B={tmp_path / 'b.csv'}"]
    args += ["--out", str(out), "--transport", "memory", "--curve", curve]
    res = CliRunner().invoke(app, args)
    if curve == "p256":
        assert res.exit_code != 0
        assert isinstance(res.exception, ConfigError)
        assert "curve" in str(res.exception)
        return
    assert res.exit_code == 0, res.output
    assert pd.read_csv(out / "A.csv")["id"].tolist() == ["a", "c"]
