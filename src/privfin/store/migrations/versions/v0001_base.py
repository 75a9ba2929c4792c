"""The base schema: the node's mailbox and job runner tables as they were before migrations.

Revision ID: 0001_base
Revises: (none)

Tables and indexes are created only if absent: a database from before migrations (checked
and completed by :func:`privfin.store.upgrade`) is adopted by this revision without losing
its rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_base"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None


def upgrade() -> None:
    # privfin.federation.mailbox: messages received, chunks of large ones, aborts received.
    op.create_table(
        "messages",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("component", sa.String(64), primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("sender", sa.String(64), primary_key=True),
        sa.Column("receiver", sa.String(64), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("received_at", sa.Integer, nullable=False),
        if_not_exists=True,
    )
    op.create_index(
        "ix_messages_sender_time", "messages", ["sender", "received_at"], if_not_exists=True
    )
    op.create_index("ix_messages_time", "messages", ["received_at"], if_not_exists=True)
    op.create_table(
        "chunks",
        sa.Column("path", sa.String(400), primary_key=True),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("job", sa.String(64), nullable=True),
        sa.Column("sender", sa.String(64), nullable=True),
        sa.Column("size", sa.Integer, nullable=True),
        sa.Column("received_at", sa.Integer, nullable=True),
        if_not_exists=True,
    )
    op.create_index("ix_chunks_sender", "chunks", ["sender"], if_not_exists=True)
    op.create_index("ix_chunks_job", "chunks", ["job"], if_not_exists=True)
    op.create_table(
        "aborts",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("sender", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(1000), nullable=False),
        if_not_exists=True,
    )
    # privfin.node.runner: job records, aborts still to deliver, reasons given to peers.
    op.create_table(
        "jobs",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("updated_at", sa.Integer, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "abort_outbox",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("receiver", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("deadline", sa.Integer, nullable=False),
        if_not_exists=True,
    )
    op.create_table(
        "peer_reasons",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(400), nullable=False),
        if_not_exists=True,
    )


def downgrade() -> None:
    for index, table in (
        ("ix_messages_sender_time", "messages"),
        ("ix_messages_time", "messages"),
        ("ix_chunks_sender", "chunks"),
        ("ix_chunks_job", "chunks"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("peer_reasons", "abort_outbox", "jobs", "aborts", "chunks", "messages"):
        op.drop_table(table)
