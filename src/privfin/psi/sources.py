"""Reading id columns from CSV and Parquet files in chunks (bounded memory), and writing
aligned outputs. Used at the boundary (CLI, node), never by the protocol roles."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from privfin.data.csvlines import plain_csv
from privfin.errors import ConfigError
from privfin.psi.ids import IdLines

__all__ = ["iter_id_chunks"]

DEFAULT_CHUNK_ROWS = 250_000


def iter_id_chunks(
    path: str | Path, column: str, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[Sequence[str | None]]:
    """Yield the values of ``column`` in chunks of at most ``chunk_rows`` rows.

    Only that column is read (``usecols`` for CSV, column projection for Parquet), as
    strings, so memory holds one chunk at a time. CSV cells are read verbatim (no NA
    guessing: an empty cell is the empty string, which the trim rules drop); Parquet nulls
    are ``None`` (dropped as missing).
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"input file {p} does not exist")
    suffixes = "".join(p.suffixes).lower()
    if ".parquet" in suffixes or suffixes.endswith(".pq"):
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(p)
        if column not in pf.schema_arrow.names:
            raise ConfigError(f"{p} has no column {column!r}; columns: {pf.schema_arrow.names}")
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=[column]):
            values = batch.column(0).to_pylist()
            yield [None if v is None else str(v) for v in values]
        return
    sep = "\t" if ".tsv" in suffixes else ","
    with plain_csv(p, sep) as plain:
        if plain is not None and column in plain.columns:
            # a plain CSV (privfin.data.csvlines): its rows are its lines, its cells the lines
            # split at the separator, as pandas reads them (without importing pandas: 0.5 s)
            at_col = plain.columns.index(column)
            for at in range(0, plain.rows, chunk_rows):
                last = min(plain.rows, at + chunk_rows) - 1
                base = int(plain.starts[at])
                data = plain.data[base : int(plain.ends[last])]
                if len(plain.columns) == 1:  # the lines are the ids: read as bytes by prepare
                    stop = last + 1
                    yield IdLines(data, plain.starts[at:stop] - base, plain.ends[at:stop] - base)
                    continue
                lines = data.decode("utf-8").split("\n")
                yield [line.split(sep)[at_col] for line in lines]
            return
    import pandas as pd

    header = pd.read_csv(p, sep=sep, nrows=0)
    if column not in header.columns:
        raise ConfigError(f"{p} has no column {column!r}; columns: {list(header.columns)}")
    reader = pd.read_csv(
        p,
        sep=sep,
        usecols=[column],
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        chunksize=chunk_rows,
    )
    for frame in reader:
        yield frame[column].tolist()
