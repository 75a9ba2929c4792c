"""Bringing the node's database to the schema of this privfin: Alembic migrations, run at
start by the node (no ``alembic.ini``: the scripts ship inside this package).

Revision "0001_base" holds the tables that existed before migrations; features add their
tables as branches off it, so :func:`upgrade` goes to every head. A database from before
migrations (privfin tables, no ``alembic_version``) is checked against the base schema,
completed (columns and tables added by later releases of that time) and adopted at
"0001_base" with its rows. A database migrated by a newer privfin is refused. The whole
upgrade runs in one transaction under a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock
on PostgreSQL), so two processes opening the same new database do not both create it.
"""

from __future__ import annotations

import ast
import functools
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, inspect, text
from sqlalchemy.exc import DBAPIError

from privfin.errors import StoreError
from privfin.store.engine import open_engine, safe_url

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "BASE_REVISION",
    "BASE_TABLES",
    "current_revisions",
    "declare_schema",
    "head_revisions",
    "upgrade",
]

_log = logging.getLogger("privfin.store")

BASE_REVISION = "0001_base"
#: The tables of revision "0001_base" (privfin.federation.mailbox, privfin.node.runner).
BASE_TABLES = frozenset({"messages", "chunks", "aborts", "jobs", "abort_outbox", "peer_reasons"})
# Columns that databases of before [08] lack (added then by ALTER TABLE at open).
_LEGACY_ADDED = {
    "chunks": {
        "job": "VARCHAR(64)",
        "sender": "VARCHAR(64)",
        "size": "INTEGER",
        "received_at": "INTEGER",
    },
}
_SCRIPTS = Path(__file__).with_name("migrations")
# Any constant: the key of the PostgreSQL advisory lock held while upgrading.
_PG_LOCK_KEY = 0x70726976_66696E00


#: The table Alembic records a database's revisions in, as Alembic creates it.
_VERSION_TABLE = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), primary_key=True),
)
_VERSION_TABLE.primary_key.name = "alembic_version_pkc"


@functools.cache
def _script_heads(scripts: Path) -> tuple[str, ...] | None:
    """The heads of the revision scripts under ``scripts`` read from their source (each
    module's ``revision`` and ``down_revision`` constants), without importing Alembic; None
    if a script does not state them as plain constants (then Alembic is asked)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((scripts / "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue
        found: dict[str, object] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = value = None
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            if isinstance(target, ast.Name) and value is not None:
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    found[target.id] = value
        rev, down = found.get("revision"), found.get("down_revision")
        if not isinstance(rev, str) or found.get("depends_on") is not None:
            return None
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple) and all(isinstance(d, str) for d in down):
            parents.update(down)
        elif down is not None:
            return None
        revisions.add(rev)
    return tuple(sorted(revisions - parents)) if revisions else None


# The schema a fresh database gets without running the migrations (see declare_schema).
_declared: list[tuple[tuple[str, ...], tuple[MetaData, ...]]] = []


def declare_schema(heads: Iterable[str], metadata: Iterable[MetaData]) -> None:
    """Declare that ``metadata`` (together) is the whole schema at the revisions ``heads``:
    :func:`upgrade` then creates a *new, empty* database at those heads with ``create_all``
    and records the heads, instead of running every migration through Alembic (0.5-0.9 s of
    a node's first start). Used only while ``heads`` are this privfin's heads; a database
    with any table is migrated as before. The node declares its tables this way; the tests
    check that both paths give the same schema."""
    _declared.append((tuple(sorted(heads)), tuple(metadata)))


def _fresh_schema(heads: tuple[str, ...]) -> tuple[MetaData, ...] | None:
    for declared, metadata in reversed(_declared):
        if declared == heads:
            return metadata
    return None


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def head_revisions() -> tuple[str, ...]:
    """The heads of this privfin's migrations (one per feature branch), sorted."""
    heads = _script_heads(_SCRIPTS)
    if heads is not None:
        return heads
    from alembic.script import ScriptDirectory

    return tuple(sorted(ScriptDirectory.from_config(_config()).get_heads()))


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revisions(engine: Engine) -> tuple[str, ...]:
    """The revisions the database is at (empty for a new or pre-migration database)."""
    with engine.connect() as conn:
        return _current(conn)


def _current(conn: Connection) -> tuple[str, ...]:
    """What Alembic's ``get_current_heads`` reads: the rows of ``alembic_version``."""
    if not inspect(conn).has_table(_VERSION_TABLE.name):
        return ()
    rows = conn.execute(_VERSION_TABLE.select()).scalars()
    return tuple(sorted(str(r) for r in rows))


def upgrade(engine: Engine) -> tuple[str, ...]:
    """Migrate the database to every head of this privfin's migrations; returns them.

    Idempotent (a database at the heads is left alone). A database from before migrations is
    adopted at "0001_base" first (see the module docstring).

    Raises
    ------
    StoreError
        The database cannot be reached, was migrated by a newer privfin, or has privfin
        tables from before migrations that do not match the base schema.
    """
    where = safe_url(engine)
    try:
        heads = head_revisions()
        with engine.connect() as conn:  # already at the heads (every start but the first)
            if _current(conn) == heads:
                return heads
        schema = _fresh_schema(heads)
        if schema is not None and _create_fresh(engine, schema, heads):
            _log.info("store %s created at %s", where, ", ".join(heads))
            return heads
    except DBAPIError as exc:
        raise StoreError(f"cannot migrate the store {where}: {exc.orig}") from None
    return _migrate(engine, heads, where)


def _create_fresh(engine: Engine, schema: tuple[MetaData, ...], heads: tuple[str, ...]) -> bool:
    """Create the declared schema in a database without any table and record ``heads``, under
    the upgrade's lock; False (nothing done) if the database has a table."""
    with engine.connect() as conn:
        _lock(conn)
        if inspect(conn).get_table_names():
            conn.rollback()
            return False
        for metadata in schema:
            metadata.create_all(conn)
        _VERSION_TABLE.create(conn)
        conn.execute(_VERSION_TABLE.insert(), [{"version_num": h} for h in heads])
        conn.commit()
    return True


def _migrate(engine: Engine, heads: tuple[str, ...], where: str) -> tuple[str, ...]:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError

    try:
        with engine.connect() as conn:
            _lock(conn)
            current = set(MigrationContext.configure(conn).get_current_heads())
            unknown = current - _known_revisions()
            if unknown:
                raise StoreError(
                    f"the store {where} is at revision {', '.join(sorted(unknown))}, which this "
                    "privfin does not know: it was upgraded by a newer privfin; run that "
                    "version (or restore a backup taken before the upgrade)"
                )
            if not current:
                existing = set(inspect(conn).get_table_names())
                if existing & BASE_TABLES:
                    _adopt(conn, existing, where)
            command.upgrade(_config(conn), "heads")
            conn.commit()
    except DBAPIError as exc:
        raise StoreError(f"cannot migrate the store {where}: {exc.orig}") from None
    except CommandError as exc:
        raise StoreError(f"cannot migrate the store {where}: {exc}") from None
    _log.info("store %s migrated to %s", where, ", ".join(heads))
    return heads


def _lock(conn: Connection) -> None:
    """Start the upgrade's transaction holding the database's write lock (SQLite) or an
    advisory lock (PostgreSQL) until it commits."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


_Shape = dict[str, tuple[type, bool, bool]]  # column -> (python type, nullable, primary key)


def _shape(conn: Connection, table: str) -> _Shape:
    insp = inspect(conn)
    pk = set(insp.get_pk_constraint(table)["constrained_columns"])
    out: _Shape = {}
    for col in insp.get_columns(table):
        try:
            kind: type = col["type"].python_type
        except NotImplementedError:
            kind = object
        name = col["name"]
        out[name] = (kind, bool(col["nullable"]) and name not in pk, name in pk)
    return out


@functools.lru_cache(maxsize=1)
def _base_schema() -> dict[str, _Shape]:
    """The tables of "0001_base" as its migration creates them (in an in-memory database)."""
    from alembic import command

    scratch = open_engine("sqlite://")
    try:
        with scratch.connect() as conn:
            command.upgrade(_config(conn), BASE_REVISION)
            conn.commit()
            return {t: _shape(conn, t) for t in BASE_TABLES}
    finally:
        scratch.dispose()


def _adopt(conn: Connection, existing: set[str], where: str) -> None:
    """Check the privfin tables of a database from before migrations against "0001_base" and
    add the columns older releases lacked; "0001_base" then creates any missing table or
    index (and records the revision)."""
    base = _base_schema()
    problems: list[str] = []
    to_add: list[tuple[str, str, str]] = []
    for table in sorted(existing & BASE_TABLES):
        have, want = _shape(conn, table), base[table]
        legacy = _LEGACY_ADDED.get(table, {})
        for name, spec in want.items():
            if name not in have:
                if name in legacy:
                    to_add.append((table, name, legacy[name]))
                else:
                    problems.append(f"{table}.{name} is missing")
            elif have[name] != spec:
                problems.append(f"{table}.{name} differs")
        problems += [f"{table}.{name} is unexpected" for name in have if name not in want]
    if problems:
        raise StoreError(
            f"the store {where} has privfin tables from before migrations that do not match "
            f"the base schema ({'; '.join(problems)}); move it away or restore a backup"
        )
    for table, name, sql_type in to_add:
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))
    _log.warning("store %s: adopting a database from before migrations at %s", where, BASE_REVISION)
