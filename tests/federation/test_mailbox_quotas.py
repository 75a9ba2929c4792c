"""The mailbox's bounds ([08] item 9), in process: pre-job buffer, assembled size of chunked
messages, per-job quotas, retention (payloads deleted at job end, digests kept), sweeps, and
the adoption of a database created before the new chunk columns. The tests that take ``box``
run on SQLite and PostgreSQL (the ``store_url`` fixture)."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from privfin.errors import ProtocolAbort
from privfin.federation.mailbox import (
    ACCEPTED,
    Mailbox,
    MessageTooLarge,
    QuotaExceeded,
    Quotas,
    metadata,
)
from privfin.federation.transport import CancelToken, MessageKey

Q = Quotas(
    max_message_size=1000,
    job_messages=5,
    job_bytes=3000,
    prejob_messages=3,
    prejob_bytes=1500,
    prejob_ttl=60,
    chunk_bytes=1800,
    min_chunk=100,
    chunk_ttl=60,
)


def key(job: str, seq: int = 0, sender: str = "mallory", tag: str = "t") -> MessageKey:
    return MessageKey(job, "c", tag, sender, "me", seq)


@pytest.fixture
def box(store_url: str) -> Iterator[Mailbox]:
    """A mailbox on a fresh database (SQLite, and PostgreSQL when available)."""
    mailbox = Mailbox(store_url)
    yield mailbox
    mailbox.close()


def test_prejob_buffer_is_bounded_per_sender(box: Mailbox) -> None:
    known = {"running"}.__contains__
    for i in range(3):
        assert box.put(key(f"ghost{i}"), b"x", quotas=Q, known=known)
    with pytest.raises(QuotaExceeded):
        box.put(key("ghost3"), b"x", quotas=Q, known=known)
    assert box.put(key("ghost0"), b"x", quotas=Q, known=known) is False  # duplicate: fine
    assert box.put(key("ghost0", sender="alice"), b"x" * 1000, quotas=Q, known=known)
    with pytest.raises(QuotaExceeded):  # bytes: 1000 + 1000 > 1500
        box.put(key("ghost1", sender="alice"), b"x" * 1000, quotas=Q, known=known)
    # Jobs this node runs are not limited by the pre-job buffer, but by the job quota.
    for i in range(5):
        assert box.put(key("running", i), b"y" * 500, quotas=Q, known=known)
    with pytest.raises(MessageTooLarge):
        box.put(key("running", 5), b"y", quotas=Q, known=known)
    with pytest.raises(MessageTooLarge):
        box.put(key("running", 0, tag="big"), b"z" * 1001, quotas=Q, known=known)


def test_chunked_message_is_limited_by_its_assembled_size(box: Mailbox) -> None:
    known = {"job"}.__contains__
    payload = b"p" * 1200
    digest = hashlib.sha256(payload).hexdigest()
    k = key("job")
    assert box.put_chunk(k, 0, 3, digest, payload[:400], quotas=Q, known=known) is False
    assert box.put_chunk(k, 1, 3, digest, payload[400:800], quotas=Q, known=known) is False
    with pytest.raises(MessageTooLarge):
        box.put_chunk(k, 2, 3, digest, payload[800:], quotas=Q, known=known)
    assert box.count("job") == 0
    # Chunks in flight per sender are capped too (here 1800 bytes over several messages).
    for seq in range(1, 4):
        k2 = key("job", seq)
        if seq < 3:
            box.put_chunk(k2, 0, 2, digest, b"q" * 500, quotas=Q, known=known)
        else:
            with pytest.raises(QuotaExceeded):
                box.put_chunk(k2, 0, 2, digest, b"q" * 500, quotas=Q, known=known)


def test_purge_keeps_digests_and_sweep_drops_stale_data(box: Mailbox) -> None:
    known = {"done"}.__contains__
    box.put(key("done", 0), b"secret payload", quotas=Q, known=known)
    box.put(key("ghost", 0), b"unclaimed", quotas=Q, known=known)
    box.put_chunk(key("done", 1), 1, 2, "0" * 64, b"half", quotas=Q, known=known)
    assert box.payload_bytes("done") > 0
    assert box.purge_job("done") == 1
    assert box.payload_bytes("done") == 0 and box.count("done") == 1  # digest kept
    with pytest.raises(ProtocolAbort, match="deleted"):
        box.wait(key("done", 0), 1, CancelToken())
    with box.engine.begin() as conn:  # age everything by two hours
        conn.execute(text("UPDATE messages SET received_at = received_at - 7200"))
        conn.execute(text("UPDATE chunks SET received_at = received_at - 7200"))
    box.put_chunk(key("done", 2), 1, 2, "1" * 64, b"fresh", quotas=Q, known=known)
    swept = box.sweep(Q, known)
    assert swept == {"chunks": 0, "unclaimed_messages": 1}  # "done" chunks purged already
    assert box.count("ghost") == 0 and box.count("done") == 1
    old = Quotas(chunk_ttl=0.5)
    time.sleep(1.5)
    assert box.sweep(old, known)["chunks"] == 1


def test_database_from_before_the_chunk_columns_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE chunks (path VARCHAR(400), idx INTEGER, total INTEGER NOT NULL, "
            "digest VARCHAR(64) NOT NULL, data BLOB NOT NULL, PRIMARY KEY (path, idx))"
        )
        conn.execute("INSERT INTO chunks VALUES ('j/c/t/a/b/0', 0, 2, 'd', x'00')")
    box = Mailbox(db)
    swept = box.sweep(Quotas(), lambda job: False)  # a pre-[08] chunk counts as stale
    assert swept["chunks"] == 1


def test_retention_gives_the_space_back(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    box = Mailbox(db)

    def pages() -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("PRAGMA page_count").fetchone()[0])

    empty = pages()  # the schema of every migration: a page or two per table and index
    for seq in range(8):
        box.put(key("big", seq), bytes(range(256)) * 1024)  # 256 KiB each
    before = pages()
    box.purge_job("big")
    box.sweep(Quotas(), lambda job: True)
    assert pages() - empty < (before - empty) // 20
    assert box.count("big") == 8  # digests kept


def test_chunks_count_as_rows_and_tiny_chunks_are_refused(box: Mailbox) -> None:
    """Red-team finding: empty chunks were free (0 bytes, one path), so one path could hold
    262,145 rows. Now every chunk but the last has at least min_chunk bytes, none is empty,
    a message has at most ceil(max_message_size / min_chunk) chunks, and chunk rows count
    against the pre-job buffer and the per-sender chunk rows."""
    known = {"job"}.__contains__
    assert Q.max_chunks() == 10
    with pytest.raises(ValueError, match="at least 100 bytes"):
        box.put_chunk(key("job"), 0, 3, "0" * 64, b"", quotas=Q, known=known)
    with pytest.raises(ValueError, match="at least 100 bytes"):
        box.put_chunk(key("job"), 1, 3, "0" * 64, b"x" * 99, quotas=Q, known=known)
    with pytest.raises(ValueError, match="the last at least 1"):
        box.put_chunk(key("job"), 2, 3, "0" * 64, b"", quotas=Q, known=known)
    with pytest.raises(MessageTooLarge, match="11 chunks"):
        box.put_chunk(key("job"), 0, 11, "0" * 64, b"x" * 100, quotas=Q, known=known)
    # Pre-job buffer (3 messages): three rows of one chunked message fill it.
    for i in range(3):
        box.put_chunk(key("ghost"), i, 10, "0" * 64, b"x" * 100, quotas=Q, known=known)
    with pytest.raises(QuotaExceeded):
        box.put_chunk(key("ghost"), 3, 10, "0" * 64, b"x" * 100, quotas=Q, known=known)
    with pytest.raises(QuotaExceeded):  # precheck says the same before a body is read
        box.precheck(key("ghost"), 100, Q, known, chunk=(3, 10))
    box.precheck(key("ghost"), 100, Q, known, chunk=(0, 10))  # a chunk it already has: fine
    # Per sender, chunk rows in flight (bytes would allow more).
    rows = Quotas(max_message_size=10_000, min_chunk=100, chunk_rows=4, job_bytes=10**6)
    for i in range(4):
        k = key("job", 7, sender="bob")
        box.put_chunk(k, i, 50, "0" * 64, b"y" * 100, quotas=rows, known=known)
    with pytest.raises(QuotaExceeded, match="4 chunks"):
        k = key("job", 8, sender="bob")
        box.put_chunk(k, 0, 50, "1" * 64, b"y" * 100, quotas=rows, known=known)


def test_precheck_applies_the_quotas_to_a_declared_size(box: Mailbox) -> None:
    known = {"job"}.__contains__
    box.precheck(key("ghost"), 1000, Q, known)
    with pytest.raises(MessageTooLarge):
        box.precheck(key("job"), 1001, Q, known)
    assert box.count() == 0  # precheck stores nothing
    box.put(key("ghost"), b"x" * 1000, quotas=Q, known=known)
    with pytest.raises(QuotaExceeded):  # pre-job bytes: 1000 + 600 > 1500
        box.precheck(key("ghost2"), 600, Q, known)
    box.precheck(key("ghost"), 1000, Q, known)  # a duplicate passes (put answers it)


def test_precheck_of_a_running_job_is_answered_from_memory_until_near_its_quota(
    box: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream server prechecks every chunked message on its thread: for a job this node
    runs, whose usage the write-behind path counts in memory, a message within the quotas is
    let through without a database query; near a quota the database still tells a stored
    duplicate (passes) from a new message (refused)."""
    known = {"job"}.__contains__
    assert box.accept([(key("job", 0), b"x" * 900)], quotas=Q, known=known) == [ACCEPTED]
    assert box.flush(10)
    queries: list[int] = []
    real_begin = box.engine.begin

    def begin() -> Any:
        queries.append(1)
        return real_begin()

    monkeypatch.setattr(box.engine, "begin", begin)
    box.precheck(key("job", 1), 1000, Q, known)  # 900 + 1000 <= 3000: from memory
    assert queries == []
    with pytest.raises(MessageTooLarge):  # beyond the message size: refused as before
        box.precheck(key("job", 1), 1001, Q, known)
    assert box.accept([(key("job", 1), b"y" * 1000)], quotas=Q, known=known) == [ACCEPTED]
    assert box.accept([(key("job", 2), b"z" * 1000)], quotas=Q, known=known) == [ACCEPTED]
    assert box.flush(10)
    queries.clear()
    box.precheck(key("job", 1), 1000, Q, known)  # 2900 + 1000 > 3000, but a duplicate
    assert queries  # asked the database
    with pytest.raises(MessageTooLarge, match="quota"):
        box.precheck(key("job", 3), 1000, Q, known)  # new and over the quota


def test_chunk_indexes_are_added_to_an_existing_database(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{db}")  # as privfin created it before migrations
    metadata.create_all(engine)
    engine.dispose()
    with sqlite3.connect(db) as conn:  # a database of [08] before its chunk indexes
        conn.execute("ALTER TABLE messages DROP COLUMN spilled")  # (added by a migration)
        conn.execute("DROP INDEX ix_chunks_sender")
        conn.execute("DROP INDEX ix_chunks_job")
    Mailbox(db).close()
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        plan = " ".join(
            str(r)
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM chunks WHERE sender = 'mallory'"
            )
        )
    assert {"ix_chunks_sender", "ix_chunks_job"} <= names
    assert "ix_chunks_sender" in plan


def test_database_files_are_private(tmp_path: Path) -> None:
    import os
    import stat

    db = tmp_path / "state" / "node.sqlite"
    box = Mailbox(db)
    box.put(key("j"), b"x")
    for f in (db, db.with_name("node.sqlite-wal"), db.with_name("node.sqlite-shm")):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    box.close()
    os.chmod(db, 0o644)
    Mailbox(db).close()  # an existing database is tightened
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


def test_a_repeated_abort_is_recorded_once(box: Mailbox) -> None:
    assert box.abort("j", "alice", "alice: input rejected") is True
    assert box.abort("j", "alice", "again") is False
    assert box.aborted("j") == ("alice", "alice: input rejected")


def test_default_per_job_quotas() -> None:
    q = Quotas()
    assert (q.job_messages, q.job_bytes) == (200_000, 8 * 1024**3)
    assert q.max_chunks() == 4096  # 256 MiB in chunks of at least 64 KiB
