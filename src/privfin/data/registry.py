"""The per-node data registry: which tables a node offers to jobs, with their schema, each
field's sensitivity level (JR/T 0171-2020) and a usage policy.

A dataset is registered once (``privfin data register`` or :meth:`DatasetRegistry.register`):
the registry reads the source's schema, counts its rows and records a SHA-256 digest of its
content. Jobs then use it by name: the node asks :meth:`DatasetRegistry.check_use` before a job
may touch any field and reads the table with :meth:`DatasetRegistry.load`, which refuses a
source that no longer matches what was registered (what a party approved is what a job reads).

Sensitivity levels (JR/T 0171-2020, *Personal financial information protection technical
specification*, People's Bank of China) grade personal financial information by the harm its
disclosure does to the person it describes:

``C3``
    The most sensitive class: information that authenticates a user — payment and login
    passwords, card verification codes, a card's full magnetic-stripe or chip data, biometric
    templates used for authentication — whose leak can seriously harm the person's security
    and property (an attacker can act as them). privfin never lets a C3 field into a job.
``C2``
    Information that identifies a person or an account, or describes the person's financial
    situation — names, identity-document and account numbers, phone numbers, balances,
    income, loans, credit and transaction records — whose leak can harm the person. A C2 field
    may only enter a component that keeps it private (secret-shared, encrypted, hashed or
    blinded; no other party sees it in the clear). **The default level** of every field.
``C1``
    Other information an institution keeps for internal use, of lower sensitivity (e.g. when
    or where an account was opened, internal codes); its leak has a limited effect. Any
    component may use it.

The **id column** is at least C2 unless a level is given for it explicitly: identifiers of
persons are C2 in the standard's terms. Components that align on ids (PSI and the vertical
components after it) keep them private — only hashed or blinded ids leave the party — so ids
can be used by them; a component that would send ids in the clear is refused.

Usage policy (:class:`UsagePolicy`): the partners a dataset may be used with and the purposes
it may serve. **The safe default is that nothing is allowed**: an empty set of partners or of
purposes refuses every job; ``"*"`` allows any pinned partner (or any purpose) explicitly. The
policy also records the **legal basis** on which the institution holds and may share the data
(one of :data:`LEGAL_BASES`: consent, contract, licensed source, ...): shown to approvers,
written into the audit with each approval, and required by a job that demands one (a dataset
use's ``legal_basis: [...]`` in the job spec; e.g. the blacklists of the blacklist scenario
must come from a licensed source).

Versions: each registration of a name gets a version; re-registering it (``replace=True``)
with any difference — content, schema, location, query, columns, levels or policy — bumps the
version; re-registering identical data and settings keeps it. Numbers are never reused, also
after :meth:`DatasetRegistry.remove` (the history table keeps each version's digest).

Sources: a CSV file (``.csv``; ``.tsv`` is read tab-separated), a Parquet file (``.parquet``,
``.pq``), or a SQLAlchemy URL with a query. File digests are the SHA-256 of the file's bytes;
a SQL source's digest is the SHA-256 of its column names and rows in the order the query
returns them (give the query an ``ORDER BY`` or it may be reported as changed). A SQL URL is
stored as given (with its password, in the node's own store, which is private to the node);
everything shown (:attr:`DatasetInfo.display_location`, ``repr``) hides the password —
prefer a password-less connection (PostgreSQL peer authentication, ``.pgpass``) anyway.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from privfin.data.csvlines import plain_csv
from privfin.errors import ConfigError, DataPolicyError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ANY",
    "LEGAL_BASES",
    "DatasetInfo",
    "DatasetRegistry",
    "Field",
    "Level",
    "SourceKind",
    "UsagePolicy",
    "check_legal_basis",
    "metadata",
]

ANY = "*"
"""In :class:`UsagePolicy`: any pinned partner, or any purpose."""

LEGAL_BASES = (
    "consent",
    "contract",
    "legal_obligation",
    "public_interest",
    "legitimate_interest",
    "licensed_source",
)
"""The legal bases a usage policy may record: the data subjects' consent, a contract (with
them, or a data-sharing agreement), a legal obligation, a task in the public interest, a
legitimate interest, or a licensed source (data bought or licensed from a registry)."""

_CHUNK_ROWS = 100_000
_HASH_BLOCK = 1 << 20
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class Level(StrEnum):
    """A field's sensitivity level per JR/T 0171-2020 (see the module docstring)."""

    C1 = "C1"
    C2 = "C2"
    C3 = "C3"

    @property
    def rank(self) -> int:
        return int(self.value[1])


class SourceKind(StrEnum):
    """Where a dataset's rows come from."""

    csv = "csv"
    parquet = "parquet"
    sql = "sql"


@dataclass(frozen=True)
class Field:
    """One column: its name, a coarse type (``int``, ``float``, ``bool``, ``string``,
    ``datetime``, ``decimal``, ``bytes``, ``null`` or the source's own type name) and its
    sensitivity level."""

    name: str
    dtype: str
    level: Level


@dataclass(frozen=True)
class UsagePolicy:
    """Who may use a dataset, for what.

    Parameters
    ----------
    partners:
        Parties the dataset may be used with (every other party of a job must be in it).
        Empty (the default) allows none; ``"*"`` allows any pinned peer.
    purposes:
        Purposes a job may state to use it. Empty (the default) allows none; ``"*"`` any.
    dp_budget:
        The dataset's differential-privacy budget (epsilon); ``None`` = not set (filled by
        the DP budget ledger, issue [12]).
    legal_basis:
        The legal basis on which the data is held and shared (one of :data:`LEGAL_BASES`);
        ``None`` = not recorded (a job that demands one is refused).
    """

    partners: frozenset[str] = frozenset()
    purposes: frozenset[str] = frozenset()
    dp_budget: float | None = None
    legal_basis: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "partners", frozenset(self.partners))
        object.__setattr__(self, "purposes", frozenset(self.purposes))
        for p in self.partners:
            if p != ANY and not (_NAME.fullmatch(p) and p.strip(".")):
                raise ConfigError(
                    f"partner {p!r} must be a party name (letters, digits, _ . -) or {ANY!r}"
                )
        for s in self.purposes:
            if not isinstance(s, str) or not s.strip() or len(s) > 200:
                raise ConfigError(f"purpose {s!r} must be a non-empty text of at most 200 chars")
        if self.dp_budget is not None and not (self.dp_budget >= 0 and self.dp_budget < 1e300):
            raise ConfigError(f"dp_budget must be a finite number >= 0, got {self.dp_budget!r}")
        if self.legal_basis is not None and self.legal_basis not in LEGAL_BASES:
            raise ConfigError(
                f"legal basis {self.legal_basis!r} unknown; use one of {', '.join(LEGAL_BASES)}"
            )

    @classmethod
    def open(cls) -> UsagePolicy:
        """Any pinned partner, any purpose (what node.yaml datasets get, see
        :meth:`DatasetRegistry.sync_config`)."""
        return cls(frozenset({ANY}), frozenset({ANY}))

    def allows_partner(self, partner: str) -> bool:
        return ANY in self.partners or partner in self.partners

    def allows_purpose(self, purpose: str) -> bool:
        return ANY in self.purposes or purpose in self.purposes

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "partners": sorted(self.partners),
            "purposes": sorted(self.purposes),
            "dp_budget": self.dp_budget,
        }
        if self.legal_basis is not None:  # (absent: the stored form of older policies)
            out["legal_basis"] = self.legal_basis
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> UsagePolicy:
        return cls(
            frozenset(raw.get("partners", ())),
            frozenset(raw.get("purposes", ())),
            raw.get("dp_budget"),
            raw.get("legal_basis"),
        )


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows of one dataset (one version of it)."""

    name: str
    version: int
    kind: SourceKind
    location: str = dataclasses.field(
        repr=False
    )  # a SQL URL may hold a password: see display_location
    query: str | None
    id_column: str
    label: str | None
    fields: tuple[Field, ...]
    rows: int
    digest: str
    registered_at: datetime
    policy: UsagePolicy
    origin: str = "cli"  # "cli" (registered explicitly) or "config" (from node.yaml)

    @property
    def display_location(self) -> str:
        """The location with a URL's password replaced by ``***``."""
        return redact(self.location) if self.kind is SourceKind.sql else self.location

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise DataPolicyError(
            f"dataset {self.name!r} has no field {name!r}; fields: {', '.join(self.columns)}"
        )

    def usable_fields(self, *, keeps_private: bool) -> list[str]:
        """The fields a component may use: never C3; C2 only if it ``keeps_private``."""
        top = Level.C2 if keeps_private else Level.C1
        return [f.name for f in self.fields if f.level.rank <= top.rank]

    def public(self) -> dict[str, Any]:
        """A JSON-able description (password redacted) for the API and the CLI."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind.value,
            "location": self.display_location,
            "query": self.query,
            "id_column": self.id_column,
            "label": self.label,
            "fields": [
                {"name": f.name, "dtype": f.dtype, "level": f.level.value} for f in self.fields
            ],
            "rows": self.rows,
            "digest": self.digest,
            "registered_at": self.registered_at.isoformat(),
            "policy": self.policy.to_json(),
            "origin": self.origin,
        }


def redact(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: show no part that could be a secret
        return "<unparseable URL>"


# -- tables (mirrored by migration 0004_registry; tests compare the two)

metadata = sa.MetaData()

datasets_table = sa.Table(
    "registry_datasets",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("query", sa.Text, nullable=True),
    sa.Column("id_column", sa.String(256), nullable=False),
    sa.Column("label", sa.String(256), nullable=True),
    sa.Column("fields", sa.Text, nullable=False),  # JSON [[name, dtype, level], ...]
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("registered_at", sa.Float, nullable=False),  # Unix time, seconds
    sa.Column("policy", sa.Text, nullable=False),  # JSON UsagePolicy.to_json()
    sa.Column("origin", sa.String(16), nullable=False),
)

versions_table = sa.Table(
    "registry_versions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("location", sa.Text, nullable=False),  # redacted
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("registered_at", sa.Float, nullable=False),
    sa.Column("policy", sa.Text, nullable=False),
)


# -- reading sources


@dataclass
class _Scan:
    columns: list[str]
    dtypes: dict[str, str]
    rows: int
    digest: str
    frame: pd.DataFrame | None = None


def _kind_of(source: str) -> SourceKind:
    if "://" in source:
        return SourceKind.sql
    suffixes = "".join(Path(source).suffixes).lower()
    if ".parquet" in suffixes or suffixes.endswith(".pq"):
        return SourceKind.parquet
    return SourceKind.csv


def _sep(path: str) -> str:
    return "\t" if ".tsv" in "".join(Path(path).suffixes).lower() else ","


def _pandas_kind(dtype: Any) -> str:
    import pandas as pd

    api = pd.api.types
    if api.is_bool_dtype(dtype):
        return "bool"
    if api.is_integer_dtype(dtype):
        return "int"
    if api.is_float_dtype(dtype):
        return "float"
    if api.is_datetime64_any_dtype(dtype):
        return "datetime"
    if api.is_string_dtype(dtype) or api.is_object_dtype(dtype):
        return "string"
    return str(dtype)


def _merge_kind(a: str, b: str) -> str:
    if a == b:
        return a
    if {a, b} <= {"int", "float"}:
        return "float"
    if "null" in (a, b):
        return b if a == "null" else a
    return "string"


def _arrow_kind(t: Any) -> str:
    import pyarrow as pa

    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "string"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytes"
    if pa.types.is_null(t):
        return "null"
    return str(t)


def _py_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, Decimal):
        return "decimal"
    if isinstance(v, (datetime, date)):
        return "datetime"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "bytes"
    if isinstance(v, str):
        return "string"
    return type(v).__name__


def _json_default(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"b": bytes(v).hex()}
    if isinstance(v, Decimal):
        return {"d": str(v)}
    if isinstance(v, (datetime, date)):
        return {"t": v.isoformat()}
    return {type(v).__name__: str(v)}


def _file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"data source {p} does not exist")
    if not p.is_file():
        raise ConfigError(f"data source {p} is not a regular file")
    return p


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while block := f.read(_HASH_BLOCK):
                h.update(block)
    except OSError as exc:
        raise ConfigError(f"cannot read data source {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


#: How much of a CSV file :func:`_plain_header` reads to find its header line.
_HEADER_BYTES = 1 << 16


def _plain_header(path: Path, sep: str) -> list[str] | None:
    """The column names of a CSV file whose header line pandas reads verbatim (UTF-8 without
    a byte-order mark, no quote, carriage return or NUL, not blank, distinct non-empty names):
    that line split at ``sep``, as pandas' header. None for any other file (pandas reads it)
    and for a separator other than a comma."""
    if sep != ",":
        return None
    with path.open("rb") as fh:
        head = fh.read(_HEADER_BYTES)
    end = head.find(b"\n")
    line = head if end < 0 and len(head) < _HEADER_BYTES else head[:end] if end >= 0 else b""
    if not line.strip() or line.startswith(b"\xef\xbb\xbf"):
        return None
    if any(c in line for c in (b'"', b"\r", b"\x00")):
        return None
    try:
        names = line.decode("utf-8").split(sep)
    except UnicodeDecodeError:
        return None
    if len(set(names)) != len(names) or not all(n.strip() for n in names):
        return None
    return names


def _file_columns(kind: SourceKind, path: Path) -> list[str]:
    try:
        if kind is SourceKind.parquet:
            import pyarrow.parquet as pq

            return list(pq.ParquetFile(path).schema_arrow.names)
        plain = _plain_header(path, _sep(str(path)))
        if plain is not None:
            return plain
        import pandas as pd

        return [str(c) for c in pd.read_csv(path, sep=_sep(str(path)), nrows=0).columns]
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read data source {path}: {_short(exc)}") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _scan_file(kind: SourceKind, path: Path, id_column: str | None) -> _Scan:
    """Schema, row count and digest of a file, reading at most one chunk at a time."""
    digest = _file_digest(path)
    try:
        if kind is SourceKind.parquet:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            schema = pf.schema_arrow
            dtypes = {n: _arrow_kind(schema.field(n).type) for n in schema.names}
            if id_column in dtypes:
                dtypes[id_column] = "string"  # read as strings (as privfin's loaders do)
            return _Scan(list(schema.names), dtypes, int(pf.metadata.num_rows), digest)
        if id_column is not None:
            rows = _plain_id_rows(path, id_column)
            if rows is not None:
                return _Scan([id_column], {id_column: "string"}, rows, digest)
        import pandas as pd

        header = [str(c) for c in pd.read_csv(path, sep=_sep(str(path)), nrows=0).columns]
        strings = {id_column: str} if id_column in header else None
        kinds: dict[str, str] = {}
        rows = 0
        reader = pd.read_csv(path, sep=_sep(str(path)), dtype=strings, chunksize=_CHUNK_ROWS)
        with reader:
            for chunk in reader:
                rows += len(chunk)
                for col in chunk.columns:
                    k = "null" if chunk[col].isna().all() else _pandas_kind(chunk[col].dtype)
                    kinds[str(col)] = _merge_kind(kinds.get(str(col), k), k)
        dtypes = {c: kinds.get(c, "null") for c in header}
        return _Scan(header, dtypes, rows, digest)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read data source {path}: {_short(exc)}") from None


#: The cells pandas' CSV reader takes for a missing value by default (its
#: ``STR_NA_VALUES``; the same set is checked against pandas by the tests).
PANDAS_NA_CELLS = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)


def _plain_id_rows(path: Path, id_column: str) -> int | None:
    """The row count of a CSV file holding only the id column, if it is plain
    (:mod:`privfin.data.csvlines`) and its first id is not a missing value: then the chunked
    pandas scan would find the same header, count and the type ``string`` (the id column is
    read as strings), at a tenth of its cost (0.06 instead of 0.65 core-s at 1M rows) and
    without importing pandas (0.5-0.6 s of a node's start). None: scan."""
    with plain_csv(path, _sep(str(path))) as plain:
        if plain is None or plain.columns != [id_column] or plain.rows == 0:
            return None
        first = plain.row(0).decode("utf-8")
        return None if first in PANDAS_NA_CELLS else plain.rows


def _sql_engine(url: str) -> Engine:
    try:
        return sa.create_engine(url)
    except Exception as exc:  # unknown dialect, missing driver, malformed URL
        raise ConfigError(f"cannot use SQL source {redact(url)}: {_short(exc)}") from None


def _scan_sql(url: str, query: str, keep: Sequence[str] | None) -> _Scan:
    """Run ``query`` once, streaming: column names, coarse types (from the first chunk), row
    count and digest; with ``keep``, also the rows of those columns as a DataFrame."""
    import pandas as pd

    engine = _sql_engine(url)
    h = hashlib.sha256(b"privfin-sql-v1\n")
    frames: list[pd.DataFrame] = []
    rows = 0
    dtypes: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(sa.text(query))
            if not result.returns_rows:
                raise ConfigError(f"the query of SQL source {redact(url)} returns no rows")
            columns = [str(c) for c in result.keys()]  # noqa: SIM118 - a Result's keys
            h.update(json.dumps(columns).encode() + b"\n")
            pick = [columns.index(c) for c in keep] if keep is not None else None
            for part in result.partitions(_CHUNK_ROWS):
                if rows == 0:
                    for i, c in enumerate(columns):
                        kind = "null"
                        for row in part:
                            kind = _merge_kind(kind, _py_kind(row[i]))
                        dtypes[c] = kind
                rows += len(part)
                for row in part:
                    h.update(
                        json.dumps(list(row), default=_json_default, separators=(",", ":")).encode()
                        + b"\n"
                    )
                if pick is not None and keep is not None:
                    frames.append(
                        pd.DataFrame.from_records(
                            [tuple(r[i] for i in pick) for r in part], columns=list(keep)
                        )
                    )
    except ConfigError:
        raise
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(
            f"SQL source {redact(url)}: {_short(getattr(exc, 'orig', None) or exc)}"
        ) from None
    finally:
        engine.dispose()
    for c in columns:
        dtypes.setdefault(c, "null")
    frame = None
    if keep is not None:
        frame = (
            pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: [] for c in keep})
        )
    return _Scan(columns, dtypes, rows, h.hexdigest(), frame)


def _scan(kind: SourceKind, location: str, query: str | None, id_column: str | None) -> _Scan:
    if kind is SourceKind.sql:
        if not query:
            raise ConfigError(f"SQL source {redact(location)} needs a query (--query)")
        return _scan_sql(location, query, None)
    return _scan_file(kind, _file(location), id_column)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or not name.strip("."):
        raise ConfigError(
            f"dataset name {name!r} must be 1-64 characters of letters, digits, _ . - "
            "(not only dots)"
        )
    return name


# -- the registry


class DatasetRegistry:
    """The datasets one node offers to jobs, stored in the node's database.

    Parameters
    ----------
    engine:
        The node's store. The tables (:data:`metadata`) are created by the store's migrations
        (revision ``0004_registry``: :func:`privfin.store.upgrade`).
    clock:
        Returns the current Unix time (injectable for tests).

    Every method reads the database afresh, so a registration made by the CLI while the node
    runs is seen by the node's next check.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self._clock = clock

    # -- writing
    def register(
        self,
        name: str,
        source: str | Path,
        *,
        id_column: str,
        label: str | None = None,
        levels: Mapping[str, Level | str] | None = None,
        default_level: Level | str = Level.C2,
        policy: UsagePolicy | None = None,
        query: str | None = None,
        replace: bool = False,
        origin: str = "cli",
    ) -> DatasetInfo:
        """Register (or with ``replace`` re-register) dataset ``name``.

        Parameters
        ----------
        source:
            A CSV or Parquet file, or a SQLAlchemy URL (then ``query`` is required).
        id_column:
            The column identifying rows (persons): read as strings; level at least C2 unless
            ``levels`` names it.
        label:
            The label column, if the table has one.
        levels:
            Levels of named fields; every other field gets ``default_level``.
        policy:
            The usage policy; default: nothing allowed (see :class:`UsagePolicy`).
        replace:
            Re-register an existing name: the version goes up if anything differs.
        origin:
            ``"cli"`` (an operator's registration) or ``"config"`` (from node.yaml, see
            :meth:`sync_config`).

        Raises
        ------
        ConfigError
            Missing or unreadable source, unknown id/label/level column, a bad level, an
            existing name without ``replace``.
        """
        _check_name(name)
        if origin not in ("cli", "config"):
            raise ConfigError(f"origin must be 'cli' or 'config', got {origin!r}")
        text = str(source)
        kind = _kind_of(text)
        if kind is SourceKind.sql:
            location = text
            if not query or not query.strip():
                raise ConfigError(f"SQL source {redact(text)} needs a query (--query)")
        else:
            if query:
                raise ConfigError("--query is only for a SQL URL source, not for a file")
            location = str(Path(text).expanduser().resolve())
        try:
            default = Level(default_level)
            wanted = {str(k): Level(v) for k, v in (levels or {}).items()}
        except ValueError:
            raise ConfigError(
                f"levels must be one of {', '.join(lv.value for lv in Level)}"
            ) from None
        if not replace and self._row(name) is not None:
            raise ConfigError(
                f"dataset {name!r} is already registered; pass --replace to register it again"
            )
        scan = _scan(kind, location, query, id_column)
        cols = scan.columns
        listing = ", ".join(cols)
        if id_column not in cols:
            raise ConfigError(
                f"id column {id_column!r} is not in {name!r}; available columns: {listing}"
            )
        if label is not None and (label not in cols or label == id_column):
            raise ConfigError(
                f"label column {label!r} is not a non-id column of {name!r}; "
                f"available columns: {listing}"
            )
        unknown = sorted(set(wanted) - set(cols))
        if unknown:
            raise ConfigError(
                f"--level names unknown column(s) {', '.join(unknown)} of {name!r}; "
                f"available columns: {listing}"
            )
        if len(set(cols)) != len(cols):
            raise ConfigError(f"source of {name!r} has duplicate column names: {listing}")

        def level(c: str) -> Level:
            if c in wanted:
                return wanted[c]
            if c == id_column and default.rank < Level.C2.rank:
                return Level.C2
            return default

        fields = tuple(Field(c, scan.dtypes[c], level(c)) for c in cols)
        info = DatasetInfo(
            name=name,
            version=0,
            kind=kind,
            location=location,
            query=query if kind is SourceKind.sql else None,
            id_column=id_column,
            label=label,
            fields=fields,
            rows=scan.rows,
            digest=scan.digest,
            registered_at=datetime.fromtimestamp(self._clock(), UTC),
            policy=policy if policy is not None else UsagePolicy(),
            origin=origin,
        )
        return self._store(info, replace=replace)

    def _store(self, info: DatasetInfo, *, replace: bool) -> DatasetInfo:
        try:
            return self._store_once(info, replace=replace)
        except sa.exc.IntegrityError:
            # Another registration of this name committed between our read and our write
            # (the primary keys of both tables serialise them): nothing of ours was written.
            raise ConfigError(
                f"dataset {info.name!r} was registered by someone else at the same time; "
                "check it with `privfin data show` and run the command again"
            ) from None

    def _store_once(self, info: DatasetInfo, *, replace: bool) -> DatasetInfo:
        t, v = datasets_table, versions_table
        with self.engine.begin() as conn:
            old = conn.execute(sa.select(t).where(t.c.name == info.name)).mappings().first()
            if old is not None:
                if not replace:
                    raise ConfigError(
                        f"dataset {info.name!r} is already registered; pass --replace to "
                        "register it again"
                    )
                prev = _info(old)
                if _same_registration(prev, info):
                    return prev  # identical: keep the version (and its date)
            last = conn.execute(
                sa.select(sa.func.max(v.c.version)).where(v.c.name == info.name)
            ).scalar()
            info = dataclasses.replace(info, version=int(last or 0) + 1)
            row = _row_of(info)
            if old is None:
                conn.execute(t.insert().values(**row))
            else:
                conn.execute(t.update().where(t.c.name == info.name).values(**row))
            conn.execute(
                v.insert().values(
                    name=info.name,
                    version=info.version,
                    kind=info.kind.value,
                    location=info.display_location,
                    fields=row["fields"],
                    rows=info.rows,
                    digest=info.digest,
                    registered_at=row["registered_at"],
                    policy=row["policy"],
                )
            )
        return info

    def set_policy(self, name: str, policy: UsagePolicy) -> DatasetInfo:
        """Replace a dataset's usage policy (a new version, same content)."""
        info = self.get(name)
        if info.policy == policy:
            return info
        return self._store(
            dataclasses.replace(
                info, policy=policy, registered_at=datetime.fromtimestamp(self._clock(), UTC)
            ),
            replace=True,
        )

    def remove(self, name: str) -> None:
        """Forget dataset ``name`` (its version history stays; numbers are not reused)."""
        with self.engine.begin() as conn:
            gone = conn.execute(
                datasets_table.delete().where(datasets_table.c.name == name)
            ).rowcount
        if not gone:
            raise ConfigError(f"dataset {name!r} is not registered on this node")

    def sync_config(self, datasets: Mapping[str, str | Path]) -> dict[str, str]:
        """Register the datasets of node.yaml (``datasets: {name: path}``) at node start.

        A name not yet registered is registered from its file with every field at C2, the id
        column ``id`` if the table has one (else its first column) and an **open** policy
        (any pinned partner, any purpose): listing a file in node.yaml is the operator's
        explicit offer of it to the node's peers, as it was before the registry, and jobs on
        those datasets keep working. A name registered earlier from node.yaml is refreshed
        (new version) when its path or its content changed. A name registered with the CLI
        is left alone: the registry wins over node.yaml — restrict a node.yaml dataset by
        registering it with the CLI (``--replace``). A file that cannot be read does not stop
        the node: it is reported and not registered (a job naming it is refused).

        Returns
        -------
        dict
            Name -> what happened: ``registered``, ``refreshed``, ``unchanged``,
            ``kept (registered with the CLI)`` or ``skipped: <reason>``.
        """
        out: dict[str, str] = {}
        for name, path in datasets.items():
            try:
                old = self._row(name)
                if old is not None and old.origin != "config":
                    out[name] = "kept (registered with the CLI)"
                    continue
                location = str(Path(path).expanduser().resolve())
                if old is not None and old.location == location:
                    kind = _kind_of(location)
                    if _file_digest(_file(location)) == old.digest and kind is old.kind:
                        out[name] = "unchanged"
                        continue
                kind = _kind_of(location)
                cols = _file_columns(kind, _file(location))
                if not cols:
                    raise ConfigError(f"data source {location} has no columns")
                id_column = "id" if "id" in cols else cols[0]
                self.register(
                    name,
                    location,
                    id_column=id_column,
                    policy=old.policy if old is not None else UsagePolicy.open(),
                    replace=old is not None,
                    origin="config",
                )
                out[name] = "registered" if old is None else "refreshed"
            except ConfigError as exc:
                out[name] = f"skipped: {exc}"
        return out

    # -- reading
    def _row(self, name: str) -> DatasetInfo | None:
        t = datasets_table
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.name == name)).mappings().first()
        return None if row is None else _info(row)

    def get(self, name: str) -> DatasetInfo:
        """The registered dataset ``name``; :class:`ConfigError` if there is none."""
        info = self._row(name)
        if info is None:
            raise ConfigError(f"dataset {name!r} is not registered on this node")
        return info

    def list(self) -> list[DatasetInfo]:
        """Every registered dataset, by name."""
        t = datasets_table
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.name)).mappings().all()
        return [_info(r) for r in rows]

    def history(self, name: str) -> builtins.list[dict[str, Any]]:
        """Every version ever registered under ``name`` (oldest first): version, digest, rows,
        registered_at (Unix time), location (redacted)."""
        v = versions_table
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(v.c.version, v.c.digest, v.c.rows, v.c.registered_at, v.c.location)
                .where(v.c.name == name)
                .order_by(v.c.version)
            ).mappings()
            return [dict(r) for r in rows]

    def verify(self, name: str) -> DatasetInfo:
        """Check that the source of ``name`` still has its registered content (hashes it).

        Raises
        ------
        ConfigError
            The dataset is unknown, its source is missing or unreadable, or it changed since
            it was registered (the message says how to re-register it).
        """
        info = self.get(name)
        if info.kind is SourceKind.sql:
            assert info.query is not None  # stored with every SQL source
            scan = _scan_sql(info.location, info.query, None)
            self._same(info, scan.digest, scan.columns)
        else:
            path = _file(info.location)
            digest = _file_digest(path)
            if digest != info.digest:
                self._same(info, digest, _file_columns(info.kind, path))
        return info

    def _same(self, info: DatasetInfo, digest: str, columns: builtins.list[str]) -> None:
        if digest == info.digest:
            return
        how = ""
        if columns != info.columns:
            added = [c for c in columns if c not in info.columns]
            gone = [c for c in info.columns if c not in columns]
            parts = []
            if added:
                parts.append(f"new columns {', '.join(added)}")
            if gone:
                parts.append(f"missing columns {', '.join(gone)}")
            how = f" ({'; '.join(parts) or 'columns reordered'})"
        raise ConfigError(
            f"dataset {info.name!r} changed since it was registered as version {info.version} "
            f"(sha256 {info.digest[:12]}..., now {digest[:12]}...){how}; re-register it with "
            f"`privfin data register {info.name} ... --replace` to use the new content"
        )

    def load(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Read dataset ``name`` after checking that its source still has the registered
        content: ``columns`` if given, else every field that is not C3 (a C3 field is never
        read; the id column is read as strings).

        This is the read path of jobs: call :meth:`check_use` first (``load`` enforces only
        the C3 rule, not C2 nor the policy). The file is hashed before it is parsed; a change
        between the two steps is not seen (the operator's own file system is trusted not to
        race the node).

        Raises
        ------
        ConfigError
            As :meth:`verify`.
        DataPolicyError
            ``columns`` names a field the dataset does not have, or a C3 field.
        """
        import pandas as pd

        info = self.get(name)
        if columns is None:
            cols = [f.name for f in info.fields if f.level is not Level.C3]
        else:
            cols = list(columns)
            for c in cols:
                _not_c3(info, c)
        if info.kind is SourceKind.sql:
            assert info.query is not None  # stored with every SQL source
            scan = _scan_sql(info.location, info.query, cols)
            self._same(info, scan.digest, scan.columns)
            assert scan.frame is not None  # asked for with keep
            df = scan.frame
        else:
            self.verify(name)
            path = Path(info.location)
            try:
                if info.kind is SourceKind.parquet:
                    df = pd.read_parquet(path, columns=cols)
                else:
                    strings = {info.id_column: str} if info.id_column in cols else None
                    df = pd.read_csv(path, sep=_sep(info.location), usecols=cols, dtype=strings)
                    df = df[cols]
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read dataset {name!r}: {_short(exc)}") from None
        if info.id_column in df.columns and info.kind is not SourceKind.csv:
            ids = df[info.id_column]
            df[info.id_column] = ids.where(ids.isna(), ids.astype(str))
        return df

    def iter_column(
        self, name: str, column: str, chunk_rows: int = 250_000
    ) -> Iterator[builtins.list[str | None]]:
        """Yield the values of ``column`` of dataset ``name`` as strings, ``chunk_rows`` at a
        time, after checking the source still has its registered content (a file is hashed,
        then only that column is read, one chunk in memory: for PSI inputs of any size).

        CSV cells are read verbatim (an empty cell is ``""``); Parquet and SQL nulls are
        ``None`` — the conventions of :func:`privfin.psi.sources.iter_id_chunks`. A SQL
        source is read whole (its digest needs every row) and then cut into chunks.

        Raises
        ------
        ConfigError
            As :meth:`verify`, or ``chunk_rows`` < 1.
        DataPolicyError
            ``column`` is not a field of the dataset, or is C3.
        """
        if chunk_rows < 1:
            raise ConfigError(f"chunk_rows must be >= 1, got {chunk_rows}")
        info = self.get(name)
        _not_c3(info, column)
        if info.kind is SourceKind.sql:
            import pandas as pd

            values = self.load(name, [column])[column]
            out = [None if pd.isna(v) else str(v) for v in values]
            for i in range(0, len(out), chunk_rows):
                yield out[i : i + chunk_rows]
            return
        self.verify(name)
        path = Path(info.location)
        try:
            if info.kind is SourceKind.parquet:
                import pyarrow.parquet as pq

                pf = pq.ParquetFile(path)
                for batch in pf.iter_batches(batch_size=chunk_rows, columns=[column]):
                    yield [None if v is None else str(v) for v in batch.column(0).to_pylist()]
                return
            with plain_csv(path, _sep(info.location)) as plain:
                if plain is not None and plain.columns == [column]:
                    # the id-only file of a PSI: its lines are the values (a tenth of
                    # pandas' cost: 0.07 instead of 0.7 core-s at 1M rows)
                    for at in range(0, plain.rows, chunk_rows):
                        last = min(plain.rows, at + chunk_rows) - 1
                        text = plain.data[int(plain.starts[at]) : int(plain.ends[last])]
                        chunk: builtins.list[str | None] = [*text.decode("utf-8").split("\n")]
                        yield chunk
                    return
            import pandas as pd

            reader = pd.read_csv(
                path,
                sep=_sep(info.location),
                usecols=[column],
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                chunksize=chunk_rows,
            )
            with reader:
                for frame in reader:
                    yield frame[column].tolist()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read dataset {name!r}: {_short(exc)}") from None

    def check_use(
        self,
        name: str,
        fields: Collection[str],
        *,
        partner: str,
        purpose: str,
        keeps_private: bool,
    ) -> None:
        """Refuse a use of ``fields`` of dataset ``name`` that its levels or policy forbid.

        Call it for every other party of the job (``partner``) and every component input.
        ``keeps_private``: the component keeps these fields private (secret-shared,
        encrypted, hashed or blinded; no other party sees them in the clear). An empty
        ``fields`` checks only the partner and the purpose.

        Raises
        ------
        ConfigError
            The dataset is not registered.
        DataPolicyError
            A field is unknown or C3, a C2 field would go to a component that does not keep
            it private, or the policy does not allow ``partner`` or ``purpose``.
        """
        info = self.get(name)
        policy = info.policy
        if not policy.allows_partner(partner):
            allowed = ", ".join(sorted(policy.partners)) or "none"
            raise DataPolicyError(
                f"dataset {name!r} may not be used with party {partner!r} "
                f"(allowed partners: {allowed}); change its policy with `privfin data register "
                f"{name} ... --partner {partner} --replace`"
            )
        if not policy.allows_purpose(purpose):
            allowed = ", ".join(sorted(policy.purposes)) or "none"
            raise DataPolicyError(
                f"dataset {name!r} may not be used for purpose {purpose!r} "
                f"(allowed purposes: {allowed})"
            )
        for f in fields:
            level = info.field(f).level
            if level is Level.C3:
                _not_c3(info, f)
            if level is Level.C2 and not keeps_private:
                raise DataPolicyError(
                    f"field {f!r} of dataset {name!r} is C2 and may only enter a component "
                    "that keeps it private; this one does not"
                )


def check_legal_basis(info: DatasetInfo, accepted: Sequence[str]) -> None:
    """Refuse a use of ``info`` by a job that demands one of the legal bases ``accepted`` when
    its usage policy records none of them (:class:`DataPolicyError` naming what to set)."""
    basis = info.policy.legal_basis
    if basis in accepted:
        return
    recorded = f"records {basis!r}" if basis else "records no legal basis"
    raise DataPolicyError(
        f"dataset {info.name!r} {recorded}; the job demands one of {', '.join(accepted)} "
        f"(set it with `privfin data register {info.name} ... --legal-basis "
        f"{accepted[0]} --replace`)"
    )


def _not_c3(info: DatasetInfo, name: str) -> None:
    """Raise DataPolicyError if ``name`` is not a field of ``info`` or is C3."""
    if info.field(name).level is Level.C3:
        raise DataPolicyError(
            f"field {name!r} of dataset {info.name!r} is C3 (JR/T 0171: authentication data) "
            "and can never enter a job"
        )


def _same_registration(a: DatasetInfo, b: DatasetInfo) -> bool:
    """Same content, schema, levels, policy and source (version, date and origin aside)."""
    epoch = datetime.fromtimestamp(0, UTC)
    x = dataclasses.replace(a, version=0, registered_at=epoch, origin="")
    y = dataclasses.replace(b, version=0, registered_at=epoch, origin="")
    return x == y


def _row_of(info: DatasetInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "kind": info.kind.value,
        "location": info.location,
        "query": info.query,
        "id_column": info.id_column,
        "label": info.label,
        "fields": json.dumps([[f.name, f.dtype, f.level.value] for f in info.fields]),
        "rows": info.rows,
        "digest": info.digest,
        "registered_at": info.registered_at.timestamp(),
        "policy": json.dumps(info.policy.to_json(), sort_keys=True),
        "origin": info.origin,
    }


def _info(row: Any) -> DatasetInfo:
    return DatasetInfo(
        name=row["name"],
        version=int(row["version"]),
        kind=SourceKind(row["kind"]),
        location=row["location"],
        query=row["query"],
        id_column=row["id_column"],
        label=row["label"],
        fields=tuple(Field(n, d, Level(lv)) for n, d, lv in json.loads(row["fields"])),
        rows=int(row["rows"]),
        digest=row["digest"],
        registered_at=datetime.fromtimestamp(float(row["registered_at"]), UTC),
        policy=UsagePolicy.from_json(json.loads(row["policy"])),
        origin=row["origin"],
    )
