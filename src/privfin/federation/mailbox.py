"""A node's durable mailbox: messages received for its jobs, kept across restarts.

Messages are stored in the node's store (:mod:`privfin.store`: SQLite by default, PostgreSQL
by URL; tables created by its migrations) under their full :class:`MessageKey`. Storing is
idempotent: the same key with the same bytes is a duplicate and dropped; the same key with
other bytes is a conflict and refused. Large messages arrive in chunks that are kept until the
last one lands, then assembled. Waiting for a message is local: the HTTP transport's ``recv``
never polls a peer.

What a peer can make a node store is bounded (:class:`Quotas`): the size of every message,
chunked or not, counted on the assembled message; the messages and bytes of one sender in one
job; the chunks (bytes and rows) a sender has in flight, every chunk but the last at least
``min_chunk`` bytes (so a message has at most ``ceil(max_message_size / min_chunk)`` chunks);
and a small pre-job buffer per sender for messages of jobs this node has not started yet (a
peer may legitimately send its first message before the local operator submits the job),
which expire; a chunk row counts as a message there. :meth:`Mailbox.precheck` applies the same
quotas to a declared size before the node reads a request's body. Payloads are deleted when a
job ends (:meth:`Mailbox.purge_job`; digests and sizes stay for audit) and stale chunks and
expired pre-job messages by :meth:`Mailbox.sweep`. SQLite files are private (0600).

Write-behind (:meth:`Mailbox.accept`, used by the streaming transport): a message of a job this
node runs is checked (quotas, duplicate, conflict with a message not yet written) and put in
memory at once, where a waiter of this process reads it; a writer thread stores what was
accepted in group commits (one transaction for everything accepted meanwhile, lingering
:attr:`Mailbox.linger` after the first message for others to join) and then calls
the caller's ``on_durable`` hook, so the sender can forget the message only once it is on
disk (the sender keeps it until then and sends it again after a cut or a restart of this
node: :mod:`privfin.federation.stream`). A conflict found only at the commit (the stored
message has other bytes) is recorded as the sender's abort of the job. Reads that look at the
database (:meth:`Mailbox.count`, :meth:`Mailbox.payload_bytes`, :meth:`Mailbox.purge_job`,
:meth:`Mailbox.sweep`) first wait for the writer (:meth:`Mailbox.flush`).

Large payloads taken write-behind go to files of the mailbox's ``spill_dir`` (written in the
transaction that stores their rows, before it commits; read back checked against the digest):
a file costs one write to the page cache where a SQLite blob costs two writes and page
overhead. Messages of a pipeline step that restarts under a new attempt after a crash are
*volatile* (:meth:`Mailbox.accept`): their rows are written, their payloads only held in
memory until read, and :meth:`Mailbox.lost` tells the pipeline after a restart that it must
rerun such a step rather than wait for messages its peers will not send again.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from privfin.errors import PrivfinError, ProtocolAbort
from privfin.federation.transport import CancelToken, MessageKey, raise_timeout
from privfin.store import open_engine, upgrade

__all__ = [
    "ACCEPTED",
    "Accepted",
    "Mailbox",
    "MessageConflict",
    "MessageTooLarge",
    "QuotaExceeded",
    "Quotas",
    "metadata",
]

_log = logging.getLogger(__name__)

_RECENT_LIMIT = 256 * 1024 * 1024
#: Seconds the writer lingers after the first message of a group commit (write-behind): the
#: messages of a many-round protocol arriving meanwhile share one transaction and one SYNCED
#: (a commit and its wake-ups cost more CPU than a round trip on loopback). What it delays is
#: only the report that a message is on disk, which a step waits for once, at its end. 30 ms
#: rather than 5 (eighth session, quiet, alternated): 64 B round trip between two nodes
#: 1.04-1.07 vs 1.36-1.78 ms median, SS-LR with 723 messages 2.35-2.86 vs 3.05-3.92 s (the
#: commits and SYNCED frames of every few messages competed with the rounds for 2 cores).
DEFAULT_LINGER = 0.03
#: ... unless this many payload bytes wait: then it commits at once.
_LINGER_BYTES = 8 * 1024 * 1024
#: Payloads of volatile messages (see :meth:`Mailbox.accept`) held in memory at most; beyond
#: it a volatile message is written like any other.
_HELD_LIMIT = 256 * 1024 * 1024
#: Write-behind payloads from this size on go to a file of the mailbox's directory (when it
#: has one) rather than into the database: a blob costs SQLite two writes (WAL, checkpoint)
#: and page overhead, a file one write to the page cache.
SPILL_MIN = 64 * 1024
#: How often a waiter looks in the database (for a message stored by another process).
_POLL = 0.25
#: Seconds a waiter reads its sender's connection (``pump``) before it looks again.
_PUMP_MAX = 0.02
#: Dialects with ``INSERT ... ON CONFLICT DO NOTHING`` (one statement for a new message).
_UPSERT = frozenset({"sqlite", "postgresql"})

#: The mailbox's tables (created by the store's migration "0001_base").
metadata = MetaData()
_KEY_COLS = ("job", "component", "tag", "sender", "receiver", "seq")

messages = Table(
    "messages",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("component", String(64), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Column("sender", String(64), primary_key=True),
    Column("receiver", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("received_at", Integer, nullable=False),
    # Added by "0007_mailbox_spill": the payload is in a file of the mailbox's directory.
    Column("spilled", Boolean, nullable=False, server_default=false()),
)
Index("ix_messages_sender_time", messages.c.sender, messages.c.received_at)
Index("ix_messages_time", messages.c.received_at)
chunks = Table(
    "chunks",
    metadata,
    Column("path", String(400), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("total", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    # Added by [08] (quotas and expiry); older databases get them when the store adopts them.
    Column("job", String(64), nullable=True),
    Column("sender", String(64), nullable=True),
    Column("size", Integer, nullable=True),
    Column("received_at", Integer, nullable=True),
)
# Quota checks look chunks up by sender and job.
Index("ix_chunks_sender", chunks.c.sender)
Index("ix_chunks_job", chunks.c.job)
aborts = Table(
    "aborts",
    metadata,
    Column("job", String(64), primary_key=True),
    Column("sender", String(64), primary_key=True),
    Column("reason", String(1000), nullable=False),
)


class MessageConflict(ProtocolAbort):
    """A different payload arrived under a key that already holds a message (a replay with
    altered content, or a misbehaving sender)."""


class MessageTooLarge(PrivfinError):
    """A message (counted on its assembled size) or a sender's quota in a job is too large."""


class QuotaExceeded(PrivfinError):
    """A sender has filled its pre-job buffer (or its chunks in flight): try again later."""


@dataclass(frozen=True)
class Quotas:
    """What one peer can make this node store.

    Parameters
    ----------
    max_message_size:
        Largest message, chunked or not (counted on the assembled message).
    job_messages, job_bytes:
        Per sender and job: messages and bytes stored (payloads of ended jobs are deleted).
    prejob_messages, prejob_bytes, prejob_ttl:
        Per sender: messages for jobs this node has not started (yet), and how long they are
        kept if the job never starts here.
    chunk_bytes, chunk_rows:
        Per sender: bytes and chunks of chunked messages in flight (not yet complete).
    min_chunk:
        Every chunk but the last of a message has at least this many bytes (or
        ``max_message_size`` if smaller), and no chunk is empty: a message has at most
        :meth:`max_chunks` chunks, so empty or tiny chunks cannot fill the database with rows.
    chunk_ttl:
        Seconds after which chunks of an incomplete message are deleted.

    The per-job defaults (200,000 messages, 8 GiB per sender and job) are well above what the
    platform's protocols send in a job (messages are at most ``max_message_size``; a large
    payload travels as 4 MiB chunks assembled into one message) and still bound what one peer
    can park on this node's disk per job it is a party of.
    """

    max_message_size: int = 256 * 1024 * 1024
    job_messages: int = 200_000
    job_bytes: int = 8 * 1024**3
    prejob_messages: int = 64
    prejob_bytes: int = 16 * 1024 * 1024
    prejob_ttl: float = 600.0
    chunk_bytes: int = 1024**3
    chunk_rows: int = 16384
    min_chunk: int = 64 * 1024
    chunk_ttl: float = 3600.0

    def max_chunks(self) -> int:
        """The most chunks one message may have."""
        return max(1, math.ceil(self.max_message_size / min(self.min_chunk, self.max_message_size)))


def _key_values(key: MessageKey) -> dict[str, object]:
    return {
        "job": key.job,
        "component": key.component,
        "tag": key.tag,
        "sender": key.sender,
        "receiver": key.receiver,
        "seq": key.seq,
    }


def _key_tuple(key: MessageKey) -> tuple[str, str, str, str, str, int]:
    return (key.job, key.component, key.tag, key.sender, key.receiver, key.seq)


def _insert_message(conn: Connection, key: MessageKey, digest: str, payload: bytes) -> None:
    conn.execute(
        insert(messages).values(
            **_key_values(key),
            digest=digest,
            size=len(payload),
            payload=payload,
            received_at=int(time.time()),
        )
    )


def _where(key: MessageKey) -> ColumnElement[bool]:
    return and_(*(messages.c[c] == getattr(key, c) for c in _KEY_COLS))


# Statements of the hot paths, built once (building a statement costs more than running it).
_KEY_MATCH = and_(*(messages.c[c] == bindparam(c) for c in _KEY_COLS))
_SELECT_DIGEST = select(messages.c.digest).where(_KEY_MATCH)
_SELECT_PAYLOAD = select(
    messages.c.payload, messages.c.size, messages.c.spilled, messages.c.digest
).where(_KEY_MATCH)
_RETURN_KEY = [messages.c[c] for c in _KEY_COLS]
_INSERT_NEW = {
    "sqlite": sqlite_insert(messages).on_conflict_do_nothing().returning(*_RETURN_KEY),
    "postgresql": postgresql_insert(messages).on_conflict_do_nothing().returning(*_RETURN_KEY),
}


_ROW_COLS = (*_KEY_COLS, "digest", "size", "payload", "received_at", "spilled")
_SQLITE_INSERT_IGNORE = (
    "INSERT OR IGNORE INTO messages (job, component, tag, sender, receiver, seq, digest, size, "
    "payload, received_at, spilled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class _NotAllNew(Exception):
    """A group commit met a message stored already: rolled back, retried in general."""


class Accepted:
    """:meth:`Mailbox.accept`'s answer for a message taken into memory: readable now, durable
    once its ``on_durable`` hook is called."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ACCEPTED"


ACCEPTED = Accepted()
#: ``on_durable(indices)``: the indices (in one :meth:`Mailbox.accept` call) now on disk.
OnDurable = Callable[[list[int]], None]
Answer = bool | Accepted | MessageConflict | MessageTooLarge | QuotaExceeded


class _Behind:
    """A message accepted in memory and not written yet."""

    __slots__ = ("_digest", "key", "notify", "payload", "volatile")

    def __init__(self, key: MessageKey, payload: bytes, volatile: bool) -> None:
        self.key, self.payload = key, payload
        self._digest: str | None = None
        self.volatile = volatile  # its row is written without the payload (held in memory)
        self.notify: list[tuple[OnDurable, int]] = []

    @property
    def digest(self) -> str:
        """SHA-256 of the payload, computed by the writer thread when it stores the row (not
        on the receiving path: ``accept`` compares a resend's bytes with the held payload)."""
        if self._digest is None:
            self._digest = hashlib.sha256(self.payload).hexdigest()
        return self._digest


class Mailbox:
    """Durable mailbox of one node.

    Parameters
    ----------
    store:
        The node's store: an engine from :func:`privfin.store.open_engine`, already upgraded
        (the caller keeps it and disposes it), or a SQLAlchemy URL or SQLite file path, which
        the mailbox opens, migrates (:func:`privfin.store.upgrade`) and closes.
    spill_dir:
        A private directory for payloads of at least :data:`SPILL_MIN` bytes taken
        write-behind: each is written to a file (in the transaction that stores its row,
        before the commit) rather than into the database. None: every payload in the database.
    """

    def __init__(
        self,
        store: str | Path | Engine,
        *,
        spill_dir: str | Path | None = None,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        if not 0 <= linger <= 1.0:
            raise ValueError("linger must be between 0 and 1 second")
        #: seconds the writer waits after the first message of a group commit for more to
        #: join it (cut short by :meth:`flush` or by ``_LINGER_BYTES`` waiting)
        self.linger = linger
        #: large write-behind payloads are stored as files here (None: all in the database)
        self.spill_dir = None if spill_dir is None else Path(spill_dir)
        if self.spill_dir is not None:
            self.spill_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._owns_engine = not isinstance(store, Engine)
        if isinstance(store, Engine):
            self.engine: Engine = store
        else:
            self.engine = open_engine(store)
            try:
                upgrade(self.engine)
            except BaseException:
                self.engine.dispose()
                raise
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)  # a message arrived, a job was aborted
        self._waiting = 0  # (under the lock) threads waiting on ``_cond``
        self._wake = threading.Condition(self._lock)  # the writer has work; it finished some
        # write-behind: accepted, not written yet (readable from _recent meanwhile)
        self._behind: dict[MessageKey, _Behind] = {}
        self._queue: list[_Behind] = []
        self._accepted_n = 0  # messages handed to the writer, ever
        self._queued_bytes = 0  # payload bytes in ``_queue``
        self._urgent = 0  # flushes waiting: the writer does not linger
        self._written_n = 0  # of them, written (or settled) so far
        self._writer: threading.Thread | None = None
        self._writer_live = False  # (under the lock) the writer thread runs its loop
        self._closing = False
        #: the writer's last failure (None when it is writing); the node reports it
        self.write_error: str | None = None
        self._aborted_jobs: set[str] = set()  # aborts recorded by this process
        # job -> keys in the database that may not be in memory (see :meth:`wait`)
        self._on_disk: dict[str, set[MessageKey]] = {}
        # Messages stored by this process, kept until read once: a waiter in the same process
        # (the node's job threads) gets them without a database read. Bounded; the database
        # stays the source of truth.
        self._recent: OrderedDict[MessageKey, bytes] = OrderedDict()
        self._recent_bytes = 0
        # Payloads of volatile messages (their rows are written without them), until read.
        self._held: dict[MessageKey, bytes] = {}
        self._held_bytes = 0
        # (job, sender) -> [messages, bytes] stored, loaded from the database at first use.
        self._usage: dict[tuple[str, str], list[int]] = {}
        self._swept_until = 0  # messages older than this were checked for unclaimed jobs

    def _remember(self, key: MessageKey, payload: bytes) -> None:
        old = self._recent.pop(key, None)
        if old is not None:
            self._recent_bytes -= len(old)
        self._recent[key] = payload
        self._recent_bytes += len(payload)
        while self._recent_bytes > _RECENT_LIMIT and self._recent:
            dropped, old = self._recent.popitem(last=False)
            self._recent_bytes -= len(old)
            if dropped.job in self._on_disk:  # a waiter reads it from the database
                self._on_disk[dropped.job].add(dropped)

    def close(self, timeout: float = 30.0) -> None:
        """Write what was accepted (waiting at most ``timeout`` seconds), stop the writer, and
        close the engine if the mailbox opened it (an engine handed in stays open)."""
        writer = self._writer
        if writer is not None:
            self.flush(timeout)
            with self._lock:
                self._closing = True
                self._wake.notify_all()
            writer.join(timeout)
        if self._owns_engine:
            self.engine.dispose()

    # -- quotas
    def _job_usage(self, conn: Connection | None, job: str, sender: str) -> list[int]:
        usage = self._usage.get((job, sender))
        if usage is None:
            if conn is None:
                raise RuntimeError("job usage not loaded")
            row = conn.execute(
                select(func.count(), func.coalesce(func.sum(messages.c.size), 0)).where(
                    messages.c.job == job, messages.c.sender == sender
                )
            ).one()
            usage = self._usage[(job, sender)] = [int(row[0]), int(row[1])]
        return usage

    def _admit(
        self,
        conn: Connection | None,
        key: MessageKey,
        size: int,
        quotas: Quotas | None,
        known: Callable[[str], bool] | None,
        rows: int = 1,
    ) -> None:
        """Refuse a new message of ``size`` bytes that would exceed ``quotas`` (``rows``: the
        rows it takes in the pre-job buffer, its chunks so far and the new one)."""
        if quotas is None:
            return
        if size > quotas.max_message_size:
            raise MessageTooLarge(f"message larger than {quotas.max_message_size} bytes")
        count, stored = self._job_usage(conn, key.job, key.sender)
        if count + 1 > quotas.job_messages or stored + size > quotas.job_bytes:
            raise MessageTooLarge(
                f"{key.sender!r} exceeded its quota in job {key.job!r} "
                f"({quotas.job_messages} messages, {quotas.job_bytes} bytes)"
            )
        if known is None or known(key.job):
            return
        assert conn is not None  # the pre-job buffer is counted in the database
        cutoff = int(time.time() - quotas.prejob_ttl)
        prejob = conn.execute(
            select(messages.c.job, func.count(), func.sum(messages.c.size))
            .where(messages.c.sender == key.sender, messages.c.received_at >= cutoff)
            .group_by(messages.c.job)
        ).all()
        in_flight = conn.execute(
            select(chunks.c.job, func.count(), func.sum(chunks.c.size))
            .where(chunks.c.sender == key.sender, chunks.c.path != key.path())
            .group_by(chunks.c.job)
        ).all()
        n, total = rows, size
        for job, c, b in [*prejob, *in_flight]:
            if not known(str(job)):
                n, total = n + int(c), total + int(b or 0)
        if n > quotas.prejob_messages or total > quotas.prejob_bytes:
            raise QuotaExceeded(
                f"{key.sender!r} has {quotas.prejob_messages} messages (chunks) or "
                f"{quotas.prejob_bytes} bytes waiting for jobs this node has not started; "
                "retry after the job is submitted here"
            )

    def _count(self, key: MessageKey, size: int) -> None:
        usage = self._usage.get((key.job, key.sender))
        if usage is not None:
            usage[0] += 1
            usage[1] += size

    def precheck(
        self,
        key: MessageKey,
        size: int,
        quotas: Quotas,
        known: Callable[[str], bool] | None,
        chunk: tuple[int, int] | None = None,
    ) -> None:
        """Raise as :meth:`put` (or :meth:`put_chunk` for ``chunk=(index, total)``) would for a
        message (chunk) of ``size`` bytes, without storing anything: the node calls this with
        the request's declared length before it reads the body. A message already stored under
        ``key`` passes (the retry of a duplicate is answered by :meth:`put`)."""
        if chunk is not None:
            _check_chunk(key, chunk[0], chunk[1], size, quotas)
        elif known is not None and known(key.job):
            # A job this node runs, whose usage is counted in memory (write-behind): within
            # its quotas, the message may come without asking the database (the stream server
            # prechecks every chunked message on its thread). Near a quota, the database
            # tells a stored duplicate, which passes, from a new message.
            with self._lock:
                if (key.job, key.sender) in self._usage:
                    try:
                        self._admit(None, key, size, quotas, known)
                    except (MessageTooLarge, QuotaExceeded):
                        pass
                    else:
                        return
        with self._cond, self.engine.begin() as conn:
            if conn.execute(select(messages.c.seq).where(_where(key))).first() is not None:
                return
            if chunk is None:
                self._admit(conn, key, size, quotas, known)
                return
            path = key.path()
            have = conn.execute(
                select(chunks.c.idx).where(chunks.c.path == path, chunks.c.idx == chunk[0])
            ).first()
            if have is None:
                self._admit_chunk(conn, key, path, size, quotas, known)

    # -- storing
    def put(
        self,
        key: MessageKey,
        payload: bytes,
        *,
        quotas: Quotas | None = None,
        known: Callable[[str], bool] | None = None,
    ) -> bool:
        """Store a message. Returns False for a duplicate; raises MessageConflict on a clash.

        With ``quotas``, a new message is refused (:class:`MessageTooLarge`,
        :class:`QuotaExceeded`) beyond them; ``known(job)`` tells whether this node runs the
        job (if not, the message goes to the sender's bounded pre-job buffer).
        """
        digest = hashlib.sha256(payload).hexdigest()
        with self._cond:
            with self.engine.begin() as conn:
                row = conn.execute(select(messages.c.digest).where(_where(key))).first()
                if row is not None:
                    if row[0] != digest:
                        raise MessageConflict(
                            f"message {key.path()} was already received with other content",
                            party=key.sender,
                        )
                    return False
                self._admit(conn, key, len(payload), quotas, known)
                _insert_message(conn, key, digest, payload)
            self._count(key, len(payload))
            self._remember(key, payload)
            self._cond.notify_all()
        return True

    def put_many(
        self,
        items: Sequence[tuple[MessageKey, bytes]],
        *,
        quotas: Quotas | None = None,
        known: Callable[[str], bool] | None = None,
    ) -> list[bool | MessageConflict | MessageTooLarge | QuotaExceeded]:
        """Store several messages in one transaction (a group commit: the streaming transport
        stores the messages it read together): one query for the keys already stored, one
        multi-row insert. For each message, in order, what :meth:`put` would give: True
        (stored), False (duplicate), or the error it would raise, returned, not raised (a
        refused message does not stop the others). An error of the database itself (disk
        full) raises and stores none of them.

        A single message on SQLite or PostgreSQL takes one statement: an insert that does
        nothing on a key already stored (``ON CONFLICT DO NOTHING RETURNING``; the stored
        digest is read only then)."""
        if len(items) == 1 and self.engine.dialect.name in _UPSERT:
            return [self._put_one(*items[0], quotas, known)]
        out: list[bool | MessageConflict | MessageTooLarge | QuotaExceeded] = []
        digests = [hashlib.sha256(payload).hexdigest() for _, payload in items]
        stored: list[tuple[MessageKey, bytes]] = []
        rows: list[dict[str, object]] = []
        now = int(time.time())
        with self._cond:
            try:
                with self.engine.begin() as conn:
                    have: dict[MessageKey, str] = {}
                    keys = list(dict.fromkeys(key for key, _ in items))
                    for i in range(0, len(keys), 200):
                        part = keys[i : i + 200]
                        found = conn.execute(
                            select(*(messages.c[c] for c in _KEY_COLS), messages.c.digest).where(
                                or_(*(_where(key) for key in part))
                            )
                        ).all()
                        for row in found:
                            have[MessageKey(*row[:6])] = str(row[6])
                    for (key, payload), digest in zip(items, digests, strict=True):
                        old = have.get(key)
                        if old is not None:
                            out.append(
                                False
                                if old == digest
                                else MessageConflict(
                                    f"message {key.path()} was already received with other content",
                                    party=key.sender,
                                )
                            )
                            continue
                        if rows and quotas is not None and not (known is None or known(key.job)):
                            # the pre-job quota counts stored rows: store the batch so far
                            conn.execute(insert(messages), rows)
                            rows = []
                        try:
                            self._admit(conn, key, len(payload), quotas, known)
                        except (MessageTooLarge, QuotaExceeded) as exc:
                            out.append(exc)
                            continue
                        rows.append(
                            {
                                **_key_values(key),
                                "digest": digest,
                                "size": len(payload),
                                "payload": payload,
                                "received_at": now,
                            }
                        )
                        have[key] = digest  # a later copy in the batch is a duplicate
                        self._count(key, len(payload))  # later messages of the batch see it
                        stored.append((key, payload))
                        out.append(True)
                    if rows:
                        conn.execute(insert(messages), rows)
            except BaseException:
                for key, _ in stored:  # counted but not committed: reload from the database
                    self._usage.pop((key.job, key.sender), None)
                raise
            for key, payload in stored:
                self._remember(key, payload)
            self._cond.notify_all()
        return out

    # -- write-behind
    def accept(
        self,
        items: Sequence[tuple[MessageKey, bytes]],
        *,
        quotas: Quotas | None = None,
        known: Callable[[str], bool] | None = None,
        on_durable: OnDurable | None = None,
        volatile: Callable[[MessageKey], bool] | None = None,
    ) -> list[Answer]:
        """Take messages write-behind (see the module's docstring).

        A message for which ``volatile(key)`` is true belongs to a step that restarts as a new
        attempt after a crash (its messages are never read again after one): its row (key,
        digest, size) is written as any other, so duplicates, conflicts and :meth:`lost` see
        it, but its payload is only held in memory until read (at most ``_HELD_LIMIT`` bytes
        of them; beyond, it is written too). A crash of this node loses such payloads; the
        pipeline finds that out with :meth:`lost` and restarts the step under a new attempt.

        For each message, in order: :data:`ACCEPTED` — checked against ``quotas``, readable
        now by this process's waiters, and written by the writer thread in its next group
        commit, after which ``on_durable`` is called (from that thread) with the indices of
        the accepted messages it wrote; a message already accepted and not written yet with
        the same bytes is accepted again (its hook joins the first one's). Otherwise what
        :meth:`put_many` answers: a duplicate of, or a conflict with, a message this process
        holds in memory (not written, or not read yet), a refusal by the quotas, or — for
        the messages of jobs this node does not run yet (``known``), which go to the pre-job
        buffer counted in the database — the answer of storing them now.
        """
        out: list[Answer | None] = [None] * len(items)
        now: list[int] = []
        with self._lock:
            queued = len(self._queue)
            for i, (key, payload) in enumerate(items):
                if known is not None and not known(key.job):
                    now.append(i)
                    continue
                old = self._behind.get(key)
                if old is not None:
                    if old.payload != payload:
                        out[i] = MessageConflict(
                            f"message {key.path()} was already received with other content",
                            party=key.sender,
                        )
                        continue
                    if on_durable is not None:
                        old.notify.append((on_durable, i))
                    out[i] = ACCEPTED
                    continue
                unread = self._recent.get(key)  # written, not read yet: compare here
                if unread is None:
                    unread = self._held.get(key)
                if unread is not None:
                    out[i] = (
                        False
                        if unread == payload
                        else MessageConflict(
                            f"message {key.path()} was already received with other content",
                            party=key.sender,
                        )
                    )
                    continue
                size = len(payload)
                usage = self._usage.get((key.job, key.sender))
                if quotas is not None and (  # (within every quota: the common case)
                    usage is None
                    or size > quotas.max_message_size
                    or usage[0] >= quotas.job_messages
                    or usage[1] + size > quotas.job_bytes
                ):
                    try:
                        self._admit_memory(key, size, quotas)
                    except (MessageTooLarge, QuotaExceeded) as exc:
                        out[i] = exc
                        continue
                    usage = self._usage.get((key.job, key.sender))
                held = (
                    volatile is not None
                    and self._held_bytes + len(payload) <= _HELD_LIMIT
                    and len(payload) > 0
                    and volatile(key)
                )
                entry = _Behind(key, payload, held)
                if on_durable is not None:
                    entry.notify.append((on_durable, i))
                self._behind[key] = entry
                self._queue.append(entry)
                self._queued_bytes += len(payload)
                self._accepted_n += 1
                if usage is not None:  # (counted: see _count)
                    usage[0] += 1
                    usage[1] += size
                if held:
                    self._held[key] = payload
                    self._held_bytes += len(payload)
                else:
                    self._remember(key, payload)
                out[i] = ACCEPTED
            if len(self._queue) > queued:
                if not self._writer_live:
                    self._start_writer()
                if not queued or self._queued_bytes >= _LINGER_BYTES:
                    # the writer waits for a first message, or lingers and should stop
                    # (otherwise it lingers on undisturbed: no wake-up per message)
                    self._wake.notify_all()
                if self._waiting:
                    self._cond.notify_all()
        if now:
            answers = self.put_many([items[i] for i in now], quotas=quotas, known=known)
            for i, answer in zip(now, answers, strict=True):
                out[i] = answer
        return [a if a is not None else False for a in out]

    def _admit_memory(self, key: MessageKey, size: int, quotas: Quotas | None) -> None:
        """The quotas of a message of a job this node runs (its usage read once from the
        database, then counted in memory)."""
        if quotas is None:
            return
        if (key.job, key.sender) not in self._usage:
            with self.engine.connect() as conn:
                self._job_usage(conn, key.job, key.sender)
        self._admit(None, key, size, quotas, None)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every message accepted so far is written; False if ``timeout`` seconds
        passed first (the writer keeps trying: see :attr:`write_error`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._accepted_n
            if self._written_n >= target:
                return True
            self._urgent += 1
            self._wake.notify_all()  # a lingering writer commits now
            try:
                while self._written_n < target:
                    if deadline is None:
                        self._wake.wait()
                        continue
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._wake.wait(remaining)
            finally:
                self._urgent -= 1
        return True

    @property
    def unwritten(self) -> int:
        """Messages accepted and not written yet."""
        with self._lock:
            return self._accepted_n - self._written_n

    def _start_writer(self) -> None:
        """(Under the lock.) Start the writer thread unless it runs."""
        if not self._writer_live:
            self._closing = False
            writer = threading.Thread(target=self._write_loop, name="mailbox-writer", daemon=True)
            writer.start()  # (may raise: then no writer is recorded, the next accept retries)
            self._writer, self._writer_live = writer, True

    def _write_loop(self) -> None:
        try:
            self._write_all()  # (it clears _writer_live, under the lock, when it returns)
        finally:
            with self._lock:
                if self._writer_live and self._writer is threading.current_thread():
                    # it failed: a new writer takes what is queued
                    self._writer_live = False
                    if self._queue and not self._closing:
                        self._start_writer()

    def _write_all(self) -> None:
        delay = 0.05
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._wake.wait()
                if not self._queue:
                    self._writer_live = False  # (under the lock: the next accept starts one)
                    return
                # group commit: let the messages of the next few milliseconds join this one
                # (a many-round protocol then commits once per several messages, and its
                # peers get one SYNCED for them), unless a flush or a close waits
                until = time.monotonic() + self.linger
                while (
                    not self._closing
                    and not self._urgent
                    and self._queued_bytes < _LINGER_BYTES
                    and (left := until - time.monotonic()) > 0
                ):
                    self._wake.wait(left)
                batch, self._queue = self._queue, []
                self._queued_bytes = 0
            try:
                settled = self._write(batch)
            except Exception as exc:  # a database error (disk full, server gone): retry
                self.write_error = f"{type(exc).__name__}: {exc}"
                _log.error(
                    "mailbox: writing %d messages failed (%s); retrying in %.2f s",
                    len(batch),
                    self.write_error,
                    delay,
                )
                with self._lock:
                    self._queue[:0] = batch
                    self._queued_bytes += sum(len(e.payload) for e in batch)
                    if self._closing:
                        self._writer_live = False
                        return
                    self._wake.wait(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay, self.write_error = 0.05, None
            hooks: dict[int, tuple[OnDurable, list[int]]] = {}
            with self._lock:
                for entry in batch:
                    if self._behind.get(entry.key) is entry:
                        del self._behind[entry.key]
                    for hook, i in entry.notify:
                        hooks.setdefault(id(hook), (hook, []))[1].append(i)
                for entry, clash in settled:
                    # already stored: not new after all (and not readable twice)
                    usage = self._usage.get((entry.key.job, entry.key.sender))
                    if usage is not None:
                        usage[0] -= 1
                        usage[1] -= len(entry.payload)
                    if self._recent.get(entry.key) is entry.payload:
                        self._recent_bytes -= len(self._recent.pop(entry.key))
                        if entry.key.job in self._on_disk:
                            self._on_disk[entry.key.job].add(entry.key)
                    if self._held.get(entry.key) is entry.payload:
                        self._held_bytes -= len(self._held.pop(entry.key))
                        if entry.key.job in self._on_disk:
                            self._on_disk[entry.key.job].add(entry.key)
                    if clash:
                        self._aborted_jobs.add(entry.key.job)
                if settled:  # a waiter may now have to look in the database (or stop)
                    self._cond.notify_all()
            for entry, clash in settled:
                if clash:
                    _log.warning(
                        "mailbox: %r sent other content under %s; recorded as its abort",
                        entry.key.sender,
                        entry.key.path(),
                    )
                    self.abort(
                        entry.key.job,
                        entry.key.sender,
                        f"sent other content under an already received key ({entry.key.path()})",
                    )
            for hook, indices in hooks.values():
                try:
                    hook(indices)
                except Exception:
                    _log.exception("mailbox: a durability hook failed")
            with self._lock:  # counted last: a flush returns after the hooks ran
                self._written_n += len(batch)
                self._wake.notify_all()

    def _write(self, batch: Sequence[_Behind]) -> list[tuple[_Behind, bool]]:
        """Store ``batch`` in one transaction; returns the messages that were stored already
        (``(entry, True)`` when with other bytes: a conflict)."""
        now = int(time.time())
        name = self.engine.dialect.name
        spill = self.spill_dir is not None and name in _UPSERT
        rows = []
        for e in batch:
            spilled = spill and not e.volatile and len(e.payload) >= SPILL_MIN
            rows.append(
                {
                    **_key_values(e.key),
                    "digest": e.digest,
                    "size": len(e.payload),
                    "payload": b"" if e.volatile or spilled else e.payload,
                    "received_at": now,
                    "spilled": spilled,
                }
            )
        settled: list[tuple[_Behind, bool]] = []
        if name == "sqlite" and self._write_new_sqlite(batch, rows):
            return settled
        with self.engine.begin() as conn:
            if name in _UPSERT:
                stmt = _INSERT_NEW[name]
                inserted = {tuple(row) for row in conn.execute(stmt, rows)}
                missing = [e for e in batch if _key_tuple(e.key) not in inserted]
                # the files of the new rows, before the commit: a row never points to nothing
                for e, row in zip(batch, rows, strict=True):
                    if row["spilled"] and _key_tuple(e.key) in inserted:
                        self._write_file(e.key, e.payload)
            else:
                missing = []
                for e, row in zip(batch, rows, strict=True):
                    if conn.execute(_SELECT_DIGEST, _key_values(e.key)).first() is None:
                        conn.execute(insert(messages), row)
                    else:
                        missing.append(e)
            for e in missing:
                stored = conn.execute(_SELECT_DIGEST, _key_values(e.key)).scalar()
                settled.append((e, stored != e.digest))
        return settled

    def _write_new_sqlite(self, batch: Sequence[_Behind], rows: list[dict[str, Any]]) -> bool:
        """SQLite's common case: none of ``batch`` is stored yet. One ``executemany`` of
        ``INSERT OR IGNORE``, without the statement compiler's work per row (a group commit
        of 40 small messages: 20-28 µs a row in all, instead of 44-58); if a row was there
        already (a resend after a cut), the transaction is rolled back and False returned,
        for the general path to find which."""
        values = [tuple(row[c] for c in _ROW_COLS) for row in rows]
        try:
            with self.engine.begin() as conn:
                done = conn.exec_driver_sql(_SQLITE_INSERT_IGNORE, values).rowcount
                if done != len(values):
                    raise _NotAllNew
                for e, row in zip(batch, rows, strict=True):
                    if row["spilled"]:  # before the commit: a row never points to nothing
                        self._write_file(e.key, e.payload)
        except _NotAllNew:
            return False
        return True

    def _file(self, key: MessageKey) -> Path:
        assert self.spill_dir is not None
        name = hashlib.sha256(key.path().encode()).hexdigest()
        return self.spill_dir / key.job / name

    def _write_file(self, key: MessageKey, payload: bytes) -> None:
        path = self._file(key)
        path.parent.mkdir(exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)

    def _read_file(self, key: MessageKey, digest: str) -> bytes | None:
        """A spilled payload, checked against its digest (None: the file is gone)."""
        if self.spill_dir is None:
            raise ProtocolAbort(
                f"message {key.path()} is stored in a file and this mailbox has no spill_dir"
            )
        try:
            payload = self._file(key).read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(payload).hexdigest() != digest:
            raise ProtocolAbort(f"the stored file of message {key.path()} is corrupt")
        return payload

    def _row_payload(self, key: MessageKey, row: Any) -> bytes:
        """The payload of a ``_SELECT_PAYLOAD`` row (b"" with size > 0: no longer held)."""
        if row[2]:
            got = self._read_file(key, str(row[3]))
            return b"" if got is None else got
        return bytes(row[0])

    def _put_one(
        self,
        key: MessageKey,
        payload: bytes,
        quotas: Quotas | None,
        known: Callable[[str], bool] | None,
    ) -> bool | MessageConflict | MessageTooLarge | QuotaExceeded:
        digest = hashlib.sha256(payload).hexdigest()
        stored = False
        with self._cond:
            with self.engine.begin() as conn:
                try:
                    self._admit(conn, key, len(payload), quotas, known)
                except (MessageTooLarge, QuotaExceeded) as exc:
                    refused: MessageTooLarge | QuotaExceeded | None = exc
                else:
                    refused = None
                    values = {
                        **_key_values(key),
                        "digest": digest,
                        "size": len(payload),
                        "payload": payload,
                        "received_at": int(time.time()),
                    }
                    # RETURNING says whether the row was inserted (rowcount is not reliable
                    # for ON CONFLICT with every driver: psycopg 3 gives -1)
                    if conn.dialect.name == "sqlite":
                        lite = sqlite_insert(messages).values(**values).on_conflict_do_nothing()
                        result = conn.execute(lite.returning(messages.c.seq))
                    else:
                        pg = postgresql_insert(messages).values(**values).on_conflict_do_nothing()
                        result = conn.execute(pg.returning(messages.c.seq))
                    stored = result.first() is not None
                if refused is not None or not stored:
                    row = conn.execute(select(messages.c.digest).where(_where(key))).first()
                    if row is None:
                        assert refused is not None
                        return refused
                    if row[0] != digest:
                        return MessageConflict(
                            f"message {key.path()} was already received with other content",
                            party=key.sender,
                        )
                    return False
            self._count(key, len(payload))
            self._remember(key, payload)
            self._cond.notify_all()
        return True

    def put_chunk(
        self,
        key: MessageKey,
        index: int,
        total: int,
        digest: str,
        data: bytes,
        *,
        quotas: Quotas | None = None,
        known: Callable[[str], bool] | None = None,
    ) -> bool:
        """Store chunk ``index`` of ``total`` of a large message whose whole SHA-256 is
        ``digest``. When the last chunk lands the message is assembled, checked and stored.
        Returns True once the whole message is stored.

        With ``quotas``, the chunks of one message may not add up to more than
        ``max_message_size`` (the assembled message is refused before it is built) and a
        sender's chunks in flight to no more than ``chunk_bytes``."""
        if not (0 <= index < total <= 1_000_000):
            raise ValueError("chunk index out of range")
        if quotas is not None:
            _check_chunk(key, index, total, len(data), quotas)
        path = key.path()
        with self._cond:
            with self.engine.begin() as conn:
                done = conn.execute(select(messages.c.digest).where(_where(key))).first()
                if done is not None:
                    if done[0] != digest:
                        raise MessageConflict(
                            f"message {path} exists with other content", party=key.sender
                        )
                    return True
                old = conn.execute(
                    select(chunks.c.digest, chunks.c.total).where(chunks.c.path == path).limit(1)
                ).first()
                if old is not None and (old[0] != digest or old[1] != total):
                    raise MessageConflict(
                        f"chunks of {path} disagree on size or digest", party=key.sender
                    )
                have = conn.execute(
                    select(chunks.c.idx).where(chunks.c.path == path, chunks.c.idx == index)
                ).first()
                if have is None:
                    if quotas is not None:
                        self._admit_chunk(conn, key, path, len(data), quotas, known)
                    conn.execute(
                        insert(chunks).values(
                            path=path,
                            idx=index,
                            total=total,
                            digest=digest,
                            data=data,
                            job=key.job,
                            sender=key.sender,
                            size=len(data),
                            received_at=int(time.time()),
                        )
                    )
                count = conn.execute(
                    select(func.count()).select_from(chunks).where(chunks.c.path == path)
                ).scalar_one()
                if count < total:
                    return False
                parts = conn.execute(
                    select(chunks.c.data).where(chunks.c.path == path).order_by(chunks.c.idx)
                ).scalars()
                payload = b"".join(parts)
                if hashlib.sha256(payload).hexdigest() != digest:
                    conn.execute(delete(chunks).where(chunks.c.path == path))
                    raise MessageConflict(
                        f"chunks of {path} do not match their digest", party=key.sender
                    )
                _insert_message(conn, key, digest, payload)
                conn.execute(delete(chunks).where(chunks.c.path == path))
            self._count(key, len(payload))
            self._remember(key, payload)
            self._cond.notify_all()
        return True

    def _admit_chunk(
        self,
        conn: Connection,
        key: MessageKey,
        path: str,
        size: int,
        quotas: Quotas,
        known: Callable[[str], bool] | None,
    ) -> None:
        have, so_far = conn.execute(
            select(func.count(), func.coalesce(func.sum(func.length(chunks.c.data)), 0)).where(
                chunks.c.path == path
            )
        ).one()
        # The assembled message is counted against every quota of a whole message, and each
        # of its chunks as a row of the pre-job buffer.
        self._admit(conn, key, int(so_far) + size, quotas, known, rows=int(have) + 1)
        rows, in_flight = conn.execute(
            select(func.count(), func.coalesce(func.sum(chunks.c.size), 0)).where(
                chunks.c.sender == key.sender
            )
        ).one()
        if int(in_flight) + size > quotas.chunk_bytes or int(rows) + 1 > quotas.chunk_rows:
            raise QuotaExceeded(
                f"{key.sender!r} has {quotas.chunk_bytes} bytes or {quotas.chunk_rows} chunks "
                "of incomplete chunked messages"
            )

    # -- retention
    def purge_job(self, job: str, *, batch: int = 64) -> int:
        """Delete the payloads of ``job``'s messages (digests, sizes and times stay, for
        audit) and its chunks; returns the number of payloads deleted. Works in short
        transactions of ``batch`` messages, without the mailbox lock, so messages of other
        jobs are stored and read meanwhile."""
        self.flush(30.0)
        n = 0
        key_cols = [messages.c[c] for c in ("component", "tag", "sender", "receiver", "seq")]
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(
                    select(*key_cols)
                    .where(messages.c.job == job, func.length(messages.c.payload) > 0)
                    .limit(batch)
                ).all()
                for row in rows:
                    same = [c == v for c, v in zip(key_cols, row, strict=True)]
                    conn.execute(
                        update(messages).where(messages.c.job == job, *same).values(payload=b"")
                    )
            n += len(rows)
            if len(rows) < batch:
                break
        with self.engine.begin() as conn:
            n += conn.execute(
                update(messages)
                .where(messages.c.job == job, messages.c.spilled)
                .values(spilled=False)
            ).rowcount
        if self.spill_dir is not None:
            shutil.rmtree(self.spill_dir / job, ignore_errors=True)
        with self.engine.begin() as conn:
            conn.execute(
                delete(chunks).where(
                    (chunks.c.job == job) | chunks.c.path.startswith(f"{job}/", autoescape=True)
                )
            )
        with self._cond:
            for key in [k for k in self._recent if k.job == job]:
                self._recent_bytes -= len(self._recent.pop(key))
            for key in [k for k in self._held if k.job == job]:
                self._held_bytes -= len(self._held.pop(key))
            for usage_key in [k for k in self._usage if k[0] == job]:
                del self._usage[usage_key]
            self._on_disk.pop(job, None)
        return int(n or 0)

    def sweep(self, quotas: Quotas, known: Callable[[str], bool]) -> dict[str, int]:
        """Delete chunks older than ``quotas.chunk_ttl`` and messages of jobs this node does
        not run (``known(job)`` is false) older than ``quotas.prejob_ttl``."""
        self.flush(30.0)
        now = time.time()
        with self._cond:
            with self.engine.begin() as conn:
                stale_chunks = conn.execute(
                    delete(chunks).where(
                        func.coalesce(chunks.c.received_at, 0) < int(now - quotas.chunk_ttl)
                    )
                ).rowcount
                cutoff = int(now - quotas.prejob_ttl)
                # Only messages that became old since the last sweep (the first sweep of a
                # process looks at all of them once).
                jobs = conn.execute(
                    select(messages.c.job)
                    .where(
                        messages.c.received_at >= self._swept_until,
                        messages.c.received_at < cutoff,
                    )
                    .distinct()
                ).scalars()
                orphans = [str(j) for j in jobs if not known(str(j))]
                dropped = 0
                for job in orphans:
                    dropped += conn.execute(
                        delete(messages).where(
                            messages.c.job == job, messages.c.received_at < cutoff
                        )
                    ).rowcount
            if self.engine.dialect.name == "sqlite":
                raw = self.engine.raw_connection()
                try:  # executescript steps the pragma to completion
                    raw.driver_connection.executescript("PRAGMA incremental_vacuum;")  # type: ignore[union-attr]
                finally:
                    raw.close()
            self._swept_until = cutoff
            if self.spill_dir is not None:
                for job in orphans:
                    shutil.rmtree(self.spill_dir / job, ignore_errors=True)
            for usage_key in [k for k in self._usage if k[0] in orphans]:
                del self._usage[usage_key]
        return {"chunks": int(stale_chunks or 0), "unclaimed_messages": int(dropped or 0)}

    def abort(self, job: str, sender: str, reason: str) -> bool:
        """Record that ``sender`` aborted ``job``; False if it had already."""
        with self._cond:
            with self.engine.begin() as conn:
                exists = conn.execute(
                    select(aborts.c.job).where(aborts.c.job == job, aborts.c.sender == sender)
                ).first()
                if exists is None:
                    conn.execute(
                        insert(aborts).values(job=job, sender=sender, reason=reason[:1000])
                    )
            self._aborted_jobs.add(job)
            self._cond.notify_all()
        return exists is None

    # -- reading
    def get(self, key: MessageKey) -> bytes | None:
        with self._lock:
            held = self._held.get(key)
            entry = self._behind.get(key)
        if held is not None:
            return held
        if entry is not None:
            return entry.payload
        with self.engine.connect() as conn:
            row = conn.execute(_SELECT_PAYLOAD, _key_values(key)).first()
        return None if row is None else self._row_payload(key, row)

    def has(self, key: MessageKey) -> bool:
        """Whether a message is stored (or accepted) under ``key`` (its payload may have been
        deleted)."""
        with self._lock:
            if key in self._behind:
                return True
        with self.engine.connect() as conn:
            return conn.execute(_SELECT_DIGEST, _key_values(key)).first() is not None

    def lost(self, job: str, component: str) -> bool:
        """Whether a volatile message of ``job``'s ``component`` (see :meth:`accept`) was
        reported durable to its sender and its payload is gone: a row without its payload
        that this process does not hold (a restart of this node lost it). The messages of a
        step not started yet are all unread, so for one this means it must run under a new
        attempt, whose messages its senders send again."""
        self.flush(30.0)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*(messages.c[c] for c in _KEY_COLS)).where(
                    messages.c.job == job,
                    messages.c.component == component,
                    messages.c.size > 0,
                    func.length(messages.c.payload) == 0,
                    ~messages.c.spilled,
                )
            ).all()
        with self._lock:
            return any(MessageKey(*row) not in self._held for row in rows)

    def aborted(self, job: str) -> tuple[str, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(aborts.c.sender, aborts.c.reason).where(aborts.c.job == job)
            ).first()
        return None if row is None else (str(row[0]), str(row[1]))

    def aborters(self, job: str) -> list[str]:
        """The parties that told this node they aborted ``job``."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(aborts.c.sender).where(aborts.c.job == job)).scalars()
            return [str(r) for r in rows]

    def _take(self, key: MessageKey) -> bytes | None:
        payload = self._recent.pop(key, None)
        if payload is not None:
            self._recent_bytes -= len(payload)
            return payload
        payload = self._held.pop(key, None)
        if payload is not None:
            self._held_bytes -= len(payload)
            return payload
        entry = self._behind.get(key)  # accepted, not written, evicted from _recent
        return None if entry is None else entry.payload

    def _load_job(self, job: str) -> None:
        """The first time this process waits for a message of ``job``: note the keys the
        database already holds for it (stored before this process started, or by another
        process) and whether it was aborted; later messages reach this process's memory."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*(messages.c[c] for c in _KEY_COLS)).where(messages.c.job == job)
            ).all()
            aborted = conn.execute(select(aborts.c.sender).where(aborts.c.job == job)).first()
        with self._lock:
            self._on_disk.setdefault(job, set()).update(MessageKey(*row) for row in rows)
            if aborted is not None:
                self._aborted_jobs.add(job)

    def wait(
        self,
        key: MessageKey,
        timeout: float,
        cancel: CancelToken,
        pump: Callable[[float], bool] | None = None,
    ) -> bytes:
        """Block until the message for ``key`` is stored; PeerTimeout / ProtocolAbort.

        A message stored or accepted by this process wakes the waiter at once (it is checked
        and waited for under the lock that storing holds: no lost wake-up). The database is
        read only for a key it held when this process first looked at the job (or one this
        process dropped from memory), when an abort was recorded, and every 0.25 s (a message
        stored by another process), always outside the lock, so a waiter neither waits for
        the database on the common path nor delays the storing of other messages.

        ``pump(seconds)``: instead of sleeping until a message is stored, read the sender's
        connection in this thread (:meth:`privfin.federation.stream.StreamServer.pump`) and
        look again; once it answers False (nothing to read), sleep as usual.
        """
        now = time.monotonic()
        deadline = now + timeout
        with self._lock:
            payload = self._take(key)  # (already here: the common case of a fast peer)
            if payload is not None:
                return payload
            loaded = key.job in self._on_disk
        if not loaded:
            self._load_job(key.job)
            now = time.monotonic()
        next_poll = now + _POLL
        abort_seen = False  # an abort recorded here was looked up once: wait for the poll
        # with a pump, its first read may follow the look above: a message stored between
        # them by another thread is seen within _PUMP_MAX, as between any two of its reads
        # (a sleeping waiter looks again under the lock it sleeps on: no lost wake-up)
        looked = loaded and pump is not None
        while True:
            pump_for = 0.0
            with self._lock:
                if looked:
                    looked = False
                else:
                    payload = self._take(key)
                    if payload is not None:
                        return payload
                    now = time.monotonic()
                stored = key in self._on_disk.get(key.job, ())
                if (
                    not stored
                    and now < next_poll
                    and (abort_seen or key.job not in self._aborted_jobs)
                ):
                    cancel.raise_if_cancelled()
                    if now >= deadline:
                        raise_timeout(key, timeout)
                    if pump is None:
                        self._waiting += 1
                        try:
                            self._cond.wait(min(deadline, next_poll) - now)
                        finally:
                            self._waiting -= 1
                        continue
                    # (a message that reaches this mailbox otherwise — another connection,
                    # another process — is seen within _PUMP_MAX)
                    pump_for = min(deadline, next_poll, now + _PUMP_MAX) - now
                else:
                    abort_seen = key.job in self._aborted_jobs
            if pump_for and pump is not None:
                if not pump(pump_for):
                    pump = None
                continue
            with self.engine.connect() as conn:
                row = conn.execute(_SELECT_PAYLOAD, _key_values(key)).first()
            if row is not None:
                got = self._row_payload(key, row)
                if not got and row[1]:
                    raise ProtocolAbort(
                        f"message {key.path()} is no longer held (deleted when job "
                        f"{key.job!r} ended, or kept in memory only and read before or lost "
                        "in a restart)"
                    )
                with self._lock:  # read now: not kept for a later reader
                    if self._recent.get(key) is not None:
                        self._recent_bytes -= len(self._recent.pop(key))
                    self._on_disk.get(key.job, set()).discard(key)
                return got
            with self._lock:
                self._on_disk.get(key.job, set()).discard(key)
            why = self.aborted(key.job)
            if why is not None:
                raise ProtocolAbort(f"party {why[0]!r} aborted the job: {why[1]}", party=why[0])
            cancel.raise_if_cancelled()
            if time.monotonic() >= deadline:
                raise_timeout(key, timeout)
            next_poll = time.monotonic() + _POLL

    def payload_bytes(self, job: str) -> int:
        """Bytes of payload still stored for ``job`` (messages and chunks)."""
        self.flush(30.0)
        with self.engine.connect() as conn:
            held = conn.execute(
                select(func.coalesce(func.sum(func.length(messages.c.payload)), 0)).where(
                    messages.c.job == job
                )
            ).scalar_one()
            held += conn.execute(
                select(func.coalesce(func.sum(messages.c.size), 0)).where(
                    messages.c.job == job, messages.c.spilled
                )
            ).scalar_one()
            pending = conn.execute(
                select(func.coalesce(func.sum(func.length(chunks.c.data)), 0)).where(
                    chunks.c.path.startswith(f"{job}/", autoescape=True)
                )
            ).scalar_one()
        return int(held) + int(pending)

    def count(self, job: str | None = None) -> int:
        self.flush(30.0)
        with self.engine.connect() as conn:
            q = select(func.count()).select_from(messages)
            if job is not None:
                q = q.where(messages.c.job == job)
            return int(conn.execute(q).scalar_one())


def _check_chunk(key: MessageKey, index: int, total: int, size: int, quotas: Quotas) -> None:
    """A chunk's shape: at most ``quotas.max_chunks()`` chunks, none empty, every one but the
    last at least ``min_chunk`` bytes."""
    if total > quotas.max_chunks():
        raise MessageTooLarge(
            f"a message of {total} chunks exceeds {quotas.max_message_size} bytes in chunks of "
            f"at least {quotas.min_chunk} bytes"
        )
    least = min(quotas.min_chunk, quotas.max_message_size) if index < total - 1 else 1
    if size < least:
        raise ValueError(
            f"chunk {index} of {total} of {key.path()} has {size} bytes; every chunk but the "
            f"last needs at least {least} bytes (the last at least 1)"
        )
