"""Validation of a party's own input columns before a component uses them.

Every component checks its inputs here, at the boundary, before the first message leaves the
party: numbers must parse and be finite (NaN only where a component declares it as "missing"),
whole where minor units (cents) are required, inside the declared range, labels inside their
declared set, ids present and non-empty. A failure raises :class:`~privfin.errors.InputError`
whose message names the input, the column and *how many* rows are at fault, never a value or a
row of the data: it is for the local operator (the node tells peers only that this party's
input was rejected).

This layer imports only :mod:`privfin.errors` and third-party libraries.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from privfin.errors import ConfigError, InputError

__all__ = [
    "check_column",
    "check_features",
    "check_ids",
    "check_labels",
    "column_of",
    "describe_table",
    "missing_id_count",
    "remember_source",
]

#: The file each live table was read from (by ``id``; an entry leaves with its table), so that
#: an error about the table can name it. Not kept in ``DataFrame.attrs``: pandas writes those
#: into Parquet metadata, and a local path has no business in an output file.
_SOURCES: dict[int, str] = {}

#: At most this many column names are listed in an error.
_LISTED = 40

FloatArray = npt.NDArray[np.float64]


def _rows(n: int) -> str:
    return f"{n} row{'s' if n != 1 else ''}"


def _fail(source: str, column: str, problems: list[tuple[int, str]]) -> None:
    found = [(n, what) for n, what in problems if n]
    if not found:
        return
    detail = "; ".join(f"{what} in {_rows(n)}" for n, what in found)
    raise InputError(
        f"{source}, column {column!r}: {detail}; correct or remove these rows "
        "(no value is shown here or sent to peers)",
        column=column,
        rows=sum(n for n, _ in found),
    )


def _as_numbers(values: Any) -> tuple[FloatArray | npt.NDArray[np.int64], int, int]:
    """``(array, unparsable, missing)``: ints stay ints (exact), everything else float64."""
    import pandas as pd  # here: a node imports this module at start, pandas only if used

    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).reshape(-1))
    if series.dtype == bool:
        return series.to_numpy(dtype=np.int64), 0, 0
    if pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_extension_array_dtype(
        series.dtype
    ):
        if series.dtype == np.uint64 and len(series) and int(series.max()) >= 2**63:
            return series.to_numpy(dtype=np.float64), 0, 0
        return series.to_numpy(dtype=np.int64), 0, 0
    missing = series.isna()
    if series.dtype == object:
        missing |= series.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
    parsed = pd.to_numeric(series.where(~missing), errors="coerce")
    unparsable = int((parsed.isna() & ~missing).sum())
    if pd.api.types.is_integer_dtype(parsed.dtype) and not parsed.isna().any():
        return parsed.to_numpy(dtype=np.int64), unparsable, 0
    return parsed.to_numpy(dtype=np.float64, na_value=np.nan), unparsable, int(missing.sum())


def check_column(
    values: Any,
    column: str,
    *,
    source: str = "input",
    allow_missing: bool = False,
    integral: bool = False,
    low: float | None = None,
    high: float | None = None,
    unit: str = "",
) -> FloatArray | npt.NDArray[np.int64]:
    """One numeric column, checked: an int64 array if ``integral`` (exact), float64 otherwise.

    Counts, per problem, the rows that do not parse as numbers, are missing (NaN, empty) unless
    ``allow_missing`` (then they stay NaN), are infinite, are not whole numbers (``integral``),
    or lie outside ``[low, high)``.

    Raises
    ------
    InputError
        Naming ``source``, ``column`` and the number of rows per problem (never a value).
    """
    arr, unparsable, missing = _as_numbers(values)
    problems: list[tuple[int, str]] = [(unparsable, "not a number")]
    if not allow_missing:
        problems.append((missing, "missing (NaN or empty)"))
    if arr.dtype == np.float64:
        problems.append((int(np.isinf(arr).sum()), "infinite"))
        finite = np.isfinite(arr)
        if integral:
            frac = finite & (np.floor(np.where(finite, arr, 0.0)) != np.where(finite, arr, 0.0))
            problems.append((int(frac.sum()), f"not a whole number{unit}"))
    else:
        finite = np.ones(arr.shape, dtype=bool)
    if low is not None or high is not None:
        with np.errstate(invalid="ignore"):
            out = np.zeros(arr.shape, dtype=bool)
            if low is not None:
                out |= finite & (arr < low)
            if high is not None:
                out |= finite & (arr >= high)
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        if high is not None and high >= 2**32 and math.log2(high).is_integer():
            hi = f"2**{int(math.log2(high))}"
        problems.append((int(out.sum()), f"outside the declared range [{lo}, {hi}){unit}"))
    _fail(source, column, problems)
    if integral and arr.dtype == np.float64 and not allow_missing:
        return arr.astype(np.int64)
    return arr


def check_labels(
    values: Any, column: str, *, allowed: Collection[float] = (0, 1), source: str = "input"
) -> FloatArray:
    """Labels as float64, each one of ``allowed`` (default ``{0, 1}``).

    Raises
    ------
    InputError
        Naming the column and the number of rows that are missing, not numbers, or outside
        ``allowed``.
    """
    arr, unparsable, missing = _as_numbers(values)
    y = arr.astype(np.float64)
    finite = np.isfinite(y)
    outside = int((finite & ~np.isin(y, np.asarray(sorted(allowed), dtype=np.float64))).sum())
    shown = ", ".join(f"{a:g}" for a in sorted(allowed))
    _fail(
        source,
        column,
        [
            (unparsable, "not a number"),
            (missing, "missing (NaN or empty)"),
            (int(np.isinf(y).sum()), "infinite"),
            (outside, f"not one of the allowed labels {{{shown}}}"),
        ],
    )
    return y


def check_features(
    table: Any,
    *,
    source: str = "input",
    names: Sequence[str] | None = None,
    allow_missing: bool = False,
) -> FloatArray:
    """A feature matrix (DataFrame or 2-D array) as float64, every column checked with
    :func:`check_column` (finite; NaN allowed only with ``allow_missing``).

    Raises
    ------
    InputError
        For the first bad column: its name (``names`` or ``x<j>`` for an array) and the
        number of bad rows.
    """
    if hasattr(table, "columns"):
        cols: list[str] = [str(c) for c in table.columns]
        data = [table.iloc[:, j] for j in range(len(cols))]
    else:
        arr = np.asarray(table)
        if arr.ndim != 2:
            raise InputError(f"{source}: features must be a 2-D table, got shape {arr.shape}")
        cols = list(names) if names is not None else [f"x{j}" for j in range(arr.shape[1])]
        data = [arr[:, j] for j in range(arr.shape[1])]
    out = [
        np.asarray(check_column(v, c, source=source, allow_missing=allow_missing), np.float64)
        for v, c in zip(data, cols, strict=True)
    ]
    if not out:
        return np.empty((len(table), 0), dtype=np.float64)
    return np.stack(out, axis=1)


def missing_id_count(values: Iterable[object], *, strip: bool = True) -> int:
    """How many ids are missing: ``None``, NaN, or (with ``strip``) empty after trimming."""

    def bad(v: object) -> bool:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return True
        return isinstance(v, str) and not (v.strip() if strip else v)

    return sum(1 for v in values if bad(v))


def check_ids(values: Iterable[object], column: str, *, source: str = "input") -> None:
    """Refuse missing or empty ids (they would silently drop out of an intersection).

    Raises
    ------
    InputError
        Naming the column and the number of missing or empty ids.
    """
    _fail(source, column, [(missing_id_count(values), "a missing or empty id")])


def remember_source(table: Any, path: str) -> None:
    """Record that ``table`` was read from ``path`` (for :func:`describe_table`), for as long
    as ``table`` lives. Tables derived from it (a slice, a join) are not named by the file."""
    key = id(table)
    _SOURCES[key] = path
    weakref.finalize(table, _SOURCES.pop, key, None)


def describe_table(table: Any, source: str = "input 'table'") -> str:
    """How an error names ``table``: ``source``, and the file it was read from when
    :func:`~privfin.data.loaders.read_table` read it."""
    path = _SOURCES.get(id(table))
    return f"{source} (file {path})" if path else source


def _listing(columns: Sequence[object]) -> str:
    names = [str(c) for c in columns]
    more = f", ... ({len(names) - _LISTED} more)" if len(names) > _LISTED else ""
    return (", ".join(names[:_LISTED]) or "none") + more


def column_of(table: Any, column: str, *, what: str = "", source: str = "input 'table'") -> Any:
    """``table[column]``, or a :class:`~privfin.errors.ConfigError` that names the table (its
    file, when known) and lists its columns. ``table``: a DataFrame or a mapping of columns.

    Parameters
    ----------
    what:
        The column's role for the message (``"label"``, ``"id"``, ``"feature"``).
    source:
        How the input is called (``"input 'table'"``, ``"data party 'bank': input 'table'"``).

    Raises
    ------
    ConfigError
        ``<source> (file <path>) has no label column 'default'; columns: id, y, x0, ...``. The
        column names are the operator's own schema (a party's peers see only "input rejected").
    """
    columns = list(table) if isinstance(table, Mapping) else getattr(table, "columns", None)
    if columns is None:
        raise ConfigError(f"{describe_table(table, source)} must be a table with named columns")
    if column not in columns:
        role = f"{what} " if what else ""
        raise ConfigError(
            f"{describe_table(table, source)} has no {role}column {column!r}; "
            f"columns: {_listing(list(columns))}"
        )
    return table[column]
