"""Persisted pipeline state of one party: step states and versioned artifacts with lineage.

Tables (SQLAlchemy Core, on :data:`metadata`; created by the Alembic migration
``0002_scheduler``): ``pipeline_steps`` — one row per (job, step): attempt, status (pending,
running, done, failed), times, error, progress; ``artifacts`` — one row per output file of a
step attempt: kind, path (relative to the job's directory), SHA-256, size, format version and
lineage (job, step, attempt, component, the digests of the inputs it was computed from).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
    update,
)

__all__ = ["ArtifactRecord", "PipelineStore", "StepRecord", "metadata"]

metadata = MetaData()

pipeline_steps = Table(
    "pipeline_steps",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("step", String(64), primary_key=True),
    Column("attempt", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", Integer, nullable=True),
    Column("ended_at", Integer, nullable=True),
    Column("error", Text, nullable=True),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("step", String(64), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("path", String(400), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("format_version", Integer, nullable=False),
    Column("lineage", Text, nullable=False),
    Column("created_at", Integer, nullable=False),
)

# Restart notices this party still has to deliver to the other parties of a step.
restart_outbox = Table(
    "restart_outbox",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("receiver", String(64), primary_key=True),
    Column("step", String(64), primary_key=True),
    Column("attempt", Integer, nullable=False),
    Column("deadline", Integer, nullable=False),
)


@dataclass(frozen=True)
class StepRecord:
    job: str
    step: str
    attempt: int
    status: str
    started_at: int | None
    ended_at: int | None
    error: str | None


@dataclass(frozen=True)
class ArtifactRecord:
    job: str
    step: str
    attempt: int
    name: str
    kind: str
    path: str
    sha256: str
    size: int
    format_version: int
    lineage: dict[str, Any]
    created_at: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "attempt": self.attempt,
            "name": self.name,
            "kind": self.kind,
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "format_version": self.format_version,
            "lineage": self.lineage,
            "created_at": self.created_at,
        }


class PipelineStore:
    """Step states and artifacts of the jobs of one party."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_tables(self) -> None:
        """For tests and in-process simulation; nodes create them by migration."""
        metadata.create_all(self.engine)

    # -- steps
    def step(self, job: str, step: str) -> StepRecord | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(pipeline_steps).where(
                        and_(pipeline_steps.c.job == job, pipeline_steps.c.step == step)
                    )
                )
                .mappings()
                .first()
            )
        return None if row is None else StepRecord(**dict(row))

    def steps(self, job: str) -> dict[str, StepRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(pipeline_steps).where(pipeline_steps.c.job == job))
            return {r["step"]: StepRecord(**dict(r)) for r in rows.mappings()}

    def set_step(self, job: str, step: str, **values: Any) -> StepRecord:
        """Create or update the row of (job, step); returns the new record."""
        with self.engine.begin() as conn:
            cond = and_(pipeline_steps.c.job == job, pipeline_steps.c.step == step)
            exists = conn.execute(select(pipeline_steps.c.attempt).where(cond)).first()
            if exists is None:
                row = {"attempt": 1, "status": "pending", **values}
                conn.execute(insert(pipeline_steps).values(job=job, step=step, **row))
            elif values:
                conn.execute(update(pipeline_steps).where(cond).values(**values))
        rec = self.step(job, step)
        assert rec is not None
        return rec

    # -- restart notices
    def queue_restart(
        self, job: str, step: str, attempt: int, receivers: list[str], deadline: int
    ) -> None:
        with self.engine.begin() as conn:
            for r in receivers:
                cond = and_(
                    restart_outbox.c.job == job,
                    restart_outbox.c.receiver == r,
                    restart_outbox.c.step == step,
                )
                conn.execute(delete(restart_outbox).where(cond))
                conn.execute(
                    insert(restart_outbox).values(
                        job=job, receiver=r, step=step, attempt=attempt, deadline=deadline
                    )
                )

    def pending_restarts(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(restart_outbox)).mappings()]

    def restart_done(self, job: str, receiver: str, step: str, attempt: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(restart_outbox).where(
                    and_(
                        restart_outbox.c.job == job,
                        restart_outbox.c.receiver == receiver,
                        restart_outbox.c.step == step,
                        restart_outbox.c.attempt == attempt,
                    )
                )
            )

    # -- artifacts
    def add_artifact(self, rec: ArtifactRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(artifacts).where(
                    and_(
                        artifacts.c.job == rec.job,
                        artifacts.c.step == rec.step,
                        artifacts.c.attempt == rec.attempt,
                        artifacts.c.name == rec.name,
                    )
                )
            )
            conn.execute(
                insert(artifacts).values(
                    job=rec.job,
                    step=rec.step,
                    attempt=rec.attempt,
                    name=rec.name,
                    kind=rec.kind,
                    path=rec.path,
                    sha256=rec.sha256,
                    size=rec.size,
                    format_version=rec.format_version,
                    lineage=json.dumps(rec.lineage, sort_keys=True),
                    created_at=rec.created_at or int(time.time()),
                )
            )

    def artifacts(self, job: str, step: str | None = None) -> list[ArtifactRecord]:
        """The artifacts of the latest completed attempt of each step (or of ``step``)."""
        with self.engine.connect() as conn:
            q = select(artifacts).where(artifacts.c.job == job)
            if step is not None:
                q = q.where(artifacts.c.step == step)
            rows = [dict(r) for r in conn.execute(q).mappings()]
        steps = self.steps(job)
        out = []
        for r in rows:
            st = steps.get(r["step"])
            if st is None or st.attempt != r["attempt"]:
                continue  # an attempt that was superseded
            r["lineage"] = json.loads(r["lineage"])
            out.append(ArtifactRecord(**r))
        return sorted(out, key=lambda a: (a.step, a.name))
