"""The audit log's tables, on their own :class:`~sqlalchemy.MetaData` (:data:`metadata`).

``audit_entries`` holds the chain, one row per entry (``seq`` 1..n, gapless). ``audit_head`` has
exactly one row (``id = 1``): the node the log belongs to and the seq and hash of the last
entry. Every append updates the head row first in its transaction, which serialises appends
on SQLite (the write lock) and PostgreSQL (the row lock) alike. The Alembic migration
``0003_audit`` creates the same tables (a test compares them).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

__all__ = ["audit_entries", "audit_head", "metadata"]

metadata = MetaData()

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("node", String(128), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("job", String(128), nullable=True),
    Column("step", String(128), nullable=True),
    Column("dataset", String(128), nullable=True),
    Column("party", String(128), nullable=True),
    Column("evidence", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("signature", Text, nullable=True),
)
Index("ix_audit_entries_job", audit_entries.c.job)
Index("ix_audit_entries_ts", audit_entries.c.ts)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("node", String(128), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)
