"""Pipeline scheduler state: step states, artifacts with lineage, restart notices.

Revision ID: 0002_scheduler
Revises: 0001_base

Tables of :mod:`privfin.jobs.store` (one party's pipeline steps, the files its steps wrote and
the restart notices it still has to deliver).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_scheduler"
down_revision: str | None = "0001_base"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "pipeline_steps",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(64), primary_key=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Integer, nullable=True),
        sa.Column("ended_at", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "artifacts",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(64), primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("format_version", sa.Integer, nullable=False),
        sa.Column("lineage", sa.Text, nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
    )
    op.create_table(
        "restart_outbox",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("receiver", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(64), primary_key=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("deadline", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("restart_outbox")
    op.drop_table("artifacts")
    op.drop_table("pipeline_steps")
