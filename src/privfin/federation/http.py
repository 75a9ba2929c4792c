"""HTTP transport: node to node over HTTPS with mutual TLS.

``send`` PUTs the encoded message to the receiver's node (in chunks above ``chunk_size``),
retrying with backoff while the peer is unreachable or answers 5xx, always under the same key,
so a retry is idempotent. ``recv`` waits on this node's own durable :class:`Mailbox`, which the
node's federation endpoint fills. Peers are pinned: the client trusts only the receiving
peer's certificate.

Endpoints used (served by :mod:`privfin.node`)::

    PUT  /v1/messages/{job}/{component}/{tag}/{sender}/{receiver}/{seq}
    PUT  /v1/chunks/{job}/{component}/{tag}/{sender}/{receiver}/{seq}?index=&total=&digest=
    POST /v1/abort/{job}
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from privfin.errors import AuthenticationError, DecodeError, PeerTimeout, ProtocolAbort
from privfin.federation.mailbox import Mailbox
from privfin.federation.tls import Identity, client_context, describe_tls_failure
from privfin.federation.transport import CancelToken, MessageKey

__all__ = ["DEFAULT_CHUNK_SIZE", "HttpTransport", "Peer"]

DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024
_log = logging.getLogger("privfin.federation.http")


def _tls_verification_failed(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass(frozen=True)
class Peer:
    """A pinned peer: where its node listens and its certificate (PEM)."""

    name: str
    url: str
    cert: bytes


class HttpTransport:
    """Transport of one party (``identity``) to its pinned ``peers``."""

    def __init__(
        self,
        identity: Identity,
        peers: Mapping[str, Peer],
        mailbox: Mailbox,
        *,
        send_timeout: float = 120.0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        request_timeout: float = 30.0,
        cancel: CancelToken | None = None,
    ) -> None:
        self.party = identity.party
        self.identity = identity
        self.peers = dict(peers)
        self.mailbox = mailbox
        self.send_timeout = send_timeout
        self.chunk_size = chunk_size
        self.request_timeout = request_timeout
        self._clients: dict[str, httpx.Client] = {}
        # Checked between retries of a send: a job cancelled here, or aborted by a peer,
        # stops retrying at once instead of after send_timeout.
        self.cancel = cancel

    def _client(self, peer: str) -> httpx.Client:
        client = self._clients.get(peer)
        if client is None:
            info = self.peers.get(peer)
            if info is None:
                raise AuthenticationError(f"{peer!r} is not a pinned peer of {self.party!r}")
            client = httpx.Client(
                base_url=info.url,
                verify=client_context(self.identity, info.cert),
                timeout=self.request_timeout,
                headers={"X-Privfin-Sender": self.party},
            )
            self._clients[peer] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _stop_if_aborted(self, job: str) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()
        why = self.mailbox.aborted(job)
        if why is not None:
            raise ProtocolAbort(f"party {why[0]!r} aborted the job: {why[1]}", party=why[0])

    def _tls_failure(self, exc: BaseException, peer: str) -> str | None:
        """What a failed handshake with ``peer`` means (a certificate expired on a date, or not
        the pinned one), or None if ``exc`` is no certificate failure."""
        info = self.peers.get(peer)
        try:
            own = self.identity.cert.read_bytes()
        except OSError:
            own = None
        told = describe_tls_failure(exc, peer, info.cert, own) if info is not None else None
        if told is None and _tls_verification_failed(exc):
            told = f"{peer!r} presented a certificate that is not the one pinned for it: {exc}"
        return told

    def _put(
        self,
        peer: str,
        tag: str,
        url: str,
        data: bytes,
        params: dict[str, str | int],
        job: str | None = None,
    ) -> None:
        deadline = time.monotonic() + self.send_timeout
        delay = 0.1
        attempt = 0
        dropped = 0  # consecutive connections the peer closed without answering
        while True:
            attempt += 1
            try:
                resp = self._client(peer).put(
                    url,
                    content=data,
                    params=params,
                    headers={"Content-Type": "application/octet-stream"},
                )
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
                told = self._tls_failure(exc, peer)  # expired on <date> / not the pinned one
                if told is not None:
                    _log.error("TLS authentication of %s failed: %s", peer, told)
                    raise AuthenticationError(told) from None
                dropped = dropped + 1 if isinstance(exc, httpx.RemoteProtocolError) else 0
                if dropped >= 3:
                    _log.error("%s keeps closing our TLS connections", peer)
                    raise AuthenticationError(
                        f"{peer!r} closes every connection after the TLS handshake: it most "
                        "likely does not pin this party's certificate (check its node config)"
                    ) from None
            else:
                if resp.status_code < 300:
                    return
                if resp.status_code in (401, 403):
                    raise AuthenticationError(f"{peer!r} refused us: {resp.text[:500]}")
                if resp.status_code == 409:
                    raise ProtocolAbort(
                        f"{peer!r} refused a conflicting message: {resp.text[:500]}"
                    )
                if resp.status_code in (400, 413, 422):
                    raise DecodeError(f"{peer!r} rejected the message: {resp.text[:500]}")
                if resp.status_code == 507:  # the peer could not store it (disk full there)
                    raise ProtocolAbort(f"party {peer!r} failed: internal error")
                if resp.status_code == 410:  # the job is over at the peer: no retry
                    if job is None:
                        raise ProtocolAbort(f"party {peer!r} has already ended the job")
                    # It failed there (its retried abort may not be here yet): take its
                    # generic reason as its abort, as a resumed job does. If it finished,
                    # it needs nothing more from us: the message is moot.
                    failed = self.peer_failure(job, peer)
                    if failed is not None:
                        self.mailbox.abort(job, peer, failed)
                        self._stop_if_aborted(job)
                    _log.info("%s has finished job %s; message %s not needed", peer, job, url)
                    return
                # 429: the peer's pre-job buffer for us is full (it has not started the job
                # yet); 503: too many uploads in flight there; like a 5xx, retry until
                # send_timeout.
                reason = f"HTTP {resp.status_code}"
            if job is not None:
                self._stop_if_aborted(job)
            if time.monotonic() + delay > deadline:
                raise PeerTimeout(peer, tag, self.send_timeout)
            if attempt in (1, 5) or attempt % 20 == 0:
                _log.warning("send to %s failed (%s); retrying", peer, reason)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def send(self, key: MessageKey, payload: bytes) -> None:
        """Deliver ``payload`` to ``key.receiver``'s node, retrying while it is unreachable.

        Raises
        ------
        AuthenticationError
            The peer's certificate is not the pinned one, or the peer refuses ours.
        PeerTimeout
            The peer stayed unreachable for ``send_timeout`` seconds.
        """
        if key.sender != self.party:
            raise ValueError("a transport only sends as its own party")
        peer = key.receiver
        if len(payload) <= self.chunk_size:
            self._put(peer, key.tag, f"/v1/messages/{key.path()}", payload, {}, key.job)
            return
        digest = hashlib.sha256(payload).hexdigest()
        total = (len(payload) + self.chunk_size - 1) // self.chunk_size
        view = memoryview(payload)
        for index in range(total):
            part = view[index * self.chunk_size : (index + 1) * self.chunk_size]
            params: dict[str, str | int] = {"index": index, "total": total, "digest": digest}
            self._put(peer, key.tag, f"/v1/chunks/{key.path()}", bytes(part), params, key.job)

    def recv(self, key: MessageKey, timeout: float, cancel: CancelToken) -> bytes:
        if key.receiver != self.party:
            raise ValueError("a transport only receives its own messages")
        return self.mailbox.wait(key, timeout, cancel)

    def abort(self, job: str, sender: str, receivers: Iterable[str], reason: str) -> None:
        """Tell ``receivers`` once that this party aborted ``job`` (best effort; a node
        retries through :meth:`deliver_abort` until every receiver has it)."""
        for peer in receivers:
            self.deliver_abort(job, peer, reason)

    def peer_failure(self, job: str, peer: str) -> str | None:
        """Ask ``peer`` whether ``job`` failed at its node; its generic reason (escaped,
        capped) or None (it did not, it does not answer, or it refuses us)."""
        try:
            resp = self._client(peer).get(f"/v1/abort/{job}", timeout=5.0)
            data = resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, AuthenticationError, ValueError) as exc:
            _log.info("could not ask %s about job %s: %s", peer, job, exc)
            return None
        reason = data.get("reason") if isinstance(data, dict) and data.get("failed") else None
        if not isinstance(reason, str):
            return None
        return reason[:200].encode("unicode_escape").decode("ascii")[:200] or "(no reason)"

    def post_json(self, peer: str, path: str, body: Any) -> str:
        """POST a small JSON body to a federation endpoint of ``peer`` (aborts, restarts,
        negotiation). Returns ``"delivered"``, ``"refused"`` (the peer will never take it: we
        are not a party of that job there, or it refuses the request) or ``"retry"``
        (unreachable, busy, or the peer does not know the job yet: 404)."""
        try:
            resp = self._client(peer).post(path, json=body)
        except (httpx.HTTPError, AuthenticationError) as exc:
            _log.info("could not reach %s for %s (will retry): %s", peer, path, exc)
            return "retry"
        if resp.status_code < 300:
            return "delivered"
        if resp.status_code in {404, 429} or resp.status_code >= 500:
            return "retry"
        _log.warning("%s refused %s: HTTP %d %s", peer, path, resp.status_code, resp.text[:200])
        return "refused"

    def deliver_abort(self, job: str, peer: str, reason: str) -> str:
        """Tell ``peer`` that this party aborted ``job`` (outcomes as :meth:`post_json`)."""
        return self.post_json(peer, f"/v1/abort/{job}", {"reason": reason[:200]})

    def deliver_restart(self, job: str, peer: str, step: str, attempt: int) -> str:
        """Tell ``peer`` that this party restarted ``step`` of ``job`` under ``attempt`` (a
        pipeline step that could not resume in place; outcomes as :meth:`post_json`)."""
        return self.post_json(peer, f"/v1/restart/{job}", {"step": step, "attempt": attempt})
