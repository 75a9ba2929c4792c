"""Alembic migrations of the node's store (run by :func:`privfin.store.upgrade`)."""
