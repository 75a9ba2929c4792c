"""Run a node: uvicorn over mutual TLS, with the client certificate handed to the app.

uvicorn does not put the TLS peer certificate into the ASGI scope, so the node uses a small
subclass of uvicorn's h11 protocol that reads it from the TLS connection and adds it to the
scope extensions of every request on that connection.

Lifecycle: the TLS server context is built in memory from the pinned certificates (no bundle
file in the state directory; stale ``tmp*.pem`` bundles of older versions are removed at
start). The node's store (``store`` in node.yaml, by default ``state_dir/node.sqlite``) is
opened and migrated to this privfin's schema before anything is served. SIGTERM, like SIGINT,
is a graceful shutdown: uvicorn stops serving, the job runner stops its jobs (they resume on
restart) and the store is closed before the process exits.
At start the node refuses an expired (or not yet valid) certificate of its own and logs, for
each pinned peer whose certificate is outside its validity period, the date it expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from privfin.errors import ConfigError
from privfin.federation.mailbox import Mailbox
from privfin.federation.tls import is_ca, server_context, validity_problem
from privfin.node.app import PEER_CERT_SCOPE_KEY, create_app
from privfin.node.config import NodeConfig
from privfin.node.runner import JobRunner
from privfin.store import open_engine, upgrade

__all__ = ["run_node"]

_log = logging.getLogger("privfin.node")


class _PeerCertApp:
    def __init__(self, app: Any, der: bytes | None) -> None:
        self.app = app
        self.der = der

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            scope = dict(scope)
            ext = dict(scope.get("extensions") or {})
            ext[PEER_CERT_SCOPE_KEY] = self.der
            scope["extensions"] = ext
        await self.app(scope, receive, send)


class PeerCertH11Protocol(H11Protocol):
    """h11 protocol that exposes the verified client certificate to the app."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        self.app = _PeerCertApp(self.app, der)


class NodeTerminated(SystemExit):
    """Raised in the main thread by SIGTERM outside uvicorn's own handling (during start-up,
    or re-raised by uvicorn after its graceful shutdown) so the node's ``finally`` runs."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise NodeTerminated(0)


def check_certificates(config: NodeConfig) -> None:
    """Refuse to start with an expired or not yet valid certificate of our own; log each pinned
    peer's certificate that is outside its validity period (its node cannot be reached)."""
    own = config.cert.read_bytes()
    if is_ca(own):
        _log.warning(
            "this node's certificate %s is a CA certificate (CA:TRUE, from an older privfin); "
            "create a leaf identity with privfin init --force and give peers the new certificate",
            config.cert,
        )
    problem = validity_problem(own)
    if problem:
        raise ConfigError(
            f"this node's certificate {config.cert} {problem}; create a new identity "
            "(privfin init --force), restart the node and give every peer the new certificate"
        )
    for peer, pem in config.peer_certs().items():
        problem = validity_problem(pem)
        if problem:
            _log.error(
                "the pinned certificate of peer %s %s: jobs with %s will fail until it sends "
                "a new certificate and this node pins it",
                peer,
                problem,
                peer,
            )


def remove_stale_bundles(state: Path) -> int:
    """Delete the temporary CA-bundle files older versions left in the state directory."""
    removed = 0
    for stale in state.glob("tmp*.pem"):
        with contextlib.suppress(OSError):
            stale.unlink()
            removed += 1
    return removed


def run_node(config: NodeConfig) -> None:
    """Serve the node until SIGTERM/SIGINT (graceful either way); resumes unfinished jobs at
    start."""
    previous: Callable[..., Any] | int | None = None
    if _in_main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _serve(config)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _bind(host: str, port: int, what: str) -> socket.socket:
    """A listening socket, or a one-line ConfigError (port in use, address not local)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen for the {what} on {host}:{port}: {exc.strerror}"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _federation_server(
    config: NodeConfig, mailbox: Mailbox, runner: JobRunner, tls: ssl.SSLContext
) -> uvicorn.Server:
    """The federation port's server (mutual TLS, the peer certificate in every request)."""
    return uvicorn.Server(
        uvicorn.Config(
            create_app(config, mailbox, runner),
            host=config.host,
            port=config.port,
            http=PeerCertH11Protocol,
            ssl_certfile=str(config.cert),
            ssl_keyfile=str(config.key),
            ssl_cert_reqs=ssl.CERT_REQUIRED,
            ssl_context_factory=lambda _config, _default: tls,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    )


def _operator_server(config: NodeConfig, runner: JobRunner) -> uvicorn.Server:
    """The operator API's server (run in its own thread; loopback by default)."""
    from privfin.node.operator import create_operator_app

    tls: dict[str, Any] = {}
    if config.operator.tls:
        tls = {"ssl_certfile": str(config.cert), "ssl_keyfile": str(config.key)}
    return uvicorn.Server(
        uvicorn.Config(
            create_operator_app(config, runner),
            host=config.operator.host,
            port=config.operator_port(),
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            **tls,
        )
    )


def _serve(config: NodeConfig) -> None:
    state = Path(config.state_dir)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    state.chmod(0o700)  # mkdir's mode does not tighten an existing directory
    check_certificates(config)
    if remove_stale_bundles(state):
        _log.info("removed stale certificate bundles from %s", state)
    trusted = [*config.peer_certs().values(), config.cert.read_bytes()]
    tls = server_context(config.identity, trusted)
    engine = open_engine(config.store_url())
    try:
        upgrade(engine)
        mailbox = Mailbox(engine, spill_dir=state / "mailbox")
        runner = JobRunner(config, mailbox)
        stream = None
        if config.stream_port is not None:
            from privfin.node.stream_server import start_stream_server

            stream = start_stream_server(config, mailbox, runner)
            runner.stream_server = stream  # its jobs read their peers' connections
        operator = _operator_server(config, runner)
        # Both ports are bound before anything is served: a port in use fails the start at
        # once, before the operator API could answer for a node that is not there.
        fed_socket = _bind(config.host, config.port, "federation port")
        op_socket = _bind(config.operator.host, config.operator_port(), "operator API")
        op_thread = threading.Thread(
            target=operator.run, kwargs={"sockets": [op_socket]}, name="operator-api", daemon=True
        )
        try:
            resumed = runner.resume()
            if resumed:
                _log.warning("resumed jobs: %s", ", ".join(resumed))
            op_thread.start()
            # The federation app is built while the operator API starts to answer (its port
            # is bound: a peer's connection waits in the backlog meanwhile); a local job
            # between stream nodes does not need it to start.
            server = _federation_server(config, mailbox, runner, tls)
            _log.warning(
                "node %s listening on https://%s:%d (operator API on %s)",
                config.party,
                config.host,
                config.port,
                config.operator_url(),
            )
            server.run(sockets=[fed_socket])
        finally:
            _log.warning("node %s shutting down", config.party)
            if stream is not None:
                stream.close()
            operator.should_exit = True
            if op_thread.is_alive():
                op_thread.join(10)
            runner.shutdown()
    finally:
        engine.dispose()
