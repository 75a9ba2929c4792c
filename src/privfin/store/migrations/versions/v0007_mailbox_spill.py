"""Mailbox: large payloads kept in files next to the store.

Revision ID: 0007_mailbox_spill
Revises: 0001_base

A message row whose ``spilled`` flag is set has its payload in a file of the node's mailbox
directory (written before the row's transaction commits) instead of the ``payload`` column.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_mailbox_spill"
down_revision: str | None = "0001_base"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("spilled", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("spilled")
