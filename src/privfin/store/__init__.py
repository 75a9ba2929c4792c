"""The node's store: a SQLAlchemy engine on SQLite (default, embedded) or PostgreSQL, and the
Alembic migrations that create and evolve its tables.

``open_engine(url_or_path)`` opens it; ``upgrade(engine)`` migrates it to every head (run at
node start, idempotent). Packages keep their ``Table`` definitions on their own ``MetaData``;
the migrations under ``privfin/store/migrations/versions`` create them (see the README there);
``declare_schema`` lets a new, empty database be created from the MetaData at once.
Bottom layer: imports only :mod:`privfin.errors`.
"""

from privfin.store.engine import open_engine, safe_url, to_url
from privfin.store.migrate import (
    BASE_REVISION,
    BASE_TABLES,
    current_revisions,
    declare_schema,
    head_revisions,
    upgrade,
)

__all__ = [
    "BASE_REVISION",
    "BASE_TABLES",
    "current_revisions",
    "declare_schema",
    "head_revisions",
    "open_engine",
    "safe_url",
    "to_url",
    "upgrade",
]
