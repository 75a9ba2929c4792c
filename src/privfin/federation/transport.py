"""The transport interface and the typed :class:`Channel` protocols talk through.

A message is addressed by a :class:`MessageKey` ``(job, component, tag, sender, receiver,
sequence)``. The sequence number counts messages with the same (job, component, tag, sender,
receiver), so a retried send carries the same key and the receiving mailbox drops the
duplicate; a receiver reads sequence numbers in order, so a replayed old message is never
taken for a new one.

Two transports implement :class:`Transport`: :mod:`privfin.federation.memory` (threads in one
process) and :mod:`privfin.federation.http` (nodes over mutual TLS). The protocol code is the
same for both.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from privfin.errors import ConfigError, PeerTimeout, ProtocolAbort
from privfin.federation import codec

__all__ = [
    "CancelToken",
    "Channel",
    "InvalidNameError",
    "MessageKey",
    "TrafficStats",
    "Transport",
    "validate_name",
]

T = TypeVar("T")

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class InvalidNameError(ConfigError, ValueError):
    """A party, job, component or tag name outside ``[A-Za-z0-9_.-]{1,64}``: a
    :class:`~privfin.errors.ConfigError` (one line on the command line) and a ``ValueError``
    (so configuration validators report it as a validation error)."""


#: names already checked (a message key is built for every send and receive)
_VALID: set[str] = set()


def validate_name(kind: str, value: str) -> str:
    """Check a party, job, component or tag name: 1–64 of ``[A-Za-z0-9_.-]``, not only dots
    (``.`` and ``..`` would name a directory when a name becomes a path component). The whole
    string must match (no trailing newline, which ``$`` would let through)."""
    if type(value) is str and value in _VALID:
        return value
    if not isinstance(value, str) or not _NAME.fullmatch(value) or not value.strip("."):
        text = value if isinstance(value, str) else str(type(value).__name__)
        shown = repr(text[:64]) + ("..." if len(text) > 64 else "")
        raise InvalidNameError(
            f"{kind} {shown} must be 1-64 characters of letters, digits, _ . - (not only dots)"
        )
    if len(_VALID) >= 8192:  # bounded: names come from peers too
        _VALID.clear()
    _VALID.add(value)
    return value


_FIELDS = ("job", "component", "tag", "sender", "receiver")


@dataclass(frozen=True, init=False)
class MessageKey:
    """The full address of one message."""

    job: str
    component: str
    tag: str
    sender: str
    receiver: str
    seq: int

    def __init__(
        self, job: str, component: str, tag: str, sender: str, receiver: str, seq: int
    ) -> None:
        # (several keys are made per message: the fields go straight into the instance's
        # dict, not through the frozen class's ``__setattr__`` one by one)
        names = (job, component, tag, sender, receiver)
        try:  # names seen before (the common case): the set holds only valid names
            known = _VALID.issuperset(names)
        except TypeError:  # an unhashable value
            known = False
        if not known:
            for kind, value in zip(_FIELDS, names, strict=True):
                validate_name(kind, value)
        if type(seq) is not int or not 0 <= seq < 2**31:
            raise ValueError("seq must be an integer in [0, 2**31)")
        fields = self.__dict__
        fields["job"] = job
        fields["component"] = component
        fields["tag"] = tag
        fields["sender"] = sender
        fields["receiver"] = receiver
        fields["seq"] = seq
        # a key is hashed several times on its way (mailbox tables, waiters): once here
        fields["_hash"] = hash((*names, seq))

    def __hash__(self) -> int:
        return self.__dict__["_hash"]  # type: ignore[no-any-return]

    def __reduce__(self) -> tuple[type[MessageKey], tuple[str, str, str, str, str, int]]:
        # (rebuilt from its fields: the cached hash belongs to this process's string hashes)
        fields = (self.job, self.component, self.tag, self.sender, self.receiver, self.seq)
        return MessageKey, fields

    def path(self) -> str:
        return f"{self.job}/{self.component}/{self.tag}/{self.sender}/{self.receiver}/{self.seq}"


class CancelToken:
    """Cooperative cancellation: long loops and waits check :meth:`raise_if_cancelled`."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise ProtocolAbort(f"job cancelled: {self.reason}")

    def wait(self, seconds: float) -> bool:
        return self._event.wait(seconds)


class Transport(Protocol):
    """Moves encoded messages between parties. Implementations must make ``send`` idempotent
    for an identical (key, payload) and must not return from ``recv`` before the message with
    exactly that key has arrived."""

    def send(self, key: MessageKey, payload: bytes) -> None:
        """Deliver ``payload`` to ``key.receiver`` (retrying as needed)."""
        ...

    def recv(self, key: MessageKey, timeout: float, cancel: CancelToken) -> bytes:
        """Wait for the message addressed by ``key``; raise PeerTimeout / ProtocolAbort."""
        ...

    def abort(self, job: str, sender: str, receivers: Iterable[str], reason: str) -> None:
        """Tell ``receivers`` that ``sender`` aborted ``job`` (best effort)."""
        ...


@dataclass
class TrafficStats:
    """Bytes and messages a channel sent and received (the communication perspective)."""

    bytes_sent: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
        }


class Channel:
    """Typed messaging for one party in one component of one job.

    ``send(peer, tag, message)`` encodes ``message`` with the codec and hands it to the
    transport; ``recv(peer, tag, expect=Type)`` waits for the next message from ``peer`` with
    that tag and checks its type. Sequence numbers are kept per (peer, tag, direction).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        job: str,
        component: str,
        party: str,
        peers: Iterable[str],
        default_timeout: float = 60.0,
        max_message_size: int = codec.DEFAULT_MAX_SIZE,
        cancel: CancelToken | None = None,
    ) -> None:
        self.transport = transport
        self.job = validate_name("job", job)
        self.component = validate_name("component", component)
        self.party = validate_name("party", party)
        self.peers = tuple(validate_name("party", p) for p in peers if p != party)
        self.default_timeout = default_timeout
        self.max_message_size = max_message_size
        self.cancel = cancel or CancelToken()
        self.stats = TrafficStats()
        self._send_seq: dict[tuple[str, str], int] = {}
        self._recv_seq: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def _check_peer(self, peer: str) -> None:
        if peer not in self.peers:
            raise ValueError(f"{peer!r} is not a peer of {self.party!r} in this job")

    def _next(self, table: dict[tuple[str, str], int], peer: str, tag: str) -> int:
        with self._lock:
            seq = table.get((peer, tag), 0)
            table[(peer, tag)] = seq + 1
            return seq

    def send(self, peer: str, tag: str, message: object) -> None:
        """Send ``message`` (anything the codec encodes) to ``peer`` under ``tag``."""
        self._check_peer(peer)
        self.cancel.raise_if_cancelled()
        payload = codec.encode(message)
        seq = self._next(self._send_seq, peer, tag)
        key = MessageKey(self.job, self.component, tag, self.party, peer, seq)
        self.transport.send(key, payload)
        self.stats.bytes_sent += len(payload)
        self.stats.messages_sent += 1

    def recv(
        self,
        peer: str,
        tag: str,
        *,
        expect: type[T] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Receive the next message from ``peer`` under ``tag``.

        Raises
        ------
        PeerTimeout
            If nothing arrives within ``timeout`` (default: the channel's default timeout).
        DecodeError
            If the bytes are malformed or not of type ``expect``.
        ProtocolAbort
            If the job was cancelled or a peer aborted it.
        """
        self._check_peer(peer)
        seq = self._next(self._recv_seq, peer, tag)
        key = MessageKey(self.job, self.component, tag, peer, self.party, seq)
        wait = self.default_timeout if timeout is None else timeout
        payload = self.transport.recv(key, wait, self.cancel)
        self.stats.bytes_received += len(payload)
        self.stats.messages_received += 1
        return codec.decode(payload, max_size=self.max_message_size, expect=expect)

    def broadcast(self, tag: str, message: object, peers: Iterable[str] | None = None) -> None:
        """Send the same message to every peer (or to ``peers``), encoded once and handed to
        the transport together (:meth:`send_many`)."""
        targets = list(self.peers if peers is None else peers)
        if not targets:
            return
        payload = codec.encode(message)
        self._send_encoded([(peer, tag, payload) for peer in targets])

    def send_many(self, items: Iterable[tuple[str, str, object]]) -> None:
        """Send several independent messages ``(peer, tag, message)`` of one step at once: a
        transport that can (the streaming one) writes them back to back and waits for their
        answers together — one wait instead of one per message."""
        self._send_encoded([(peer, tag, codec.encode(msg)) for peer, tag, msg in items])

    def _send_encoded(self, items: list[tuple[str, str, bytes]]) -> None:
        self.cancel.raise_if_cancelled()
        keyed: list[tuple[MessageKey, bytes]] = []
        for peer, tag, payload in items:
            self._check_peer(peer)
            seq = self._next(self._send_seq, peer, tag)
            key = MessageKey(self.job, self.component, tag, self.party, peer, seq)
            keyed.append((key, payload))
        many = getattr(self.transport, "send_many", None)
        if callable(many) and len(keyed) > 1:
            many(keyed)
        else:
            for key, payload in keyed:
                self.transport.send(key, payload)
        for _, payload in keyed:
            self.stats.bytes_sent += len(payload)
            self.stats.messages_sent += 1

    def gather(
        self,
        tag: str,
        peers: Iterable[str] | None = None,
        *,
        expect: type[T] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Receive one message under ``tag`` from every peer (or from ``peers``).

        The timeout applies to the whole gather, not to each peer.
        """
        wait = self.default_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        out: dict[str, Any] = {}
        for peer in self.peers if peers is None else peers:
            remaining = max(0.0, deadline - time.monotonic())
            out[peer] = self.recv(peer, tag, expect=expect, timeout=remaining)
        return out

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every message sent on this channel is durably stored by its receiver.

        A transport whose ``send`` returns only once the receiver stored the message (HTTP,
        memory) has nothing to do; one that returns when the receiver has taken it into
        memory (the streaming transport's write-behind) waits for the receiver's disk. The
        scheduler calls this at the end of every step."""
        flush = getattr(self.transport, "flush", None)
        if callable(flush):
            flush(timeout)

    def abort(self, reason: str) -> None:
        """Tell every peer this party aborted the job (best effort)."""
        self.transport.abort(self.job, self.party, self.peers, reason)


def raise_timeout(key: MessageKey, timeout: float) -> None:
    """Raise the :class:`PeerTimeout` for ``key``."""
    raise PeerTimeout(key.sender, key.tag, timeout)
