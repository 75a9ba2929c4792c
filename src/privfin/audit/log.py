"""A node's append-only, hash-chained audit log in SQL (:class:`AuditLog`).

One :class:`AuditLog` per node process, shared by all its threads. An append is one short
transaction: it first bumps the one-row head table (which takes the write lock on SQLite and
the row lock on PostgreSQL, so appends from every thread and process on the database are
serialised), reads the previous hash, inserts the entry and stores its hash as the new head.
Within a process a lock also orders the threads, so they do not wait on the database.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Connection, Engine, func, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from privfin.audit.chain import (
    MAX_FIELD_LENGTH,
    Action,
    AuditEntry,
    ChainWalker,
    SignedHead,
    canonical,
    entry_hash,
    genesis_hash,
    key_fingerprint,
    normalise_evidence,
    sign_head,
)
from privfin.audit.store import audit_entries, audit_head
from privfin.errors import ConfigError
from privfin.federation.transport import validate_name

__all__ = ["AuditLog", "VerifyReport"]

_BATCH = 2000
_LOCK_RETRY_FOR = 60.0  # seconds an append retries while another process holds SQLite's lock


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`AuditLog.verify` (or a bundle check) found.

    ``first_bad_seq`` is the first entry the log (or bundle) cannot vouch for and ``reason``
    says why in one line; both are ``None`` when ``ok``. ``checkpoints`` counts checkpoint
    entries (their signatures were checked if ``signatures_checked``); ``head_seq`` and
    ``head_hash`` are the last entry's."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str | None
    checkpoints: int
    signatures_checked: bool
    heads_checked: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def __str__(self) -> str:
        if self.ok:
            what = f"{self.entries} entries, head seq {self.head_seq}"
            if self.checkpoints:
                signed = "signatures checked" if self.signatures_checked else "not checked"
                what += f", {self.checkpoints} checkpoints ({signed})"
            if self.heads_checked:
                what += f", {self.heads_checked} signed heads matched"
            return f"ok: {what}"
        return f"FAILED at seq {self.first_bad_seq}: {self.reason}"


def _field(kind: str, value: str | None, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValueError(f"audit {kind} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD_LENGTH:
        raise ValueError(f"audit {kind} must be a string of 1-{MAX_FIELD_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ValueError(f"audit {kind} must not contain control characters or surrogates")
    return value


def _row_entry(row: Any) -> AuditEntry:
    try:
        evidence = json.loads(row.evidence)
    except ValueError:
        evidence = {"<unreadable evidence>": str(row.evidence)[:200]}
    if not isinstance(evidence, dict):
        evidence = {"<not an object>": evidence}
    return AuditEntry(
        seq=int(row.seq),
        ts=int(row.ts),
        node=row.node,
        actor=row.actor,
        action=row.action,
        job=row.job,
        step=row.step,
        dataset=row.dataset,
        party=row.party,
        evidence=evidence,
        prev_hash=row.prev_hash,
        hash=row.hash,
        signature=row.signature,
    )


class AuditLog:
    """The audit log of node ``node`` in the database behind ``engine``.

    The tables come from the migrations (``0003_audit``) or
    ``privfin.audit.store.metadata.create_all``. A database holds the log of one node: opening
    it under another node's name is refused at the first append or verification.

    Parameters
    ----------
    engine:
        A SQLAlchemy engine (SQLite or PostgreSQL).
    node:
        This node's party name; every entry carries it and the chain starts from
        :func:`~privfin.audit.chain.genesis_hash` of it.
    clock:
        Seconds since the epoch (injectable for tests); entries store microseconds.

    What it proves
    --------------
    The chain shows that no entry was edited, removed, inserted or reordered *unless* whoever
    did it recomputed every later hash and the head row — which anyone with write access to the
    database can. Signed checkpoints (:meth:`seal`) and signed heads kept by peers
    (:meth:`export` with a key) catch that too, up to the latest one held outside the database,
    as long as the identity key was not taken as well.
    """

    def __init__(
        self, engine: Engine, *, node: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.node = validate_name("node", node)
        self._clock = clock
        self._lock = threading.Lock()
        self._head_ready = False

    # -- writing
    def append(
        self,
        action: Action | str,
        *,
        actor: str,
        job: str | None = None,
        step: str | None = None,
        dataset: str | None = None,
        party: str | None = None,
        evidence: Mapping[str, Any] | None = None,
        connection: Connection | None = None,
    ) -> AuditEntry:
        """Append one entry and return it (with its seq and hash).

        ``evidence`` holds digests (``sha256:<hex>``), signatures, counts and parameters as
        JSON values — never raw data (at most 16 KiB encoded). With ``connection``, the entry
        is written in that connection's open transaction (committed or rolled back with the
        caller's own changes; the head row stays locked until then, so keep that transaction
        short, and on SQLite make the append its first write); otherwise in a transaction of
        its own. Thread-safe.

        Raises
        ------
        ValueError
            An unknown action, a field that is empty, too long or has control characters, or
            evidence that is not plain JSON.
        ConfigError
            The database holds another node's audit log, or has no audit tables.
        """
        act = Action(action)
        if act is Action.checkpoint:
            raise ValueError("checkpoint entries are written by AuditLog.seal")
        fields = {
            "actor": _field("actor", actor, required=True),
            "job": _field("job", job),
            "step": _field("step", step),
            "dataset": _field("dataset", dataset),
            "party": _field("party", party),
        }
        ev = normalise_evidence(evidence)
        return self._write(act, fields, ev, None, connection)

    def seal(self, private_key: ec.EllipticCurvePrivateKey, *, actor: str = "node") -> SignedHead:
        """Append a ``checkpoint`` entry signed with ``private_key`` (the node's identity key)
        and return its signed head. Give the head to peers (or export a signed bundle): a log
        rewritten before it can no longer produce it."""
        fp = key_fingerprint(private_key.public_key())
        entry = self._write(
            Action.checkpoint,
            {"actor": _field("actor", actor, required=True)},
            {"key": fp},
            private_key,
            None,
        )
        assert entry.signature is not None  # written with a key
        return SignedHead(self.node, entry.seq, entry.hash, entry.signature, fp)

    def _write(
        self,
        action: Action,
        fields: Mapping[str, str | None],
        evidence: dict[str, Any],
        key: ec.EllipticCurvePrivateKey | None,
        connection: Connection | None,
    ) -> AuditEntry:
        if connection is not None:
            # No process lock here: the caller's transaction keeps the head locked in the
            # database until it ends, and may append again meanwhile; other threads wait on
            # the database, not on a lock this thread would need.
            self._ensure_head(connection)
            return self._write_in(connection, action, fields, evidence, key)
        with self._lock:
            self._ensure_head(None)
            deadline = time.monotonic() + _LOCK_RETRY_FOR
            delay = 0.01
            while True:
                try:
                    with self.engine.begin() as conn:
                        return self._write_in(conn, action, fields, evidence, key)
                except OperationalError as exc:
                    # SQLite answers "database is locked" when another process held the write
                    # lock beyond the driver's busy timeout; the append had no effect: retry.
                    locked = "locked" in str(exc) or "busy" in str(exc)
                    if not locked or time.monotonic() > deadline:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)

    def _write_in(
        self,
        conn: Connection,
        action: Action,
        fields: Mapping[str, str | None],
        evidence: dict[str, Any],
        key: ec.EllipticCurvePrivateKey | None,
    ) -> AuditEntry:
        # Write first: this takes SQLite's write lock / PostgreSQL's row lock before anything
        # is read, so no other append can read the same head.
        bumped = conn.execute(
            update(audit_head).where(audit_head.c.id == 1).values(seq=audit_head.c.seq + 1)
        ).rowcount
        if bumped != 1:
            raise ConfigError("the audit head row is missing; the audit log was tampered with")
        head = conn.execute(
            select(audit_head.c.node, audit_head.c.seq, audit_head.c.hash).where(
                audit_head.c.id == 1
            )
        ).one()
        self._check_node(head.node)
        record: dict[str, Any] = {
            "seq": int(head.seq),
            "ts": round(self._clock() * 1_000_000),
            "node": self.node,
            "actor": fields.get("actor"),
            "action": action.value,
            "job": fields.get("job"),
            "step": fields.get("step"),
            "dataset": fields.get("dataset"),
            "party": fields.get("party"),
            "evidence": evidence,
            "prev_hash": head.hash,
        }
        digest = entry_hash(record)
        signature = None
        if key is not None:
            signature = sign_head(key, self.node, record["seq"], digest).signature
        conn.execute(
            insert(audit_entries).values(
                **{**record, "evidence": canonical(evidence).decode()},
                hash=digest,
                signature=signature,
            )
        )
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=digest))
        return AuditEntry(**record, hash=digest, signature=signature)

    def _check_node(self, node: str) -> None:
        if node != self.node:
            raise ConfigError(
                f"the audit log in this database belongs to node {node!r}, not {self.node!r}"
            )

    def _ensure_head(self, connection: Connection | None) -> None:
        """Create the head row at first use (in ``connection``'s transaction if given)."""
        if self._head_ready:
            return
        self._require_tables(connection)
        query = select(audit_head.c.node).where(audit_head.c.id == 1)
        start = insert(audit_head).values(id=1, node=self.node, seq=0, hash=genesis_hash(self.node))
        if connection is not None:
            row = connection.execute(query).first()
            if row is None:
                connection.execute(start)
                row = connection.execute(query).one()
        else:
            with self.engine.begin() as conn:
                row = conn.execute(query).first()
            if row is None:
                try:
                    with self.engine.begin() as conn:
                        conn.execute(start)
                except IntegrityError:  # another process created it first
                    pass
                with self.engine.begin() as conn:
                    row = conn.execute(query).one()
        self._check_node(row.node)
        self._head_ready = True

    def _require_tables(self, connection: Connection | None = None) -> None:
        names = set(inspect(connection or self.engine).get_table_names())
        if not {"audit_entries", "audit_head"} <= names:
            raise ConfigError(
                f"no audit log tables in {self.engine.url.render_as_string(hide_password=True)}"
                ": upgrade the node's store (the node does it when it starts)"
            )

    # -- reading
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last entry as the head row records it (``(0, genesis)``
        for an empty log)."""
        self._require_tables()
        with self.engine.connect() as conn:
            row = conn.execute(
                select(audit_head.c.node, audit_head.c.seq, audit_head.c.hash).where(
                    audit_head.c.id == 1
                )
            ).first()
        if row is None:
            return 0, genesis_hash(self.node)
        self._check_node(row.node)
        return int(row.seq), str(row.hash)

    def _where(self, job: str | None, since: int | datetime | None, until: int | None) -> list[Any]:
        cond: list[Any] = []
        if job is not None:
            cond.append(audit_entries.c.job == job)
        if isinstance(since, datetime):
            if since.tzinfo is None:
                raise ValueError("since must be a timezone-aware datetime")
            cond.append(audit_entries.c.ts >= round(since.timestamp() * 1_000_000))
        elif since is not None:
            cond.append(audit_entries.c.seq >= since)
        if until is not None:
            cond.append(audit_entries.c.seq <= until)
        return cond

    def count(
        self,
        *,
        job: str | None = None,
        since: int | datetime | None = None,
        until: int | None = None,
    ) -> int:
        """How many entries match (``since``: a first seq, or an aware datetime)."""
        self._require_tables()
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(audit_entries)
                    .where(*self._where(job, since, until))
                ).scalar_one()
            )

    def entries(
        self,
        *,
        job: str | None = None,
        since: int | datetime | None = None,
        until: int | None = None,
    ) -> Iterator[AuditEntry]:
        """The entries in seq order, read in batches (memory stays bounded), optionally of one
        job, from a seq (``int``) or time (aware ``datetime``), up to a seq."""
        self._require_tables()
        cond = self._where(job, since, until)
        after: int | None = None
        while True:
            q = select(audit_entries).where(*cond)
            if after is not None:
                q = q.where(audit_entries.c.seq > after)
            with self.engine.connect() as conn:
                rows = conn.execute(q.order_by(audit_entries.c.seq).limit(_BATCH)).all()
            for row in rows:
                yield _row_entry(row)
            if len(rows) < _BATCH:
                return
            after = int(rows[-1].seq)

    # -- checking
    def verify(
        self,
        *,
        keys: Sequence[ec.EllipticCurvePublicKey] = (),
        heads: Sequence[SignedHead] = (),
        known: Mapping[int, str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> VerifyReport:
        """Walk the whole chain and report the first problem.

        Detects an edited entry (its hash), a deleted one (a seq gap), entries replaced or
        reordered (a broken ``prev_hash`` link), a truncated tail (the head row, or a signed
        head beyond the last entry), and — with ``keys`` (the node's identity public key(s))
        or ``heads`` (signed heads kept elsewhere, e.g. from a peer's copy of an exported
        bundle) — a chain rewritten with every hash recomputed before the latest good
        checkpoint or head. Signed heads must verify under one of ``keys`` when keys are
        given. ``known`` (seq → hash, from :func:`~privfin.audit.bundle.bundle_evidence` of
        signed bundles) locates such a rewrite at the first entry whose hash differs.
        ``progress(done, total)`` is called every batch.

        Raises
        ------
        ConfigError
            No audit tables, or the log belongs to another node.
        """
        self._require_tables()
        if keys:
            for h in heads:
                if not any(h.verify(k) for k in keys):
                    raise ConfigError(
                        f"a signed head (seq {h.seq}) is not signed by this node's key"
                    )
        stored_seq, stored_hash = self.head()
        total = max(stored_seq, 0)
        try:
            walker = ChainWalker(
                self.node,
                start=1,
                start_prev=genesis_hash(self.node),
                keys=keys,
                heads=heads,
                known=dict(known or {}),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        done = 0
        failure = None
        # Only up to the head read above: appends committed meanwhile (each commits its entry
        # and the head together) are not part of this check.
        for entry in self.entries(until=stored_seq):
            failure = walker.feed(entry)
            done += 1
            if progress is not None and done % _BATCH == 0:
                progress(done, total)
            if failure is not None:
                break
        if failure is None:
            failure = walker.finish()
        if failure is None and (stored_seq, stored_hash) != (
            walker.last_seq,
            walker.last_hash or genesis_hash(self.node),
        ):
            if stored_seq > walker.last_seq:
                failure = walker.fail(
                    walker.last_seq + 1,
                    f"the log ends at seq {walker.last_seq} but its head row says seq "
                    f"{stored_seq} (tail truncated)",
                )
            else:
                failure = walker.fail(
                    stored_seq,
                    f"the head row's hash is not the hash of seq {stored_seq} (head row edited)",
                )
        if failure is None:
            # An entry beyond the current head was not written by an append (which commits
            # the entry and the head together): it was inserted behind the log's back.
            current = select(audit_head.c.seq).where(audit_head.c.id == 1).scalar_subquery()
            with self.engine.connect() as conn:  # one statement: one snapshot
                row = conn.execute(
                    select(func.count(), func.min(audit_entries.c.seq)).where(
                        audit_entries.c.seq > current
                    )
                ).one()
            extra, first_extra = int(row[0]), row[1]
            if extra:
                now_seq = int(first_extra) - 1
                failure = walker.fail(
                    now_seq + 1,
                    f"{extra} entries after the head row's seq: inserted behind the log",
                )
        if progress is not None:
            progress(done, total)
        return VerifyReport(
            ok=failure is None,
            entries=walker.count,
            head_seq=walker.last_seq,
            head_hash=walker.last_hash,
            checkpoints=walker.checkpoints,
            signatures_checked=bool(keys),
            heads_checked=len({h.seq for h in heads} | set(known or {})),
            first_bad_seq=None if failure is None else failure.seq,
            reason=None if failure is None else failure.reason,
        )

    def export(
        self,
        path: str | Path,
        *,
        job: str | None = None,
        since: int | datetime | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
        certificate: bytes | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Path:
        """Write an evidence bundle; see :func:`privfin.audit.bundle.export_bundle`."""
        from privfin.audit.bundle import export_bundle

        return export_bundle(
            self, path, job=job, since=since, key=key, certificate=certificate, progress=progress
        )
