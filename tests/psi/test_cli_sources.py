"""Streaming sources and the ``privfin psi`` command on local files."""

from __future__ import annotations

import json
import random
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


def test_plain_rows_are_copied_as_pandas_writes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[16] The output of a plain CSV input is copied line by line (no pandas) and is the
    file pandas would write; any other input (or row number) takes the pandas path."""
    from privfin.cli import psi as cli_psi

    rng = random.Random(16)
    cells = ["a", " b", "c ", "NA", "", "-1", "x y", "é", "0.50", "#"]
    copied = 0
    for i in range(60):
        width = rng.randint(1, 3)
        lines = [",".join(f"c{j}" for j in range(width))]
        for _ in range(rng.randint(1, 12)):
            row = [rng.choice(cells) for _ in range(width)]
            lines.append(",".join(row) if width > 1 or row[0].strip() else "v")
        file = tmp_path / f"in{i}.csv"
        file.write_text("\n".join(lines) + ("\n" if i % 2 else ""))
        n = len(lines) - 1
        wanted = rng.sample(range(n), rng.randint(0, n))
        fast, slow = tmp_path / f"fast{i}.csv", tmp_path / f"slow{i}.csv"
        copied += cli_psi._copy_plain_rows(file, wanted, fast, batch=rng.randint(1, 4))
        with monkeypatch.context() as m:
            m.setattr(cli_psi, "_copy_plain_rows", lambda *a, **k: False)
            cli_psi._write_rows(file, wanted, slow)
        assert fast.read_bytes() == slow.read_bytes(), (file.read_text(), wanted)
    assert copied == 60
    # not plain (a blank line), or a row number out of range: nothing copied
    (tmp_path / "blank.csv").write_text("id\na\n\nb\n")
    assert not cli_psi._copy_plain_rows(tmp_path / "blank.csv", [0], tmp_path / "x.csv")
    assert not cli_psi._copy_plain_rows(tmp_path / "in0.csv", [99], tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("normalize", ["exact", "trim", "trim_casefold"])
@pytest.mark.parametrize("chunk_rows", [3, 250_000])
def test_ids_read_as_line_bytes_prepare_as_strings_do(
    tmp_path: Path, normalize: str, chunk_rows: int
) -> None:
    """[16] a plain one-column CSV's chunks are its lines' bytes (``IdLines``), which
    ``prepare_ids`` reads without a ``str`` per id: the same keys, rows, spellings and
    counts as the ids given as strings (spaces, case, repeats, a non-ASCII chunk)."""
    from privfin.psi.ids import IdLines, prepare_ids

    rng = random.Random(chunk_rows)
    ids = [f"u-{rng.randrange(40)}" for _ in range(60)]
    ids += [" u-1", "U-2 ", "u-3\t", "é-1", "u-1", "x", "X"]
    path = tmp_path / "ids.csv"
    path.write_text("id\n" + "\n".join(ids) + "\n", encoding="utf-8")
    chunks = list(iter_id_chunks(path, "id", chunk_rows))
    assert all(isinstance(c, IdLines) for c in chunks)
    assert [x for c in chunks for x in c] == ids
    got = prepare_ids(iter_id_chunks(path, "id", chunk_rows), normalize, chunked=True)
    want = prepare_ids(
        ([str(x) for x in c] for c in iter_id_chunks(path, "id", chunk_rows)),
        normalize,
        chunked=True,
    )
    assert len(got) == len(want) > 30
    assert [got.key_bytes(i) for i in range(len(got))] == [
        want.key_bytes(i) for i in range(len(want))
    ]
    assert list(got._rows) == list(want._rows) and got._orig == want._orig
    counts = ("n_input", "n_missing", "n_duplicates")
    assert [getattr(got, c) for c in counts] == [getattr(want, c) for c in counts]


def test_id_lines_as_a_sequence() -> None:
    """[16] ``IdLines`` gives its lines as strings, back to back or not; bad spans refused."""
    import numpy as np

    from privfin.psi.ids import IdLines

    back = IdLines(b"ab\ncd\n\xc3\xa9", np.array([0, 3, 6]), np.array([2, 5, 8]))
    assert len(back) == 3 and list(back) == ["ab", "cd", "é"]
    assert back[1] == "cd" and back[1:] == ["cd", "é"]
    apart = IdLines(b"ab--cd", np.array([4, 0]), np.array([6, 2]))
    assert list(apart) == ["cd", "ab"]
    assert list(IdLines(b"", np.array([], np.int64), np.array([], np.int64))) == []
    with pytest.raises(ValueError, match="outside"):
        IdLines(b"ab", np.array([0]), np.array([3]))
    with pytest.raises(ValueError, match="one start"):
        IdLines(b"ab", np.array([0, 1]), np.array([2]))
