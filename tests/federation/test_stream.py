"""The streaming transport (issue [11]): real mutual TLS on loopback between privfin identities,
each party's messages stored in a real SQLite :class:`Mailbox`.

What is proved: typed messages round-trip through :class:`Channel` (small and chunked); a resend
of identical bytes is a duplicate and other bytes are refused loudly (naming the peer); a frame
claiming another sender is refused; an unpinned client, and a server that is not the pinned one,
are refused at the handshake; an oversize frame is refused by its prefix, before its payload is
sent; a connection cut in the middle of a chunked message is resumed and the message stored
exactly once; a receiver process killed (-9) mid-stream keeps every ACKed message and, restarted,
gets the rest exactly once; a receiver that stops reading makes the sender time out with a
bounded buffer, and a client that reads no ACKs makes the server stop reading; jobs share one
connection per peer; an abort reaches the peer's waiting ``recv``; the receiver's outcome codes
map to the same errors as the HTTP transport. Figures of the quick throughput check are printed,
not asserted.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from privfin.errors import AuthenticationError, DecodeError, PeerTimeout, ProtocolAbort
from privfin.federation import frames as fr
from privfin.federation import stream as stream_module
from privfin.federation import streamclient
from privfin.federation.frames import Code, FrameError, Header
from privfin.federation.mailbox import Mailbox, MessageConflict, QuotaExceeded, Quotas
from privfin.federation.stream import (
    Outcome,
    StreamClient,
    StreamLimits,
    StreamPeer,
    StreamServer,
    StreamTransport,
    mailbox_abort,
    mailbox_admit,
    mailbox_admit_many,
)
from privfin.federation.tls import Identity, client_context, create_identity, server_context
from privfin.federation.transport import CancelToken, Channel, MessageKey

A, B = "bank_a", "bank_b"


@dataclass
class Node:
    identity: Identity
    pem: bytes
    mailbox: Mailbox
    server: StreamServer | None = None
    transport: StreamTransport | None = None


def _node(tmp: Path, party: str) -> Node:
    identity = create_identity(party, tmp / party)
    return Node(identity, identity.cert.read_bytes(), Mailbox(tmp / f"{party}.sqlite"))


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, Node]]:
    made = {p: _node(tmp_path, p) for p in (A, B)}
    yield made
    for node in made.values():
        if node.transport is not None:
            node.transport.close()
        if node.server is not None:
            node.server.close()
        node.mailbox.close()


def _serve(node: Node, peer: Node, **kw: object) -> StreamServer:
    """A stream server storing into the node's mailbox as the node will: one message with
    ``admit`` or, for the messages read together, one transaction (``admit_many``)."""
    admit = kw.pop("admit", None)
    if admit is None:
        admit = mailbox_admit(node.mailbox)
        kw.setdefault("admit_many", mailbox_admit_many(node.mailbox))
    node.server = StreamServer(
        node.identity,
        {peer.identity.party: peer.pem},
        admit,  # type: ignore[arg-type]
        on_abort=mailbox_abort(node.mailbox),
        **kw,  # type: ignore[arg-type]
    ).start()
    return node.server


def _connect(node: Node, peer: Node, port: int | None = None, **kw: object) -> StreamTransport:
    assert peer.server is not None
    where = StreamPeer("127.0.0.1", port or peer.server.port, peer.pem)
    kw.setdefault("send_timeout", 20.0)
    node.transport = StreamTransport(
        node.identity,
        {peer.identity.party: where},
        node.mailbox,
        **kw,  # type: ignore[arg-type]
    )
    return node.transport


def _deliver(t: StreamTransport, key: MessageKey, payload: bytes) -> None:
    """Send and wait until the peer has it on disk (a send returns at once; a refusal
    surfaces at the flush)."""
    t.send(key, payload)
    t.flush(30)


def _mesh(nodes: dict[str, Node]) -> tuple[StreamTransport, StreamTransport]:
    _serve(nodes[A], nodes[B])
    _serve(nodes[B], nodes[A])
    return _connect(nodes[A], nodes[B]), _connect(nodes[B], nodes[A])


def _key(seq: int = 0, tag: str = "t", job: str = "job1") -> MessageKey:
    return MessageKey(job, "comp", tag, A, B, seq)


# ---------------------------------------------------------------------------------------------
# Frames


def test_frame_headers_are_range_checked() -> None:
    good = Header(fr.MSG, 1, "j", "c", "t", A, B, 3, 0, 2, 10)
    raw = fr.encode_head(good, 5)
    _header_len, payload_len = fr.PREFIX.unpack_from(raw)
    assert payload_len == 5
    assert fr.parse_header(raw[fr.PREFIX.size :]) == good
    bad = [
        Header(99, 1),  # unknown kind
        Header(fr.MSG, -1),  # frame number
        Header(fr.MSG, 1, seq=2**31),
        Header(fr.MSG, 1, index=2, total=2),  # index beyond total
        Header(fr.MSG, 1, total=0),
        Header(fr.ACK, 1, code=1000),
        Header(fr.MSG, 1, job="x" * 65),
    ]
    for header in bad:
        with pytest.raises(FrameError):
            fr.parse_header(fr.encode_head(header, 0)[fr.PREFIX.size :])
    with pytest.raises(FrameError, match="malformed"):
        fr.parse_header(b"\x93\x01\xa1x\x02")  # a string where an integer belongs
    with pytest.raises(FrameError):
        fr.check_lengths(0, 0, 10)
    with pytest.raises(FrameError):
        fr.check_lengths(fr.MAX_HEADER + 1, 0, 10)
    with pytest.raises(FrameError):
        fr.check_lengths(10, 11, 10)
    with pytest.raises(FrameError):
        fr.encode_head(Header(fr.ACK, 1, text="x" * (fr.MAX_HEADER + 1)), 0)


# ---------------------------------------------------------------------------------------------
# Through Channel


def test_channel_round_trip_small_and_chunked(nodes: dict[str, Node]) -> None:
    ta, tb = _mesh(nodes)
    ca = Channel(ta, job="job1", component="comp", party=A, peers=[B], default_timeout=20)
    cb = Channel(tb, job="job1", component="comp", party=B, peers=[A], default_timeout=20)
    big = np.arange(600_000, dtype=np.float64)  # 4.8 MB: five 1 MiB chunks

    def echo() -> None:
        for _ in range(30):
            cb.send(A, "pong", cb.recv(A, "ping"))
        cb.send(A, "big", cb.recv(A, "big", expect=np.ndarray) * 2)

    thread = threading.Thread(target=echo)
    thread.start()
    for i in range(30):
        message = {"i": i, "v": np.full(3, i, dtype=np.int64), "s": "x" * i}
        ca.send(B, "ping", message)
        got = ca.recv(B, "pong")
        assert got["i"] == i and got["s"] == "x" * i
        assert np.array_equal(got["v"], message["v"])
    ca.send(B, "big", big)
    assert np.array_equal(ca.recv(B, "big", expect=np.ndarray), big * 2)
    thread.join(20)
    assert nodes[B].mailbox.count("job1") == 31 and nodes[A].mailbox.count("job1") == 31
    assert ta.link_stats(B)["pending"] == 0
    assert nodes[B].server is not None and nodes[B].server.reserved == 0


def test_small_messages_are_written_by_the_sending_thread(
    nodes: dict[str, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an idle connection a small message costs no hand-off to another thread (the round
    trip of a many-round protocol); a large one is written by the link's thread, so ``send``
    returns at once and computing overlaps with sending."""
    ta, _ = _mesh(nodes)
    _deliver(ta, _key(0), b"open")  # the connection is up and idle
    writers: list[threading.Thread] = []
    real = streamclient._TlsConn.write

    def spy(self: streamclient._TlsConn, parts: list[bytes]) -> int:
        writers.append(threading.current_thread())
        return real(self, parts)

    monkeypatch.setattr(streamclient._TlsConn, "write", spy)
    ta.send(_key(1), b"small")
    assert writers == [threading.current_thread()]
    ta.send(_key(2), bytes(3 * 1024 * 1024))
    ta.flush(30)
    assert len(writers) == 4  # three chunks, none written by the caller
    assert all(w is not threading.current_thread() for w in writers[1:])
    assert nodes[B].mailbox.get(_key(2)) == bytes(3 * 1024 * 1024)


def test_send_many_stores_every_message(nodes: dict[str, Node]) -> None:
    ta, _ = _mesh(nodes)
    items = [(_key(i), f"payload {i}".encode()) for i in range(200)]
    ta.send_many(items)
    ta.flush(30)
    for key, payload in items:
        assert nodes[B].mailbox.get(key) == payload
    ta.send_many(items[:50])  # all duplicates now
    ta.flush(30)
    assert nodes[B].mailbox.count("job1") == 200
    ta.send_many([(_key(300), b"new"), (_key(3), b"changed")])
    with pytest.raises(ProtocolAbort, match="conflicting"):  # surfaces at the flush ...
        ta.flush(30)
    with pytest.raises(ProtocolAbort, match="conflicting"):  # ... and at every later send
        ta.send(_key(301), b"later")
    assert nodes[B].mailbox.get(_key(300)) == b"new"  # the good one of the batch is stored
    # the refusal is recorded as the peer's abort: the job's waits stop at once
    with pytest.raises(ProtocolAbort, match="refused our message"):
        nodes[A].mailbox.wait(MessageKey("job1", "comp", "t", B, A, 0), 10, CancelToken())


def test_jobs_share_one_connection_per_peer(nodes: dict[str, Node]) -> None:
    server = _serve(nodes[B], nodes[A])
    client = StreamClient(
        nodes[A].identity, {B: StreamPeer("127.0.0.1", server.port, nodes[B].pem)}
    )
    try:
        jobs = [
            StreamTransport(
                nodes[A].identity, {B: client.peers[B]}, nodes[A].mailbox, client=client
            )
            for _ in range(6)  # more jobs than a party may hold connections
        ]
        threads = [
            threading.Thread(target=t.send, args=(_key(0, job=f"job{i}"), f"m{i}".encode()))
            for i, t in enumerate(jobs)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        for t in jobs:
            t.flush(30)
            t.close()  # a shared client stays open
        _deliver(jobs[0], _key(1, job="job0"), b"after")
        assert client.link_stats(B)["connections"] == 1
        assert [nodes[B].mailbox.get(_key(0, job=f"job{i}")) for i in range(6)] == [
            f"m{i}".encode() for i in range(6)
        ]
    finally:
        client.close()
    with pytest.raises(ProtocolAbort, match="closed"):
        jobs[0].send(_key(2, job="job0"), b"closed")


def test_put_many_answers_each_message_as_put(store_url: str) -> None:
    box = Mailbox(store_url)
    try:
        quotas = Quotas(prejob_messages=3)
        first = [(_key(0), b"a"), (_key(1), b"b")]
        assert box.put_many(first, quotas=quotas, known=lambda job: False) == [True, True]
        out = box.put_many(
            [
                (_key(0), b"a"),
                (_key(1), b"other"),
                (_key(2), b"c"),
                (_key(3), b"d"),
                (_key(2), b"c"),
            ],
            quotas=quotas,
            known=lambda job: False,
        )
        assert out[0] is False and out[2] is True and out[4] is False
        assert isinstance(out[1], MessageConflict) and isinstance(out[3], QuotaExceeded)
        assert box.count() == 3 and box.get(_key(1)) == b"b"
        # one message at a time (the one-statement path)
        ok = dict(quotas=quotas, known=lambda job: False)
        assert box.put_many([(_key(0), b"a")], **ok) == [False]  # type: ignore[arg-type]
        [clash] = box.put_many([(_key(0), b"z")], **ok)  # type: ignore[arg-type]
        assert isinstance(clash, MessageConflict)
        [full] = box.put_many([(_key(5), b"e")], **ok)  # type: ignore[arg-type]
        assert isinstance(full, QuotaExceeded)
        assert box.put_many([(_key(5, job="other"), b"e")]) == [True]  # no quotas given
        assert box.count() == 4 and box.get(_key(0)) == b"a"
    finally:
        box.close()


# ---------------------------------------------------------------------------------------------
# Idempotence, sender check, pinning, limits


def test_resend_is_a_duplicate_and_other_bytes_are_refused(nodes: dict[str, Node]) -> None:
    ta, _ = _mesh(nodes)
    key = _key()
    _deliver(ta, key, b"first")
    _deliver(ta, key, b"first")  # a resend: duplicate, fine
    assert nodes[B].mailbox.count("job1") == 1
    with pytest.raises(ProtocolAbort, match="conflicting") as info:
        _deliver(ta, key, b"other")
    assert info.value.party == B
    assert nodes[B].mailbox.get(key) == b"first"
    with pytest.raises(ValueError, match="own party"):
        ta.send(MessageKey("job1", "comp", "t", B, A, 0), b"x")


def _raw_client(node: Node, server: Node) -> ssl.SSLSocket:
    """A TLS client speaking frames by hand (a misbehaving peer)."""
    assert server.server is not None
    context = client_context(node.identity, server.pem)
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", server.server.port)))
    sock.settimeout(10)
    hello = _read_header(sock)
    assert hello.kind == fr.HELLO and hello.text == server.identity.party
    return sock


def _read_exact(sock: ssl.SSLSocket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise EOFError("closed")
        data += part
    return data


def _read_header(sock: ssl.SSLSocket) -> Header:
    header_len, payload_len = fr.PREFIX.unpack(_read_exact(sock, fr.PREFIX.size))
    fr.check_lengths(header_len, payload_len, 0)
    return fr.parse_header(_read_exact(sock, header_len))


def test_one_group_commit_is_not_one_synced_frame_per_batch(nodes: dict[str, Node]) -> None:
    """Messages read one by one (a batch each) and written in one group commit are confirmed
    together: the writer's reports of one commit are collected for the event loop, which
    sends one SYNCED for what it found (two at most, if it ran between two reports), not
    one per batch."""
    nodes[B].mailbox.linger = 1.0  # every frame below (0.16 s) joins the first one's commit
    _serve(nodes[B], nodes[A])
    sock = _raw_client(nodes[A], nodes[B])
    for ref in range(1, 9):
        head = Header(fr.MSG, ref, "job1", "comp", "t", A, B, ref, 0, 1, 2)
        sock.sendall(fr.encode_head(head, 2) + b"hi")
        time.sleep(0.02)  # read as a batch of its own
    frames = [_read_header(sock)]
    while frames[-1].ref != 8:
        frames.append(_read_header(sock))
    assert all(f.kind == fr.SYNCED for f in frames)
    assert len(frames) <= 2, [f.ref for f in frames]
    assert nodes[B].mailbox.count() == 8
    sock.close()


def test_frame_with_another_sender_is_refused(nodes: dict[str, Node]) -> None:
    _serve(nodes[B], nodes[A])
    sock = _raw_client(nodes[A], nodes[B])
    for ref, (sender, receiver) in enumerate([("bank_c", B), (B, B), (A, "bank_c")], 1):
        head = Header(fr.MSG, ref, "job1", "comp", "t", sender, receiver, 0, 0, 1, 2)
        sock.sendall(fr.encode_head(head, 2) + b"hi")
        answer = _read_header(sock)
        assert (answer.kind, answer.ref, answer.code) == (fr.ACK, ref, Code.FORBIDDEN)
        assert f"cannot send as {sender!r}" in answer.text
    # the same connection still takes a well-formed frame of its own party
    head = Header(fr.MSG, 9, "job1", "comp", "t", A, B, 0, 0, 1, 2)
    sock.sendall(fr.encode_head(head, 2) + b"hi")
    # taken write-behind and answered once on disk (no ACK of its own)
    synced = _read_header(sock)
    assert (synced.kind, synced.ref) == (fr.SYNCED, 9)
    assert nodes[B].mailbox.flush(5) and nodes[B].mailbox.unwritten == 0
    sock.close()
    assert nodes[B].mailbox.count() == 1
    assert nodes[B].mailbox.get(_key()) == b"hi"


def test_oversize_frame_is_refused_by_its_prefix(nodes: dict[str, Node]) -> None:
    _serve(nodes[B], nodes[A], limits=StreamLimits(max_frame=1024))
    sock = _raw_client(nodes[A], nodes[B])
    head = Header(fr.MSG, 1, "job1", "comp", "t", A, B, 0, 0, 1, 10**9)
    raw = fr.encode_head(head, 10**9)  # declares 1 GB; not a byte of it is sent
    sock.sendall(raw)
    with pytest.raises((EOFError, ConnectionError, ssl.SSLError)):
        _read_header(sock)  # the server closed the connection without waiting for the payload
    sock.close()
    assert nodes[B].server is not None
    assert any("exceeds 1024" in reason for reason in nodes[B].server.refused)
    assert nodes[B].mailbox.count() == 0


def test_oversize_message_is_refused_at_its_first_chunk(nodes: dict[str, Node]) -> None:
    _serve(nodes[B], nodes[A], limits=StreamLimits(max_message=3 * 1024 * 1024))
    ta = _connect(nodes[A], nodes[B], chunk_size=1024 * 1024)
    with pytest.raises(DecodeError, match="larger than"):
        _deliver(ta, _key(), bytes(5 * 1024 * 1024))
    # the connection is still in step after the dropped chunks (a new job's transport on it)
    _deliver(_connect(nodes[A], nodes[B], chunk_size=1024 * 1024), _key(1), b"small")
    assert nodes[B].mailbox.get(_key(1)) == b"small"
    assert nodes[B].server is not None and nodes[B].server.reserved == 0


def test_precheck_refuses_a_large_message_before_it_is_buffered(nodes: dict[str, Node]) -> None:
    sizes: list[int] = []

    def precheck(sender: str, key: MessageKey, size: int) -> Outcome | None:
        sizes.append(size)
        return Outcome(Code.TOO_LARGE, "over the job quota") if key.seq == 0 else None

    _serve(nodes[B], nodes[A], precheck=precheck)
    ta = _connect(nodes[A], nodes[B], chunk_size=256 * 1024)
    with pytest.raises(DecodeError, match="over the job quota"):
        _deliver(ta, _key(0), bytes(3 * 1024 * 1024))
    payload = bytes(range(256)) * 8192  # 2 MiB: passes the precheck
    _deliver(_connect(nodes[A], nodes[B], chunk_size=256 * 1024), _key(1), payload)
    assert sizes == [3 * 1024 * 1024, len(payload)]
    assert not nodes[B].mailbox.has(_key(0)) and nodes[B].mailbox.get(_key(1)) == payload
    assert nodes[B].server is not None and nodes[B].server.reserved == 0


def test_unpinned_client_is_refused_at_the_handshake(
    nodes: dict[str, Node], tmp_path: Path
) -> None:
    _serve(nodes[B], nodes[A])
    stranger = _node(tmp_path / "c", A)  # claims to be bank_a with another key
    try:
        with pytest.raises(AuthenticationError, match="does not pin"):
            _deliver(_connect(stranger, nodes[B]), _key(), b"x")
        assert stranger.transport is not None
        stranger.transport.close()
    finally:
        stranger.mailbox.close()
    assert nodes[B].mailbox.count() == 0
    # and a server that is not the pinned one is refused by the client
    impostor = _node(tmp_path / "d", B)
    try:
        _serve(impostor, nodes[A])
        assert impostor.server is not None
        ta = StreamTransport(
            nodes[A].identity,
            {B: StreamPeer("127.0.0.1", impostor.server.port, nodes[B].pem)},
            nodes[A].mailbox,
            send_timeout=20,
        )
        try:
            with pytest.raises(AuthenticationError, match="not the one pinned"):
                _deliver(ta, _key(), b"x")
        finally:
            ta.close()
        assert impostor.mailbox.count() == 0
    finally:
        assert impostor.server is not None
        impostor.server.close()
        impostor.mailbox.close()


# ---------------------------------------------------------------------------------------------
# Outcomes the receiver gives


def test_outcomes_map_to_the_http_transport_errors(nodes: dict[str, Node]) -> None:
    answers: list[Outcome] = []
    calls: list[MessageKey] = []
    store = mailbox_admit(nodes[B].mailbox)

    def admit(sender: str, key: MessageKey, payload: bytes) -> Outcome:
        calls.append(key)
        return answers.pop(0) if answers else store(sender, key, payload)

    _serve(nodes[B], nodes[A], admit=admit)
    ta = _connect(nodes[A], nodes[B])
    answers[:] = [Outcome(Code.QUOTA, "full"), Outcome(Code.BUSY, "busy")]
    _deliver(ta, _key(0), b"retried")  # retried until stored
    assert nodes[B].mailbox.get(_key(0)) == b"retried" and len(calls) == 3
    answers[:] = [Outcome(Code.ENDED)]
    _deliver(ta, _key(1), b"moot")  # the job has finished there: not an error
    cases: list[tuple[Code, type[Exception], str]] = [
        (Code.FORBIDDEN, AuthenticationError, "refused us"),
        (Code.BAD, DecodeError, "rejected"),
        (Code.TOO_LARGE, DecodeError, "rejected"),
        (Code.NOT_STORED, ProtocolAbort, "internal error"),
        (Code.CONFLICT, ProtocolAbort, "conflicting"),
    ]
    for seq, (code, error, text) in enumerate(cases, 2):
        answers[:] = [Outcome(code, "why")]
        with pytest.raises(error, match=text):  # one transport per job: a refusal is final
            _deliver(_connect(nodes[A], nodes[B]), _key(seq, job=f"case{seq}"), b"x")
        assert (nodes[A].mailbox.aborted(f"case{seq}") or ("", ""))[0] == B
    answers[:] = [Outcome(Code.FAILED, "it broke")]
    with pytest.raises(ProtocolAbort, match="it broke"):
        _deliver(ta, _key(20, job="job2"), b"x")
    assert nodes[A].mailbox.aborted("job2") == (B, "it broke")


def test_abort_reaches_the_waiting_peer(nodes: dict[str, Node]) -> None:
    ta, tb = _mesh(nodes)
    ca = Channel(ta, job="job1", component="comp", party=A, peers=[B])
    cb = Channel(tb, job="job1", component="comp", party=B, peers=[A], default_timeout=60)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            cb.recv(A, "never")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    ca.abort("boom")
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome[0], ProtocolAbort) and "boom" in str(outcome[0])
    assert outcome[0].party == A
    with pytest.raises(ProtocolAbort, match="aborted the job"):  # and later waits stop at once
        cb.recv(A, "later")


# ---------------------------------------------------------------------------------------------
# Cuts and stalls


class CuttingProxy:
    """A TCP proxy that closes its first connection after forwarding ``cut_after`` bytes from
    the client (a connection cut in the middle of a payload); later connections pass."""

    def __init__(self, upstream: int, cut_after: int) -> None:
        self.upstream = upstream
        self.cut_after = cut_after
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.accepted = 0
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            server = socket.create_connection(("127.0.0.1", self.upstream))
            limit = self.cut_after if self.accepted == 1 else None
            threading.Thread(target=self._pump, args=(client, server, limit), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        moved = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and moved + len(data) > limit:
                    dst.sendall(data[: limit - moved])
                    self.cut.set()
                    break
                dst.sendall(data)
                moved += len(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_cut_in_the_middle_of_a_large_payload_resumes_exactly_once(
    nodes: dict[str, Node],
) -> None:
    stored: list[tuple[MessageKey, bool]] = []
    store = mailbox_admit(nodes[B].mailbox)

    def admit(sender: str, key: MessageKey, payload: bytes) -> Outcome:
        outcome = store(sender, key, payload)
        stored.append((key, outcome.code == Code.STORED))
        return outcome

    server = _serve(nodes[B], nodes[A], admit=admit)
    proxy = CuttingProxy(server.port, cut_after=int(2.5 * 1024 * 1024))
    try:
        ta = _connect(nodes[A], nodes[B], port=proxy.port, chunk_size=1024 * 1024)
        payload = np.random.default_rng(1).bytes(8 * 1024 * 1024)
        _deliver(ta, _key(), payload)
        assert proxy.cut.is_set()
        assert ta.link_stats(B)["connections"] == 2  # cut once, resumed on a new connection
        assert nodes[B].mailbox.get(_key()) == payload
        assert stored == [(_key(), True)]  # the partial copy was never admitted
        assert nodes[B].mailbox.count() == 1
        assert server.reserved == 0  # the partial message's buffer was released
    finally:
        proxy.close()


def test_a_receiver_that_stops_reading_bounds_the_sender(
    nodes: dict[str, Node],
) -> None:
    """A peer that completes the handshake, says HELLO and then reads nothing: the sender's
    write buffer stays under its high-water mark plus one chunk, and send times out."""
    context = server_context(nodes[B].identity, [nodes[A].pem])
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    release = threading.Event()

    def stall() -> None:
        conn, _ = listener.accept()
        tls = context.wrap_socket(conn, server_side=True)
        tls.sendall(fr.encode_head(Header(fr.HELLO, 0, text=B), 0))
        release.wait(60)
        tls.close()

    thread = threading.Thread(target=stall, daemon=True)
    thread.start()
    chunk = 1024 * 1024
    nodes[B].server = None
    ta = StreamTransport(
        nodes[A].identity,
        {B: StreamPeer("127.0.0.1", port, nodes[B].pem)},
        nodes[A].mailbox,
        send_timeout=3.0,
        chunk_size=chunk,
        heartbeat=1000.0,
        idle_timeout=2000.0,
        max_unsynced=64 * 1024 * 1024,
    )
    nodes[A].transport = ta
    try:
        ta.send(_key(), bytes(128 * 1024 * 1024))  # taken (pipelined) ...
        with pytest.raises(PeerTimeout):  # ... but never delivered
            ta.flush(3.0)
        with pytest.raises(PeerTimeout):  # more than the bound of held bytes: send waits
            ta.send(_key(1), bytes(1024))
        stats = ta.link_stats(B)
        assert 0 < stats["max_buffered"] <= 1024 * 1024 + chunk + fr.MAX_HEADER + 8
        assert stats["pending"] == 1  # held (the caller's bytes, not a copy) for a resend
    finally:
        release.set()
        listener.close()
        thread.join(10)


# ---------------------------------------------------------------------------------------------
# A quick look at the speed (printed, not asserted)


def test_throughput_sanity(nodes: dict[str, Node], capsys: pytest.CaptureFixture[str]) -> None:
    ta, tb = _mesh(nodes)
    ca = Channel(ta, job="speed", component="comp", party=A, peers=[B], default_timeout=60)
    cb = Channel(tb, job="speed", component="comp", party=B, peers=[A], default_timeout=60)
    rounds, small, bulk = 300, 2000, 16
    block = np.random.default_rng(0).bytes(4 * 1024 * 1024)

    def peer() -> None:
        for _ in range(rounds):
            cb.send(A, "pong", cb.recv(A, "ping"))
        for _ in range(small):
            cb.recv(A, "small")
        for _ in range(bulk):
            cb.recv(A, "bulk")
        cb.send(A, "done", True)

    thread = threading.Thread(target=peer)
    thread.start()
    rtts = []
    for i in range(rounds):
        start = time.perf_counter()
        ca.send(B, "ping", i)
        assert ca.recv(B, "pong") == i
        rtts.append(time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(small):
        ca.send(B, "small", i)
    small_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(bulk):
        ca.send(B, "bulk", block)
    bulk_s = time.perf_counter() - start
    assert ca.recv(B, "done") is True
    thread.join(60)
    with capsys.disabled():
        print(
            f"\nstream via Channel (SQLite mailbox, one sender thread): round trip median "
            f"{statistics.median(rtts) * 1000:.2f} ms, {small / small_s:,.0f} small msg/s "
            f"(each until stored), bulk {bulk * len(block) / bulk_s / 1e6:,.0f} MB/s"
        )


def test_a_client_that_reads_no_acks_stops_the_server_reading(nodes: dict[str, Node]) -> None:
    """A client that writes messages and never reads the ACKs: the server stops reading that
    connection once its ACKs back up (its thread blocks in the write), so the client's writes
    block instead of the server buffering without bound."""

    def admit(sender: str, key: MessageKey, payload: bytes) -> Outcome:
        return Outcome(Code.STORED)  # fast, so the ACKs are what piles up

    server = _serve(nodes[B], nodes[A], admit=admit)
    context = client_context(nodes[A].identity, nodes[B].pem)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # little room for ACKs here
    raw.connect(("127.0.0.1", server.port))
    sock = context.wrap_socket(raw)
    sock.settimeout(10)
    assert _read_header(sock).kind == fr.HELLO
    sock.settimeout(2)
    sent = 0
    with pytest.raises(TimeoutError):
        while sent < 5_000_000:  # ~500 MB of frames: far beyond any buffer on the way
            burst = b"".join(
                fr.encode_head(Header(fr.MSG, sent + i, "j", "c", "t", A, B, 0, 0, 1, 64), 64)
                + bytes(64)
                for i in range(1000)
            )
            sock.sendall(burst)
            sent += 1000
    [conn] = list(server.connections[A])
    # the connection's thread is blocked writing ACKs (so it reads nothing more): what it
    # holds is the one read's batch it is answering
    assert conn.sending
    assert sum(len(work.payload) for work in conn.queue) <= 256 * 1024  # (one read at most)
    sock.close()


def test_a_read_of_a_connection_with_nothing_to_read_returns_at_once(
    nodes: dict[str, Node],
) -> None:
    """A reader that finds the socket empty (another reader took what woke it) is answered
    "nothing" at once: it reads the descriptor without waiting (the socket is non-blocking),
    so it never holds the connection's lock for the socket's timeout."""
    _serve(nodes[B], nodes[A])
    sock = _raw_client(nodes[A], nodes[B])
    conn = _conn_of(nodes[B].server, A)
    with conn.rlock:  # (the connection's thread cannot read meanwhile)
        answer: list[bool] = []
        reader = threading.Thread(target=lambda: answer.append(conn._read_available()))
        reader.start()
        reader.join(2.0)  # (a blocking read would wait here for the socket's 60 s)
        assert answer == [False]
        head = fr.encode_head(Header(fr.MSG, 1, "job1", "comp", "t", A, B, 0, 0, 1, 2), 2)
        sock.sendall(head + b"hi")  # (one TLS record: one read brings it all)
        deadline = time.monotonic() + 10
        while not conn._read_available():  # the frame arrives: read and admitted here
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert nodes[B].mailbox.flush(10)
    assert nodes[B].mailbox.get(_key(0)) == b"hi"
    sock.close()


def test_a_silent_connection_is_dropped(nodes: dict[str, Node]) -> None:
    _serve(nodes[B], nodes[A], limits=StreamLimits(idle_timeout=0.5))
    sock = _raw_client(nodes[A], nodes[B])
    with pytest.raises((EOFError, ConnectionError, ssl.SSLError)):
        _read_header(sock)  # nothing sent: the server closes it after its idle timeout
    sock.close()
    assert nodes[B].server is not None
    assert any("sent nothing" in reason for reason in nodes[B].server.refused)


def test_a_new_connection_replaces_the_oldest_beyond_the_limit(nodes: dict[str, Node]) -> None:
    server = _serve(nodes[B], nodes[A], limits=StreamLimits(connections_per_party=2))
    socks = [_raw_client(nodes[A], nodes[B]) for _ in range(3)]  # each got its HELLO
    with pytest.raises((EOFError, ConnectionError, ssl.SSLError)):
        _read_header(socks[0])  # the oldest was closed
    for ref, sock in enumerate(socks[1:], 1):  # the two newest still work
        head = Header(fr.MSG, ref, "job1", "comp", "t", A, B, ref, 0, 1, 1)
        sock.sendall(fr.encode_head(head, 1) + b"x")
        answer = _read_header(sock)
        assert (answer.kind, answer.ref) == (fr.SYNCED, ref)
    for sock in socks:
        sock.close()
    assert any("more than 2 connections" in reason for reason in server.refused)


_SERVER_SCRIPT = """
import sys, threading
from pathlib import Path
from privfin.federation.mailbox import Mailbox
from privfin.federation.stream import StreamServer, mailbox_admit, mailbox_admit_many
from privfin.federation.tls import Identity
root, port = Path(sys.argv[1]), int(sys.argv[2])
me = Identity("bank_b", root / "bank_b" / "bank_b.crt", root / "bank_b" / "bank_b.key")
box = Mailbox(root / "bank_b.sqlite")
trusted = {"bank_a": (root / "bank_a" / "bank_a.crt").read_bytes()}
server = StreamServer(
    me, trusted, mailbox_admit(box), port=port, admit_many=mailbox_admit_many(box)
).start()
print(server.port, flush=True)
threading.Event().wait()
"""


def _start_server_process(root: Path, port: int) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER_SCRIPT, str(root), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.isdigit(), f"the server process did not start ({proc.poll()})"
    return proc, int(line)


def test_a_receiver_killed_mid_stream_loses_nothing(tmp_path: Path) -> None:
    """kill -9 of the receiving process while messages stream in. The receiver takes messages
    write-behind: a message whose send had returned is on its disk or still held by the
    sender (ACCEPTED, not SYNCED yet); after a restart on the same port the sender resends
    what the receiver had not written and every message is stored exactly once."""
    a = _node(tmp_path, A)
    b_identity = create_identity(B, tmp_path / B)
    proc, port = _start_server_process(tmp_path, 0)
    procs = [proc]
    acked: list[int] = []  # on the receiver's disk (flushed)
    handed: list[int] = []  # given to send
    failure: list[BaseException] = []
    n, batch = 3000, 10
    payload = [f"message {i}".encode() * 20 for i in range(n)]
    transport = StreamTransport(
        a.identity,
        {B: StreamPeer("127.0.0.1", port, b_identity.cert.read_bytes())},
        a.mailbox,
        send_timeout=60,
    )

    def send() -> None:
        try:
            for start in range(0, n, batch):
                seqs = range(start, start + batch)
                transport.send_many([(_key(i), payload[i]) for i in seqs])
                handed.extend(seqs)
                transport.flush(60)  # paced by the receiver's disk: killed mid-stream
                acked.extend(seqs)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=send)
    try:
        thread.start()
        while len(acked) < 300 and thread.is_alive():
            time.sleep(0.01)
        proc.kill()  # kill -9, in the middle of the stream
        proc.wait(10)
        before, given = list(acked), set(handed)
        inbox = Mailbox(tmp_path / f"{B}.sqlite")
        try:
            written = [i for i in range(n) if inbox.has(_key(i))]
        finally:
            inbox.close()
        assert 0 < len(before) < n  # killed in the middle of the stream
        assert set(before) <= set(written)  # what a flush confirmed survived the kill
        assert set(written) <= given  # and nothing is on disk that was not sent
        proc, _ = _start_server_process(tmp_path, port)
        procs.append(proc)
        thread.join(120)
        assert not thread.is_alive() and not failure, failure
        transport.flush(60)  # every message the new process accepted is on its disk
        inbox = Mailbox(tmp_path / f"{B}.sqlite")
        try:
            assert inbox.count("job1") == n
            assert all(inbox.get(_key(i)) == payload[i] for i in range(n))
        finally:
            inbox.close()
        assert transport.link_stats(B)["connections"] >= 2
    finally:
        transport.close()
        for started in procs:
            started.kill()
            started.wait(10)
            if started.stdout is not None:
                started.stdout.close()
        a.mailbox.close()


def test_a_peer_that_answers_no_heartbeat_is_reconnected(nodes: dict[str, Node]) -> None:
    """A peer that says HELLO and then neither reads nor answers PINGs: the client drops the
    connection after ``idle_timeout`` and opens a new one (where it writes the frame again)."""
    context = server_context(nodes[B].identity, [nodes[A].pem])
    listener = socket.create_server(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    held: list[ssl.SSLSocket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)  # closed by the test, whatever happens below
            try:
                tls = context.wrap_socket(conn, server_side=True)
                held.append(tls)
                tls.sendall(fr.encode_head(Header(fr.HELLO, 0, text=B), 0))
            except OSError:
                continue

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    ta = StreamTransport(
        nodes[A].identity,
        {B: StreamPeer("127.0.0.1", port, nodes[B].pem)},
        nodes[A].mailbox,
        send_timeout=3.0,
        heartbeat=0.1,
        idle_timeout=0.4,
    )
    nodes[A].transport = ta
    try:
        ta.send(_key(), b"never answered")
        with pytest.raises(PeerTimeout):
            ta.flush(3.0)
        assert ta.link_stats(B)["connections"] >= 2
    finally:
        ta.close()
        listener.close()
        server.join(5)
        for sock in held:
            sock.close()


# ---------------------------------------------------------------------------------------------
# A waiting job reads its peer's connection itself (StreamServer.pump)


def _pumping(nodes: dict[str, Node]) -> tuple[StreamTransport, StreamTransport]:
    """Both directions, each receiver's ``recv`` reading its sender's connection."""
    _serve(nodes[A], nodes[B])
    _serve(nodes[B], nodes[A])
    ta = _connect(nodes[A], nodes[B], server=nodes[A].server)
    tb = _connect(nodes[B], nodes[A], server=nodes[B].server)
    return ta, tb


def _reading_waiter(
    t: StreamTransport, conn: Any, timeout: float, key: MessageKey | None = None
) -> tuple[threading.Thread, list[Any], list[float]]:
    """A thread waiting ``timeout`` s for ``key`` (default ``_key(0)``) through ``t``, started
    and seen reading ``conn``; what it got or raised, and how long it waited, are filled in
    when it ends."""
    got: list[Any] = []
    took: list[float] = []

    def wait() -> None:
        start = time.monotonic()
        try:
            got.append(t.recv(key or _key(0), timeout, CancelToken()))
        except BaseException as exc:  # (the test inspects it)
            got.append(exc)
        took.append(time.monotonic() - start)

    waiter = threading.Thread(target=wait)
    waiter.start()
    deadline = time.monotonic() + 5
    while not conn.pumping:
        assert time.monotonic() < deadline, "the waiting job did not read the connection"
        time.sleep(0.001)
    return waiter, got, took


def _conn_of(server: StreamServer | None, party: str) -> Any:
    assert server is not None
    deadline = time.monotonic() + 10
    while not server.connections.get(party):
        assert time.monotonic() < deadline, f"no connection of {party}"
        time.sleep(0.01)
    return next(reversed(server.connections[party]))


def test_a_waiting_job_reads_its_peers_connection(nodes: dict[str, Node]) -> None:
    """Ping-pong (small and chunked) where each receiving job thread reads the connection
    itself: every message arrives, the connection's thread stood down meanwhile, and once the
    jobs stop reading it takes the messages again (within its stand-down period)."""
    ta, tb = _pumping(nodes)
    ca = Channel(ta, job="job1", component="comp", party=A, peers=[B], default_timeout=20)
    cb = Channel(tb, job="job1", component="comp", party=B, peers=[A], default_timeout=20)
    big = np.arange(300_000, dtype=np.float64)  # 2.4 MB: chunked

    def echo() -> None:
        for _ in range(200):
            cb.send(A, "pong", cb.recv(A, "ping"))
        cb.send(A, "big", cb.recv(A, "big", expect=np.ndarray) + 1)

    thread = threading.Thread(target=echo)
    thread.start()
    for i in range(200):
        ca.send(B, "ping", i)
        assert ca.recv(B, "pong") == i
    ca.send(B, "big", big)
    assert np.array_equal(ca.recv(B, "big", expect=np.ndarray), big + 1)
    thread.join(20)
    conn = _conn_of(nodes[B].server, A)
    assert conn.pumps >= 200  # B's job thread read A's connection
    # nobody waits now: the connection's thread takes the next message by itself
    ta.send(MessageKey("job1", "comp", "late", A, B, 0), b"late")
    deadline = time.monotonic() + 5
    while not nodes[B].mailbox.has(MessageKey("job1", "comp", "late", A, B, 0)):
        assert time.monotonic() < deadline, "the connection's thread did not resume reading"
        time.sleep(0.005)
    assert not conn.down and conn.pumping == 0
    ta.flush(20)


def test_two_jobs_read_one_connection_at_once(nodes: dict[str, Node]) -> None:
    """Two job threads of B wait for A's messages of two jobs on A's one connection; each
    gets its own, whichever of them read it."""
    ta, tb = _pumping(nodes)
    got: dict[str, list[object]] = {"job1": [], "job2": []}

    def wait(job: str) -> None:
        ch = Channel(tb, job=job, component="comp", party=B, peers=[A], default_timeout=20)
        for _ in range(50):
            got[job].append(ch.recv(A, "x"))

    threads = [threading.Thread(target=wait, args=(job,)) for job in got]
    for thread in threads:
        thread.start()
    senders = {
        job: Channel(ta, job=job, component="comp", party=A, peers=[B], default_timeout=20)
        for job in got
    }
    for i in range(50):
        for job, ch in senders.items():
            ch.send(B, "x", f"{job}-{i}")
    for thread in threads:
        thread.join(30)
    for job, values in got.items():
        assert values == [f"{job}-{i}" for i in range(50)]


def test_a_waiting_job_survives_a_cut_of_the_connection_it_reads(nodes: dict[str, Node]) -> None:
    """The connection a job thread reads is cut: the job goes on waiting (no error), the
    sender reconnects and resends, and the message arrives through the new connection."""
    ta, tb = _pumping(nodes)
    ta.send(_key(0), b"first")  # A's connection to B exists
    assert tb.recv(_key(0), 10, CancelToken()) == b"first"
    conn = _conn_of(nodes[B].server, A)
    waiter, got, _ = _reading_waiter(tb, conn, 20, _key(1))  # (it reads the connection now)
    conn.close()  # cut from the server's side
    ta.send(_key(1), b"second")
    waiter.join(20)
    assert got == [b"second"]
    assert _conn_of(nodes[B].server, A) is not conn
    ta.flush(20)


def test_a_malformed_frame_read_by_a_waiting_job_drops_only_the_connection(
    nodes: dict[str, Node],
) -> None:
    """A deviating peer sends a malformed frame while B's job thread reads its connection:
    the connection is dropped and the refusal recorded, as when the connection's thread reads
    it; the job itself only goes on waiting (and times out here: nothing valid came)."""
    _serve(nodes[A], nodes[B])
    _serve(nodes[B], nodes[A])
    tb = _connect(nodes[B], nodes[A], server=nodes[B].server)
    sock = _raw_client(nodes[A], nodes[B])
    conn = _conn_of(nodes[B].server, A)
    waiter, errors, _ = _reading_waiter(tb, conn, 1.0)
    sock.sendall(fr.PREFIX.pack(fr.MAX_HEADER + 1, 0))  # a header length beyond the limit
    waiter.join(10)
    assert len(errors) == 1 and isinstance(errors[0], PeerTimeout)
    assert conn.closed
    assert nodes[B].server is not None
    assert any("header length" in reason for reason in nodes[B].server.refused)
    with pytest.raises((EOFError, ConnectionError, ssl.SSLError)):
        _read_header(sock)
    sock.close()


def test_connections_that_never_authenticate_are_released(
    nodes: dict[str, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bare TCP connections (no TLS at all) hold nothing once closed, and at most
    ``_MAX_HANDSHAKES`` wait for their handshake at once: beyond, a connection is closed at
    once and the refusal recorded."""
    monkeypatch.setattr(stream_module, "_MAX_HANDSHAKES", 3)
    server = _serve(nodes[B], nodes[A])
    for _ in range(20):
        socket.create_connection(("127.0.0.1", server.port)).close()
    deadline = time.monotonic() + 10
    while server._open:
        assert time.monotonic() < deadline, f"{len(server._open)} connections still held"
        time.sleep(0.01)
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    while len(server._open) < 3:  # (accepted: each waits in its handshake)
        assert time.monotonic() < deadline + 10, f"{len(server._open)} of 3 accepted"
        time.sleep(0.01)
    extra = socket.create_connection(("127.0.0.1", server.port))
    extra.settimeout(5)
    assert extra.recv(1) == b""  # closed at once
    assert any("not authenticated" in reason for reason in server.refused)
    for sock in [*held, extra]:
        sock.close()
    sock = _raw_client(nodes[A], nodes[B])  # an authenticated client still gets in
    sock.close()


def test_a_waiting_job_never_blocks_on_a_client_that_reads_nothing(nodes: dict[str, Node]) -> None:
    """A deviating client floods frames that are answered by ACKs and reads none of them,
    while B's job thread reads its connection: what the socket does not take is left to the
    connection's thread, so the job's wait ends at its own deadline, not the connection's."""
    _serve(nodes[A], nodes[B])
    _serve(nodes[B], nodes[A])
    tb = _connect(nodes[B], nodes[A], server=nodes[B].server)
    context = client_context(nodes[A].identity, nodes[B].pem)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert nodes[B].server is not None
    raw.connect(("127.0.0.1", nodes[B].server.port))
    sock = context.wrap_socket(raw)
    sock.settimeout(10)
    assert _read_header(sock).kind == fr.HELLO
    conn = _conn_of(nodes[B].server, A)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # ACKs back up soon
    waiter, outcome, took = _reading_waiter(tb, conn, 2.0)
    sock.settimeout(0.5)
    # frames claiming another sender: each is refused with an ACK (403), none is stored
    burst = b"".join(
        fr.encode_head(Header(fr.MSG, i, "job1", "comp", "t", "mallory", B, 0, 0, 1, 8), 8)
        + bytes(8)
        for i in range(2000)
    )
    with contextlib.suppress(TimeoutError, OSError):
        for _ in range(50):  # up to ~3.5 MB of frames, ~10 MB of ACKs nobody reads
            sock.sendall(burst)
    waiter.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], PeerTimeout)
    assert took[0] < 8, f"the job waited {took[0]:.1f} s"
    sock.close()
