"""Negotiation: proposals, signed decisions (evidence), messages still to deliver.

Revision ID: 0005_negotiation
Revises: 0001_base

Tables of :mod:`privfin.jobs.negotiation`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_negotiation"
down_revision: str | None = "0001_base"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "proposals",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
        sa.Column("initiator", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Integer, nullable=False),
    )
    op.create_table(
        "decisions",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("party", sa.String(64), primary_key=True),
        sa.Column("decision", sa.String(16), primary_key=True),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
        sa.Column("at", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )
    op.create_table(
        "negotiation_outbox",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("receiver", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("deadline", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("negotiation_outbox")
    op.drop_table("decisions")
    op.drop_table("proposals")
