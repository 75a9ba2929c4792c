"""The data registry: registered datasets and the history of their versions.

Revision ID: 0004_registry
Revises: 0001_base

Mirrors :data:`privfin.data.registry.metadata` (tests compare the two).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_registry"
down_revision: str | None = "0001_base"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_datasets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("query", sa.Text, nullable=True),
        sa.Column("id_column", sa.String(256), nullable=False),
        sa.Column("label", sa.String(256), nullable=True),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
    )
    op.create_table(
        "registry_versions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("policy", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("registry_versions")
    op.drop_table("registry_datasets")
