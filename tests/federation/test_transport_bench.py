"""The framing of the streaming-transport prototype in benchmarks/transport.py (issue [11],
item 1) is correct: frames round-trip, limits are enforced before a payload is read, malformed
headers and frames from the wrong party end the connection, and every receiver (asyncio
streams, BufferedProtocol, blocking socket) answers the same over privfin's mutual TLS.

Correctness only: the benchmark's figures are not asserted here (no timed tests).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import socket
import ssl
import struct
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest

from privfin.federation.tls import client_context, create_identity, server_context

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "transport.py"


def _load() -> ModuleType:
    saved = list(sys.path)  # the script puts benchmarks/ on sys.path for its _harness
    try:
        spec = importlib.util.spec_from_file_location("_bench_transport", _PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # msgspec and dataclasses resolve names through it
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path[:] = saved


T = _load()


def _header(kind: int, seq: int = 1, sender: str = "bank_a", receiver: str = "bank_b") -> Any:
    return T.FrameHeader(kind, "job1", "comp", "tag", sender, receiver, seq)


@pytest.mark.parametrize("size", [0, 1, 64, 70_000, 4 << 20])
def test_frame_round_trip(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    header = _header(T.DATA, seq=2**40)
    got_header, got = T.decode_frame(T.encode_frame(header, payload))
    assert got_header == header
    assert got == payload


def test_read_frame_reads_consecutive_frames_then_the_end() -> None:
    frames = [(_header(T.PING, 1), b"x" * 64), (_header(T.DATA, 2), b""), (_header(T.ACK, 3), b"z")]

    async def run() -> list[Any]:
        reader = asyncio.StreamReader()
        for header, payload in frames:
            reader.feed_data(T.encode_frame(header, payload))
        reader.feed_eof()
        out = [await T.read_frame(reader) for _ in frames]
        with pytest.raises(asyncio.IncompleteReadError):
            await T.read_frame(reader)
        return out

    assert asyncio.run(run()) == frames


def _prefix(header_len: int, payload_len: int) -> bytes:
    return struct.pack(">II", header_len, payload_len)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (_prefix(0, 0), "header length 0"),
        (_prefix(T.MAX_HEADER + 1, 0), "header length"),
        (_prefix(10, T.MAX_PAYLOAD + 1), "exceeds"),
    ],
    ids=["no-header", "long-header", "long-payload"],
)
def test_lengths_are_refused_before_reading_further(raw: bytes, why: str) -> None:
    async def run() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(raw)  # no header or payload follows: a check after reading would hang
        with pytest.raises(T.FrameError, match=why):
            await asyncio.wait_for(T.read_frame(reader), 5)

    asyncio.run(run())


def test_frame_head_refuses_an_oversized_payload_and_header() -> None:
    with pytest.raises(T.FrameError, match="send chunks"):
        T.frame_head(_header(T.DATA), T.MAX_PAYLOAD + 1)
    long = T.FrameHeader(T.DATA, "j" * 2000, "c", "t", "a", "b", 0)
    with pytest.raises(T.FrameError, match="header of"):
        T.frame_head(long, 0)


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (msgspec.msgpack.encode([1, "j", "c", "t", "a"]), "malformed"),
        (msgspec.msgpack.encode({"kind": 1}), "malformed"),
        (msgspec.msgpack.encode([1, "j", "c", "t", "a", "b", "7"]), "malformed"),
        (b"\xc1", "malformed"),
        (msgspec.msgpack.encode([99, "j", "c", "t", "a", "b", 0]), "unknown frame kind"),
        (msgspec.msgpack.encode([1, "j", "c", "t", "a", "b", -1]), "out of range"),
    ],
    ids=["short", "map", "str-seq", "not-msgpack", "unknown-kind", "negative-seq"],
)
def test_malformed_headers_are_refused(header: bytes, why: str) -> None:
    frame = _prefix(len(header), 0) + header
    with pytest.raises(T.FrameError, match=why):
        T.decode_frame(frame)


def test_decode_frame_refuses_a_length_mismatch() -> None:
    frame = T.encode_frame(_header(T.DATA), b"abc")
    for bad in (frame[:-1], frame + b"\0", frame[:5]):
        with pytest.raises(T.FrameError):
            T.decode_frame(bad)


# ---------------------------------------------------------------------------------------------
# FrameProtocol, driven directly with the bytes split at every kind of boundary
# ---------------------------------------------------------------------------------------------


class _FakeSSL:
    def __init__(self, der: bytes) -> None:
        self.der = der

    def getpeercert(self, binary_form: bool = False) -> bytes:
        return self.der


class _FakeTransport(asyncio.Transport):
    def __init__(self, der: bytes) -> None:
        super().__init__()
        self.ssl = _FakeSSL(der)
        self.out = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.ssl if name == "ssl_object" else default

    def write(self, data: Any) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True


def _feed(proto: Any, data: bytes, step: int) -> None:
    pos = 0
    while pos < len(data):
        buf = proto.get_buffer(-1)
        n = min(step, len(buf), len(data) - pos)
        assert n > 0
        buf[:n] = data[pos : pos + n]
        proto.buffer_updated(n)
        pos += n


def _answers(out: bytes) -> list[tuple[Any, bytes]]:
    async def run() -> list[tuple[Any, bytes]]:
        reader = asyncio.StreamReader()
        reader.feed_data(out)
        reader.feed_eof()
        got = []
        while True:
            try:
                got.append(await T.read_frame(reader))
            except asyncio.IncompleteReadError:
                return got

    return asyncio.run(run())


DER = b"pinned certificate"
KNOWN = {hashlib.sha256(DER).hexdigest(): "bank_a"}


@pytest.mark.parametrize("step", [1, 7, 1000, 65_536, 1 << 30])
def test_frame_protocol_parses_across_any_read_boundary(step: int) -> None:
    big = bytes(range(256)) * 1200  # 300 KiB: above half the staging buffer, read in place
    stream = b"".join(
        [
            T.encode_frame(_header(T.PING, 1), b"p" * 64),
            T.encode_frame(_header(T.DATA, 2), b"d" * 100),
            T.encode_frame(_header(T.DATA, 3), b""),
            T.encode_frame(_header(T.PING, 4), big),
            T.encode_frame(_header(T.DATA, 5), big[:100_000]),  # below half: staged
            T.encode_frame(_header(T.FLUSH, 6), b""),
        ]
    )
    server = T.FrameServer("bank_b", KNOWN)
    proto = T.FrameProtocol(server)
    transport = _FakeTransport(DER)
    proto.connection_made(transport)
    _feed(proto, stream, step)
    answers = _answers(bytes(transport.out))
    assert [(h.kind, h.seq, h.sender, h.receiver) for h, _ in answers] == [
        (T.PONG, 1, "bank_b", "bank_a"),
        (T.PONG, 4, "bank_b", "bank_a"),
        (T.ACK, 3, "bank_b", "bank_a"),  # three DATA frames received
    ]
    assert answers[0][1] == b"p" * 64
    assert answers[1][1] == big
    assert server.received == 3
    assert server.refused == []
    assert not transport.closed


@pytest.mark.parametrize(
    ("der", "frame", "why"),
    [
        (b"another certificate", T.encode_frame(_header(T.PING), b""), "not pinned"),
        (DER, T.encode_frame(_header(T.PING, sender="bank_c"), b""), "sent a frame as bank_c"),
        (DER, T.encode_frame(_header(T.PING, receiver="bank_c"), b""), "to bank_c"),
        (DER, T.encode_frame(_header(T.PONG), b""), "unexpected frame kind"),
        (DER, _prefix(10, T.MAX_PAYLOAD + 1), "exceeds"),
    ],
    ids=["unpinned", "wrong-sender", "wrong-receiver", "unexpected-kind", "oversize"],
)
def test_frame_protocol_drops_the_connection(der: bytes, frame: bytes, why: str) -> None:
    server = T.FrameServer("bank_b", KNOWN)
    proto = T.FrameProtocol(server)
    transport = _FakeTransport(der)
    proto.connection_made(transport)
    _feed(proto, frame + T.encode_frame(_header(T.PING, 9), b"after"), 1 << 30)
    assert transport.closed
    assert len(server.refused) == 1 and why in server.refused[0]
    assert bytes(transport.out) == b""  # nothing answered, not even the frame after


# ---------------------------------------------------------------------------------------------
# The three receivers over privfin's mutual TLS, in this process
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["streams", "buffered", "blocking"])
def test_receivers_answer_over_mutual_tls(tmp_path: Path, kind: str) -> None:
    a = create_identity("bank_a", tmp_path / "bank_a")
    b = create_identity("bank_b", tmp_path / "bank_b")
    a_pem, b_pem = a.cert.read_bytes(), b.cert.read_bytes()
    server = T.FrameServer("bank_b", {T._pem_fingerprint(a_pem): "bank_a"})
    s_ctx = server_context(b, [a_pem])
    c_ctx = client_context(a, b_pem)
    payload = bytes(range(256)) * 4096  # 1 MiB

    async def exchange(port: int) -> None:
        client = await T.TlsClient.connect(port, c_ctx)
        assert await client.ping(b"hello") == b"hello"
        assert await client.ping(payload) == payload
        before = await client.flush()
        for _ in range(50):
            await client.send(b"m" * 64)
        await client.hold(20)  # the receiver stops reading for 20 ms, then goes on
        await client.send(payload)
        assert await client.flush() - before == 51
        await client.close()

    async def run_async() -> None:
        loop = asyncio.get_running_loop()
        if kind == "streams":
            srv = await asyncio.start_server(
                server.handle, "127.0.0.1", 0, ssl=s_ctx, limit=T.MAX_PAYLOAD + T.MAX_HEADER
            )
        else:
            srv = await loop.create_server(
                lambda: T.FrameProtocol(server), "127.0.0.1", 0, ssl=s_ctx
            )
        async with srv:
            await exchange(srv.sockets[0].getsockname()[1])

    if kind != "blocking":
        asyncio.run(run_async())
    else:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(30)

            def accept() -> None:
                conn, _ = listener.accept()
                conn.settimeout(30)
                server.handle_blocking(s_ctx.wrap_socket(conn, server_side=True))

            thread = threading.Thread(target=accept, daemon=True)
            thread.start()
            asyncio.run(exchange(listener.getsockname()[1]))
            thread.join(30)
            assert not thread.is_alive()
    assert server.refused == []
    assert server.received == 51


def test_an_unpinned_client_gets_no_connection(tmp_path: Path) -> None:
    a = create_identity("bank_a", tmp_path / "bank_a")
    b = create_identity("bank_b", tmp_path / "bank_b")
    stranger = create_identity("bank_a", tmp_path / "stranger")  # same name, another key
    server = T.FrameServer("bank_b", {T._pem_fingerprint(a.cert.read_bytes()): "bank_a"})
    s_ctx = server_context(b, [a.cert.read_bytes()])

    async def run() -> None:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(lambda: T.FrameProtocol(server), "127.0.0.1", 0, ssl=s_ctx)
        async with srv:
            port = srv.sockets[0].getsockname()[1]
            c_ctx = client_context(stranger, b.cert.read_bytes())
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                client = await T.TlsClient.connect(port, c_ctx)
                await asyncio.wait_for(client.ping(b"x"), 10)  # TLS 1.3: refused after connect

    asyncio.run(run())
    assert server.received == 0
