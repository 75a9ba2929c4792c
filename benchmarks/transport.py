"""Transport between two processes over mutual TLS: the HTTP path of today against two streaming
candidates (issue [11], item 1: the measurement spike the streaming transport is designed from).

Three transports, each between two separate OS processes on loopback, each with mutual TLS
using privfin identities (ECDSA P-256 leaves made by ``create_identity``, each side pinning
exactly the other's certificate):

(a) ``http``: the current path. Two real node processes (``cluster_up``, mode development) run
    the ``ping`` diagnostic component as a job: round-trip time of 64-byte messages (median,
    p90) and a bulk rate (``ping`` with 8 MiB messages, each round trip moves 2 × 8 MiB);
    plus the one-way rate of 64-byte messages sent one after the other by ``HttpTransport``
    from this process to a node, each until it is durably stored in the node's mailbox.
(b) ``tls``: one long-lived TLS stream (the node's own ``server_context`` /
    ``client_context``), length-prefixed frames with a msgspec header carrying the message key
    (kind, job, component, tag, sender, receiver, seq). The server process maps the client's
    certificate to a party by fingerprint, as the node does, and refuses a frame whose sender is
    another party. Ping-pong of 64-byte payloads, one-way rate of 64-byte messages pipelined
    (written back to back with ``drain`` back-pressure, one acknowledgement at the end), and bulk
    MB/s with 4 MiB frames. The client is always asyncio streams; the receiving server comes in
    three kinds, since receiving is where the costs differ: ``tls`` (asyncio ``StreamReader``),
    ``tls-buffered`` (an ``asyncio.BufferedProtocol`` that decrypts straight into a staging
    buffer, or into the payload's own buffer for a large frame) and ``tls-blocking`` (a
    blocking ``ssl.SSLSocket`` read in a thread: no event loop; the practical floor).
(c) ``grpc``: gRPC bidirectional streaming (``grpcio``, ``grpc.aio``) with mutual TLS
    (``ssl_server_credentials(require_client_auth=True)``, each side's roots = the pinned peer
    certificate) and no generated stubs (a generic handler; bytes in, bytes out), carrying the
    same frames, same three figures. grpcio is installed by this script into its own venv
    (``benchmarks/.venvs/grpc``); both gRPC processes run with that venv's interpreter, which
    runs this same file (the gRPC code imports nothing from privfin).

For (b) and (c) the round trip is measured twice: inside the event loop (the floor), and from
a plain thread handing each ping to the loop thread and waiting for the answer (what the
synchronous ``Channel`` API would pay: one thread hop each way). The ``ping`` job of (a) is
protocol code in a job worker, so its round trip is reported "from a thread". Nothing is
written to disk on the receiving side of (b) and (c): durability is item 2 of the issue.

Targets of the issue (the new transport, between node processes): round trip ≤ 0.5 ms
median, ≥ 5,000 small messages/s one way, bulk ≥ 300 MB/s.

The machine has 2 cores shared with other work: the client and the server of each pair
compete with whatever else runs; the load average is printed with the results.

Usage: ``python benchmarks/transport.py [--quick] [--only http,tls,tls-buffered,tls-blocking,grpc]``
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import conditions, emit, installed_bytecode, machine, peer_python, print_table

if TYPE_CHECKING:  # (imported where used: the gRPC server runs this file in a venv without us)
    from privfin.assess.netem import DelayProxy
    from privfin.federation.tls import Identity

GRPC_REQUIREMENTS = ["grpcio==1.85.1", "msgspec==0.23.0"]
GRPC_METHOD = "/privfin.bench.Transport/Stream"
CLIENT, SERVER = "bank_a", "bank_b"
SMALL = 64  # bytes of a small message
BULK = 4 << 20  # bytes of a bulk frame

# ---------------------------------------------------------------------------------------------
# Frames (the prototype's wire format)
#
#   u32 header length | u32 payload length | header (msgpack array) | payload (raw bytes)
#
# The header is the message key plus a frame kind; the payload is the codec-encoded message,
# written after the header without copying. Both lengths are checked against limits before
# anything else is read, so a peer cannot make the receiver allocate more than it allows.
# ---------------------------------------------------------------------------------------------

DATA, PING, PONG, FLUSH, ACK, HOLD = 1, 2, 3, 4, 5, 6
KINDS = frozenset({DATA, PING, PONG, FLUSH, ACK, HOLD})  # HOLD: stop reading for seq ms
PREFIX = struct.Struct(">II")
MAX_HEADER = 1024  # five names of ≤ 64 characters, two integers
MAX_PAYLOAD = BULK  # larger messages travel as chunks of at most this size


class FrameError(Exception):
    """A frame that is malformed or exceeds the limits (the connection must be dropped)."""


class FrameHeader(msgspec.Struct, array_like=True, frozen=True):
    """The message key of a frame and its kind (``DATA`` ... ``ACK``)."""

    kind: int
    job: str
    component: str
    tag: str
    sender: str
    receiver: str
    seq: int


_encode_header = msgspec.msgpack.Encoder().encode
_decode_header = msgspec.msgpack.Decoder(FrameHeader).decode


def frame_head(header: FrameHeader, payload_size: int) -> bytes:
    """The bytes written before a payload of ``payload_size`` bytes: prefix and header."""
    if payload_size > MAX_PAYLOAD:
        raise FrameError(f"payload of {payload_size} bytes exceeds {MAX_PAYLOAD}; send chunks")
    raw = _encode_header(header)
    if len(raw) > MAX_HEADER:
        raise FrameError(f"header of {len(raw)} bytes exceeds {MAX_HEADER}")
    return PREFIX.pack(len(raw), payload_size) + raw


def encode_frame(header: FrameHeader, payload: bytes) -> bytes:
    """One frame as a single ``bytes`` (for transports that carry whole messages, like gRPC)."""
    return frame_head(header, len(payload)) + payload


def _parse_header(raw: bytes | memoryview) -> FrameHeader:
    try:
        header = _decode_header(raw)
    except msgspec.MsgspecError as exc:
        raise FrameError(f"malformed frame header: {exc}") from None
    if header.kind not in KINDS:
        raise FrameError(f"unknown frame kind {header.kind}")
    if not 0 <= header.seq < 2**63:
        raise FrameError(f"frame sequence number {header.seq} out of range")
    return header


def _check_lengths(header_len: int, payload_len: int) -> None:
    if not 0 < header_len <= MAX_HEADER:
        raise FrameError(f"frame header length {header_len} outside 1..{MAX_HEADER}")
    if payload_len > MAX_PAYLOAD:
        raise FrameError(f"frame payload of {payload_len} bytes exceeds {MAX_PAYLOAD}")


def decode_frame(frame: bytes) -> tuple[FrameHeader, bytes]:
    """Split one whole frame (from :func:`encode_frame`) into its header and payload."""
    if len(frame) < PREFIX.size:
        raise FrameError("frame shorter than its length prefix")
    header_len, payload_len = PREFIX.unpack_from(frame)
    _check_lengths(header_len, payload_len)
    if len(frame) != PREFIX.size + header_len + payload_len:
        raise FrameError("frame length does not match its prefix")
    view = memoryview(frame)
    header = _parse_header(view[PREFIX.size : PREFIX.size + header_len])
    return header, frame[PREFIX.size + header_len :]


async def read_frame(reader: asyncio.StreamReader) -> tuple[FrameHeader, bytes]:
    """Read the next frame from a stream; ``asyncio.IncompleteReadError`` at a clean end."""
    header_len, payload_len = PREFIX.unpack(await reader.readexactly(PREFIX.size))
    _check_lengths(header_len, payload_len)
    header = _parse_header(await reader.readexactly(header_len))
    payload = await reader.readexactly(payload_len) if payload_len else b""
    return header, payload


async def write_frame(writer: asyncio.StreamWriter, header: FrameHeader, payload: bytes) -> None:
    """Write one frame and wait while the transport's buffer is above its high-water mark
    (back-pressure: a peer that stops reading stops the writer, not the writer's memory)."""
    writer.write(frame_head(header, len(payload)))
    if payload:
        writer.write(payload)
    await writer.drain()


def reply_to(header: FrameHeader, kind: int, seq: int) -> FrameHeader:
    """The header of an answer to ``header`` (sender and receiver swapped)."""
    return FrameHeader(
        kind, header.job, header.component, header.tag, header.receiver, header.sender, seq
    )


class FrameServer:
    """The receiving side of the prototype: answers ``PING`` with ``PONG`` (same payload),
    counts ``DATA`` frames and answers ``FLUSH`` with ``ACK`` carrying that count.

    ``known`` maps SHA-256 fingerprints of pinned certificates (DER) to party names: a
    connection whose certificate is not pinned, or a frame whose sender is not the party of
    the certificate or whose receiver is not ``me``, ends the connection (the reason is kept
    in ``refused``). Two loops drive it: :meth:`handle` (asyncio streams) and
    :meth:`handle_blocking` (a blocking TLS socket in its own thread).
    """

    def __init__(self, me: str, known: dict[str, str]) -> None:
        self.me = me
        self.known = known
        self.received = 0
        self.refused: list[str] = []

    def party_of(self, der: bytes | None) -> str:
        """The pinned party of a peer certificate (DER); FrameError if it is not pinned."""
        party = self.known.get(hashlib.sha256(der).hexdigest()) if der else None
        if party is None:
            raise FrameError("certificate not pinned")
        return party

    def answer(self, party: str, header: FrameHeader) -> FrameHeader | None:
        """The header of the answer to a frame from ``party`` (None: no answer)."""
        if header.sender != party or header.receiver != self.me:
            raise FrameError(f"{party} sent a frame as {header.sender} to {header.receiver}")
        if header.kind == PING:
            return reply_to(header, PONG, header.seq)
        if header.kind == DATA:
            self.received += 1
            return None
        if header.kind == FLUSH:
            return reply_to(header, ACK, self.received)
        if header.kind == HOLD:  # the caller stops reading for header.seq ms
            return None
        raise FrameError(f"unexpected frame kind {header.kind}")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            party = self.party_of(ssl_object.getpeercert(binary_form=True) if ssl_object else None)
            while True:
                try:
                    header, payload = await read_frame(reader)
                except asyncio.IncompleteReadError:
                    return
                reply = self.answer(party, header)
                if reply is not None:
                    await write_frame(writer, reply, payload if reply.kind == PONG else b"")
                elif header.kind == HOLD:
                    await asyncio.sleep(header.seq / 1000)
        except FrameError as exc:
            self.refused.append(str(exc))
        finally:
            writer.close()

    def handle_blocking(self, sock: ssl.SSLSocket) -> None:
        try:
            party = self.party_of(sock.getpeercert(binary_form=True))
            stream = cast(BinaryIO, sock.makefile("rb", buffering=256 << 10))
            while True:
                try:
                    header, payload = recv_frame(stream)
                except EOFError:
                    return
                reply = self.answer(party, header)
                if reply is not None:
                    send_frame(sock, reply, payload if reply.kind == PONG else b"")
                elif header.kind == HOLD:
                    time.sleep(header.seq / 1000)
        except FrameError as exc:
            self.refused.append(str(exc))
        finally:
            sock.close()


class FrameProtocol(asyncio.BufferedProtocol):
    """An asyncio receiver that parses frames straight out of the TLS layer's reads, without a
    ``StreamReader``: small frames from a 256 KiB staging buffer, a large payload decrypted
    directly into its own buffer (``get_buffer`` hands the TLS layer the rest of it).

    Back-pressure on the receiving side would be ``transport.pause_reading()`` while the
    consumer is full (not needed here: the server only counts).
    """

    STAGE = 256 << 10

    def __init__(self, server: FrameServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.party = ""
        self.stage = bytearray(self.STAGE)
        self.view = memoryview(self.stage)
        self.start = self.end = 0  # unparsed bytes are stage[start:end]
        self.big: bytearray | None = None  # a large payload being read in place
        self.big_header: FrameHeader | None = None
        self.big_got = 0
        self.failed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        try:
            self.party = self.server.party_of(
                ssl_object.getpeercert(binary_form=True) if ssl_object else None
            )
        except FrameError as exc:
            self._fail(exc)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.big is not None:
            return memoryview(self.big)[self.big_got :]
        if self.end == len(self.stage):  # move the unparsed tail to the front
            n = self.end - self.start
            self.stage[:n] = self.view[self.start : self.end]
            self.start, self.end = 0, n
        return self.view[self.end :]

    def buffer_updated(self, nbytes: int) -> None:
        if self.failed:
            return
        try:
            if self.big is not None:
                self.big_got += nbytes
                if self.big_got == len(self.big):
                    header, payload = self.big_header, self.big
                    self.big, self.big_header = None, None
                    assert header is not None
                    self._dispatch(header, payload)
                return
            self.end += nbytes
            self._parse()
        except FrameError as exc:
            self._fail(exc)

    def _parse(self) -> None:
        while self.end - self.start >= PREFIX.size:
            header_len, payload_len = PREFIX.unpack_from(self.stage, self.start)
            _check_lengths(header_len, payload_len)
            body = self.start + PREFIX.size
            if self.end < body + header_len:
                break
            header = _parse_header(self.view[body : body + header_len])
            body += header_len
            if self.end >= body + payload_len:
                payload = bytes(self.view[body : body + payload_len])
                self.start = body + payload_len
                self._dispatch(header, payload)
            elif payload_len > self.STAGE // 2:
                self.big = bytearray(payload_len)
                self.big_got = self.end - body
                self.big[: self.big_got] = self.view[body : self.end]
                self.big_header = header
                self.start = self.end = 0
                return
            else:
                break
        if self.start == self.end:
            self.start = self.end = 0

    def _dispatch(self, header: FrameHeader, payload: bytes | bytearray) -> None:
        reply = self.server.answer(self.party, header)
        if self.transport is None:
            return
        if reply is not None:
            body = payload if reply.kind == PONG else b""
            self.transport.write(frame_head(reply, len(body)))
            if body:
                self.transport.write(body)
        elif header.kind == HOLD:  # receiving back-pressure: the TLS layer stops reading too
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(header.seq / 1000, self._resume)

    def _resume(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _fail(self, exc: FrameError) -> None:
        self.failed = True
        self.server.refused.append(str(exc))
        if self.transport is not None:
            self.transport.close()


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) != n:
        raise EOFError("connection closed in the middle of a frame" if data else "closed")
    return data


def recv_frame(stream: BinaryIO) -> tuple[FrameHeader, bytes]:
    """Blocking :func:`read_frame` from a buffered binary stream; ``EOFError`` at the end."""
    header_len, payload_len = PREFIX.unpack(_read_exactly(stream, PREFIX.size))
    _check_lengths(header_len, payload_len)
    header = _parse_header(_read_exactly(stream, header_len))
    return header, _read_exactly(stream, payload_len) if payload_len else b""


def send_frame(sock: ssl.SSLSocket, header: FrameHeader, payload: bytes) -> None:
    """Blocking :func:`write_frame`: ``sendall`` blocks while the peer does not read (the
    kernel's socket buffer is the only buffer: back-pressure without a queue)."""
    head = frame_head(header, len(payload))
    if len(payload) < 64 << 10:
        sock.sendall(head + payload)  # one TLS record for a small message
    else:
        sock.sendall(head)
        sock.sendall(payload)


class BenchClient(Protocol):
    """What the measurements need of a transport (awaited on its event loop)."""

    async def ping(self, payload: bytes) -> bytes: ...

    async def send(self, payload: bytes) -> None: ...

    async def flush(self) -> int: ...

    async def hold(self, ms: int) -> None: ...

    async def close(self) -> None: ...


class _Frames:
    """Headers for the client side of one benchmark connection."""

    def __init__(self) -> None:
        self.seq = 0

    def next(self, kind: int) -> FrameHeader:
        self.seq += 1
        return FrameHeader(kind, "bench", "transport", "t", CLIENT, SERVER, self.seq)


def _hold(ms: int) -> FrameHeader:
    return FrameHeader(HOLD, "bench", "transport", "t", CLIENT, SERVER, ms)


def _check_answer(header: FrameHeader, kind: int) -> None:
    if header.kind != kind or header.sender != SERVER or header.receiver != CLIENT:
        raise FrameError(f"unexpected answer {header}")


class TlsClient:
    """The sending side of the prototype over one asyncio TLS stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.frames = _Frames()

    @classmethod
    async def connect(cls, port: int, context: ssl.SSLContext) -> TlsClient:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, limit=MAX_PAYLOAD + MAX_HEADER
        )
        writer.transport.set_write_buffer_limits(high=1 << 20)
        return cls(reader, writer)

    async def ping(self, payload: bytes) -> bytes:
        await write_frame(self.writer, self.frames.next(PING), payload)
        header, echo = await read_frame(self.reader)
        _check_answer(header, PONG)
        return echo

    async def send(self, payload: bytes) -> None:
        await write_frame(self.writer, self.frames.next(DATA), payload)

    async def flush(self) -> int:
        await write_frame(self.writer, self.frames.next(FLUSH), b"")
        header, _ = await read_frame(self.reader)
        _check_answer(header, ACK)
        return header.seq

    async def hold(self, ms: int) -> None:
        await write_frame(self.writer, _hold(ms), b"")

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


# ---------------------------------------------------------------------------------------------
# Measurements shared by (b) and (c)
# ---------------------------------------------------------------------------------------------


def sizes(quick: bool) -> dict[str, int]:
    return {
        "rounds": 2000 if quick else 10000,
        "small": 20000 if quick else 100000,
        "bulk": 32 if quick else 256,
    }


async def _measure_in_loop(client: BenchClient, n: dict[str, int]) -> dict[str, float]:
    small = os.urandom(SMALL)
    for _ in range(100):  # warm-up
        if await client.ping(small) != small:
            raise FrameError("echo differs from the ping")
    rtts = []
    for _ in range(n["rounds"]):
        start = time.perf_counter()
        await client.ping(small)
        rtts.append(time.perf_counter() - start)
    base = await client.flush()
    start = time.perf_counter()
    for _ in range(n["small"]):
        await client.send(small)
    got = await client.flush()
    small_secs = time.perf_counter() - start
    if got - base != n["small"]:
        raise FrameError(f"{got - base} of {n['small']} messages acknowledged")
    bulk = os.urandom(BULK)
    await client.send(bulk)  # warm-up
    base = await client.flush()
    start = time.perf_counter()
    for _ in range(n["bulk"]):
        await client.send(bulk)
    got = await client.flush()
    bulk_secs = time.perf_counter() - start
    if got - base != n["bulk"]:
        raise FrameError(f"{got - base} of {n['bulk']} bulk frames acknowledged")
    ms = [r * 1000 for r in rtts]
    return {
        "rtt_ms_median": statistics.median(ms),
        "rtt_ms_p90": statistics.quantiles(ms, n=10)[-1],
        "small_per_s": n["small"] / small_secs,
        "bulk_mb_s": n["bulk"] * BULK / bulk_secs / 1e6,
        "stalled_mb": await _measure_backpressure(client),
    }


async def _measure_backpressure(client: BenchClient, hold: float = 1.5) -> float:
    """MB a writer gets off its hands while the receiver reads nothing (sender's buffers,
    kernel socket buffers and the receiver's): the writer must block, not queue without end.
    Raises if the writer is still making progress late in the hold."""
    chunk = os.urandom(64 << 10)
    base = await client.flush()
    await client.hold(int(hold * 1000))
    sent = 0
    stop = asyncio.Event()

    async def writer() -> None:
        nonlocal sent
        while not stop.is_set():
            await client.send(chunk)
            sent += 1

    task = asyncio.create_task(writer())
    await asyncio.sleep(hold * 0.6)
    stalled = sent
    await asyncio.sleep(hold * 0.2)
    still = sent
    stop.set()
    await task
    got = await client.flush()
    if got - base != sent:
        raise FrameError(f"{got - base} of {sent} frames acknowledged after the hold")
    if still != stalled:
        raise FrameError(f"the writer went on while the receiver held ({stalled} -> {still})")
    return stalled * len(chunk) / 1e6


def measure(connect: Callable[[], Awaitable[BenchClient]], quick: bool) -> dict[str, float]:
    """Run the measurements with the event loop in its own thread (as a node would run it):
    first inside the loop, then the round trip from this thread through the loop."""
    n = sizes(quick)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=300)  # type: ignore[arg-type]

    try:
        client: BenchClient = run(connect())
        out: dict[str, float] = run(_measure_in_loop(client, n))
        small = os.urandom(SMALL)
        rtts = []
        for _ in range(n["rounds"]):
            start = time.perf_counter()
            run(client.ping(small))
            rtts.append(time.perf_counter() - start)
        ms = [r * 1000 for r in rtts]
        out["thread_rtt_ms_median"] = statistics.median(ms)
        out["thread_rtt_ms_p90"] = statistics.quantiles(ms, n=10)[-1]
        run(client.close())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    return out


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def _pem(directory: Path, party: str, suffix: str) -> bytes:
    return (directory / party / f"{party}.{suffix}").read_bytes()


def _identity(directory: Path, party: str) -> Identity:
    from privfin.federation.tls import Identity

    return Identity(party, directory / party / f"{party}.crt", directory / party / f"{party}.key")


def _pem_fingerprint(pem: bytes) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode())).hexdigest()


TLS_SERVERS = ("streams", "buffered", "blocking")


def serve_tls(directory: Path, kind: str) -> None:
    """(b) server process: privfin's ``server_context`` pinning the client's certificate.
    ``kind``: ``streams`` (asyncio ``StreamReader``), ``buffered`` (:class:`FrameProtocol`) or
    ``blocking`` (a blocking TLS socket read in a thread, no event loop)."""
    from privfin.federation.tls import server_context

    client_pem = _pem(directory, CLIENT, "crt")
    context = server_context(_identity(directory, SERVER), [client_pem])
    server = FrameServer(SERVER, {_pem_fingerprint(client_pem): CLIENT})
    if kind == "blocking":
        with socket.create_server(("127.0.0.1", 0)) as listener:
            print(listener.getsockname()[1], flush=True)
            while True:
                conn, _ = listener.accept()
                try:
                    tls = context.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    conn.close()
                    continue
                threading.Thread(target=server.handle_blocking, args=(tls,), daemon=True).start()

    async def main() -> None:
        if kind == "streams":
            srv = await asyncio.start_server(
                server.handle, "127.0.0.1", 0, ssl=context, limit=MAX_PAYLOAD + MAX_HEADER
            )
        else:
            loop = asyncio.get_running_loop()
            srv = await loop.create_server(
                lambda: FrameProtocol(server), "127.0.0.1", 0, ssl=context
            )
        print(srv.sockets[0].getsockname()[1], flush=True)
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


def client_tls(directory: Path, port: int, quick: bool) -> dict[str, float]:
    """(b) client, in this process: privfin's ``client_context`` pinning the server."""
    from privfin.federation.tls import client_context

    me = _identity(directory, CLIENT)
    context = client_context(me, _pem(directory, SERVER, "crt"))
    return measure(lambda: TlsClient.connect(port, context), quick)


_GRPC_OPTIONS = [
    ("grpc.max_send_message_length", MAX_PAYLOAD + MAX_HEADER + PREFIX.size),
    ("grpc.max_receive_message_length", MAX_PAYLOAD + MAX_HEADER + PREFIX.size),
]


def serve_grpc(directory: Path) -> None:
    """(c) server process (grpc venv): mutual TLS, the client's certificate as the only root,
    a generic bidirectional-streaming handler that checks the peer's pinned certificate."""
    import grpc  # type: ignore[import-not-found, import-untyped, unused-ignore]

    client_fp = _pem_fingerprint(_pem(directory, CLIENT, "crt"))

    async def stream(requests: Any, context: Any) -> Any:
        auth = context.auth_context()
        pem = (auth.get("x509_pem_cert") or [b""])[0]
        if not pem or _pem_fingerprint(pem) != client_fp:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "certificate not pinned")
        received = 0
        async for frame in requests:
            header, payload = decode_frame(frame)
            if header.sender != CLIENT or header.receiver != SERVER:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "wrong sender")
            if header.kind == PING:
                yield encode_frame(reply_to(header, PONG, header.seq), payload)
            elif header.kind == DATA:
                received += 1
            elif header.kind == FLUSH:
                yield encode_frame(reply_to(header, ACK, received), b"")
            elif header.kind == HOLD:  # stop taking messages off the stream
                await asyncio.sleep(header.seq / 1000)

    async def main() -> None:
        server = grpc.aio.server(options=_GRPC_OPTIONS)
        handler = grpc.method_handlers_generic_handler(
            "privfin.bench.Transport", {"Stream": grpc.stream_stream_rpc_method_handler(stream)}
        )
        server.add_generic_rpc_handlers((handler,))
        creds = grpc.ssl_server_credentials(
            [(_pem(directory, SERVER, "key"), _pem(directory, SERVER, "crt"))],
            root_certificates=_pem(directory, CLIENT, "crt"),
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", creds)
        await server.start()
        print(port, flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


class GrpcClient:
    """(c) client: one bidirectional stream; bytes in, bytes out (no generated stubs)."""

    def __init__(self, channel: Any, call: Any) -> None:
        self.channel, self.call = channel, call
        self.frames = _Frames()

    @classmethod
    async def connect(cls, port: int, directory: Path) -> GrpcClient:
        import grpc  # type: ignore[import-not-found, import-untyped, unused-ignore]

        creds = grpc.ssl_channel_credentials(
            root_certificates=_pem(directory, SERVER, "crt"),
            private_key=_pem(directory, CLIENT, "key"),
            certificate_chain=_pem(directory, CLIENT, "crt"),
        )
        channel = grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=_GRPC_OPTIONS)
        call = channel.stream_stream(GRPC_METHOD)()
        return cls(channel, call)

    async def ping(self, payload: bytes) -> bytes:
        await self.call.write(encode_frame(self.frames.next(PING), payload))
        header, echo = decode_frame(await self.call.read())
        _check_answer(header, PONG)
        return echo

    async def send(self, payload: bytes) -> None:
        await self.call.write(encode_frame(self.frames.next(DATA), payload))

    async def flush(self) -> int:
        await self.call.write(encode_frame(self.frames.next(FLUSH), b""))
        header, _ = decode_frame(await self.call.read())
        _check_answer(header, ACK)
        return header.seq

    async def hold(self, ms: int) -> None:
        await self.call.write(encode_frame(_hold(ms), b""))

    async def close(self) -> None:
        await self.call.done_writing()
        await self.channel.close()


def client_grpc(directory: Path, port: int, quick: bool) -> None:
    """(c) client process (grpc venv): prints the figures as one JSON line."""
    import grpc  # type: ignore[import-not-found, import-untyped, unused-ignore]

    out: dict[str, Any] = measure(lambda: GrpcClient.connect(port, directory), quick)
    out["version"] = grpc.__version__
    print(json.dumps(out), flush=True)


def _start_server(python: str | Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    role = args[0]
    proc = subprocess.Popen(
        [str(python), __file__, *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{role} did not start (exit code {proc.poll()})")
    return proc, int(line)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_tls(directory: Path, quick: bool, kind: str) -> dict[str, float]:
    proc, port = _start_server(sys.executable, "--serve-tls", kind, str(directory))
    try:
        return client_tls(directory, port, quick)
    finally:
        _stop(proc)


def run_grpc(directory: Path, quick: bool) -> dict[str, Any]:
    python = peer_python("grpc", GRPC_REQUIREMENTS)
    proc, port = _start_server(python, "--serve-grpc", str(directory))
    try:
        args = [str(python), __file__, "--grpc-client", str(directory), str(port)]
        done = subprocess.run(
            [*args, *(["--quick"] if quick else [])],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result
    finally:
        _stop(proc)


def run_nodes(
    root: Path, quick: bool, transport_kind: str, wan: bool = False, proxy: bool = False
) -> dict[str, float]:
    """(a) two node processes over ``transport_kind`` (``http`` or ``stream``): the ``ping`` job
    — round trips of 64 B and 8 MiB messages, then 64 B messages sent one after the other inside
    the job (each ``send`` returning as the transport's does) until the peer read them all."""
    from privfin.node.cluster import cluster_up

    cluster = cluster_up(
        [CLIENT, SERVER],
        root / f"cluster-{transport_kind}",
        mode="development",
        transport=transport_kind,
    )
    out: dict[str, float] = {}
    proxies = _through_proxies(cluster) if proxy else []
    try:

        def ping(job: str, rounds: int, size: int, oneway: int = 0) -> dict[str, float]:
            spec = {
                "job": job,
                "component": "ping",
                "roles": {CLIENT: ["x"], SERVER: ["x"]},
                "params": {"rounds": rounds, "size": size, "oneway": oneway},
            }
            outputs = cluster.run_job(spec, timeout=600)
            result: dict[str, float] = outputs[CLIENT]
            return result

        rounds, oneway = (50, 200) if wan else (200, 1000) if quick else (1000, 5000)
        # a first job of fresh nodes pays their one-time costs (the component's import, the
        # connections, the job tables' first rows): measured on warm nodes, as they run
        ping("ping-warm", 20, SMALL)
        small = ping("ping-small", rounds, SMALL, oneway)
        # the ping component is protocol code in a job worker: a round trip "from a thread"
        out["thread_rtt_ms_median"] = small["rtt_ms_median"]
        out["thread_rtt_ms_p90"] = small["rtt_ms_p90"]
        # sequential sends inside the job, each returning as the transport's send does, until
        # the receiving job has read them all
        out["small_per_s"] = small["oneway_per_s"]
        size = 8 << 20
        bulk = ping("ping-bulk", 3 if quick or wan else 10, size)
        out["bulk_mb_s"] = 2 * size / (bulk["rtt_ms_median"] / 1000) / 1e6
    finally:
        cluster.down()
        for px in proxies:
            px.close()
    return out


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

TRANSPORTS = {
    "http": "HTTP nodes",
    "stream": "stream nodes",
    "tls": "TLS streams",
    "tls-buffered": "TLS buffered",
    "tls-blocking": "TLS blocking",
    "grpc": "gRPC",
}
TARGETS = {"thread_rtt_ms_median": 0.5, "small_per_s": 5000.0, "bulk_mb_s": 300.0}
FIGURES = [
    ("rtt_ms_median", "round trip 64 B in the loop, median", "ms"),
    ("rtt_ms_p90", "round trip 64 B in the loop, p90", "ms"),
    ("thread_rtt_ms_median", "round trip 64 B from a thread, median", "ms"),
    ("thread_rtt_ms_p90", "round trip 64 B from a thread, p90", "ms"),
    ("small_per_s", "64 B messages one way", "msg/s"),
    ("bulk_mb_s", "bulk one way", "MB/s"),
    ("stalled_mb", "taken by a writer, receiver not reading", "MB"),
]


def report(results: dict[str, dict[str, Any]], skipped: dict[str, str], quick: bool) -> None:
    load = os.getloadavg()
    rows = []
    for key, label, unit in FIGURES:
        row: dict[str, Any] = {"figure": label, "unit": unit}
        for name, title in TRANSPORTS.items():
            value = results.get(name, {}).get(key)
            row[title] = "skipped" if name in skipped else value
        target = TARGETS.get(key)
        row["target"] = (
            None if target is None else (f"≤ {target}" if unit == "ms" else f"≥ {target:,.0f}")
        )
        rows.append(row)
    print_table(
        f"Transports over mutual TLS, two processes on loopback ({machine()}, "
        f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; now {conditions()})",
        rows,
    )
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    grpc_name = f"grpcio {results.get('grpc', {}).get('version', '')}".strip()
    size = f"{'quick' if quick else 'full'}, mTLS loopback, 2 processes, 2 shared cores"
    for name in TRANSPORTS:
        if name not in results:
            continue
        for key, _, unit in FIGURES:
            value = results[name].get(key)
            if value is None:
                continue
            # the TLS streams are the candidates: gRPC is their peer; the others stand alone
            peer = results.get("grpc", {}).get(key) if name.startswith("tls") else None
            emit(
                f"transport.{name}.{key}",
                unit,
                value,
                peer,
                grpc_name if peer is not None else "none named",
                unit not in ("ms", "MB"),
                size,
            )


def _through_proxies(cluster: Any) -> list[DelayProxy]:
    """Point each node's peers at a :class:`DelayProxy` in front of the peer's ports (HTTP and
    stream); the nodes are restarted with the new configuration."""
    import yaml

    from privfin.assess.netem import DelayProxy  # the userspace WAN, shared with assess

    proxies: list[DelayProxy] = []
    cluster.down()
    configs = {p: yaml.safe_load(cluster.config_path(p).read_text()) for p in (CLIENT, SERVER)}
    for party, cfg in configs.items():
        for name, peer in cfg["peers"].items():
            own = configs[name]
            http = DelayProxy(int(own["port"]))
            proxies.append(http)
            peer["url"] = f"https://127.0.0.1:{http.port}"
            if peer.get("stream_port"):
                stream = DelayProxy(int(own["stream_port"]))
                proxies.append(stream)
                peer["stream_port"] = stream.port
        cluster.config_path(party).write_text(yaml.safe_dump(cfg, sort_keys=False))
    for party in (CLIENT, SERVER):
        cluster.start(party)
    cluster.wait_healthy()
    return proxies


#: The emulated WAN of the issue: 20 ms round trip (10 ms each way on the namespace's
#: loopback, which every packet crosses once per direction) and 1 Gbit/s.
WAN_NETEM = ["delay", "10ms", "rate", "1gbit"]


def run_wan(quick: bool) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Both node transports inside a network namespace created here whose loopback has
    ``tc netem`` (:data:`WAN_NETEM`); returns the results, or a named reason to skip."""
    name = f"privfin-wan-{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, text=True)
    except FileNotFoundError:
        return {}, "the ip command (iproute2) is not installed"
    except subprocess.CalledProcessError as exc:
        return {}, f"network namespaces are not permitted here: {exc.stderr.strip()}"
    try:
        inside = ["ip", "netns", "exec", name]
        try:
            subprocess.run([*inside, "ip", "link", "set", "lo", "up"], check=True)
            subprocess.run(
                [*inside, "tc", "qdisc", "add", "dev", "lo", "root", "netem", *WAN_NETEM],
                check=True,
                capture_output=True,
                text=True,
            )
        except FileNotFoundError:
            return {}, "the tc command (iproute2) is not installed"
        except subprocess.CalledProcessError as exc:
            why = f"tc netem is not available ({(exc.stderr or '').strip()})"
            return _wan_by_proxy(quick, why), None
        args = [*inside, sys.executable, __file__, "--wan-inner"]
        if quick:
            args.append("--quick")
        done = subprocess.run(args, check=True, capture_output=True, text=True, timeout=1800)
        for line in done.stdout.splitlines():
            if line.startswith("WANRESULT "):
                found: dict[str, dict[str, Any]] = json.loads(line[len("WANRESULT ") :])
                return found, None
        return {}, f"the run inside the namespace printed no result: {done.stderr[-500:]}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def _wan_by_proxy(quick: bool, why: str) -> dict[str, dict[str, Any]]:
    """The same figures through :class:`DelayProxy` (10 ms each way, 1 Gbit/s)."""
    print(f"[bench] {why}: the WAN is emulated by a userspace delay proxy", file=sys.stderr)
    from privfin.federation.tls import create_identity

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for party in (CLIENT, SERVER):
            create_identity(party, root / party)
        found: dict[str, dict[str, Any]] = {
            n: run_nodes(root, quick, n, wan=True, proxy=True) for n in ("http", "stream")
        }
    found["_how"] = {"proxy": why}
    return found


def report_wan(results: dict[str, dict[str, Any]], quick: bool) -> None:
    rows = []
    for key, label, unit in FIGURES:
        if all(key not in results.get(n, {}) for n in ("http", "stream")):
            continue
        row: dict[str, Any] = {"figure": label, "unit": unit}
        for n, col in (("http", "HTTP nodes"), ("stream", "stream nodes")):
            row[col] = results.get(n, {}).get(key)
        rows.append(row)
    how = results.get("_how", {}).get("proxy")
    where = (
        f"a userspace delay proxy, 10 ms each way, 1 Gbit/s ({how})"
        if how
        else f"tc netem {' '.join(WAN_NETEM)} on a network namespace's loopback"
    )
    print_table(f"Emulated WAN (20 ms round trip, 1 Gbit/s): {where}", rows)
    size = f"{'quick' if quick else 'full'}, mTLS, netem 20 ms RTT 1 Gbit/s, 2 processes"
    for key, _, unit in FIGURES:
        ours = results.get("stream", {}).get(key)
        peer = results.get("http", {}).get(key)
        if ours is not None:
            emit(
                f"transport.wan.stream.{key}",
                unit,
                ours,
                peer,
                "privfin HTTP nodes",
                unit not in ("ms", "MB"),
                size,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (under a minute)")
    parser.add_argument(
        "--only", default=",".join(TRANSPORTS), help=f"some of {','.join(TRANSPORTS)}"
    )
    # internal: the processes this script starts
    parser.add_argument("--serve-tls", nargs=2, metavar=("KIND", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-grpc", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--grpc-client", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--wan",
        action="store_true",
        help="also run both node transports under an emulated WAN (needs root: a network "
        "namespace with tc netem)",
    )
    parser.add_argument("--wan-inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    installed_bytecode()
    if args.wan_inner:  # inside the namespace: both node transports, one JSON line
        from privfin.federation.tls import create_identity

        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for party in (CLIENT, SERVER):
                create_identity(party, root / party)
            found = {n: run_nodes(root, args.quick, n, wan=True) for n in ("http", "stream")}
        print("WANRESULT " + json.dumps(found))
        return
    if args.serve_tls:
        serve_tls(Path(args.serve_tls[1]), args.serve_tls[0])
        return
    if args.serve_grpc:
        serve_grpc(Path(args.serve_grpc))
        return
    if args.grpc_client:
        client_grpc(Path(args.grpc_client[0]), int(args.grpc_client[1]), args.quick)
        return

    from privfin.federation.tls import create_identity

    wanted = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = set(wanted) - set(TRANSPORTS)
    if unknown:
        parser.error(f"unknown transports {sorted(unknown)}; choose among {', '.join(TRANSPORTS)}")
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for party in (CLIENT, SERVER):
            create_identity(party, root / party)
        runners: dict[str, Callable[[], dict[str, Any]]] = {
            "http": lambda: run_nodes(root, args.quick, "http"),
            "stream": lambda: run_nodes(root, args.quick, "stream"),
            "tls": lambda: run_tls(root, args.quick, "streams"),
            "tls-buffered": lambda: run_tls(root, args.quick, "buffered"),
            "tls-blocking": lambda: run_tls(root, args.quick, "blocking"),
            "grpc": lambda: run_grpc(root, args.quick),
        }
        for name in TRANSPORTS:
            if name not in wanted:
                skipped[name] = "not selected (--only)"
                continue
            start = time.perf_counter()
            try:
                results[name] = runners[name]()
            except (subprocess.CalledProcessError, OSError) as exc:
                if name != "grpc":
                    raise
                skipped[name] = f"grpcio could not be installed or run: {exc}"
            print(f"[bench] {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    report(results, skipped, args.quick)
    if args.wan:
        wan, why = run_wan(args.quick)
        if why is not None:
            print(f"skipped the emulated WAN: {why}")
        else:
            report_wan(wan, args.quick)


if __name__ == "__main__":
    main()
