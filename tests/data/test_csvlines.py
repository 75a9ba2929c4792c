"""[16] ``plain_csv``: a file it accepts reads, with pandas, exactly as its raw lines split at
the separator; whatever pandas reads differently (quotes, blank lines, BOM, ragged rows,
carriage returns, bad UTF-8, repeated names) it refuses."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from privfin.data import csvlines
from privfin.data.csvlines import plain_csv

ALPHABET = ["a", "b", "7", " ", "\t", ",", '"', "\n", "\n", "\n", "\r", "é", "NA", "-", "\x0c"]


def _pandas_rows(path: Path, sep: str) -> tuple[list[str], list[list[str]]] | None:
    try:
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_filter=False)
    except (ValueError, UnicodeDecodeError):
        return None
    return [str(c) for c in df.columns], df.astype(str).values.tolist()


def test_accepted_files_read_as_pandas_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sep = ","
    monkeypatch.setattr(csvlines, "BLOCK", 16)  # many blocks, lines cut at block ends
    rng = random.Random(16)
    accepted = refused = 0
    for i in range(400):
        width = rng.randint(1, 3)
        lines = [sep.join(f"c{j}" for j in range(width))]
        for _ in range(rng.randint(0, 6)):
            cells = ["".join(rng.choices(ALPHABET, k=rng.randint(0, 3))) for _ in range(width)]
            lines.append(sep.join(cells))
        text = "\n".join(lines) + ("\n" if rng.random() < 0.7 else "")
        path = tmp_path / f"f{i}.csv"
        path.write_bytes(text.encode() if rng.random() < 0.95 else text.encode() + b"\xff")
        with plain_csv(path, sep) as plain:
            if plain is None:
                refused += 1
                continue
            accepted += 1
            got = (plain.columns, [plain.row(r).decode().split(sep) for r in range(plain.rows)])
        assert got == _pandas_rows(path, sep), text
    assert accepted > 50 and refused > 50  # both branches were exercised


@pytest.mark.parametrize(
    "text",
    [
        b'id\n"a"\n',  # quotes
        b"id\na\n\nb\n",  # an empty line (pandas skips it)
        b"id\na\n \t\nb\n",  # a whitespace-only line (skipped too)
        b"\xef\xbb\xbfid\na\n",  # a byte-order mark
        b"id\r\na\r\n",  # carriage returns
        b"a,b\n1\n",  # a short row
        b"a,a\n1,2\n",  # a repeated name (pandas renames it)
        b"id\n\xff\n",  # not UTF-8
        b"",  # empty
    ],
)
def test_refused_files(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(text)
    with plain_csv(path) as plain:
        assert plain is None


def test_blank_separators_are_not_handled(tmp_path: Path) -> None:
    path = tmp_path / "f.tsv"
    path.write_bytes(b"id\tx\na\tb\n")
    with plain_csv(path, "\t") as plain:
        assert plain is None  # (a tab is blank to pandas' tokenizer: left to pandas)


def test_rows_and_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csvlines, "BLOCK", 8)
    path = tmp_path / "f.csv"
    path.write_bytes(b"id,x\nu-1, 2\nu-22,3 \nu-3,")
    with plain_csv(path) as plain:
        assert plain is not None
        assert plain.columns == ["id", "x"] and plain.header == b"id,x"
        assert plain.rows == 3
        assert [plain.row(i) for i in range(3)] == [b"u-1, 2", b"u-22,3 ", b"u-3,"]


@pytest.mark.parametrize(
    "text",
    [
        b"id\nu-1\nu-2\n u-3 \n",  # plain: counted without pandas
        b"id\nu-1\nu-2",  # no final newline
        b"id\nNA\nu-2\n",  # first id missing: pandas scans it
        b"id\nNA\nnull\n",  # every id missing: type null
        b"id\nu-1\n\nu-2\n",  # a blank line: pandas scans (and skips it)
        b'id\n"u,1"\nu-2\n',  # quoted
        b"id,x\nu-1,1\n",  # more than the id column
    ],
)
def test_registry_scan_matches_the_pandas_scan(
    tmp_path: Path, text: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from privfin.data import registry

    path = tmp_path / "ids.csv"
    path.write_bytes(text)
    plain = text in (b"id\nu-1\nu-2\n u-3 \n", b"id\nu-1\nu-2")
    assert (registry._plain_id_rows(path, "id") is not None) == plain
    fast = registry._scan_file(registry.SourceKind.csv, path, "id")
    monkeypatch.setattr(registry, "_plain_id_rows", lambda *a: None)
    slow = registry._scan_file(registry.SourceKind.csv, path, "id")
    assert fast == slow
    assert fast.rows == text.count(b"\n", text.index(b"\n") + 1) + (not text.endswith(b"\n")) - (
        b"\n\n" in text
    )


@pytest.mark.parametrize("chunk_rows", [1, 2, 250_000])
@pytest.mark.parametrize(
    "text",
    [
        b"id\nu-1\n u-2 \nNA\n-\n",  # plain: the lines are the values
        b"id\nu-1\nu-2",  # no final newline
        b"id\nu-1\n\nu-2\n",  # a blank line: read by pandas
        b"id,x\nu-1,1\nu-2,2\n",  # more than one column: read by pandas
    ],
)
def test_registry_iter_column_matches_pandas(
    tmp_path: Path, text: bytes, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib

    import sqlalchemy as sa

    from privfin.data import registry

    path = tmp_path / "ids.csv"
    path.write_bytes(text)
    engine = sa.create_engine("sqlite://")
    registry.metadata.create_all(engine)
    reg = registry.DatasetRegistry(engine)
    reg.register("d", path, id_column="id", policy=registry.UsagePolicy.open())
    fast = list(reg.iter_column("d", "id", chunk_rows))
    monkeypatch.setattr(registry, "plain_csv", lambda *a: contextlib.nullcontext(None))
    slow = list(reg.iter_column("d", "id", chunk_rows))
    assert fast == slow
    assert all(len(c) == chunk_rows for c in fast[:-1])


def test_pandas_na_cells_are_pandas_defaults() -> None:
    """[16] the first id of a plain file is checked against pandas' own NA strings."""
    from pandas._libs.parsers import STR_NA_VALUES

    from privfin.data.registry import PANDAS_NA_CELLS

    assert set(STR_NA_VALUES) == PANDAS_NA_CELLS


def test_plain_header_is_the_pandas_header(tmp_path: Path) -> None:
    """[16] a header read without pandas is the one pandas reads; anything else is refused."""
    from privfin.data import registry

    rng = random.Random(17)
    letters = ["a", "b", " ", "\t", '"', "é", "\r", ".", "1"]
    accepted = refused = 0
    for i in range(300):
        names = [
            "".join(rng.choices(letters, k=rng.randint(0, 3))) for _ in range(rng.randint(1, 3))
        ]
        text = ",".join(names) + rng.choice(["", "\n", "\nx,y\n"])
        path = tmp_path / f"h{i}.csv"
        path.write_bytes(text.encode() if rng.random() < 0.9 else b"\xef\xbb\xbf" + text.encode())
        got = registry._plain_header(path, ",")
        if got is None:
            refused += 1
            continue
        accepted += 1
        assert got == [str(c) for c in pd.read_csv(path, nrows=0).columns], text
        assert registry._file_columns(registry.SourceKind.csv, path) == got
    assert accepted > 50 and refused > 50
    tsv = tmp_path / "h.tsv"
    tsv.write_bytes(b"a\tb\n")
    assert registry._plain_header(tsv, "\t") is None  # only commas take the fast path


@pytest.mark.parametrize("chunk_rows", [1, 2, 250_000])
@pytest.mark.parametrize(
    "text",
    [
        b"id\nu-1\n u-2 \nNA\n-\n",  # plain: the lines are the values
        b"id\nu-1\nu-2",  # no final newline
        b"x,id\n1,u-1\n2, u-2 \n3,\n",  # plain, two columns: the lines split
        b"id\nu-1\n\nu-2\n",  # a blank line: read by pandas
        b'id,x\n"u,1",1\nu-2,2\n',  # quoted: read by pandas
    ],
)
def test_psi_id_chunks_match_pandas(
    tmp_path: Path, text: bytes, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[16] the PSI input stream of a node reads a plain CSV as its lines (no pandas import)
    with the values and chunks of the pandas reader."""
    import contextlib

    from privfin.psi import sources

    path = tmp_path / "ids.csv"
    path.write_bytes(text)
    fast = list(sources.iter_id_chunks(path, "id", chunk_rows))
    monkeypatch.setattr(sources, "plain_csv", lambda *a: contextlib.nullcontext(None))
    slow = list(sources.iter_id_chunks(path, "id", chunk_rows))
    assert [list(c) for c in fast] == slow
    assert all(len(c) == chunk_rows for c in fast[:-1])
