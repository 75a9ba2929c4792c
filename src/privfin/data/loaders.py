"""Reading a party's tables from files (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from privfin.data.validate import remember_source
from privfin.errors import ConfigError

__all__ = ["read_columns", "read_table"]


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet table; an ``id`` column is always read as strings.

    The path is remembered so that a missing column is reported with the file it was looked
    up in (:func:`privfin.data.validate.column_of`).

    Raises
    ------
    ConfigError
        If the file is missing or cannot be parsed.
    """
    p = Path(path)
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
            if "id" in df.columns:
                df["id"] = df["id"].astype(str)
        else:
            df = pd.read_csv(p, dtype={"id": str})
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read table {p}: {exc}") from None
    remember_source(df, str(p))
    return df


def read_columns(path: str | Path) -> list[str]:
    """The column names of a CSV or Parquet table (reads only its header or schema)."""
    p = Path(path)
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(p).names]
        return [str(c) for c in pd.read_csv(p, nrows=0).columns]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read table {p}: {exc}") from None
