"""Streaming transport: one long-lived mutual-TLS connection per peer, framed messages.

SPEC
====

Connection
    The sending party (client) opens one TLS connection to each peer it sends to, with the
    same pinned identities as the HTTP transport (:func:`~privfin.federation.tls.client_context`
    trusts only that peer's certificate; the peer's
    :func:`~privfin.federation.tls.server_context` only the certificates it pins). The server
    maps the client certificate's SHA-256 fingerprint to a party and, only then, sends
    ``HELLO`` (its own party name); a client that sees the connection closed before ``HELLO``
    three times in a row reports that the peer does not pin it. At most
    ``StreamLimits.connections_per_party`` connections per party are kept; a newer one closes
    the oldest (a client reconnecting after a cut the server has not noticed yet).
    Messages flow client → server; the server answers with ``ACK`` and ``SYNCED`` frames.

Frames (:mod:`privfin.federation.frames`)
    ``u32 header length | u32 payload length | msgpack header | payload``. Both lengths are
    checked before anything else is read: a header is at most 2 KiB, a payload at most
    ``StreamLimits.max_frame`` (default 4 MiB) on the server and 0 bytes on the client (the
    server never sends a payload). A violation drops the connection.

    - ``MSG(ref, key, index, total, size) + payload``: a message (``total == 1``) or chunk
      ``index`` of ``total`` of a message of ``size`` bytes. The chunks of one message are
      written back to back (never interleaved with another message), so the server holds at
      most one partial message per connection, in a buffer of exactly ``size`` bytes reserved
      from a server-wide budget (``reassembly_budget``) when chunk 0 arrives and kept until
      the message is stored; a chunk is decrypted straight into that buffer; a message over
      ``max_message`` (``ACK 413``) or beyond the budget (``ACK 503``: the sender retries) is
      refused at chunk 0, and its other chunks are read and discarded (never more than one
      frame held).
    - ``ACK(ref, code, text)``: the outcome of frame ``ref``
      (:class:`~privfin.federation.frames.Code`, numbered after the HTTP status the node's
      endpoint gives in the same case).
    - ``SYNCED(ref)``: every frame answered ``ACCEPTED`` on this connection up to ``ref`` is
      on the receiver's disk (see below).
    - ``PING(ref)`` / ``PONG(ref)``: heartbeats. The client pings every ``heartbeat`` seconds
      and drops a connection on which nothing arrived for ``idle_timeout`` seconds; the server
      drops one on which nothing arrived for ``StreamLimits.idle_timeout`` seconds.
    - ``ABORT(ref, job, sender, receiver, text)``: ``sender`` aborted ``job``; answered by ACK.

    Every MSG and ABORT is checked: ``sender`` must be the party of the client certificate
    and ``receiver`` the server's party (else ``ACK 403``), names as :class:`MessageKey`
    (else ``ACK 400``).

ACK semantics and durability (issue [11], item 2): write-behind with sender-side retention
    The server hands each complete message to ``admit_many`` — in the node: the job checks,
    then :meth:`Mailbox.accept <privfin.federation.mailbox.Mailbox.accept>` — in the thread
    that read it (no thread hop: accepting only touches memory, but for a job's first message
    and the pre-job buffer). An accepted message is readable by the receiving job at once; the
    mailbox's writer thread stores everything accepted meanwhile in one transaction (a group
    commit whose size grows with the load; after a first message it lingers
    ``Mailbox.linger``, 30 ms, for others to join, unless a flush waits or 8 MiB are queued:
    one commit and one SYNCED per several rounds of a many-round protocol) and then the
    server writes ``SYNCED(ref)``: every
    message frame up to frame ``ref`` on this connection that got no ACK was accepted and is
    on disk. Accepted messages get no ACK of their own (``202 ACCEPTED`` exists for
    completeness): one frame fewer each way per message. Refusals, duplicates of stored
    messages and messages stored synchronously (the pre-job buffer: ``201 STORED``) are
    answered by an ACK, final, written before any SYNCED that covers them.

    The client's ``send`` returns once the frame is handed to the connection (pipelining) and
    the client keeps the frame (the caller's bytes, no copy) until an ACK or a ``SYNCED``
    covers it, and writes every kept frame again on a new connection,
    so what the receiver had only in memory when it died is sent again when it is back. A
    step ends with :meth:`Channel.flush <privfin.federation.transport.Channel.flush>`, which
    waits for the ``SYNCED`` of everything the step sent: a step is recorded done only once
    its messages are on the peers' disks. Hence, under ``kill -9``:

    - of the receiver: messages on its disk stay; the others are still held by their senders
      and sent again after its restart (stored once: the mailbox is idempotent);
    - of the sender: the receiver writes what it accepted; the sender's unfinished step is
      re-run by its resumption (PSI resumes in place and resends byte-identical messages; the
      other components restart as a new attempt under new message keys);
    - of both within the few milliseconds between an ACCEPTED and its commit: only messages
      of a step that had not finished at the sender can be lost, and that step is re-run as
      above. No step recorded done depends on a message that exists only in memory.

    What "on disk" means depends on the message (the receiver decides, from its own job
    spec; nothing in a frame asks for it): a large payload (≥ 64 KiB) is a file of the node's
    mailbox directory, written before the row's transaction commits; a message of a pipeline
    step that restarts under a new attempt after a crash (every component but PSI) is
    *volatile*: its row (key, digest, size) is committed, its payload only held in memory
    until read (bounded; beyond the bound it is written). Such a message is never read again
    after a crash: the step reruns under a new attempt, with new keys. If the receiver dies
    after a volatile message was reported durable and before its step started, its pipeline
    finds the row without its payload at the step's start (``Mailbox.lost``) and runs the step
    under a new attempt, announced to its peers, instead of waiting for a message nobody will
    send again.

    ``tests/federation/test_mailbox_behind.py`` (what is reported durable survives ``kill
    -9``), ``tests/federation/test_stream.py`` (receiver killed mid-stream: every message
    stored exactly once after its restart) and the node crash tests over both transports
    check this. (SQLite runs in WAL mode with ``synchronous=NORMAL``: a committed transaction
    survives the death of the process; a power cut may lose the last ones, as on the HTTP
    path.) A conflict found only at the commit (other bytes stored under the key long ago) is
    recorded as the sender's abort of the job.

Resumption
    The client keeps every frame not ACKed, and every ACCEPTED frame not SYNCED. When the
    connection drops (cut, peer restart, heartbeat timeout) it reconnects with backoff and
    writes all of them again, in order of their frame numbers (given in the order frames are
    written). The receiver's mailbox makes this idempotent: identical
    bytes under a stored or accepted key answer ``DUPLICATE`` or ``ACCEPTED`` again, other
    bytes ``CONFLICT`` (:class:`~privfin.errors.ProtocolAbort` naming the peer). A partial
    chunked message dies with its connection (its reservation is released) and is sent again
    whole; it is stored once. (The receiver does not list what it has: the frames resent are
    only those in flight or not yet on disk at the cut, a few milliseconds' worth, so a
    listing would save at most those bytes, plus the restart of a cut large message.)

Back-pressure and memory bounds
    Client: frames are encrypted one chunk at a time and handed to a blocking socket (the
    kernel's socket buffer is the only send buffer); large payloads are written as
    memoryview slices of the caller's bytes; frames kept for resending are bounded per peer
    (``max_unsynced``, 64 MiB): beyond, ``send`` waits for the peer's disk. A peer that
    stops reading blocks the writer (``send`` then raises :class:`PeerTimeout` after
    ``send_timeout``); the client holds at most one encrypted chunk besides the frames.
    Server: what one read brings (at most 256 KiB, or one large frame read into its own
    buffer within ``StreamLimits.max_frame`` and the reassembly budget) is admitted before
    the connection is read again, and a connection is not read while its ACKs cannot be
    written (the client does not read them), so a peer cannot make it buffer without
    bound.

Threat model
    As the HTTP endpoint: peers are authenticated by pinned certificates in mutual TLS; a
    frame may only carry the certificate's own party as sender; the receiver's ``admit``
    applies the job checks and mailbox quotas; every decoder checks sizes, types and ranges
    before use; nothing is pickled. A peer can waste at most its own connections' bounded
    buffers. Before authentication a connection holds a thread and the TLS state only (its
    buffers come after), for at most the handshake timeout (10 s), and at most
    ``_MAX_HANDSHAKES`` (64) wait at once: beyond, new connections are closed at once. A job
    thread that reads a connection never blocks on its client: what the socket does not take
    is written by the connection's thread, which a client that reads nothing stalls for at
    most ``StreamLimits.idle_timeout`` before it is dropped.

Threads
    :class:`StreamServer` accepts in one thread and serves each connection in a thread of
    its own (a blocking socket, TLS over memory BIOs): it reads, parses and admits what
    arrives, and writes the ACK and SYNCED frames (the mailbox's writer wakes it through a
    pipe after a commit). A job thread waiting in ``recv`` for a message of a peer reads that
    peer's connection itself (:meth:`StreamServer.pump`: whatever it reads is admitted as the
    connection's thread would, for every job); the connection's thread stands down while job
    threads read and resumes once none has read for ``_STAND_DOWN_MS``. Every read and write
    of a connection holds its ``rlock``. So a message costs no thread wake-up between the
    socket and the job waiting for it. :class:`StreamClient` (one per node: the connections
    to every peer, shared by the jobs; :mod:`privfin.federation.streamclient`) has no event
    loop either: a small message on an idle connection is written by the sending thread
    itself, larger ones and resends by the link's thread, and a reader thread per connection
    takes the ACK / SYNCED / PONG frames. A :class:`StreamTransport` is the per-job view (its
    send timeout, cancel token, mailbox, the node's server); ``send_many`` (and
    ``Channel.broadcast``) writes several messages at once; ``recv`` waits on the local
    mailbox like :meth:`privfin.federation.http.HttpTransport.recv`, reading the sender's
    connection meanwhile.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from privfin.errors import (
    AuthenticationError,
    DecodeError,
    PeerTimeout,
    PrivfinError,
    ProtocolAbort,
)
from privfin.federation import frames as fr
from privfin.federation.frames import Code, FrameError, Header
from privfin.federation.mailbox import (
    ACCEPTED,
    Mailbox,
    MessageConflict,
    MessageTooLarge,
    QuotaExceeded,
    Quotas,
)
from privfin.federation.streamclient import (
    _RECV,
    StreamClient,
    StreamPeer,
    _Pending,
    tls_handshake,
)
from privfin.federation.tls import (
    Identity,
    fingerprint,
    fingerprint_der,
    server_context,
)
from privfin.federation.transport import CancelToken, MessageKey

__all__ = [
    "AbortHandler",
    "Admit",
    "AdmitMany",
    "Durable",
    "Outcome",
    "Precheck",
    "StreamClient",
    "StreamLimits",
    "StreamPeer",
    "StreamServer",
    "StreamTransport",
    "mailbox_abort",
    "mailbox_admit",
    "mailbox_admit_many",
]

_log = logging.getLogger("privfin.federation.stream")
T = TypeVar("T")

_LOG_EVERY = 60.0  # seconds between two log lines about the same (party, kind) of refusal
_PRECHECK = 0  # the kind of a work item that asks the precheck about a chunked message
_GONE = (OSError, ssl.SSLError, EOFError, TimeoutError)  # a connection that ended or broke
_STAND_DOWN_MS = 5  # a connection's thread resumes reading once no job has read for this long
_OUTBOX_MAX = 1 << 20  # bytes a job thread leaves to the connection's thread before it stops
_MAX_HANDSHAKES = 64  # connections not authenticated yet (each holds a thread)


@dataclass(frozen=True)
class Outcome:
    """What the receiver did with a message or abort (``text``: a reason for the sender)."""

    code: Code
    text: str = ""


_ACCEPTED = Outcome(Code.ACCEPTED)
_STORED = Outcome(Code.STORED)
_DUPLICATE = Outcome(Code.DUPLICATE)

#: ``admit(sender, key, payload)``: check and store one complete message (the connection's thread).
Admit = Callable[[str, MessageKey, bytes], Outcome]
#: ``precheck(sender, key, size)``: refuse a large message before its chunks are buffered
#: (None: go on). Called in the connection's thread at its first chunk.
Precheck = Callable[[str, MessageKey, int], "Outcome | None"]
#: ``on_abort(sender, job, reason)``: record that ``sender`` aborted ``job``.
AbortHandler = Callable[[str, str, str], Outcome]
#: ``durable(indices)``: the messages of one ``admit_many`` call answered ``ACCEPTED`` that
#: are now on disk (called from any thread).
Durable = Callable[[list[int]], None]
#: ``admit_many(sender, [(key, payload), ...], durable)``: admit the messages read together in
#: one call (one outcome each, in order): stored now (``STORED``), or taken write-behind
#: (``ACCEPTED``, then reported to ``durable`` once written), or refused.
AdmitMany = Callable[[str, Sequence[tuple[MessageKey, bytes]], Durable], Sequence[Outcome]]


def mailbox_admit(
    mailbox: Mailbox, *, quotas: Quotas | None = None, known: Callable[[str], bool] | None = None
) -> Admit:
    """An :data:`Admit` that stores into ``mailbox`` (with its quotas), answering as the
    node's HTTP endpoint does (the node adds its job checks around it)."""

    def admit(sender: str, key: MessageKey, payload: bytes) -> Outcome:
        try:
            stored = mailbox.put(key, payload, quotas=quotas, known=known)
        except MessageConflict as exc:
            return Outcome(Code.CONFLICT, str(exc))
        except MessageTooLarge as exc:
            return Outcome(Code.TOO_LARGE, str(exc))
        except QuotaExceeded as exc:
            return Outcome(Code.QUOTA, str(exc))
        except ValueError as exc:
            return Outcome(Code.BAD, str(exc))
        return Outcome(Code.STORED if stored else Code.DUPLICATE)

    return admit


def mailbox_admit_many(
    mailbox: Mailbox,
    *,
    quotas: Quotas | None = None,
    known: Callable[[str], bool] | None = None,
    behind: bool = True,
    volatile: Callable[[MessageKey], bool] | None = None,
) -> AdmitMany:
    """An :data:`AdmitMany` over ``mailbox``: write-behind (:meth:`Mailbox.accept`: answered
    ``ACCEPTED`` at once, written in the mailbox's next group commit) or, with
    ``behind=False``, stored in one transaction before the answer (:meth:`Mailbox.put_many`);
    other answers as :func:`mailbox_admit`. ``volatile``: see :meth:`Mailbox.accept`."""

    def admit_many(
        sender: str, items: Sequence[tuple[MessageKey, bytes]], durable: Durable
    ) -> list[Outcome]:
        out: list[Outcome] = []
        if behind:
            results = mailbox.accept(
                items, quotas=quotas, known=known, on_durable=durable, volatile=volatile
            )
        else:
            results = list(mailbox.put_many(items, quotas=quotas, known=known))
        for result in results:
            if result is ACCEPTED:
                out.append(_ACCEPTED)
            elif result is True:
                out.append(_STORED)
            elif result is False:
                out.append(_DUPLICATE)
            elif isinstance(result, MessageConflict):
                out.append(Outcome(Code.CONFLICT, str(result)))
            elif isinstance(result, MessageTooLarge):
                out.append(Outcome(Code.TOO_LARGE, str(result)))
            else:
                out.append(Outcome(Code.QUOTA, str(result)))
        return out

    return admit_many


def mailbox_abort(mailbox: Mailbox) -> AbortHandler:
    """An :data:`AbortHandler` that records the abort in ``mailbox`` (waiters wake up)."""

    def on_abort(sender: str, job: str, reason: str) -> Outcome:
        mailbox.abort(job, sender, reason or "(no reason)")
        return Outcome(Code.STORED)

    return on_abort


@dataclass(frozen=True)
class StreamLimits:
    """What one peer can make a :class:`StreamServer` hold.

    Parameters
    ----------
    max_frame:
        Largest frame payload (a message or one chunk), checked before it is read.
    max_message:
        Largest message (sum of its chunks), checked at its first chunk.
    reassembly_budget:
        Bytes of partial chunked messages held over all connections.
    connections_per_party:
        Connections one party may hold at once (a new one closes its oldest).
    idle_timeout:
        Seconds without a frame after which a connection is dropped.
    """

    max_frame: int = 4 * 1024 * 1024
    max_message: int = 256 * 1024 * 1024
    reassembly_budget: int = 512 * 1024 * 1024
    connections_per_party: int = 4
    idle_timeout: float = 60.0


# ---------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------


@dataclass
class _Partial:
    ref: int
    key: MessageKey
    total: int
    buf: bytearray | None  # None: refused, its remaining chunks are dropped
    got: int = 0
    next_index: int = 1


class _Work:
    """One item for the worker: a complete message or an abort."""

    __slots__ = ("key", "kind", "payload", "ref", "reserved", "text")

    def __init__(
        self,
        kind: int,
        ref: int,
        key: MessageKey | None,
        payload: bytes,
        text: str,
        reserved: int = 0,
    ) -> None:
        self.kind, self.ref, self.key, self.payload, self.text = kind, ref, key, payload, text
        self.reserved = reserved  # bytes of the reassembly budget it holds until stored


class _ServerConnection:
    """One client connection, served by a thread of its own: TLS over memory BIOs on a
    blocking socket (as the client's :class:`~privfin.federation.streamclient._TlsConn`), frames
    parsed straight out of the decrypted bytes (a staging buffer for small frames, a frame's
    own buffer for a large one), messages admitted in this thread as soon as a read has brought
    them, ACKs written after a read and ``SYNCED`` when the mailbox's writer reports a commit
    (it wakes this thread through a pipe). A job thread waiting for this party's message may
    read the connection instead (:meth:`pump`); it writes only what the socket takes at once
    and leaves the rest to this thread (``outbox``)."""

    STAGE = 256 * 1024

    def __init__(self, server: StreamServer, sock: socket.socket) -> None:
        self.server = server
        self.limits = server.limits
        self.sock = sock
        self.fd = sock.fileno()
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = server.context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.wake_r = self.wake_w = -1  # made once the client is authenticated
        self.thread: threading.Thread | None = None
        self.thread_id = 0  # the connection's thread (its writes may block)
        self.party = ""
        self.stage = bytearray()  # (STAGE bytes once authenticated)
        self.view = memoryview(self.stage)
        self.start = self.end = 0
        # encrypted bytes a job thread could not write without blocking: the connection's
        # thread writes them (a job thread never blocks on a peer that does not read)
        self.outbox = bytearray()
        # a frame payload too large for the staging buffer is read straight into its target:
        # the partial message's buffer (a chunk) or a buffer of its own (``big_own``)
        self.big: memoryview | None = None
        self.big_own: bytearray | None = None
        self.big_header: Header | None = None
        self.big_got = 0
        self.closed = False
        self.sending = False  # in a write the client does not read (back-pressure)
        self.partial: _Partial | None = None
        self.queue: collections.deque[_Work] = collections.deque()  # (what one read brought)
        self.last_rx = time.monotonic()
        # write-behind: frames answered ACCEPTED, in answer order, until written to disk
        self.unsynced: collections.deque[int] = collections.deque()
        self.written: set[int] = set()
        self.synced = 0
        # refs reported durable by the mailbox's writer, not yet taken by this thread
        self.durable_lock = threading.Lock()
        self.durable_refs: list[int] = []
        self.durable_pending = False
        # reading: by the connection's thread or by a job thread waiting for a message of
        # this party (:meth:`pump`); every read and every write holds ``rlock``
        self.rlock = threading.Lock()
        self.plock = threading.Lock()
        self.plock_changed = threading.Condition(self.plock)
        self.pumping = 0  # job threads in pump() now
        self.pumps = 0  # pump() calls so far
        self.down = False  # the connection's thread has stood down for them
        self.pollers = threading.local()  # each job thread's poll object for the socket

    # -- connection
    def run(self) -> None:
        """The connection's thread: handshake, HELLO, then read until closed."""
        self.thread_id = threading.get_ident()
        try:
            deadline = time.monotonic() + self.server.handshake_timeout
            tls_handshake(self.tls, self._flush_tls, self._fill, deadline)
            der = self.tls.getpeercert(binary_form=True)
            party = self.server.party_of(der)
            if party is None:
                self._drop("unpinned", "a client certificate that is not pinned")
                return
            self.stage = bytearray(self.STAGE)
            self.view = memoryview(self.stage)
            wake_r, wake_w = os.pipe()
            os.set_blocking(wake_r, False)
            os.set_blocking(wake_w, False)
            with self.durable_lock:
                self.wake_r, self.wake_w = wake_r, wake_w
            if not self.server.register(party, self):
                return  # the server is closing
            self.party = party
            self._write(Header(fr.HELLO, 0, text=self.server.party))
            self._serve()
        except FrameError as exc:
            self._drop("frame", f"{self.party!r}: {exc}")
        except _GONE as exc:
            if not self.closed:
                _log.debug("stream connection of %r ended: %s", self.party or "?", exc)
        except Exception:  # a bug: drop the connection (the client resends on a new one)
            _log.exception("stream server %s: a connection failed", self.server.party)
        finally:
            self._lost()

    def _fill(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for bytes from the socket and hand them to the TLS layer."""
        if timeout <= 0 or not self._poller().poll(timeout * 1000):
            return False
        data = self.sock.recv(_RECV)
        if not data:
            raise EOFError("the client closed the connection")
        self.incoming.write(data)
        return True

    def _flush_tls(self) -> None:
        """(Holding ``rlock``.) Send what the TLS layer has encrypted, in order: the
        connection's thread blocks until the client takes it (the socket's timeout: a client
        that reads nothing is dropped); a job thread sends only what the socket takes now and
        leaves the rest to the connection's thread (``outbox``, which it then wakes)."""
        data = self.outgoing.read()
        if threading.get_ident() == self.thread_id:
            if self.outbox:
                data, self.outbox = bytes(self.outbox) + data, bytearray()
            if data:
                self._sendall(data)
            return
        if not data:
            return
        if not self.outbox:
            with contextlib.suppress(BlockingIOError):  # (non-blocking: at once, maybe short)
                data = data[os.write(self.fd, data) :]
        if data:
            self.outbox += data
            self._wake_thread()

    def _poller(self) -> select.poll:
        """This thread's poll object for the socket's input (made once per thread)."""
        poller: select.poll | None = getattr(self.pollers, "poll", None)
        if poller is None:
            poller = self.pollers.poll = select.poll()
            poller.register(self.sock, select.POLLIN)
        return poller

    def _sendall(self, data: bytes) -> None:
        self.sending = True
        try:
            self.sock.sendall(data)  # (the socket's timeout: a client that reads nothing)
        finally:
            self.sending = False

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        poller.register(self.sock, select.POLLIN)
        quiet = select.poll()  # standing down: only the wake-ups
        quiet.register(self.wake_r, select.POLLIN)
        while not self.closed:
            with self.plock:
                if self.pumping and not self.down:  # a job thread reads: stand down
                    self.down = True
                    self.plock_changed.notify_all()
                down, seen = self.down, self.pumps
            if down:
                if quiet.poll(_STAND_DOWN_MS):
                    self._on_wake()
                with self.plock:
                    if not self.pumping and self.pumps == seen:  # no job read since: resume
                        self.down = False
                continue
            wait = self.last_rx + self.limits.idle_timeout - time.monotonic()
            if wait <= 0:
                self._drop(
                    "idle", f"{self.party!r} sent nothing for {self.limits.idle_timeout:g} s"
                )
                return
            events = poller.poll(wait * 1000 + 1)
            for fd, _ in events:
                if fd == self.wake_r:
                    self._on_wake()
                elif not self.closed:
                    with self.rlock:
                        self._read_available()

    def _on_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake_r, 512)
        with self.rlock:
            self._written_refs()
            if self.outbox:
                self._flush_tls()

    def _read_available(self) -> bool:
        """(Holding ``rlock``.) Read, decrypt and admit what the socket has now, without
        blocking; False if it had nothing (another reader took it).

        One ``read(2)`` of the socket's descriptor: the socket has a timeout, so the kernel
        socket is non-blocking, and :meth:`socket.socket.recv` would poll before it reads
        (a system call per message that this saves)."""
        if self.closed:
            return False
        try:
            data = os.read(self.fd, _RECV)
        except BlockingIOError:
            return False
        if not data:
            raise EOFError("the client closed the connection")
        self.last_rx = time.monotonic()
        self.incoming.write(data)
        self._decrypt()
        return True

    def pump(self, timeout: float) -> bool:
        """From a job thread that waits for a message of this connection's party: read the
        connection itself for up to ``timeout`` seconds (what it reads is admitted as the
        connection's thread would: for every job), so the message needs no wake-up of another
        thread. Returns once it read something, or at the timeout; the caller looks in its
        mailbox again. False: this connection cannot be read now (closed, or its thread did
        not stand down in time); the caller waits as usual.

        While a job thread reads, the connection's thread stands down (polling only its
        wake-ups: SYNCED frames after commits); it resumes once no job thread has read for
        ``_STAND_DOWN_MS`` ms, so what arrives between a job's reads waits at most that long.
        """
        deadline = time.monotonic() + timeout
        with self.plock:
            if self.closed:
                return False
            self.pumping += 1
            self.pumps += 1
            down = self.down
        try:
            if not down:  # ask the connection's thread to stand down, and wait until it has
                self._wake_thread()
                with self.plock:
                    if not self.plock_changed.wait_for(
                        lambda: self.down or self.closed, min(timeout, 0.05)
                    ):
                        return False
                # it may have admitted the awaited message before it stood down: the caller
                # looks first
                return not self.closed
            if self.closed:
                return False
            poller = self._poller()
            if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                return True
            if len(self.outbox) > _OUTBOX_MAX:  # the client does not read: its thread writes
                return False
            if not self.rlock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return True  # (held by a write the client is slow to take: look again)
            try:
                try:
                    self._read_available()
                except FrameError as exc:
                    self._drop("frame", f"{self.party!r}: {exc}")
                except _GONE as exc:
                    _log.debug("stream connection of %r ended: %s", self.party, exc)
                    self.close()
                except Exception:  # a bug: drop the connection (the client resends)
                    _log.exception("stream server %s: reading a connection failed", self.party)
                    self.close()
            finally:
                self.rlock.release()
            return True
        finally:
            with self.plock:
                self.pumping -= 1
                if not self.pumping and self.closed:  # (only _lost waits for none: closed)
                    self.plock_changed.notify_all()

    def _decrypt(self) -> None:
        """Read every decrypted byte the TLS layer has into the parser's buffers."""
        tls, incoming = self.tls, self.incoming
        while not self.closed:
            target = self.get_buffer()
            try:
                n = cast(int, tls.read(len(target), target))
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                raise EOFError("the client closed the TLS session") from None
            if not n:
                raise EOFError("the client closed the TLS session")
            self._received(n)
            if not incoming.pending and not tls.pending():  # all taken: no read that fails
                break
        if self.queue and not self.closed:
            self._run_inline()  # what this read brought, as one batch
        if self.outgoing.pending:  # post-handshake records to send back
            self._flush_tls()

    def close(self) -> None:
        """Close from any thread (the connection's thread ends)."""
        with self.plock:
            self.closed = True
            self.plock_changed.notify_all()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # (wakes whoever polls the socket)
        self._wake_thread()

    def _wake_thread(self) -> None:
        with self.durable_lock, contextlib.suppress(OSError):
            if self.wake_w >= 0:
                os.write(self.wake_w, b"\0")

    def _lost(self) -> None:
        self.close()
        with self.plock:  # the socket is closed once no job thread polls it
            self.plock_changed.wait_for(lambda: not self.pumping, 10.0)
        with self.rlock:
            self.server.unregister(self.party, self)
            self._release_partial()
            for work in self.queue:
                self.server.release(work.reserved)
            self.queue.clear()
            self.sock.close()
        with self.durable_lock:  # (the writer's wake-up goes nowhere from now on)
            for fd in (self.wake_r, self.wake_w):
                if fd >= 0:
                    os.close(fd)
            self.wake_r = self.wake_w = -1

    def _drop(self, kind: str, reason: str) -> None:
        self.server.note_refused(self.party or "?", kind, reason)
        self.close()

    def _write(self, header: Header) -> None:
        self._send(fr.encode_head(header, 0))

    def _send(self, data: bytes) -> None:
        if self.closed:
            return
        self.tls.write(data)
        self._flush_tls()

    # -- reading
    def get_buffer(self) -> memoryview:
        if self.big is not None:
            return self.big[self.big_got :]
        if self.end == len(self.stage):  # move the unparsed tail to the front
            n = self.end - self.start
            self.stage[:n] = self.view[self.start : self.end]
            self.start, self.end = 0, n
        return self.view[self.end :]

    def _received(self, nbytes: int) -> None:
        if self.big is not None:
            self.big_got += nbytes
            if self.big_got == len(self.big):
                header, own, n = self.big_header, self.big_own, len(self.big)
                self.big, self.big_own, self.big_header = None, None, None
                assert header is not None
                if own is None:
                    self._chunk_filled(header, n)
                else:
                    # the frame's own buffer becomes the payload (no copy; nothing
                    # writes to it again)
                    self._dispatch(header, cast(bytes, own))
            return
        self.end += nbytes
        self._parse()

    def _parse(self) -> None:
        while not self.closed and self.end - self.start >= fr.PREFIX.size:
            header_len, payload_len = fr.PREFIX.unpack_from(self.stage, self.start)
            fr.check_lengths(header_len, payload_len, self.limits.max_frame)
            body = self.start + fr.PREFIX.size
            if self.end < body + header_len:
                break
            header = fr.parse_header(self.view[body : body + header_len])
            body += header_len
            if self.end >= body + payload_len:
                payload = bytes(self.view[body : body + payload_len])
                self.start = body + payload_len
                self._dispatch(header, payload)
            elif payload_len > self.STAGE // 2:  # read the rest straight into its target
                target = None
                if header.kind == fr.MSG and header.index > 0:
                    target = self._chunk_target(header, payload_len)
                if target is None:
                    self.big_own = bytearray(payload_len)
                    target = memoryview(self.big_own)
                self.big_got = self.end - body
                target[: self.big_got] = self.view[body : self.end]
                self.big, self.big_header = target, header
                self.start = self.end = 0
                return
            else:
                break
        if self.start == self.end:
            self.start = self.end = 0

    # -- frames
    def _answer(self, ref: int, code: Code, text: str = "") -> None:
        self._write(Header(fr.ACK, ref, code=int(code), text=text[: fr.MAX_TEXT]))

    def _dispatch(self, header: Header, payload: bytes) -> None:
        if header.kind == fr.PING:
            self._write(Header(fr.PONG, header.ref))
            return
        if header.kind not in (fr.MSG, fr.ABORT):
            raise FrameError(f"unexpected frame kind {header.kind}")
        partial = self.partial
        if header.kind == fr.MSG and header.index > 0:
            self._chunk(header, payload)
            return
        if partial is not None:
            raise FrameError("a new message started before the chunks of the last one ended")
        if header.sender != self.party or header.receiver != self.server.party:
            self.server.note_refused(
                self.party, "claimed-sender", f"{self.party!r} sent a frame as {header.sender!r}"
            )
            code, text = Code.FORBIDDEN, f"certificate of {self.party!r} cannot send as "
            self._refuse(header, code, f"{text}{header.sender!r} to {header.receiver!r}")
            return
        if header.kind == fr.ABORT:
            if payload:
                raise FrameError("an ABORT frame carries no payload")
            try:
                work = _abort_work(header)
            except ValueError as exc:
                self._refuse(header, Code.BAD, str(exc))
                return
            self.queue.append(work)
            return
        try:
            key = MessageKey(
                header.job, header.component, header.tag, header.sender, header.receiver, header.seq
            )
        except ValueError as exc:
            self._refuse(header, Code.BAD, str(exc))
            return
        if header.size > self.limits.max_message:
            self._refuse(header, Code.TOO_LARGE, f"message larger than {self.limits.max_message}")
            return
        if header.total == 1:
            if len(payload) != header.size:
                raise FrameError("a message's payload does not match its declared size")
            self.queue.append(_Work(fr.MSG, header.ref, key, payload, ""))
            return
        # chunk 0 of a chunked message: reserve its whole size
        if not payload or header.total > header.size or len(payload) > header.size:
            raise FrameError("chunk sizes do not add up")
        if not self.server.reserve(header.size):
            self._refuse(header, Code.BUSY, f"{self.server.party!r} has too many large messages")
            return
        buf = bytearray(header.size)
        buf[: len(payload)] = payload
        self.partial = _Partial(header.ref, key, header.total, buf, got=len(payload))
        if self.server.precheck is not None:
            self.queue.append(_Work(_PRECHECK, header.ref, key, b"", str(header.size)))

    def _refuse(self, header: Header, code: Code, text: str) -> None:
        self._answer(header.ref, code, text)
        if header.kind == fr.MSG and header.total > 1:  # drop its other chunks as they come
            key = MessageKey("-", "-", "-", "-", "-", 0)
            self.partial = _Partial(header.ref, key, header.total, None)

    def _chunk_target(self, header: Header, size: int) -> memoryview | None:
        """Where chunk ``header`` of ``size`` bytes goes in its partial message (None: the
        message was refused and the chunk is dropped). Checks it continues that message."""
        partial = self.partial
        if partial is None or header.ref != partial.ref or header.index != partial.next_index:
            raise FrameError("a chunk out of order")
        if header.total != partial.total:
            raise FrameError("chunks disagree on their total")
        if partial.buf is None:
            return None
        if not size or partial.got + size > len(partial.buf):
            raise FrameError("chunk sizes do not add up")
        return memoryview(partial.buf)[partial.got : partial.got + size]

    def _chunk(self, header: Header, payload: bytes) -> None:
        target = self._chunk_target(header, len(payload))
        if target is not None:
            target[:] = payload
        self._chunk_filled(header, len(payload))

    def _chunk_filled(self, header: Header, size: int) -> None:
        """Chunk ``header`` (checked by :meth:`_chunk_target`) has been written in place."""
        partial = self.partial
        assert partial is not None
        partial.next_index += 1
        last = partial.next_index == partial.total
        if partial.buf is None:  # refused: dropped
            if last:
                self.partial = None
            return
        partial.got += size
        if not last:
            return
        if partial.got != len(partial.buf):
            raise FrameError("chunk sizes do not add up")
        self.partial = None
        # the budget stays reserved until the message is stored; the reassembly buffer is the
        # payload (no copy; nothing writes to it again)
        data = cast(bytes, partial.buf)
        work = _Work(fr.MSG, partial.ref, partial.key, data, "", reserved=len(partial.buf))
        self.queue.append(work)

    def _release_partial(self) -> None:
        if self.partial is not None and self.partial.buf is not None:
            self.server.release(len(self.partial.buf))
        self.partial = None

    # -- storing
    def _run_inline(self) -> None:
        """Admit what the last read brought, now, in this connection's thread (a slow
        admission holds up only this connection; the frames read together form one batch)."""
        while self.queue and not self.closed:
            batch = list(self.queue)
            self.queue.clear()
            self._settle(batch, self.server.run_batch(self.party, batch, self._durable))

    def _settle(self, batch: list[_Work], outcomes: Sequence[Outcome | None]) -> None:
        """Answer a batch's frames (ACKs; ACCEPTED ones wait for their SYNCED)."""
        heads = []
        for work, outcome in zip(batch, outcomes, strict=True):
            if work.reserved:
                self.server.release(work.reserved)
            if work.kind == _PRECHECK:
                if outcome is not None:
                    self._refused_partial(work.ref, outcome)
                continue
            assert outcome is not None
            if outcome.code == Code.ACCEPTED and work.kind == fr.MSG:
                self.unsynced.append(work.ref)  # answered by the SYNCED covering it
                continue
            text = outcome.text[: fr.MAX_TEXT]
            head = Header(fr.ACK, work.ref, code=int(outcome.code), text=text)
            heads.append(fr.encode_head(head, 0))
        if heads:
            self._send(b"".join(heads))
        unsynced = self.unsynced
        if unsynced and unsynced[0] in self.written:  # (else nothing to report: the common case)
            self._advance()  # after the ACKs: a SYNCED never precedes its frames' ACK

    def _durable(self, refs: list[int]) -> None:
        """From the mailbox's writer thread: frames ``refs`` are on disk. The refs of one
        group commit arrive in several calls (one per batch that admitted them); they are
        collected here and handed to the connection's thread once, so the client gets one
        SYNCED for the commit rather than one per batch (and the thread one wake-up)."""
        if self.closed:
            return
        with self.durable_lock:
            self.durable_refs.extend(refs)
            if self.durable_pending or self.wake_w < 0:
                return
            self.durable_pending = True
            with contextlib.suppress(OSError):  # (a full pipe: a wake-up is pending anyway)
                os.write(self.wake_w, b"\0")

    def _written_refs(self) -> None:
        with self.durable_lock:
            refs, self.durable_refs = self.durable_refs, []
            self.durable_pending = False
        self.written.update(refs)
        self._advance()

    def _advance(self) -> None:
        """Tell the client how far every ACCEPTED frame is on disk (one SYNCED frame)."""
        upto = self.synced
        while self.unsynced and self.unsynced[0] in self.written:
            upto = self.unsynced.popleft()
            self.written.discard(upto)
        if upto != self.synced:
            self.synced = upto
            self._write(Header(fr.SYNCED, upto))

    def _refused_partial(self, ref: int, outcome: Outcome) -> None:
        self._answer(ref, outcome.code, outcome.text)
        if self.partial is not None and self.partial.ref == ref and self.partial.buf is not None:
            self.server.release(len(self.partial.buf))
            self.partial.buf = None


class StreamServer:
    """The receiving side: a TLS listener whose connections are each served by a thread of
    their own (a blocking socket, TLS over memory BIOs; no event loop: a message costs one
    wake-up of that thread, which admits it at once).

    Parameters
    ----------
    identity:
        This party's key and certificate.
    trusted:
        ``{party: certificate PEM}`` of the peers allowed to connect (pinned).
    admit:
        Checks and stores one complete message; its :class:`Outcome` is the ACK's code. Runs
        in the connection's thread; an exception becomes ``BUSY`` (the sender retries) and is
        logged.
    host, port:
        Where to listen (port 0: any free port; see :attr:`port` after :meth:`start`).
    precheck:
        Optional check of a chunked message's declared size at its first chunk.
    admit_many:
        Optional: admits the messages of one batch (those one read brought) in one call,
        e.g. one transaction; used instead of ``admit`` for them.
    on_abort:
        Records an ABORT from a peer (without it, ABORT frames are refused with ``BAD``).
    on_refused:
        Optional ``(party, kind, detail)`` hook for every refused connection or frame (kinds:
        ``unpinned``, ``connections``, ``idle``, ``frame``, ``claimed-sender``; the node
        audits them). Called from the connections' threads.
    limits:
        :class:`StreamLimits`.

    ``admit``, ``admit_many``, ``precheck`` and ``on_abort`` run in the connection's thread,
    so several connections call them at once: they must be thread-safe. A slow one holds up
    only its own connection (whose client then waits: back-pressure).
    """

    handshake_timeout = 10.0

    def __init__(
        self,
        identity: Identity,
        trusted: Mapping[str, bytes],
        admit: Admit,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        precheck: Precheck | None = None,
        on_abort: AbortHandler | None = None,
        admit_many: AdmitMany | None = None,
        on_refused: Callable[[str, str, str], None] | None = None,
        limits: StreamLimits | None = None,
    ) -> None:
        self.party = identity.party
        self.identity = identity
        self.trusted = dict(trusted)
        self._known = {fingerprint(pem): name for name, pem in self.trusted.items()}
        self.admit = admit
        self.precheck = precheck
        self.on_abort = on_abort
        self.admit_many = admit_many
        self.on_refused = on_refused
        self._logged: dict[tuple[str, str], float] = {}
        self.limits = limits or StreamLimits()
        self.host = host
        self.port = port
        #: party -> its connections, oldest first (a dict used as an ordered set)
        self.connections: dict[str, dict[_ServerConnection, None]] = {}
        self._newest: dict[str, _ServerConnection] = {}  # each party's newest connection
        self.refused: collections.deque[str] = collections.deque(maxlen=64)
        self._reserved = 0
        self._lock = threading.Lock()  # connections, reservations, the refusal log
        self.context: ssl.SSLContext = server_context(identity, list(self.trusted.values()))
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self._open: set[_ServerConnection] = set()  # every connection's thread, until it ends
        self._wake_r = self._wake_w = -1  # wakes the accepting thread to close

    def party_of(self, der: bytes | None) -> str | None:
        return self._known.get(fingerprint_der(der)) if der else None

    def note_refused(self, party: str, kind: str, reason: str) -> None:
        """Record a refusal: kept in :attr:`refused` (the last 64), passed to ``on_refused``
        (the node's audit), and logged at most once a minute per (party, kind), so a peer
        cannot flood the log."""
        now = time.monotonic()
        with self._lock:
            self.refused.append(reason)
            log = now - self._logged.get((party, kind), -_LOG_EVERY) >= _LOG_EVERY
            if log:
                self._logged[(party, kind)] = now
        if self.on_refused is not None:
            self.on_refused(party, kind, reason)
        if log:
            _log.warning("stream server %s refused (%s): %s", self.party, kind, reason)

    def register(self, party: str, conn: _ServerConnection) -> bool:
        """Count ``conn`` among ``party``'s connections (closing its oldest beyond the limit);
        False if the server is closing."""
        dropped = []
        with self._lock:
            if self._closing:
                return False
            held = self.connections.setdefault(party, {})
            while len(held) >= self.limits.connections_per_party:
                # a client reconnecting after a cut the server has not noticed yet (half-open):
                # its newest connection is the live one, so the oldest goes
                oldest = next(iter(held))
                del held[oldest]
                dropped.append((oldest, len(held) + 1))
            held[conn] = None
            self._newest[party] = conn
        for oldest, n in dropped:
            oldest._drop("connections", f"{party!r} opened more than {n} connections")
        return True

    def unregister(self, party: str, conn: _ServerConnection) -> None:
        with self._lock:
            held = self.connections.get(party, {})
            held.pop(conn, None)
            if self._newest.get(party) is conn:
                if held:
                    self._newest[party] = next(reversed(held))
                else:
                    del self._newest[party]
            self._open.discard(conn)

    def pump(self, party: str, timeout: float) -> bool:
        """Read ``party``'s newest connection from the calling (job) thread for up to
        ``timeout`` seconds (:meth:`_ServerConnection.pump`); False if there is none to read:
        the caller waits as usual."""
        conn = self._newest.get(party)  # (one dict read: kept under the lock, read without)
        return conn is not None and conn.pump(timeout)

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self._reserved + size > self.limits.reassembly_budget:
                return False
            self._reserved += size
            return True

    def release(self, size: int) -> None:
        if size:
            with self._lock:
                self._reserved -= size

    @property
    def reserved(self) -> int:
        """Bytes of partial chunked messages held now."""
        return self._reserved

    def run_batch(
        self, party: str, batch: Sequence[_Work], durable: Callable[[list[int]], None]
    ) -> Sequence[Outcome | None]:
        """Admit a batch of messages (the connection's thread); ``durable(refs)`` is told the frames
        answered ACCEPTED once they are on disk."""
        if self.admit_many is None:
            return [self._run_guarded(party, work) for work in batch]
        if all(work.kind == fr.MSG for work in batch):  # only messages: the common case
            return self._admit_many(party, batch, durable)
        many = [work for work in batch if work.kind == fr.MSG]
        together = dict(zip(map(id, many), self._admit_many(party, many, durable), strict=True))
        return [together.get(id(work)) or self._run_guarded(party, work) for work in batch]

    def _admit_many(
        self, party: str, many: Sequence[_Work], durable: Callable[[list[int]], None]
    ) -> Sequence[Outcome]:
        """The messages ``many`` in one ``admit_many`` call (BUSY for all if it fails)."""
        assert self.admit_many is not None
        if not many:
            return []

        def written(indices: list[int]) -> None:
            durable([many[i].ref for i in indices])

        try:
            items = [(w.key, w.payload) for w in many if w.key is not None]
            got = self.admit_many(party, items, written)
            if len(got) != len(many):
                raise RuntimeError(f"admit_many answered {len(got)} of {len(many)}")
        except Exception:
            _log.exception("storing %d messages from %s failed", len(many), party)
            return [Outcome(Code.BUSY, "internal error")] * len(many)
        return got

    def _run_guarded(self, party: str, work: _Work) -> Outcome | None:
        try:
            return self._run_one(party, work)
        except Exception:
            _log.exception("storing a message from %s failed", party)
            return Outcome(Code.BUSY, "internal error")

    def _run_one(self, party: str, work: _Work) -> Outcome | None:
        if work.kind == fr.ABORT:
            if self.on_abort is None:
                return Outcome(Code.BAD, "aborts are not taken on this stream")
            assert work.key is not None
            return self.on_abort(party, work.key.job, work.text)
        assert work.key is not None
        if work.kind == _PRECHECK:
            return None if self.precheck is None else self.precheck(party, work.key, int(work.text))
        return self.admit(party, work.key, work.payload)

    def start(self) -> StreamServer:
        """Listen (returns once bound)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._listener = socket.create_server((self.host, self.port), family=family, backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._accept, name=f"stream-server-{self.party}", daemon=True
        )
        self._thread.start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        poller = select.poll()
        poller.register(self._listener, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while not self._closing:
            if not poller.poll():
                continue
            if self._closing:
                break
            try:
                sock, addr = self._listener.accept()
            except OSError as exc:  # (e.g. out of file descriptors: try again shortly)
                _log.warning("stream server %s: accept failed: %s", self.party, exc)
                time.sleep(0.1)
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.settimeout(self.limits.idle_timeout)  # the longest a write may block
                conn = _ServerConnection(self, sock)
            except OSError as exc:
                _log.warning("stream server %s: a connection failed: %s", self.party, exc)
                sock.close()
                continue
            with self._lock:
                closing = self._closing
                waiting = len(self._open) - sum(len(held) for held in self.connections.values())
                if not closing and waiting < _MAX_HANDSHAKES:
                    self._open.add(conn)
            if closing or waiting >= _MAX_HANDSHAKES:
                if not closing:
                    self.note_refused("?", "handshakes", f"{waiting} connections not authenticated")
                conn._lost()
                if closing:
                    break
                continue
            name = f"stream-server-{self.party}-{addr[1]}"
            conn.thread = threading.Thread(target=conn.run, name=name, daemon=True)
            try:
                conn.thread.start()
            except RuntimeError as exc:  # (no thread to be had now: refuse this one)
                _log.warning("stream server %s: cannot serve a connection: %s", self.party, exc)
                conn._lost()

    def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._thread is None:
            return
        with self._lock:
            self._closing = True
            conns = list(self._open)
        os.write(self._wake_w, b"\0")
        self._thread.join(10)
        self._thread = None
        if self._listener is not None:
            self._listener.close()
        for conn in conns:
            conn.close()
        deadline = time.monotonic() + 10
        for conn in conns:
            if conn.thread is not None and conn.thread is not threading.current_thread():
                conn.thread.join(max(0.0, deadline - time.monotonic()))
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> StreamServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


# The ABORT work item carries its job in the header; keep it on the work item.
def _abort_work(header: Header) -> _Work:
    key = MessageKey(header.job, "abort", "abort", header.sender, header.receiver, 0)
    return _Work(fr.ABORT, header.ref, key, b"", header.text)


def _no_check() -> None:
    return None


class StreamTransport:
    """:class:`~privfin.federation.transport.Transport` of one party (in one job) over the
    streams of a :class:`StreamClient`.

    Parameters
    ----------
    identity:
        This party's key and certificate.
    peers:
        ``{party: StreamPeer(host, port, cert_pem)}``: the peers this transport may send to.
    mailbox:
        This node's mailbox (``recv`` waits on it; a job failure a peer reports is recorded in
        it as that peer's abort).
    send_timeout:
        Seconds a send may take, retries and reconnections included.
    cancel:
        Checked while a send waits: a cancelled job stops waiting at once.
    client:
        A node's shared :class:`StreamClient` (it stays open when this transport closes). By
        default the transport makes its own from ``identity``, ``peers`` and ``options``
        (``chunk_size``, ``heartbeat``, ``idle_timeout``, ``connect_timeout``) and closes it.
    server:
        This node's :class:`StreamServer`, if any: ``recv`` then reads the sender's
        connection itself while it waits (one thread wake-up fewer per message).
    """

    def __init__(
        self,
        identity: Identity,
        peers: Mapping[str, StreamPeer | tuple[str, int, bytes]],
        mailbox: Mailbox,
        *,
        send_timeout: float = 120.0,
        cancel: CancelToken | None = None,
        client: StreamClient | None = None,
        server: StreamServer | None = None,
        **options: Any,
    ) -> None:
        self.party = identity.party
        self.server = server
        self._pumps: dict[str, Callable[[float], bool]] = {}  # sender -> reads its connection
        self.identity = identity
        self.peers = frozenset(peers)
        self.mailbox = mailbox
        self.send_timeout = send_timeout
        self.cancel = cancel
        if client is not None and (client.party != self.party or options):
            raise ValueError("a shared client must be this party's and takes no options here")
        self._owns_client = client is None
        self.client = client if client is not None else StreamClient(identity, peers, **options)
        self._lock = threading.Lock()
        self._failed: list[BaseException] = []  # refusals of posted messages, oldest first
        self._recording: list[threading.Thread] = []

    def link_stats(self, peer: str) -> dict[str, int]:
        """See :meth:`StreamClient.link_stats`."""
        return self.client.link_stats(peer)

    # -- Transport
    def send(self, key: MessageKey, payload: bytes) -> None:
        """Hand ``payload`` for ``key.receiver`` to the connection and return (pipelining:
        the peer's answer is not waited for; the frame is kept, and resent after a cut,
        until the peer has it on disk).

        A refusal by the peer surfaces at this transport's next ``send`` or :meth:`flush`
        and, recorded in the mailbox as that peer's abort of the job, stops the job's
        waiting ``recv`` at once; the errors are those of the HTTP transport
        (:meth:`privfin.federation.http.HttpTransport.send`).

        Raises
        ------
        AuthenticationError
            The peer's certificate is not the pinned one, the peer refuses ours, or it
            refuses the sender (403) — for this or an earlier message.
        ProtocolAbort
            The peer holds other bytes under a key (409), could not store (507), the job
            failed there, or the job was cancelled / aborted here.
        DecodeError
            The peer rejected a message as malformed or too large (400, 413).
        PeerTimeout
            The peer's buffers stayed full for ``send_timeout`` (back-pressure), or it kept
            answering "busy" for that long.
        """
        self.send_many([(key, payload)])

    def send_many(self, items: Iterable[tuple[MessageKey, bytes]]) -> None:
        """Send several messages (to one or more peers) in one hand-off to the loop; they are
        written back to back. Returns at once, as :meth:`send`."""
        todo = list(items)
        if not todo:
            return
        for key, _ in todo:
            if key.sender != self.party:
                raise ValueError("a transport only sends as its own party")
            if key.receiver not in self.peers:
                raise AuthenticationError(
                    f"{key.receiver!r} is not a pinned peer of {self.party!r}"
                )
        self._raise_failed()
        job = todo[0][0].job

        def check() -> None:
            self._stop_if_aborted(job)

        deadline = time.monotonic() + self.send_timeout
        try:
            self.client.post(todo, self._settled, deadline, check)
        except PeerTimeout as exc:
            raise PeerTimeout(exc.peer, exc.tag, self.send_timeout) from None

    def _settled(self, p: _Pending) -> None:
        """The outcome of a posted frame (a client thread): a failure is kept for the next call
        and recorded as the peer's abort (in a worker thread: it writes the store)."""
        if p.error is None and p.code is not None and (p.code.ok or p.code == Code.ENDED):
            if p.code == Code.ENDED:
                _log.info(
                    "%s has finished job %s; message %s not needed",
                    p.key.receiver,
                    p.key.job,
                    p.key.path(),
                )
            return
        error = p.error if p.error is not None else self._refusal(p.key, p.code, p.text)
        reason = p.text if p.code == Code.FAILED else f"refused our message: {error}"

        def record() -> None:
            try:
                self.mailbox.abort(p.key.job, p.key.receiver, reason or "(no reason)")
            except Exception:
                _log.exception("could not record the refusal of %s", p.key.path())

        thread = threading.Thread(target=record, name="stream-refusal", daemon=True)
        thread.start()
        with self._lock:  # both at once: a caller that sees the failure can wait for its record
            self._recording.append(thread)
            self._failed.append(error)

    def _raise_failed(self) -> None:
        if not self._failed:  # (nothing refused: the common case, without the lock)
            return
        with self._lock:
            failed = self._failed[0] if self._failed else None
            recording = list(self._recording)
        if failed is not None:
            for thread in recording:  # the refusal is recorded before it is reported
                thread.join(10)
            raise failed

    def _refusal(self, key: MessageKey, code: Code | None, text: str) -> PrivfinError:
        """The error the HTTP transport raises for the peer's answer ``code``."""
        peer = key.receiver
        if code == Code.FORBIDDEN:
            return AuthenticationError(f"{peer!r} refused us: {text}")
        if code == Code.CONFLICT:
            return ProtocolAbort(f"{peer!r} refused a conflicting message: {text}", party=peer)
        if code in (Code.BAD, Code.TOO_LARGE):
            return DecodeError(f"{peer!r} rejected the message: {text}")
        if code == Code.NOT_STORED:
            return ProtocolAbort(f"party {peer!r} failed: internal error", party=peer)
        if code == Code.FAILED:
            return ProtocolAbort(f"party {peer!r} aborted the job: {text}", party=peer)
        answer = "no answer" if code is None else str(int(code))
        return ProtocolAbort(f"{peer!r} answered {answer}: {text}", party=peer)

    def _stop_if_aborted(self, job: str) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        why = self.mailbox.aborted(job)
        if why is not None:
            raise ProtocolAbort(f"party {why[0]!r} aborted the job: {why[1]}", party=why[0])

    def recv(self, key: MessageKey, timeout: float, cancel: CancelToken) -> bytes:
        """Wait for ``key`` in the mailbox; with this node's ``server``, by reading the
        sender's connection in this thread meanwhile (:meth:`StreamServer.pump`)."""
        if key.receiver != self.party:
            raise ValueError("a transport only receives its own messages")
        pump = self._pumps.get(key.sender)
        if pump is None and self.server is not None and key.sender in self.peers:
            pump = self._pumps[key.sender] = functools.partial(self.server.pump, key.sender)
        return self.mailbox.wait(key, timeout, cancel, pump)

    def flush(self, timeout: float | None = None) -> None:
        """Wait until everything this transport's peers accepted is on their disks (a step
        ends with this, so a finished step's messages never live only in a peer's memory).

        Raises
        ------
        PeerTimeout
            Not within ``timeout`` (default: the send timeout).
        AuthenticationError, ProtocolAbort, DecodeError
            A message of this transport was refused (see :meth:`send`).
        """
        wait = self.send_timeout if timeout is None else timeout
        if not self.client.flush(self.peers, wait):
            self._raise_failed()
            peer = sorted(self.peers)[0] if self.peers else "?"
            raise PeerTimeout(peer, "flush", wait)
        self._raise_failed()

    def abort(self, job: str, sender: str, receivers: Iterable[str], reason: str) -> None:
        """Tell ``receivers`` once that this party aborted ``job`` (best effort)."""
        for peer in receivers:
            self.deliver_abort(job, peer, reason)

    def deliver_abort(self, job: str, peer: str, reason: str, timeout: float = 5.0) -> str:
        """Tell ``peer`` that this party aborted ``job``: ``"delivered"``, ``"refused"`` or
        ``"retry"`` (unreachable or busy), as :meth:`HttpTransport.deliver_abort`."""
        if peer not in self.peers:
            return "refused"
        key = MessageKey(job, "abort", "abort", self.party, peer, 0)
        deadline = time.monotonic() + min(timeout, self.send_timeout)
        try:
            [p] = self.client.exchange(fr.ABORT, [(key, b"")], deadline, _no_check, reason[:200])
        except (PeerTimeout, AuthenticationError, ProtocolAbort) as exc:
            _log.info("could not tell %s about the abort of %s: %s", peer, job, exc)
            return "retry"
        if p.error is not None or p.code is None:
            return "retry"
        if p.code.ok:
            return "delivered"
        return "retry" if p.code.retry else "refused"

    def close(self) -> None:
        """Close the client if this transport made it (a shared client stays open)."""
        if self._owns_client:
            self.client.close()
