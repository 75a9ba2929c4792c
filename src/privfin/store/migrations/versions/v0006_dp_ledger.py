"""Differential privacy: budgets per dataset (and party) and the ledger of spends.

Revision ID: 0006_dp_ledger
Revises: 0001_base

Tables of :mod:`privfin.dp.ledger`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_dp_ledger"
down_revision: str | None = "0001_base"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "dp_budgets",
        sa.Column("dataset", sa.String(64), primary_key=True),
        sa.Column("party", sa.String(64), primary_key=True),
        sa.Column("epsilon", sa.Float, nullable=False),
        sa.Column("delta", sa.Float, nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("set_at", sa.Float, nullable=False),
    )
    op.create_table(
        "dp_spends",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset", sa.String(64), nullable=False),
        sa.Column("party", sa.String(64), nullable=False),
        sa.Column("job", sa.String(64), nullable=False),
        sa.Column("step", sa.String(128), nullable=True),
        sa.Column("mechanism", sa.String(64), nullable=False),
        sa.Column("epsilon", sa.Float, nullable=False),
        sa.Column("delta", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("who", sa.String(64), nullable=False),
        sa.Column("reserved_at", sa.Float, nullable=False),
        sa.Column("settled_at", sa.Float, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index("ix_dp_spends_dataset", "dp_spends", ["dataset", "state"])


def downgrade() -> None:
    op.drop_index("ix_dp_spends_dataset", table_name="dp_spends")
    op.drop_table("dp_spends")
    op.drop_table("dp_budgets")
