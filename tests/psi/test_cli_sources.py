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


@pytest.mark.parametrize("chunk_rows", [1, 3, 250_000])
def test_output_rows_reread_from_csv(tmp_path: Path, chunk_rows: int) -> None:
    from privfin.cli.psi import _csv_rows

    # blank lines are skipped as the node's reader skips them; cells are kept verbatim
    (tmp_path / "a.csv").write_text("id,x\nb,1\n\nNA,\n c ,3\nd,4\n\n")
    full = pd.read_csv(tmp_path / "a.csv", dtype=str, keep_default_na=False)
    for wanted in ([2, 0], [3], [0, 1, 2, 3], []):
        frames = _csv_rows(tmp_path / "a.csv", wanted, chunk_rows)
        got = pd.concat(frames).loc[wanted] if wanted else frames[0].iloc[:0]
        assert got.equals(full.iloc[wanted]), wanted
    assert full["id"].tolist()[1:3] == ["NA", " c "]


def test_node_stop_runs_in_background_and_reports_errors() -> None:
    from privfin.cli.psi import _Background

    calls: list[str] = []
    never_started = _Background(lambda: calls.append("ran"))
    never_started.finish()  # not started: runs in the caller
    assert calls == ["ran"]

    def fail() -> None:
        raise RuntimeError("node did not stop")

    failing = _Background(fail)
    failing.start()
    with pytest.raises(RuntimeError, match="did not stop"):
        failing.finish()
