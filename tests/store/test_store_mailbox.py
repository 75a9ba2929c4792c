"""The mailbox on each backend of the store (SQLite, PostgreSQL): storing is idempotent, a
clash is refused, chunks are assembled and checked, payloads are purged with digests kept.
(The quota tests in tests/federation/test_mailbox_quotas.py also run on both.)"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from privfin.errors import ProtocolAbort
from privfin.federation.mailbox import Mailbox, MessageConflict
from privfin.federation.transport import CancelToken, MessageKey
from privfin.store import open_engine, upgrade


@pytest.fixture
def box(store_url: str) -> Iterator[Mailbox]:
    engine = open_engine(store_url)
    upgrade(engine)
    mailbox = Mailbox(engine)  # the node's way: one engine, migrated, handed over
    yield mailbox
    mailbox.close()
    engine.dispose()


def key(seq: int, job: str = "job1") -> MessageKey:
    return MessageKey(job, "psi", "round", "alice", "bob", seq)


def test_put_get_duplicate_and_conflict(box: Mailbox) -> None:
    payload = bytes(range(256)) * 3  # binary, with NUL bytes
    assert box.put(key(0), payload) is True
    assert box.put(key(0), payload) is False  # the retry of a duplicate is dropped
    with pytest.raises(MessageConflict, match="other content"):
        box.put(key(0), payload + b"!")
    assert box.get(key(0)) == payload and box.has(key(0))
    assert box.get(key(1)) is None and not box.has(key(1))
    assert box.wait(key(0), 1.0, CancelToken()) == payload
    assert box.count("job1") == 1 and box.count() == 1


def test_chunks_are_assembled_and_checked(box: Mailbox) -> None:
    payload = b"0123456789" * 100
    digest = hashlib.sha256(payload).hexdigest()
    parts = [payload[:400], payload[400:800], payload[800:]]
    assert box.put_chunk(key(1), 2, 3, digest, parts[2]) is False  # any order
    assert box.put_chunk(key(1), 0, 3, digest, parts[0]) is False
    with pytest.raises(MessageConflict, match="disagree"):
        box.put_chunk(key(1), 1, 4, digest, parts[1])
    assert box.put_chunk(key(1), 1, 3, digest, parts[1]) is True
    assert box.get(key(1)) == payload
    assert box.payload_bytes("job1") == len(payload)  # the chunks are gone
    bad = hashlib.sha256(b"other").hexdigest()
    box.put_chunk(key(2), 0, 2, bad, b"x" * 10)
    with pytest.raises(MessageConflict, match="do not match their digest"):
        box.put_chunk(key(2), 1, 2, bad, b"y")
    assert not box.has(key(2))


def test_purge_keeps_digests_and_aborts_are_kept(box: Mailbox) -> None:
    box.put(key(0), b"secret")
    box.put(key(0, job="job2"), b"other job")
    assert box.purge_job("job1") == 1
    assert box.has(key(0)) and box.payload_bytes("job1") == 0
    assert box.get(key(0, job="job2")) == b"other job"
    with pytest.raises(ProtocolAbort, match="deleted"):
        box.wait(key(0), 1.0, CancelToken())
    assert box.abort("job2", "alice", "alice: input rejected") is True
    assert box.abort("job2", "alice", "again") is False
    assert box.aborters("job2") == ["alice"]
    with pytest.raises(ProtocolAbort, match="input rejected"):
        box.wait(key(5, job="job2"), 1.0, CancelToken())
