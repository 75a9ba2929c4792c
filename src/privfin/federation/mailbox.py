"""A node's durable mailbox: messages received for its jobs, kept across restarts.

Messages are stored in SQL (SQLite by default, any SQLAlchemy URL for deployments) under their
full :class:`MessageKey`. Storing is idempotent: the same key with the same bytes is a
duplicate and dropped; the same key with other bytes is a conflict and refused. Large messages
arrive in chunks that are kept until the last one lands, then assembled. Waiting for a message
is local: the HTTP transport's ``recv`` never polls a peer.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from pathlib import Path

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)

from privfin.errors import ProtocolAbort
from privfin.federation.transport import CancelToken, MessageKey, raise_timeout

__all__ = ["Mailbox", "MessageConflict"]

_RECENT_LIMIT = 256 * 1024 * 1024

_meta = MetaData()
_KEY_COLS = ("job", "component", "tag", "sender", "receiver", "seq")

messages = Table(
    "messages",
    _meta,
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
)
chunks = Table(
    "chunks",
    _meta,
    Column("path", String(400), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("total", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
)
aborts = Table(
    "aborts",
    _meta,
    Column("job", String(64), primary_key=True),
    Column("sender", String(64), primary_key=True),
    Column("reason", String(1000), nullable=False),
)


class MessageConflict(ProtocolAbort):
    """A different payload arrived under a key that already holds a message (a replay with
    altered content, or a misbehaving sender)."""


def _key_values(key: MessageKey) -> dict[str, object]:
    return {c: getattr(key, c) for c in _KEY_COLS}


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


class Mailbox:
    """Durable mailbox of one node.

    Parameters
    ----------
    url_or_path:
        A SQLAlchemy URL, or a file path for SQLite (created if absent).
    """

    def __init__(self, url_or_path: str | Path) -> None:
        url = str(url_or_path)
        if "://" not in url:
            Path(url).parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{url}"
        self.engine: Engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30}
            if url.startswith("sqlite")
            else {},
        )
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _meta.create_all(self.engine)
        self._cond = threading.Condition()
        # Messages stored by this process, kept until read once: a waiter in the same process
        # (the node's job threads) gets them without a database read. Bounded; the database
        # stays the source of truth.
        self._recent: OrderedDict[MessageKey, bytes] = OrderedDict()
        self._recent_bytes = 0

    def _remember(self, key: MessageKey, payload: bytes) -> None:
        self._recent[key] = payload
        self._recent_bytes += len(payload)
        while self._recent_bytes > _RECENT_LIMIT and self._recent:
            _, old = self._recent.popitem(last=False)
            self._recent_bytes -= len(old)

    def close(self) -> None:
        self.engine.dispose()

    # -- storing
    def put(self, key: MessageKey, payload: bytes) -> bool:
        """Store a message. Returns False for a duplicate; raises MessageConflict on a clash."""
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
                _insert_message(conn, key, digest, payload)
            self._remember(key, payload)
            self._cond.notify_all()
        return True

    def put_chunk(self, key: MessageKey, index: int, total: int, digest: str, data: bytes) -> bool:
        """Store chunk ``index`` of ``total`` of a large message whose whole SHA-256 is
        ``digest``. When the last chunk lands the message is assembled, checked and stored.
        Returns True once the whole message is stored."""
        if not (0 <= index < total <= 1_000_000):
            raise ValueError("chunk index out of range")
        path = key.path()
        with self._cond:
            with self.engine.begin() as conn:
                done = conn.execute(select(messages.c.digest).where(_where(key))).first()
                if done is not None:
                    if done[0] != digest:
                        raise MessageConflict(f"message {path} exists with other content")
                    return True
                old = conn.execute(
                    select(chunks.c.digest, chunks.c.total).where(chunks.c.path == path).limit(1)
                ).first()
                if old is not None and (old[0] != digest or old[1] != total):
                    raise MessageConflict(f"chunks of {path} disagree on size or digest")
                have = conn.execute(
                    select(chunks.c.idx).where(chunks.c.path == path, chunks.c.idx == index)
                ).first()
                if have is None:
                    conn.execute(
                        insert(chunks).values(
                            path=path, idx=index, total=total, digest=digest, data=data
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
                    raise MessageConflict(f"chunks of {path} do not match their digest")
                _insert_message(conn, key, digest, payload)
                conn.execute(delete(chunks).where(chunks.c.path == path))
            self._remember(key, payload)
            self._cond.notify_all()
        return True

    def abort(self, job: str, sender: str, reason: str) -> None:
        with self._cond:
            with self.engine.begin() as conn:
                exists = conn.execute(
                    select(aborts.c.job).where(aborts.c.job == job, aborts.c.sender == sender)
                ).first()
                if exists is None:
                    conn.execute(
                        insert(aborts).values(job=job, sender=sender, reason=reason[:1000])
                    )
            self._cond.notify_all()

    # -- reading
    def get(self, key: MessageKey) -> bytes | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(messages.c.payload).where(_where(key))).first()
        return None if row is None else bytes(row[0])

    def aborted(self, job: str) -> tuple[str, str] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(aborts.c.sender, aborts.c.reason).where(aborts.c.job == job)
            ).first()
        return None if row is None else (str(row[0]), str(row[1]))

    def wait(self, key: MessageKey, timeout: float, cancel: CancelToken) -> bytes:
        """Block until the message for ``key`` is stored; PeerTimeout / ProtocolAbort.

        Checking and waiting happen under the same lock that :meth:`put` holds while storing,
        so a message stored in this process wakes the waiter at once (no lost wake-up); a
        message stored by another process is seen within 0.25 s.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                payload = self._recent.pop(key, None)
                if payload is not None:
                    self._recent_bytes -= len(payload)
                    return payload
                payload = self.get(key)
                if payload is not None:
                    return payload
                why = self.aborted(key.job)
                if why is not None:
                    raise ProtocolAbort(f"party {why[0]!r} aborted the job: {why[1]}", party=why[0])
                cancel.raise_if_cancelled()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise_timeout(key, timeout)
                self._cond.wait(min(remaining, 0.25))

    def count(self, job: str | None = None) -> int:
        with self.engine.connect() as conn:
            q = select(func.count()).select_from(messages)
            if job is not None:
                q = q.where(messages.c.job == job)
            return int(conn.execute(q).scalar_one())


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()
