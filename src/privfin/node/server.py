"""Run a node: uvicorn over mutual TLS, with the client certificate handed to the app.

uvicorn does not put the TLS peer certificate into the ASGI scope, so the node uses a small
subclass of uvicorn's h11 protocol that reads it from the TLS connection and adds it to the
scope extensions of every request on that connection.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from privfin.federation.mailbox import Mailbox
from privfin.node.app import PEER_CERT_SCOPE_KEY, create_app
from privfin.node.config import NodeConfig
from privfin.node.runner import JobRunner

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


def run_node(config: NodeConfig) -> None:
    """Serve the node until SIGTERM/SIGINT; resumes unfinished jobs at start."""
    state = Path(config.state_dir)
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    mailbox = Mailbox(state / "node.sqlite")
    runner = JobRunner(config, mailbox)
    app = create_app(config, mailbox, runner)
    trusted = [*config.peer_certs().values(), config.cert.read_bytes()]
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", dir=state, delete=False) as fh:
        fh.write(b"".join(trusted))
        bundle = fh.name
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        http=PeerCertH11Protocol,
        ssl_certfile=str(config.cert),
        ssl_keyfile=str(config.key),
        ssl_ca_certs=bundle,
        ssl_cert_reqs=ssl.CERT_REQUIRED,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(uv_config)
    resumed = runner.resume()
    if resumed:
        _log.warning("resumed jobs: %s", ", ".join(resumed))
    _log.warning("node %s listening on https://%s:%d", config.party, config.host, config.port)
    try:
        server.run()
    finally:
        runner.shutdown()
        mailbox.close()
        Path(bundle).unlink(missing_ok=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
