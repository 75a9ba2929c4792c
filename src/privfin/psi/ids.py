"""Identifier preparation: the declared normalisation and duplicate rules.

Every party applies the *same* declared rules (they are job parameters, checked in the
handshake), so equal customers map to equal keys:

``normalize``
    ``"exact"``: the id as given (Python ``str`` equality; what ``set`` intersection does).
    ``"trim"``: Unicode NFC, then leading and trailing whitespace removed.
    ``"trim_casefold"``: ``"trim"``, then Unicode case folding (``"Ab "`` == ``"aB"``).
    Under ``"trim"`` and ``"trim_casefold"`` ids that become empty are dropped.
    Missing values (``None``, NaN) are always dropped.
``duplicates``
    ``"first"``: several rows with the same key keep the first; later rows are dropped and
    counted. ``"error"``: a repeated key is a :class:`~privfin.errors.ConfigError`.

The result keeps, for each distinct key, the row of the input it came from and the original
id string, so outputs can return the party's own rows.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from privfin.errors import ConfigError

__all__ = ["DUPLICATE_RULES", "NORMALIZERS", "PreparedIds", "normalizer", "prepare_ids"]


def _exact(value: str) -> str:
    return value


def _trim(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip()


def _trim_casefold(value: str) -> str:
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).strip().casefold())


NORMALIZERS: dict[str, Callable[[str], str]] = {
    "exact": _exact,
    "trim": _trim,
    "trim_casefold": _trim_casefold,
}
DUPLICATE_RULES = ("first", "error")


def normalizer(rule: str) -> Callable[[str], str]:
    """The normalisation function of a declared rule."""
    try:
        return NORMALIZERS[rule]
    except KeyError:
        raise ConfigError(
            f"unknown id normalisation {rule!r}; use one of {', '.join(NORMALIZERS)}"
        ) from None


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass
class PreparedIds:
    """A party's distinct keys, in first-occurrence order, with where each came from.

    Attributes
    ----------
    keys:
        Normalised, distinct ids.
    originals:
        The id as the input spelled it (first occurrence), aligned with ``keys``.
    rows:
        Input row of each key (0-based), aligned with ``keys``.
    n_input, n_missing, n_duplicates:
        Input rows, rows dropped as missing/empty, rows dropped as duplicates.
    """

    normalize: str = "exact"
    duplicates: str = "first"
    keys: list[str] = field(default_factory=list)
    originals: list[str] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    n_input: int = 0
    n_missing: int = 0
    n_duplicates: int = 0
    _seen: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, values: Iterable[object]) -> None:
        """Add a chunk of raw ids (rows continue from the previous chunk)."""
        norm = normalizer(self.normalize)
        drop_empty = self.normalize != "exact"
        seen = self._seen
        for value in values:
            row = self.n_input
            self.n_input += 1
            if _is_missing(value):
                self.n_missing += 1
                continue
            original = value if isinstance(value, str) else str(value)
            key = norm(original)
            if drop_empty and not key:
                self.n_missing += 1
                continue
            if key in seen:
                if self.duplicates == "error":
                    raise ConfigError(
                        f"id in row {row} repeats the id of row {self.rows[seen[key]]} "
                        "(duplicates='error'); deduplicate the input or use duplicates='first'"
                    )
                self.n_duplicates += 1
                continue
            seen[key] = len(self.keys)
            self.keys.append(key)
            self.originals.append(original)
            self.rows.append(row)

    def index_of(self, key: str) -> int | None:
        """Position of ``key`` in :attr:`keys`, or None."""
        return self._seen.get(key)

    def __len__(self) -> int:
        return len(self.keys)


def prepare_ids(
    values: Iterable[object] | Iterable[Iterable[object]],
    normalize: str = "exact",
    duplicates: str = "first",
    *,
    chunked: bool = False,
) -> PreparedIds:
    """Apply the declared rules to ``values`` (or to an iterable of chunks if ``chunked``)."""
    normalizer(normalize)
    if duplicates not in DUPLICATE_RULES:
        raise ConfigError(
            f"unknown duplicate rule {duplicates!r}; use one of {', '.join(DUPLICATE_RULES)}"
        )
    prepared = PreparedIds(normalize=normalize, duplicates=duplicates)
    if chunked:
        for chunk in values:
            prepared.add(chunk)  # type: ignore[arg-type]
    else:
        prepared.add(values)
    return prepared
