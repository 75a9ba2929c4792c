"""Alembic environment of privfin's store: online only, on the connection that
:func:`privfin.store.upgrade` holds (inside its transaction and lock)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("privfin's migrations run through privfin.store.upgrade(engine)")
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
