"""Rows of a *plain* CSV file as raw lines, without a CSV parser.

A plain CSV file is one pandas (C parser, default dialect) reads verbatim: UTF-8 without a
byte-order mark, no quote character, no carriage return, no NUL byte, no empty or
whitespace-only line (pandas skips those), a header of distinct non-empty names and the same
number of separators on every line. Line ``i + 1`` of such a file is data row ``i``, its fields
are the line split at the separator, and writing those fields back as CSV gives the line again.

:func:`plain_csv` recognises such a file in one pass of vectorised byte operations and returns
where each row starts and ends; it returns ``None`` for any other file, and the caller reads it
with pandas as before. Two callers use it where the cost showed in ``privfin psi`` at 1M rows:
the registry's scan of a single-column CSV at node start (row count and type without parsing)
and the CLI's copy of the intersecting rows to its output (rows copied as bytes).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PlainCsv", "plain_csv"]

#: Bytes per block of the scan (bounds the scan's temporary arrays to a few times this).
BLOCK = 1 << 24
#: The bytes pandas' tokenizer treats as blank in a line it skips.
_IS_BLANK = np.zeros(256, dtype=bool)
_IS_BLANK[list(b" \t\x0b\x0c")] = True
_NL = ord("\n")


@dataclass(frozen=True)
class PlainCsv:
    """The layout of a plain CSV file: ``data[starts[i]:ends[i]]`` is data row ``i``
    (without its newline); ``data`` is the file, mapped by :func:`plain_csv`."""

    data: mmap.mmap
    header: bytes
    columns: list[str]
    starts: np.ndarray
    ends: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.starts.size)

    def row(self, i: int) -> bytes:
        return self.data[int(self.starts[i]) : int(self.ends[i])]


def _layout(data: mmap.mmap, sep: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Start and end of every line (the header included), or None if the bytes are not a
    plain CSV with the header's number of separators on every line."""
    size = len(data)
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    width = -1
    at = 0
    while at < size:
        raw = data[at : min(size, at + BLOCK)]
        if at + len(raw) < size:  # whole lines only: the block ends after its last newline
            cut = raw.rfind(b"\n")
            if cut < 0:
                return None  # a line longer than a block: not what this is for
            raw = raw[: cut + 1]
        if b'"' in raw or b"\r" in raw or b"\x00" in raw:
            return None
        try:
            raw.decode("utf-8")  # pandas refuses a file that is not UTF-8
        except UnicodeDecodeError:
            return None
        block = np.frombuffer(raw, dtype=np.uint8)
        newlines = np.flatnonzero(block == _NL)
        line_ends = newlines if raw.endswith(b"\n") else np.append(newlines, len(raw))
        line_starts = np.concatenate(([0], line_ends[:-1] + 1))
        if np.any(line_ends == line_starts):
            return None  # an empty line
        # a whitespace-only line starts with a blank byte: only those lines are looked at
        for first in line_starts[_IS_BLANK[block[line_starts]]]:
            end = raw.find(b"\n", int(first))
            if not raw[int(first) : end if end >= 0 else len(raw)].strip(b" \t\x0b\x0c"):
                return None  # a whitespace-only line
        seps = np.flatnonzero(block == sep)
        counts = np.diff(np.searchsorted(seps, np.concatenate(([0], line_ends))))
        if width < 0:
            width = int(counts[0])
        if np.any(counts != width):
            return None
        starts.append(line_starts + at)
        ends.append(line_ends + at)
        at += len(raw)
    if not starts:
        return None
    return np.concatenate(starts), np.concatenate(ends)


@contextmanager
def plain_csv(path: Path, sep: str = ",") -> Iterator[PlainCsv | None]:
    """The layout of ``path`` if it is a plain CSV file (see the module), else ``None``.

    The file is mapped into memory for the duration of the ``with`` block (rows are read
    from it on demand). Raises OSError if the file cannot be read."""
    with path.open("rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            yield None
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            yield _plain(mm, sep)


def _plain(mm: mmap.mmap, sep: str) -> PlainCsv | None:
    if len(sep) != 1 or not sep.isascii() or sep in '"\r\n\x00 \t\x0b\x0c':
        return None
    if mm[:3] == b"\xef\xbb\xbf":
        return None  # pandas drops a byte-order mark from the header
    layout = _layout(mm, ord(sep))
    if layout is None:
        return None
    starts, ends = layout
    header = mm[int(starts[0]) : int(ends[0])]
    columns = header.decode("utf-8").split(sep)
    if len(set(columns)) != len(columns) or any(not c.strip() for c in columns):
        return None  # pandas renames empty and repeated names
    return PlainCsv(mm, header, columns, starts[1:], ends[1:])
