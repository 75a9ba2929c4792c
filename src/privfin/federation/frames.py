"""Frames of the streaming transport (:mod:`privfin.federation.stream`).

Wire format of one frame::

    u32 header length | u32 payload length | header (msgpack array) | payload (raw bytes)

Both lengths are big-endian and are checked against the receiver's limits (:func:`check_lengths`)
before a byte of the header or payload is read, so a peer cannot make the receiver allocate more
than it allows. The header is a :class:`Header` (a msgpack array of fixed positions, decoded by
msgspec into typed fields, then range-checked by :func:`parse_header`); the payload is a piece of
a codec-encoded message, written after the header without copying. Nothing is pickled.
"""

from __future__ import annotations

import enum
import struct

import msgspec

__all__ = [
    "ABORT",
    "ACK",
    "HELLO",
    "KINDS",
    "MAX_HEADER",
    "MSG",
    "PING",
    "PONG",
    "PREFIX",
    "SYNCED",
    "Code",
    "FrameError",
    "Header",
    "check_lengths",
    "encode_head",
    "parse_header",
]

#: A message or a chunk of one (``index`` of ``total``; ``size``: the whole message's bytes).
MSG = 1
#: The receiver's answer to a MSG or ABORT frame: ``ref`` names the frame, ``code`` the outcome.
ACK = 2
#: Heartbeat from the client, answered by PONG with the same ``ref``.
PING = 3
PONG = 4
#: The server's first frame after it mapped the client's certificate to a party.
HELLO = 5
#: A party aborted ``job``; ``text`` is its reason. Answered by ACK.
ABORT = 6
#: The receiver has written to disk every message it answered ``ACCEPTED`` on this connection
#: up to frame ``ref``: the sender may forget them (it keeps them until then, and writes them
#: again on a new connection).
SYNCED = 7
KINDS = frozenset({MSG, ACK, PING, PONG, HELLO, ABORT, SYNCED})

PREFIX = struct.Struct(">II")
#: Five names of at most 64 characters, a reason of at most 500 characters, seven integers.
MAX_HEADER = 2048
MAX_TEXT = 500
_MAX_REF = 2**63
_MAX_SEQ = 2**31
_MAX_SIZE = 2**40


class FrameError(Exception):
    """A frame that is malformed or exceeds the limits: the connection is dropped."""


class Code(enum.IntEnum):
    """Outcome of a MSG or ABORT frame, numbered after the HTTP status the node's endpoint
    answers in the same case."""

    STORED = 201  #: stored now
    ACCEPTED = 202  #: taken (readable by the job now); on disk once a SYNCED frame covers it
    DUPLICATE = 200  #: the same bytes were already stored under this key
    BAD = 400  #: malformed key, chunk or message
    FORBIDDEN = 403  #: the sender field is not the certificate's party, or not a party of the job
    CONFLICT = 409  #: other bytes are stored under this key
    ENDED = 410  #: the job has finished at the receiver (the message is not needed)
    TOO_LARGE = 413  #: larger than the receiver's limit or the sender's job quota
    FAILED = 424  #: the job failed at the receiver; ``text`` is its generic reason
    QUOTA = 429  #: the pre-job buffer is full: retry later
    BUSY = 503  #: the receiver has too much in flight: retry later
    NOT_STORED = 507  #: the receiver could not store it (disk full)

    @property
    def ok(self) -> bool:
        return self in (Code.STORED, Code.ACCEPTED, Code.DUPLICATE)

    @property
    def retry(self) -> bool:
        return self in (Code.QUOTA, Code.BUSY)


class Header(msgspec.Struct, array_like=True, frozen=True):
    """The fixed fields of a frame. ``ref`` is the sending side's frame number (an ACK or
    PONG repeats it); ``seq`` is the message key's sequence number; ``index``/``total`` the
    chunk; ``size`` the whole message's size; ``code`` an ACK's :class:`Code`; ``text`` a
    reason (ACK, ABORT) or the server's party (HELLO)."""

    kind: int
    ref: int
    job: str = ""
    component: str = ""
    tag: str = ""
    sender: str = ""
    receiver: str = ""
    seq: int = 0
    index: int = 0
    total: int = 1
    size: int = 0
    code: int = 0
    text: str = ""


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Header).decode


def encode_head(header: Header, payload_size: int) -> bytes:
    """The bytes written before a payload of ``payload_size`` bytes: prefix and header."""
    raw = _encode(header)
    if len(raw) > MAX_HEADER:
        raise FrameError(f"frame header of {len(raw)} bytes exceeds {MAX_HEADER}")
    return PREFIX.pack(len(raw), payload_size) + raw


def check_lengths(header_len: int, payload_len: int, max_payload: int) -> None:
    """Refuse a frame by its prefix, before reading it."""
    if not 0 < header_len <= MAX_HEADER:
        raise FrameError(f"frame header length {header_len} outside 1..{MAX_HEADER}")
    if payload_len > max_payload:
        raise FrameError(f"frame payload of {payload_len} bytes exceeds {max_payload}")


def parse_header(raw: bytes | bytearray | memoryview) -> Header:
    """Decode and range-check a header (names are checked where a key is built)."""
    try:
        header = _decode(raw)
    except msgspec.MsgspecError as exc:
        raise FrameError(f"malformed frame header: {exc}") from None
    if header.kind not in KINDS:
        raise FrameError(f"unknown frame kind {header.kind}")
    if not 0 <= header.ref < _MAX_REF:
        raise FrameError("frame number out of range")
    if not 0 <= header.seq < _MAX_SEQ:
        raise FrameError("sequence number out of range")
    if not (0 <= header.index < header.total <= _MAX_SEQ) or not 0 <= header.size < _MAX_SIZE:
        raise FrameError("chunk index, total or size out of range")
    if not 0 <= header.code < 1000 or len(header.text) > MAX_TEXT:
        raise FrameError("code or text out of range")
    for name in (header.job, header.component, header.tag, header.sender, header.receiver):
        if len(name) > 64:
            raise FrameError("a name in the frame header is longer than 64 characters")
    return header
