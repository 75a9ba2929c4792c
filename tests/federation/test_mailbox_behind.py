"""The mailbox's write-behind path (:meth:`Mailbox.accept`, used by the streaming transport):
readable at once, written in group commits, durability reported only once on disk, conflicts
found late recorded as the sender's abort, database failures retried without loss."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from privfin.errors import ProtocolAbort
from privfin.federation.mailbox import (
    ACCEPTED,
    Mailbox,
    MessageConflict,
    MessageTooLarge,
    Quotas,
)
from privfin.federation.transport import CancelToken, MessageKey


def _key(seq: int, job: str = "job1", sender: str = "bank_a") -> MessageKey:
    return MessageKey(job, "comp", "t", sender, "bank_b", seq)


def test_accepted_messages_are_readable_at_once_and_durable_after_the_commit(
    tmp_path: Path,
) -> None:
    box = Mailbox(tmp_path / "b.sqlite")
    durable: list[int] = []
    done = threading.Event()

    def on_durable(indices: list[int]) -> None:
        durable.extend(indices)
        if len(durable) == 50:
            done.set()

    try:
        items = [(_key(i), f"m{i}".encode()) for i in range(50)]
        answers = box.accept(items, on_durable=on_durable)
        assert answers == [ACCEPTED] * 50
        assert box.wait(_key(7), 1, CancelToken()) == b"m7"  # from memory
        assert done.wait(10) and sorted(durable) == list(range(50))
        assert box.flush(10) and box.unwritten == 0
        other = Mailbox(tmp_path / "b.sqlite")  # what is on disk, seen by another reader
        try:
            assert all(other.get(k) == p for k, p in items)
            assert other.count("job1") == 50
        finally:
            other.close()
    finally:
        box.close()


def test_the_writer_lingers_so_messages_share_a_commit_and_a_flush_cuts_it_short(
    tmp_path: Path,
) -> None:
    """Messages accepted one by one within the linger share one group commit (one durability
    report); a flush does not wait for the linger; a large backlog is written at once."""
    box = Mailbox(tmp_path / "b.sqlite", linger=0.5)
    reports: list[list[int]] = []

    def hook(indices: list[int]) -> None:
        reports.append(indices)

    try:
        start = time.monotonic()
        for i in range(5):  # one message at a time, as a many-round protocol sends them
            assert box.accept([(_key(i), b"x")], on_durable=hook) == [ACCEPTED]
            time.sleep(0.01)
        assert reports == []  # still lingering: nothing reported durable yet
        assert box.flush(10)
        assert time.monotonic() - start < 0.45  # the flush cut the linger short
        # one group commit: the writer calls a hook once per batch, with every index of it
        assert reports == [[0, 0, 0, 0, 0]] and box.unwritten == 0
        big = [(_key(100 + i), bytes(3 * 1024 * 1024)) for i in range(3)]  # 9 MiB: no linger
        done = threading.Event()
        box.accept(big, on_durable=lambda _: done.set())
        assert done.wait(0.4)
    finally:
        box.close()
    with pytest.raises(ValueError):
        Mailbox(tmp_path / "c.sqlite", linger=-1)


def test_duplicates_and_conflicts_in_memory_are_answered_at_once(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "b.sqlite")
    hooks: list[tuple[str, list[int]]] = []
    try:
        box.accept([(_key(0), b"x")], on_durable=lambda i: hooks.append(("first", i)))
        # the same bytes again before or after the commit: a success, nothing stored twice
        again = box.accept([(_key(0), b"x")], on_durable=lambda i: hooks.append(("again", i)))
        assert again[0] is ACCEPTED or again[0] is False
        clash = box.accept([(_key(0), b"y")])  # other bytes while unread: refused now
        assert isinstance(clash[0], MessageConflict)
        assert box.flush(10)
        assert box.count("job1") == 1 and box.get(_key(0)) == b"x"
        assert ("first", [0]) in hooks
    finally:
        box.close()


def test_accept_hashes_nothing_and_compares_a_resend_with_the_held_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SHA-256 of a payload is computed by the writer thread, off the receiving path: while
    a message waits for its commit, a resend is compared byte for byte with the held payload
    (same bytes: accepted again; other bytes: a conflict), and the row gets the right digest."""
    import hashlib

    from privfin.federation import mailbox as mailbox_mod

    box = Mailbox(tmp_path / "b.sqlite")
    gate = threading.Event()
    real_write = box._write
    hashed_by: list[str] = []
    real_sha = hashlib.sha256

    def write(batch: list[object]) -> object:
        gate.wait(10)  # the writer holds its batch until the test has resent
        return real_write(batch)  # type: ignore[arg-type]

    def sha(data: bytes = b"") -> object:
        hashed_by.append(threading.current_thread().name)
        return real_sha(data)

    monkeypatch.setattr(box, "_write", write)
    monkeypatch.setattr(mailbox_mod.hashlib, "sha256", sha)
    payload = bytes(range(256)) * 1024
    try:
        assert box.accept([(_key(0), payload)]) == [ACCEPTED]
        assert box.accept([(_key(0), bytearray(payload))]) == [ACCEPTED]
        tampered = payload[:-1] + b"\x00"
        clash = box.accept([(_key(0), tampered)])
        assert isinstance(clash[0], MessageConflict)
        assert hashed_by == []  # nothing hashed on the accepting thread
        gate.set()
        assert box.flush(10)
        assert hashed_by and threading.current_thread().name not in hashed_by
        row = box.get(_key(0))
        assert row == payload
        with box.engine.connect() as conn:
            stored = conn.execute(mailbox_mod._SELECT_DIGEST, mailbox_mod._key_values(_key(0)))
            assert stored.scalar() == real_sha(payload).hexdigest()
    finally:
        gate.set()
        box.close()


def test_a_conflict_found_at_the_commit_is_the_senders_abort(tmp_path: Path) -> None:
    """The key was written and read long ago (so not held in memory): other bytes under it are
    accepted, found at the commit, and recorded as the sender's abort, which stops the job's
    waiters with an error naming the sender."""
    box = Mailbox(tmp_path / "b.sqlite")
    try:
        box.accept([(_key(0), b"original")])
        assert box.wait(_key(0), 5, CancelToken()) == b"original"  # read: no longer in memory
        assert box.flush(10)
        reported: list[list[int]] = []
        assert box.accept([(_key(0), b"tampered")], on_durable=reported.append) == [ACCEPTED]
        assert box.flush(10)
        assert reported == [[0]]  # settled: the sender need not resend it
        assert box.get(_key(0)) == b"original"  # the stored message is untouched
        why = box.aborted("job1")
        assert why is not None and why[0] == "bank_a" and "other content" in why[1]
        with pytest.raises(ProtocolAbort, match="bank_a"):
            box.wait(_key(1), 5, CancelToken())
    finally:
        box.close()


def test_a_commit_with_a_stored_message_keeps_the_new_ones(tmp_path: Path) -> None:
    """A group commit usually holds only new messages (SQLite: one ``INSERT OR IGNORE`` for
    all); one that meets a message stored long ago (a resend after a cut, with the same
    bytes) is redone message by message: the stored one is a duplicate, not counted twice,
    and the new ones around it are stored."""
    box = Mailbox(tmp_path / "b.sqlite", linger=0.2)
    try:
        box.accept([(_key(1), b"one")])
        assert box.wait(_key(1), 5, CancelToken()) == b"one"  # read: no longer in memory
        assert box.flush(10)
        reported: list[list[int]] = []
        items = [(_key(0), b"zero"), (_key(1), b"one"), (_key(2), b"two")]
        assert box.accept(items, on_durable=reported.append) == [ACCEPTED] * 3
        assert box.flush(10)
        assert reported == [[0, 1, 2]]
        assert box.count() == 3 and box.aborted("job1") is None
        assert [box.get(_key(i)) for i in range(3)] == [b"zero", b"one", b"two"]
        assert box.payload_bytes("job1") == len(b"zeroonetwo")
    finally:
        box.close()


def test_quotas_apply_in_memory_and_unknown_jobs_are_stored_at_once(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "b.sqlite")
    quotas = Quotas(max_message_size=100, job_messages=3, job_bytes=10_000, prejob_messages=2)
    try:
        known = {"job1"}.__contains__
        out = box.accept(
            [(_key(i), b"x" * 10) for i in range(4)] + [(_key(9), b"x" * 101)],
            quotas=quotas,
            known=known,
        )
        assert out[:3] == [ACCEPTED] * 3
        assert isinstance(out[3], MessageTooLarge) and "quota" in str(out[3])
        assert isinstance(out[4], MessageTooLarge)
        # a job this node does not run yet: the pre-job buffer, stored (and counted) now
        early = box.accept([(_key(0, job="later"), b"early")], quotas=quotas, known=known)
        assert early == [True]
        assert box.count("later") == 1
    finally:
        box.close()


def test_a_failing_database_is_retried_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Mailbox(tmp_path / "b.sqlite")
    real = box._write
    failures = [2]

    def flaky(batch):  # type: ignore[no-untyped-def]
        if failures[0]:
            failures[0] -= 1
            raise OSError("disk I/O error")
        return real(batch)

    monkeypatch.setattr(box, "_write", flaky)
    try:
        box.accept([(_key(i), b"p") for i in range(10)])
        assert box.wait(_key(3), 1, CancelToken()) == b"p"  # readable meanwhile
        assert box.flush(20)
        assert failures == [0] and box.write_error is None
        assert box.count("job1") == 10
    finally:
        box.close()


def test_concurrent_senders_and_readers(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "b.sqlite")
    n, senders = 200, 4
    got: dict[str, list[bytes]] = {}

    def send(s: str) -> None:
        for i in range(n):
            box.accept([(_key(i, sender=s), f"{s}:{i}".encode())])

    def read(s: str) -> None:
        got[s] = [box.wait(_key(i, sender=s), 20, CancelToken()) for i in range(n)]

    names = [f"bank_{c}" for c in "acde"[:senders]]
    threads = [threading.Thread(target=f, args=(s,)) for s in names for f in (send, read)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for s in names:
            assert got[s] == [f"{s}:{i}".encode() for i in range(n)]
        assert box.flush(20)
        assert box.count("job1") == n * senders
    finally:
        box.close()


_CHILD = """
import sys, time
from pathlib import Path
from privfin.federation.mailbox import Mailbox
from privfin.federation.transport import MessageKey
box = Mailbox(Path(sys.argv[1]))
def durable(indices):
    print(" ".join(map(str, indices)), flush=True)
for i in range(100000):
    box.accept([(MessageKey("job1", "comp", "t", "bank_a", "bank_b", i), b"p" * 200)],
               on_durable=lambda idx, i=i: durable([i]))
    if i % 50 == 0:
        time.sleep(0.001)
"""


def _kill_9_after(child: str, args: list[str], path: Path, n: int) -> list[int]:
    """Run ``child`` (accepting messages into the mailbox at ``path``), kill it -9 once it has
    reported ``n`` messages durable; returns the indices it reported."""
    Mailbox(path).close()  # created and migrated before the child starts
    proc = subprocess.Popen([sys.executable, "-c", child, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    reported: list[int] = []
    deadline = time.monotonic() + 60
    while len(reported) < n and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        reported.extend(int(x) for x in line.split())
    proc.kill()
    proc.wait(10)
    proc.stdout.close()
    assert len(reported) >= n
    return reported


def test_what_is_reported_durable_survives_kill_9(tmp_path: Path) -> None:
    """A process accepting messages is killed -9 mid-stream: every message its writer reported
    durable is in the file (what was only accepted may be lost: its sender still holds it)."""
    path = tmp_path / "b.sqlite"
    reported = _kill_9_after(_CHILD, [str(path)], path, 2000)
    box = Mailbox(path)
    try:
        missing = [i for i in reported if box.get(_key(i)) is None]
        assert not missing
    finally:
        box.close()


def _volatile_comp(key: MessageKey) -> bool:
    return key.component == "step"


def test_volatile_messages_keep_their_row_but_not_their_payload(tmp_path: Path) -> None:
    """A message of a step that restarts after a crash: its row (digest, size) is written and
    reported durable, its payload is only held in memory until read; duplicates and conflicts
    are still caught; a new process sees the loss (:meth:`Mailbox.lost`)."""
    path = tmp_path / "b.sqlite"
    box = Mailbox(path)
    done = threading.Event()
    reported: list[int] = []

    def on_durable(indices: list[int]) -> None:
        reported.extend(indices)
        if len(reported) == 3:
            done.set()

    vol = [MessageKey("job1", "step", "t", "bank_a", "bank_b", i) for i in range(2)]
    kept = MessageKey("job1", "other", "t", "bank_a", "bank_b", 0)
    try:
        items = [(vol[0], b"v0"), (vol[1], b"v1"), (kept, b"k0")]
        assert box.accept(items, on_durable=on_durable, volatile=_volatile_comp) == [ACCEPTED] * 3
        assert done.wait(10) and sorted(reported) == [0, 1, 2]
        assert box.flush(10)
        assert box.count("job1") == 3
        # the row is there (duplicates, conflicts, audit), the payload only in memory
        again = box.accept([(vol[0], b"v0"), (vol[1], b"XX")], volatile=_volatile_comp)
        assert again[0] is False and isinstance(again[1], MessageConflict)
        assert box.payload_bytes("job1") == 2  # only the kept message's payload
        assert not box.lost("job1", "step")  # held here
        assert box.wait(vol[0], 1, CancelToken()) == b"v0"
        assert box.get(vol[1]) == b"v1"
        assert box.wait(kept, 1, CancelToken()) == b"k0"
    finally:
        box.close()
    # a restart of this node: the unread volatile payload is gone, and that is detectable
    other = Mailbox(path)
    try:
        assert other.lost("job1", "step")
        assert not other.lost("job1", "other")
        assert other.get(kept) == b"k0"
        with pytest.raises(ProtocolAbort, match="no longer held"):
            other.wait(vol[1], 1, CancelToken())
    finally:
        other.close()


def test_volatile_payloads_beyond_the_memory_bound_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import privfin.federation.mailbox as mb

    monkeypatch.setattr(mb, "_HELD_LIMIT", 10)
    box = Mailbox(tmp_path / "b.sqlite")
    keys = [MessageKey("job1", "step", "t", "bank_a", "bank_b", i) for i in range(3)]
    try:
        box.accept([(k, b"123456") for k in keys], volatile=_volatile_comp)
        assert box.flush(10)
        assert box.payload_bytes("job1") == 12  # the first is held, the next two written
    finally:
        box.close()
    other = Mailbox(tmp_path / "b.sqlite")
    try:
        assert other.lost("job1", "step")
        assert [other.get(k) for k in keys] == [b"", b"123456", b"123456"]
    finally:
        other.close()


def test_large_payloads_go_to_files_checked_when_read(tmp_path: Path) -> None:
    from privfin.federation.mailbox import SPILL_MIN

    path, spill = tmp_path / "b.sqlite", tmp_path / "spill"
    big = [bytes([i]) * (SPILL_MIN + i) for i in range(3)]
    keys = [_key(i) for i in range(4)]
    box = Mailbox(path, spill_dir=spill)
    try:
        box.accept([*zip(keys, big, strict=False), (keys[3], b"small")])
        assert box.flush(10)
        files = sorted((spill / "job1").iterdir())
        assert len(files) == 3 and all(f.stat().st_mode & 0o777 == 0o600 for f in files)
        assert box.payload_bytes("job1") == sum(map(len, big)) + 5
    finally:
        box.close()
    other = Mailbox(path, spill_dir=spill)  # a restart: read back from the files
    try:
        assert [other.get(k) for k in keys] == [*big, b"small"]
        assert other.wait(keys[1], 1, CancelToken()) == big[1]
        target = next(f for f in files if f.stat().st_size == SPILL_MIN)
        target.write_bytes(b"\x07" * SPILL_MIN)  # the disk changed under the mailbox
        with pytest.raises(ProtocolAbort, match="corrupt"):
            other.get(keys[0])
        assert other.purge_job("job1") == 4
        assert not (spill / "job1").exists()
        assert other.payload_bytes("job1") == 0
        with pytest.raises(ProtocolAbort, match="no longer held"):
            other.wait(keys[2], 1, CancelToken())
    finally:
        other.close()


def test_spilled_payloads_reported_durable_survive_kill_9(tmp_path: Path) -> None:
    path, spill = tmp_path / "b.sqlite", tmp_path / "spill"
    child = _CHILD.replace(
        "Mailbox(Path(sys.argv[1]))", "Mailbox(Path(sys.argv[1]), spill_dir=sys.argv[2])"
    )
    child = child.replace('b"p" * 200', "bytes([i % 251]) * 70000").replace("i % 50 == 0", "True")
    reported = _kill_9_after(child, [str(path), str(spill)], path, 300)
    box = Mailbox(path, spill_dir=spill)
    try:
        bad = [i for i in reported if box.get(_key(i)) != bytes([i % 251]) * 70000]
        assert not bad
    finally:
        box.close()
