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

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from privfin.errors import StoreError
from privfin.store.engine import open_engine, safe_url

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["BASE_REVISION", "BASE_TABLES", "current_revisions", "head_revisions", "upgrade"]

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


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def head_revisions() -> tuple[str, ...]:
    """The heads of this privfin's migrations (one per feature branch), sorted."""
    from alembic.script import ScriptDirectory

    return tuple(sorted(ScriptDirectory.from_config(_config()).get_heads()))


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


def current_revisions(engine: Engine) -> tuple[str, ...]:
    """The revisions the database is at (empty for a new or pre-migration database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))


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
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError

    where = safe_url(engine)
    try:
        heads = head_revisions()
        with engine.connect() as conn:  # already at the heads (every start but the first)
            if set(MigrationContext.configure(conn).get_current_heads()) == set(heads):
                return heads
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
