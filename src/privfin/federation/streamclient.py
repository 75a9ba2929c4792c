"""The sending side of the streaming transport: one TLS connection per peer, no event loop.

The protocol (frames, ACK / SYNCED semantics, resumption, limits) is the SPEC in
:mod:`privfin.federation.stream`; this module is how a node's client speaks it.

Threads and hand-offs
    A message is written by the thread that sends it when the connection is idle and the
    message fits in one frame (at most one chunk, 1 MiB): no hand-off to another thread, so a
    round trip of a many-round protocol costs one thread wake-up per direction (the
    receiver's), not two. (Up to the ninth session the limit was 64 KiB; SS-LR's rounds
    carry 78 kB on average, so most of them took the extra hop.) Chunked messages, messages
    behind others and every resend after a reconnection are written by the link's own
    thread, so ``send`` returns at once (pipelining) and computing overlaps with sending.
    One reader thread per connection reads the peer's ACK, SYNCED and PONG frames, sends the
    heartbeats and drops a silent connection.

    The TLS layer runs over memory BIOs (:class:`_TlsConn`): the SSL object is touched by one
    thread at a time under a lock held only while it encrypts or decrypts, never while a
    thread waits on the socket, so the reader decrypts ACKs while a writer is blocked on a
    peer that reads slowly (back-pressure: the kernel's socket buffer plus one frame).

    Frame numbers (``ref``) are given under the link's lock in the order frames are queued,
    and written in that order; only one thread writes message frames at a time (the
    ``writing`` token), so a SYNCED covering ``ref`` covers exactly the frames written before.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from privfin.errors import AuthenticationError, PeerTimeout, ProtocolAbort
from privfin.federation import frames as fr
from privfin.federation.frames import Code, FrameError, Header
from privfin.federation.tls import Identity, client_context, describe_tls_failure
from privfin.federation.transport import MessageKey

__all__ = ["DEFAULT_CHUNK_SIZE", "StreamClient", "StreamPeer"]

_log = logging.getLogger("privfin.federation.stream")

DEFAULT_CHUNK_SIZE = 1024 * 1024
#: messages up to this size are written by the sending thread itself (when the link is idle)
_SMALL = DEFAULT_CHUNK_SIZE
#: ... and copied behind their frame's head up to this size (larger: encrypted apart)
_JOIN = 64 * 1024
_RECV = 256 * 1024
#: errors that end a connection (it is reopened and the frames not settled are written again)
_BROKEN = (OSError, ssl.SSLError, FrameError, TimeoutError, EOFError)


@dataclass(frozen=True)
class StreamPeer:
    """A pinned peer: where its stream server listens and its certificate (PEM)."""

    host: str
    port: int
    cert: bytes


class _Batch:
    """Frames one caller waits for (set when all are answered)."""

    __slots__ = ("event", "lock", "remaining")

    def __init__(self, n: int) -> None:
        self.remaining = n
        self.event = threading.Event()
        self.lock = threading.Lock()

    def done_one(self) -> None:
        with self.lock:
            self.remaining -= 1
            if self.remaining == 0:
                self.event.set()


class _Pending:
    __slots__ = (
        "batch",
        "callback",
        "code",
        "deadline",
        "delay",
        "error",
        "key",
        "kind",
        "payload",
        "ref",
        "text",
    )

    def __init__(
        self, ref: int, kind: int, key: MessageKey, payload: bytes, batch: _Batch | None
    ) -> None:
        self.ref, self.kind, self.key, self.payload, self.batch = ref, kind, key, payload, batch
        self.code: Code | None = None
        self.text = ""
        self.error: BaseException | None = None
        # a posted frame (no batch: nobody waits for it): its outcome goes to ``callback``;
        # BUSY/QUOTA answers are retried by the link until ``deadline``
        self.callback: Callable[[_Pending], None] | None = None
        self.deadline = 0.0
        self.delay = 0.1

    def resolve(
        self, code: Code | None, text: str = "", error: BaseException | None = None
    ) -> None:
        """Record the outcome (once; called without any link lock held)."""
        if self.code is not None or self.error is not None:
            return
        self.code, self.text, self.error = code, text, error
        if self.batch is not None:
            self.batch.done_one()
        elif self.callback is not None:
            try:
                self.callback(self)
            except Exception:
                _log.exception("stream: handling the outcome of %s failed", self.key.path())


def _msg_header(p: _Pending, index: int, total: int) -> Header:
    key = p.key
    return Header(
        fr.MSG,
        p.ref,
        key.job,
        key.component,
        key.tag,
        key.sender,
        key.receiver,
        key.seq,
        index,
        total,
        len(p.payload),
    )


def _abort_header(p: _Pending) -> Header:
    return Header(
        fr.ABORT, p.ref, p.key.job, sender=p.key.sender, receiver=p.key.receiver, text=p.text
    )


def tls_handshake(
    tls: ssl.SSLObject, flush: Callable[[], None], fill: Callable[[float], bool], deadline: float
) -> None:
    """Drive ``tls``'s handshake over memory BIOs until ``deadline`` (``time.monotonic()``):
    ``flush()`` sends what the TLS layer wrote, ``fill(seconds)`` hands it the peer's bytes
    (False if none came in time)."""
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            if not fill(deadline - time.monotonic()):
                raise TimeoutError("the TLS handshake timed out") from None
    flush()


class _TlsConn:
    """A client TLS connection over a blocking socket, through memory BIOs, so that one
    thread can write while another reads (see the module's docstring)."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=False)
        self.ssl_lock = threading.Lock()  # the SSL object: held only to encrypt / decrypt
        self.send_lock = threading.Lock()  # the socket's sending side: records in order
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)
        self.buf = bytearray()  # decrypted bytes not parsed yet
        self.dead = False

    def handshake(self, deadline: float) -> None:
        tls_handshake(self.tls, self._send_outgoing, self._fill, deadline)

    def _send_outgoing(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self, timeout: float) -> bool:
        """Read what the socket has (waiting up to ``timeout``) into the TLS layer; False if
        nothing came."""
        if timeout <= 0 or not self.poller.poll(timeout * 1000):
            return False
        data = self.sock.recv(_RECV)
        if not data:
            raise ConnectionResetError("the peer closed the connection")
        with self.ssl_lock:
            self.incoming.write(data)
        return True

    def write(self, parts: Sequence[bytes | bytearray | memoryview]) -> int:
        """Encrypt and send ``parts`` in order (blocks while the peer's buffers are full);
        returns the largest number of bytes handed to the socket at once."""
        with self.send_lock:
            return self.write_locked(parts)

    def write_locked(self, parts: Sequence[bytes | bytearray | memoryview]) -> int:
        """:meth:`write` for a caller that holds ``send_lock``."""
        largest = 0
        for part in parts:
            with self.ssl_lock:
                self.tls.write(part)
                data = self.outgoing.read()
            self.sock.sendall(data)
            largest = max(largest, len(data))
        return largest

    def read_headers(self, timeout: float) -> list[Header] | None:
        """The frames that arrived within ``timeout`` seconds (None: none did). The server
        never sends a payload."""
        if not self._fill(timeout):
            return None
        with self.ssl_lock:
            while True:
                try:
                    chunk = self.tls.read(_RECV)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    raise ConnectionResetError("the peer closed the TLS session") from None
                if not chunk:
                    raise ConnectionResetError("the peer closed the TLS session")
                self.buf += chunk
            answer = self.outgoing.pending  # post-handshake records to send back
        if answer and self.send_lock.acquire(blocking=False):
            # (if a writer holds the socket, its next write takes them along, in order)
            try:
                with self.ssl_lock:
                    data = self.outgoing.read()
                if data:
                    self.sock.sendall(data)
            finally:
                self.send_lock.release()
        out = []
        buf = self.buf
        start = 0
        while len(buf) - start >= fr.PREFIX.size:
            header_len, payload_len = fr.PREFIX.unpack_from(buf, start)
            fr.check_lengths(header_len, payload_len, 0)
            end = start + fr.PREFIX.size + header_len
            if len(buf) < end:
                break
            out.append(fr.parse_header(bytes(buf[start + fr.PREFIX.size : end])))
            start = end
        del buf[:start]
        return out

    def close(self) -> None:
        self.dead = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class _Link:
    """The connection to one peer: frames held until settled, the link's thread (connects,
    writes what is queued, resends after a cut) and the connection's reader thread."""

    def __init__(self, owner: StreamClient, peer: str, info: StreamPeer) -> None:
        self.owner = owner
        self.peer = peer
        self.info = info
        self.context = client_context(owner.identity, info.cert)
        self.lock = threading.Lock()
        #: notified when frames leave ``pending``, the queue grows, the connection changes
        self.changed = threading.Condition(self.lock)
        self.pending: dict[int, _Pending] = {}  # ref -> frame; insertion order is ref order
        self.queue: collections.deque[_Pending] = collections.deque()
        self.retries: list[tuple[float, int, _Pending]] = []  # BUSY frames to write again
        self.conn: _TlsConn | None = None
        self.writing = False  # a thread is writing message frames on ``conn``
        self.thread: threading.Thread | None = None
        self.connections = 0
        self.max_buffered = 0
        self.submitted = 0  # the last ref handed to this link
        # bytes of every frame held (not settled by an ACK or a SYNCED yet); a poster
        # waits for ``space`` while they exceed the owner's ``max_unsynced``
        self.held_bytes = 0
        self.space = threading.Event()
        self.space.set()
        #: largest message the sending thread writes itself (one frame: not chunked)
        self.direct_max = min(_SMALL, owner.chunk_size)

    # -- frames in
    def submit(self, items: Sequence[_Pending]) -> None:
        """Number ``items`` and write them now (small messages on an idle connection, from
        this thread) or queue them for the link's thread."""
        with self.lock:
            if self.owner.closing:
                raise ProtocolAbort("the stream client is closed")
            for p in items:
                p.ref = next(self.owner._refs)
                self.pending[p.ref] = p
                self.submitted = p.ref
                self.held_bytes += len(p.payload)
            if self.held_bytes > self.owner.max_unsynced:
                self.space.clear()
            conn = self.conn
            direct = conn is not None and not self.writing and not self.queue
            if direct:
                limit = self.direct_max
                for p in items:
                    if p.kind != fr.MSG or len(p.payload) > limit:
                        direct = False
                        break
            if direct:
                self.writing = True
            else:
                self.queue.extend(items)
                self._start()
                self.changed.notify_all()
        if not direct:
            return
        assert conn is not None
        try:
            parts: list[bytes] = []
            for p in items:
                head = fr.encode_head(_msg_header(p, 0, 1), len(p.payload))
                parts += [head + p.payload] if len(p.payload) <= _JOIN else [head, p.payload]
            wrote = conn.write([b"".join(parts)] if len(items) > 1 else parts)
            self.max_buffered = max(self.max_buffered, wrote)
        except _BROKEN as exc:
            self._broken(conn, f"{type(exc).__name__}: {exc}")
        finally:
            with self.lock:
                self.writing = False
                if self.queue:
                    self.changed.notify_all()

    def _start(self) -> None:
        """Start the link's thread if it is not running (lock held)."""
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(
                target=self._run, name=f"stream-{self.owner.party}-{self.peer}", daemon=True
            )
            self.thread.start()

    # -- frames out
    def _release(self, p: _Pending) -> bool:
        """``p`` leaves ``pending`` (lock held); False if it had left already."""
        if self.pending.get(p.ref) is not p:
            return False
        del self.pending[p.ref]
        self.held_bytes -= len(p.payload)
        if self.held_bytes <= self.owner.max_unsynced:
            self.space.set()
        return True

    def forget(self, items: Iterable[_Pending]) -> None:
        with self.lock:
            for p in items:
                self._release(p)
            self.changed.notify_all()

    def fail_all(self, error: BaseException) -> None:
        with self.lock:
            failed = list(self.pending.values())
            self.queue.clear()
            self.retries.clear()
        self._settle([(p, None, "", error) for p in failed])

    def _settle(
        self, outcomes: Sequence[tuple[_Pending, Code | None, str, BaseException | None]]
    ) -> None:
        """Record the outcomes, then let the frames leave ``pending``: a flush that sees them
        gone sees their outcomes (a refusal is raised by it)."""
        for p, code, text, error in outcomes:
            p.resolve(code, text, error)
        with self.lock:
            for p, *_ in outcomes:
                self._release(p)
            self.changed.notify_all()

    def _answered(self, ref: int, code: Code, text: str) -> None:
        """ACK ``code`` for frame ``ref`` (perhaps a frame resent after a cut)."""
        if code == Code.ACCEPTED:
            return  # taken: the SYNCED that covers it settles it
        with self.lock:
            p = self.pending.get(ref)
            if p is None:
                return  # a late answer to a frame its caller gave up on
            if code.retry and p.batch is None:  # a posted frame: retried here
                now = time.monotonic()
                if now + p.delay < p.deadline:
                    heapq.heappush(self.retries, (now + p.delay, p.ref, p))
                    p.delay = min(p.delay * 2, 2.0)
                    self.changed.notify_all()
                    return
                error: BaseException | None = PeerTimeout(p.key.receiver, p.key.tag, p.deadline)
            else:
                error = None  # settled: stored, duplicate or refused
        if error is not None:
            self._settle([(p, None, "", error)])
        else:
            self._settle([(p, code, text, None)])

    def _synced(self, upto: int) -> None:
        """Every message frame up to ``upto`` not answered otherwise was ACCEPTED and is on the
        peer's disk (the server writes refusals, duplicates and synchronous stores as ACKs
        before the SYNCED that follows them; ACCEPTED only as a SYNCED)."""
        with self.lock:
            done = []
            for ref, p in self.pending.items():  # in frame order
                if ref > upto:
                    break
                if p.kind == fr.MSG:
                    done.append(p)
        if done:
            self._settle([(p, Code.ACCEPTED, "", None) for p in done])

    def settled(self, upto: int, deadline: float) -> bool:
        """Wait until every frame up to ``upto`` is settled (answered, and on the peer's disk
        if it was ACCEPTED) or failed; False at ``deadline``."""
        with self.lock:
            while True:
                first = next(iter(self.pending), None)
                if first is None or first > upto or self.owner.closing:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)

    # -- the link's thread
    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # a bug here must not leave senders waiting for ever
            _log.exception("stream to %s: the link's thread failed", self.peer)
            with self.lock:
                conn, self.conn = self.conn, None
            if conn is not None:
                conn.close()
            self.fail_all(ProtocolAbort(f"the connection to {self.peer!r} failed (internal)"))

    def _loop(self) -> None:
        delay, dropped = 0.05, 0
        while True:
            with self.lock:
                while not self.owner.closing and not self.pending:
                    self.changed.wait()
                if self.owner.closing:
                    return
                conn = self.conn
            if conn is not None:
                self._write_queued(conn)
                continue
            try:
                conn = self._connect()
            except ssl.SSLError as exc:
                told = describe_tls_failure(exc, self.peer, self.info.cert, self.owner.own_cert)
                if told is not None:
                    _log.error("TLS authentication of %s failed: %s", self.peer, told)
                    self.fail_all(AuthenticationError(told))
                    continue
                reason = f"{type(exc).__name__}: {exc}"
            except _HelloMissing as missing:
                told = describe_tls_failure(
                    missing.cause, self.peer, self.info.cert, self.owner.own_cert
                )
                if told is not None:  # e.g. the peer refused our expired certificate
                    _log.error("TLS authentication of %s failed: %s", self.peer, told)
                    self.fail_all(AuthenticationError(told))
                    continue
                dropped += 1
                reason = f"closed before HELLO ({type(missing.cause).__name__})"
                if dropped >= 3:
                    dropped = 0
                    self.fail_all(
                        AuthenticationError(
                            f"{self.peer!r} closes every connection after the TLS "
                            "handshake: it most likely does not pin this party's "
                            "certificate (check its node config)"
                        )
                    )
                    continue
            except _BROKEN as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                dropped, delay = 0, 0.05
                with self.lock:
                    if self.owner.closing:
                        conn.close()
                        return
                    self.conn = conn
                    self.connections += 1
                    # resumption: every frame not settled goes again, in order
                    self.queue = collections.deque(self.pending.values())
                    self.changed.notify_all()
                threading.Thread(
                    target=self._read,
                    args=(conn,),
                    name=f"stream-{self.owner.party}-{self.peer}-reader",
                    daemon=True,
                ).start()
                continue
            with self.lock:
                if self.owner.closing or not self.pending:
                    continue
            _log.info("stream to %s: %s; reconnecting", self.peer, reason)
            with self.lock:
                self.changed.wait(delay)  # (a close wakes it)
            delay = min(delay * 2, 2.0)

    def _connect(self) -> _TlsConn:
        deadline = time.monotonic() + self.owner.connect_timeout
        sock = socket.create_connection(
            (self.info.host, self.info.port), timeout=self.owner.connect_timeout
        )
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)  # blocking; the waits below poll with their deadlines
            conn = _TlsConn(sock, self.context)
            conn.handshake(deadline)
            try:
                heads: list[Header] = []
                while not heads:
                    got = conn.read_headers(deadline - time.monotonic())
                    if got is None:
                        raise TimeoutError("no HELLO in time")
                    heads = got
                hello = heads[0]
                if hello.kind != fr.HELLO or hello.text != self.peer or len(heads) > 1:
                    raise FrameError(f"expected HELLO from {self.peer!r}")
            except _BROKEN as exc:
                raise _HelloMissing(exc) from exc
        except BaseException:
            sock.close()
            raise
        return conn

    def _write_queued(self, conn: _TlsConn) -> None:
        """Write what is queued on ``conn`` until it is empty and nothing is pending, or the
        connection changed (the caller loops)."""
        with self.lock:
            while True:
                now = time.monotonic()
                while self.retries and self.retries[0][0] <= now:
                    _, _, p = heapq.heappop(self.retries)
                    if self.pending.get(p.ref) is p:
                        self.queue.append(p)
                if self.owner.closing or self.conn is not conn or not self.pending:
                    return
                if self.queue and not self.writing:
                    break
                wait = self.retries[0][0] - now if self.retries else None
                self.changed.wait(wait)
            self.writing = True
            batch: list[_Pending] = []
            size = 0
            while self.queue and size < _SMALL:  # small frames together, a large one alone
                p = self.queue.popleft()
                if self.pending.get(p.ref) is not p:
                    continue  # settled or forgotten meanwhile
                batch.append(p)
                size += len(p.payload)
        try:
            small: list[bytes | memoryview] = []
            for p in batch:
                if p.kind == fr.ABORT:
                    small.append(fr.encode_head(_abort_header(p), 0))
                    continue
                payload = p.payload
                if len(payload) <= _SMALL:
                    small.append(fr.encode_head(_msg_header(p, 0, 1), len(payload)) + payload)
                    continue
                if small:
                    self._note(conn.write([b"".join(small)]))
                    small = []
                chunk = self.owner.chunk_size
                total = max(1, -(-len(payload) // chunk))
                view = memoryview(payload)
                for index in range(total):
                    part = view[index * chunk : (index + 1) * chunk]
                    head = fr.encode_head(_msg_header(p, index, total), len(part))
                    self._note(conn.write([head, part]))
                    if conn.dead:
                        raise ConnectionResetError("the connection was closed")
            if small:
                self._note(conn.write([b"".join(small)]))
        except _BROKEN as exc:
            self._broken(conn, f"{type(exc).__name__}: {exc}")
        finally:
            with self.lock:
                self.writing = False
                self.changed.notify_all()

    def _note(self, wrote: int) -> None:
        self.max_buffered = max(self.max_buffered, wrote)

    def _broken(self, conn: _TlsConn, reason: str) -> None:
        """``conn`` failed (from any thread): drop it; the link's thread reconnects if frames
        are pending."""
        with self.lock:
            if self.conn is conn:
                self.conn = None
                self.queue.clear()  # rebuilt from ``pending`` on the next connection
                if self.pending and not self.owner.closing:
                    _log.info("stream to %s: %s; reconnecting", self.peer, reason)
                    self._start()
                self.changed.notify_all()
        conn.close()

    # -- the reader thread (one per connection)
    def _read(self, conn: _TlsConn) -> None:
        owner = self.owner
        last_rx = time.monotonic()
        next_ping = last_rx + owner.heartbeat
        n = 0
        try:
            while not conn.dead:
                now = time.monotonic()
                wake = min(next_ping, last_rx + owner.idle_timeout)
                heads = conn.read_headers(max(0.0, wake - now))
                now = time.monotonic()
                if heads is None:
                    if now - last_rx > owner.idle_timeout:
                        raise TimeoutError(
                            f"nothing from {self.peer!r} for {owner.idle_timeout:g} s"
                        )
                    if now >= next_ping:
                        n += 1
                        next_ping = now + owner.heartbeat
                        # (a writer busy on the socket keeps the connection alive anyway)
                        if conn.send_lock.acquire(blocking=False):
                            try:
                                conn.write_locked([fr.encode_head(Header(fr.PING, n), 0)])
                            finally:
                                conn.send_lock.release()
                    continue
                last_rx = now
                for header in heads:
                    if header.kind == fr.PONG:
                        continue
                    if header.kind == fr.SYNCED:
                        self._synced(header.ref)
                        continue
                    if header.kind != fr.ACK:
                        raise FrameError(f"unexpected frame kind {header.kind} from the server")
                    try:
                        code = Code(header.code)
                        text = header.text
                    except ValueError:
                        code, text = Code.BAD, f"unknown answer code {header.code}"
                    self._answered(header.ref, code, text)
        except _BROKEN as exc:
            if not conn.dead:
                self._broken(conn, f"{type(exc).__name__}: {exc}")
        except Exception:  # a bug: drop the connection (frames are resent on a new one)
            _log.exception("stream to %s: the reader failed", self.peer)
            self._broken(conn, "internal error")


class _HelloMissing(Exception):
    """The TLS handshake passed but the peer's HELLO did not come (``cause``: why)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class StreamClient:
    """The sending side of one node: one connection per peer, shared by every job's
    :class:`~privfin.federation.stream.StreamTransport` (one connection per peer pair,
    whatever the number of jobs).

    Parameters
    ----------
    identity:
        This party's key and certificate.
    peers:
        ``{party: StreamPeer(host, port, cert_pem)}`` (a ``(host, port, cert_pem)`` tuple
        is accepted too).
    chunk_size:
        Largest frame payload written (at most the peers' ``StreamLimits.max_frame``).
    heartbeat, idle_timeout:
        Seconds between PINGs; a connection silent for ``idle_timeout`` is dropped and
        reopened (frames not settled are written again).
    connect_timeout:
        Seconds for a TCP + TLS connection and the peer's HELLO.
    max_unsynced:
        Bytes of messages not settled yet (not answered, or ACCEPTED and not yet written
        by the peer) that this client keeps per peer before a ``send`` waits (the bound on
        what the client holds for resending).
    """

    def __init__(
        self,
        identity: Identity,
        peers: Mapping[str, StreamPeer | tuple[str, int, bytes]],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        heartbeat: float = 10.0,
        idle_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_unsynced: int = 64 * 1024 * 1024,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        if not 0 < heartbeat < idle_timeout:
            raise ValueError("heartbeat must be positive and shorter than idle_timeout")
        self.party = identity.party
        self.identity = identity
        self.peers = {
            name: info if isinstance(info, StreamPeer) else StreamPeer(*info)
            for name, info in peers.items()
        }
        self.chunk_size = chunk_size
        self.heartbeat = heartbeat
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.max_unsynced = max_unsynced
        try:
            self.own_cert: bytes | None = identity.cert.read_bytes()
        except OSError:
            self.own_cert = None
        self.closing = False
        self._refs = itertools.count(1)
        self._links: dict[str, _Link] = {}
        self._lock = threading.Lock()

    def _link(self, peer: str) -> _Link:
        link = self._links.get(peer)  # (made once per peer: looked up without the lock)
        if link is not None:
            return link
        with self._lock:
            link = self._links.get(peer)
            if link is None:
                info = self.peers.get(peer)
                if info is None:
                    raise AuthenticationError(f"{peer!r} is not a pinned peer of {self.party!r}")
                link = self._links[peer] = _Link(self, peer, info)
            return link

    def link_stats(self, peer: str) -> dict[str, int]:
        """Connections made to ``peer``, frames waiting for an answer, the most bytes handed
        to the socket at once, and the bytes of frames held until settled (for tests and
        diagnostics)."""
        link = self._links.get(peer)
        if link is None:
            return {"connections": 0, "pending": 0, "max_buffered": 0, "held": 0}
        with link.lock:
            return {
                "connections": link.connections,
                "pending": len(link.pending),
                "max_buffered": link.max_buffered,
                "held": link.held_bytes,
            }

    def flush(self, peers: Iterable[str] | None = None, timeout: float = 60.0) -> bool:
        """Wait until every message handed to the links of ``peers`` (default: all) so far is
        on the peers' disks (or failed); False if ``timeout`` seconds passed first."""
        wanted = None if peers is None else set(peers)
        links = [
            link for name, link in list(self._links.items()) if wanted is None or name in wanted
        ]
        deadline = time.monotonic() + timeout
        return all(link.settled(link.submitted, deadline) for link in links)

    def exchange(
        self,
        kind: int,
        items: Sequence[tuple[MessageKey, bytes]],
        deadline: float,
        check: Callable[[], None],
        text: str = "",
    ) -> list[_Pending]:
        """Send ``items`` and wait until each is answered (or failed). ``check`` runs every
        0.5 s while waiting (cancellation, aborts); past ``deadline`` the frames are
        forgotten and :class:`PeerTimeout` names the first unanswered one."""
        if self.closing:
            raise ProtocolAbort("the stream client is closed")
        batch = _Batch(len(items))
        pendings = [_Pending(0, kind, key, payload, batch) for key, payload in items]
        by_peer: dict[_Link, list[_Pending]] = {}
        for p in pendings:
            p.text = text
            by_peer.setdefault(self._link(p.key.receiver), []).append(p)
        try:
            for link, ps in by_peer.items():
                link.submit(ps)
            while not batch.event.wait(min(0.5, max(0.0, deadline - time.monotonic()))):
                check()
                if time.monotonic() >= deadline:
                    first = next(p for p in pendings if p.code is None and p.error is None)
                    raise PeerTimeout(first.key.receiver, first.key.tag, deadline)
        except BaseException:
            for link, ps in by_peer.items():
                link.forget(ps)
            raise
        return pendings

    def post(
        self,
        items: Sequence[tuple[MessageKey, bytes]],
        callback: Callable[[_Pending], None],
        deadline: float,
        check: Callable[[], None],
    ) -> None:
        """Send ``items`` without waiting for their answers (pipelining): each frame's
        outcome goes to ``callback`` (in a thread of this client) — ACCEPTED/STORED/DUPLICATE,
        a refusal, or an error; BUSY/QUOTA answers are retried until ``deadline``
        (``time.monotonic()``). Waits only while the frames held for a peer (not answered,
        or not on its disk yet) exceed ``max_unsynced`` bytes; ``check`` runs every 0.5 s
        meanwhile, and :class:`PeerTimeout` is raised at ``deadline``."""
        if self.closing:
            raise ProtocolAbort("the stream client is closed")
        by_peer: dict[_Link, list[_Pending]] = {}
        for key, payload in items:
            p = _Pending(0, fr.MSG, key, payload, None)
            p.callback, p.deadline = callback, deadline
            by_peer.setdefault(self._link(key.receiver), []).append(p)
        for link, ps in by_peer.items():
            if link.space.is_set():  # (room for more: the common case)
                continue
            while not link.space.wait(min(0.5, max(0.0, deadline - time.monotonic()))):
                check()
                if time.monotonic() >= deadline:
                    raise PeerTimeout(link.peer, ps[0].key.tag, deadline)
        for link, ps in by_peer.items():
            link.submit(ps)

    def close(self, flush_timeout: float = 5.0) -> None:
        """Wait up to ``flush_timeout`` seconds for the peers to write what they accepted,
        then drop the connections and stop the threads (pending sends fail)."""
        if self.closing:
            return
        if flush_timeout > 0 and not self.flush(timeout=flush_timeout):
            _log.warning("stream client closing with messages its peers have not written yet")
        with self._lock:
            links = list(self._links.values())
        for link in links:
            with link.lock:
                self.closing = True
                conn, link.conn = link.conn, None
                link.changed.notify_all()
            link.fail_all(ProtocolAbort("the stream client was closed"))
            if conn is not None:
                conn.close()
        self.closing = True
        for link in links:
            thread = link.thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(10)
