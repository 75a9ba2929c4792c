"""A transport that sends to each peer over the transport configured for it (the streaming
transport for peers that hold a connection, HTTP for the others, per node.yaml); receiving is
local (every transport's ``recv`` waits on the node's mailbox; a stream transport's reads the
sender's connection meanwhile)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from privfin.errors import AuthenticationError
from privfin.federation.transport import CancelToken, MessageKey, Transport

__all__ = ["RoutedTransport"]


class RoutedTransport:
    """``routes``: peer -> the transport that reaches it; ``local``: the one whose ``recv``
    serves every key (they all read the same mailbox)."""

    def __init__(self, routes: Mapping[str, Transport], local: Transport) -> None:
        self.routes = dict(routes)
        self.local = local

    def send(self, key: MessageKey, payload: bytes) -> None:
        transport = self.routes.get(key.receiver)
        if transport is None:
            raise AuthenticationError(f"{key.receiver!r} is not a peer of this job")
        transport.send(key, payload)

    def send_many(self, items: Sequence[tuple[MessageKey, bytes]]) -> None:
        """Hand each route its messages together (``send_many`` where the route has it)."""
        groups: dict[int, tuple[Transport, list[tuple[MessageKey, bytes]]]] = {}
        for key, payload in items:
            transport = self.routes.get(key.receiver)
            if transport is None:
                raise AuthenticationError(f"{key.receiver!r} is not a peer of this job")
            groups.setdefault(id(transport), (transport, []))[1].append((key, payload))
        for transport, group in groups.values():
            many = getattr(transport, "send_many", None)
            if callable(many) and len(group) > 1:
                many(group)
            else:
                for key, payload in group:
                    transport.send(key, payload)

    def recv(self, key: MessageKey, timeout: float, cancel: CancelToken) -> bytes:
        """Through the sender's route (a stream transport reads the sender's connection
        while it waits), else ``local``: both wait on the same mailbox."""
        return self.routes.get(key.sender, self.local).recv(key, timeout, cancel)

    def abort(self, job: str, sender: str, receivers: Iterable[str], reason: str) -> None:
        by_transport: dict[int, tuple[Transport, list[str]]] = {}
        for r in receivers:
            t = self.routes.get(r)
            if t is not None:
                by_transport.setdefault(id(t), (t, []))[1].append(r)
        for t, rs in by_transport.values():
            t.abort(job, sender, rs, reason)

    def flush(self, timeout: float | None = None) -> None:
        """Flush every route that can (see :meth:`Channel.flush`)."""
        seen: set[int] = set()
        for t in self.routes.values():
            if id(t) not in seen:
                seen.add(id(t))
                flush = getattr(t, "flush", None)
                if callable(flush):
                    flush(timeout)

    def close(self) -> None:
        seen: set[int] = set()
        for t in [*self.routes.values(), self.local]:
            if id(t) not in seen:
                seen.add(id(t))
                close = getattr(t, "close", None)
                if callable(close):
                    close()
