"""In-process transport: parties are threads, mailboxes are dicts guarded by a condition.

Used by tests and ``privfin simulate``. It has the same semantics as the HTTP transport:
idempotent sends (a duplicate key with identical bytes is dropped, with different bytes it is
refused), ordered per-key receives, timeouts naming the peer, and abort propagation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from privfin.errors import ProtocolAbort
from privfin.federation.transport import CancelToken, MessageKey, raise_timeout

__all__ = ["MemoryHub", "MemoryTransport"]


class MemoryHub:
    """The shared post office of one simulation. Create one per simulated federation."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._boxes: dict[MessageKey, bytes] = {}
        self._aborts: dict[tuple[str, str], tuple[str, str]] = {}  # (job, receiver) -> why
        self.duplicates_dropped = 0
        self.log: list[MessageKey] = []  # every key delivered, for inspection in tests
        self.wire: list[tuple[MessageKey, bytes]] = []  # every payload, for leakage tests

    def transport(self, party: str) -> MemoryTransport:
        return MemoryTransport(self, party)

    def _deliver(self, key: MessageKey, payload: bytes) -> None:
        with self._cond:
            existing = self._boxes.get(key)
            if existing is not None:
                if existing != payload:
                    raise ProtocolAbort(
                        f"conflicting message for {key.path()}: a different payload was "
                        "already delivered under this key",
                        party=key.sender,
                    )
                self.duplicates_dropped += 1
                return
            self._boxes[key] = payload
            self.log.append(key)
            self.wire.append((key, payload))
            self._cond.notify_all()

    def _take(self, key: MessageKey, timeout: float, cancel: CancelToken) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if key in self._boxes:
                    return self._boxes[key]
                why = self._aborts.get((key.job, key.receiver))
                if why is not None:
                    raise ProtocolAbort(f"party {why[0]!r} aborted the job: {why[1]}", party=why[0])
                cancel.raise_if_cancelled()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise_timeout(key, timeout)
                self._cond.wait(min(remaining, 0.1))

    def _abort(self, job: str, sender: str, receivers: Iterable[str], reason: str) -> None:
        with self._cond:
            for r in receivers:
                self._aborts.setdefault((job, r), (sender, reason))
            self._cond.notify_all()


class MemoryTransport:
    """One party's view of a :class:`MemoryHub`."""

    def __init__(self, hub: MemoryHub, party: str) -> None:
        self.hub = hub
        self.party = party

    def send(self, key: MessageKey, payload: bytes) -> None:
        if key.sender != self.party:
            raise ValueError("a transport only sends as its own party")
        self.hub._deliver(key, bytes(payload))

    def recv(self, key: MessageKey, timeout: float, cancel: CancelToken) -> bytes:
        if key.receiver != self.party:
            raise ValueError("a transport only receives its own messages")
        return self.hub._take(key, timeout, cancel)

    def abort(self, job: str, sender: str, receivers: Iterable[str], reason: str) -> None:
        self.hub._abort(job, sender, receivers, reason)
