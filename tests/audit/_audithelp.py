"""Helpers of the audit tests: filling a log, and the moves of someone who edits the
database (raw SQL, or rewriting entries and recomputing every later hash)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text, update

from privfin.audit import AuditLog
from privfin.audit.chain import canonical, entry_hash
from privfin.audit.store import audit_entries, audit_head

NODE = "bank_a"


def fill(log: AuditLog, n: int, *, job: str = "j1") -> None:
    """``n`` entries of assorted actions."""
    actions = ["proposal_received", "approval", "data_access", "step_done", "dp_spend"]
    for i in range(n):
        log.append(
            actions[i % len(actions)],
            actor="scheduler",
            job=job,
            step=f"s{i}",
            dataset="loans" if i % 2 else None,
            party="telco",
            evidence={"digest": f"sha256:{i:064x}", "rows": i, "epsilon": 0.25},
        )


def sql(engine: Engine, statement: str, **params: Any) -> None:
    """What someone with write access to the database can do."""
    with engine.begin() as conn:
        conn.execute(text(statement), params)


def recompute_from(engine: Engine, seq: int, change: dict[str, Any]) -> None:
    """The thorough attacker: change entry ``seq`` and recompute every later hash and the
    head row, with the (public) hash algorithm."""
    with engine.begin() as conn:
        rows = conn.execute(select(audit_entries).order_by(audit_entries.c.seq)).all()
        prev = None
        for row in rows:
            rec = {
                k: getattr(row, k)
                for k in ("seq", "ts", "node", "actor", "action", "job", "step", "dataset", "party")
            }
            rec["evidence"] = json.loads(row.evidence)
            rec["prev_hash"] = row.prev_hash if prev is None else prev
            if row.seq < seq:
                prev = row.hash
                continue
            if row.seq == seq:
                rec.update(change)
            digest = entry_hash(rec)
            conn.execute(
                update(audit_entries)
                .where(audit_entries.c.seq == row.seq)
                .values(**{**rec, "evidence": canonical(rec["evidence"]).decode()}, hash=digest)
            )
            prev = digest
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=prev))


def head_row(engine: Engine) -> tuple[int, str]:
    with engine.connect() as conn:
        row = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    return int(row.seq), str(row.hash)


def entry_hash_at(engine: Engine, seq: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                select(audit_entries.c.hash).where(audit_entries.c.seq == seq)
            ).scalar_one()
        )


def bundle_lines(path: Path) -> list[str]:
    return (path / "entries.jsonl").read_text().splitlines(keepends=True)
