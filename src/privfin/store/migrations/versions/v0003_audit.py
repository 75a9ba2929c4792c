"""The audit log: hash-chained entries and the one-row head.

Revision ID: 0003_audit
Revises: 0001_base

Mirrors :data:`privfin.audit.store.metadata` (tests compare the two).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_audit"
down_revision: str | None = "0001_base"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("job", sa.String(128), nullable=True),
        sa.Column("step", sa.String(128), nullable=True),
        sa.Column("dataset", sa.String(128), nullable=True),
        sa.Column("party", sa.String(128), nullable=True),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text, nullable=True),
    )
    op.create_index("ix_audit_entries_job", "audit_entries", ["job"])
    op.create_index("ix_audit_entries_ts", "audit_entries", ["ts"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_index("ix_audit_entries_ts", table_name="audit_entries")
    op.drop_index("ix_audit_entries_job", table_name="audit_entries")
    op.drop_table("audit_entries")
