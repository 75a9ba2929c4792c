"""Opening the node's database: SQLite by default, PostgreSQL (or another backend) by URL.

SQLite files are private: the directory is created 0700, the database and its ``-wal`` /
``-shm`` files 0600 (an existing database is tightened). Every SQLite connection runs in WAL
mode with ``synchronous=NORMAL``, incremental auto-vacuum (pages freed by retention go back to
the file system) and a 30 s busy timeout, and may be used from any thread (the node's job
threads share the engine). PostgreSQL gets a bounded connection pool whose connections are
checked before use and recycled, through psycopg 3.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from privfin.errors import StoreError

__all__ = ["POOL_OVERFLOW", "POOL_SIZE", "open_engine", "safe_url", "to_url"]

#: PostgreSQL connections kept open per engine, and how many more may be opened under load (a
#: node runs many jobs at once, each on its own thread).
POOL_SIZE = 10
POOL_OVERFLOW = 20
_POOL_RECYCLE = 1800
_SQLITE_BUSY_TIMEOUT = 30.0


def to_url(url_or_path: str | Path | URL) -> URL:
    """A SQLAlchemy URL for ``url_or_path``: a URL as given (``postgresql://`` uses psycopg
    3), or anything without ``://`` as the path of a SQLite file."""
    if isinstance(url_or_path, URL):
        url = url_or_path
    elif isinstance(url_or_path, Path) or "://" not in url_or_path:
        url = URL.create("sqlite", database=str(url_or_path))
    else:
        try:
            url = make_url(url_or_path)
        except (ArgumentError, ValueError):
            raise StoreError(
                "the store is not a database URL (e.g. postgresql://user@host/db) nor a "
                "SQLite file path"
            ) from None
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def safe_url(url: URL | Engine) -> str:
    """The URL with its password hidden, for messages and logs."""
    if isinstance(url, Engine):
        url = url.url
    return url.render_as_string(hide_password=True)


def _memory_sqlite(url: URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or (db.startswith("file:") and "mode=memory" in db)


def open_engine(url_or_path: str | Path | URL) -> Engine:
    """An engine for the node's store (nothing is created in it: see :func:`upgrade`).

    Parameters
    ----------
    url_or_path:
        A SQLite file path (created private, with its directory, if absent), or a SQLAlchemy
        URL: ``sqlite:///path``, ``postgresql://user@host:5432/db`` (psycopg 3; a password
        may come from ``~/.pgpass`` or ``PGPASSWORD`` instead of the URL), or another backend
        SQLAlchemy supports (untested).

    Raises
    ------
    StoreError
        The URL is malformed or its database driver is not installed.
    """
    url = to_url(url_or_path)
    backend = url.get_backend_name()
    kwargs: dict[str, Any] = {}
    if backend == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT}
        if _memory_sqlite(url):
            kwargs["poolclass"] = StaticPool  # one database shared by every thread
        elif url.database is not None and not url.database.startswith("file:"):
            _private_sqlite_files(Path(url.database))
    else:
        kwargs.update(pool_pre_ping=True, pool_recycle=_POOL_RECYCLE)
        if backend == "postgresql":
            kwargs.update(pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_timeout=30)
    try:
        engine = create_engine(url, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"cannot open the store {safe_url(url)}: its database driver is missing ({exc})"
        ) from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _private_sqlite_files(path: Path) -> None:
    """Create the database's directory (0700) and its file (0600) if absent, and make an
    existing database and its ``-wal``/``-shm`` files 0600 (SQLite creates those two with the
    database file's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    old = os.umask(0o077)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot create the SQLite store {path}: {exc.strerror}") from None
    finally:
        os.umask(old)
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if name.exists() and not name.is_symlink():
            os.chmod(name, 0o600)


def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
    cur = dbapi_conn.cursor()
    try:
        # Set only what is not set yet: auto_vacuum and the WAL journal are properties of the
        # file (the first connection sets them), and changing them needs the write lock — a
        # connection opened while another one writes must not wait for it, nor fail. A new
        # file opened by several connections at once can still see "locked": retried.
        deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT
        while True:
            try:
                # Pages freed by retention go back to the file system at each sweep (takes
                # effect for a database created with it; an older one reuses its free pages).
                if cur.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                    cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
                if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                    cur.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()
