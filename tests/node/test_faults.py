"""[08] item 11: faults are reported as what they are. A full disk (ENOSPC) is "disk full at
<state dir>" for the local operator, and peers get "<party>: internal error" at once (an abort,
or HTTP 507 for a message the node cannot store) instead of a timeout; an expired certificate
stops the node at start with the date it expired."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from privfin.errors import ConfigError, DiskFullError
from privfin.federation.mailbox import Mailbox
from privfin.federation.tls import create_identity, fingerprint
from privfin.federation.transport import CancelToken
from privfin.node import runner as runner_mod
from privfin.node.app import create_app
from privfin.node.config import NodeConfig
from privfin.node.runner import JobRunner, JobSpec
from privfin.node.server import _PeerCertApp, check_certificates


def _config(tmp_path: Path, *, not_before: dt.datetime | None = None) -> NodeConfig:
    a = create_identity("bank_a", tmp_path / "a", not_before=not_before)
    b = create_identity("bank_b", tmp_path / "b")
    return NodeConfig(
        party="bank_a",
        port=9,
        state_dir=tmp_path / "a" / "state",
        cert=a.cert,
        key=a.key,
        compute="serial",
        peers={
            "bank_b": {
                "url": "https://127.0.0.1:9",
                "cert": b.cert,
                "fingerprint": fingerprint(b.cert.read_bytes()),
            }
        },
    )


def _enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_message_that_cannot_be_stored_fails_the_job_and_answers_507(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    config.state_dir.mkdir(parents=True)
    mailbox = Mailbox(config.state_dir / "node.sqlite")
    runner = JobRunner(config, mailbox)
    token = CancelToken()
    runner._cancel["j1"] = token  # a running job waiting for bank_b's message
    monkeypatch.setattr(mailbox, "put", _enospc)
    peer_pem = (tmp_path / "b" / "bank_b.crt").read_bytes()
    der = x509.load_pem_x509_certificate(peer_pem).public_bytes(serialization.Encoding.DER)
    app = _PeerCertApp(create_app(config, mailbox, runner), der)

    async def put() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return await client.put(
                "/v1/messages/j1/exposure/masked/bank_b/bank_a/0",
                content=b"payload",
                headers={"X-Privfin-Sender": "bank_b"},
            )

    try:
        resp = asyncio.run(put())
        assert resp.status_code == 507
        assert "internal error" in resp.text
        assert str(config.state_dir) not in resp.text  # no local path to the peer
        assert token.cancelled and "disk full at" in token.reason
        fault = runner._faults["j1"]
        assert isinstance(fault, DiskFullError) and fault.where == str(config.state_dir)
    finally:
        runner.shutdown(1)
        mailbox.close()


def test_full_disk_in_a_job_is_reported_locally_and_as_internal_error_to_peers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    config.state_dir.mkdir(parents=True)
    mailbox = Mailbox(config.state_dir / "node.sqlite")
    runner = JobRunner(config, mailbox)
    sent: list[tuple[str, list[str], str]] = []

    def component(ctx: Any, params: Any, inputs: Any) -> Any:
        ctx.artifacts.put("exposure.x25519.key", b"k")  # a checkpoint on a full disk
        return None

    monkeypatch.setattr(runner_mod, "get_component", lambda name: component)
    monkeypatch.setattr("os.fsync", _enospc)
    # the abort outbox is on the same full disk: the abort goes out directly instead
    monkeypatch.setattr(runner, "_queue_abort", _enospc)
    monkeypatch.setattr(
        runner_mod.HttpTransport,
        "abort",
        lambda self, job, sender, receivers, reason: sent.append((job, list(receivers), reason)),
    )
    spec = JobSpec(job="j2", component="ping", roles={"bank_a": ["x"], "bank_b": ["x"]})
    try:
        runner.submit(spec)
        deadline = time.monotonic() + 10
        while runner.status("j2")["status"] == "running" and time.monotonic() < deadline:  # type: ignore[index]
            time.sleep(0.05)
        status = runner.status("j2")
        assert status is not None and status["status"] == "failed"
        assert status["error"].startswith("DiskFullError: disk full at ")
        assert str(config.state_dir / "jobs" / "j2") in status["error"]
        while not sent and time.monotonic() < deadline:  # told after the status is recorded
            time.sleep(0.05)
        assert sent == [("j2", ["bank_b"], "bank_a: internal error")]
        assert "PeerTimeout" not in json.dumps(status)
    finally:
        runner.shutdown(1)
        mailbox.close()


def test_node_refuses_to_start_with_an_expired_certificate(tmp_path: Path) -> None:
    config = _config(tmp_path, not_before=dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(ConfigError, match=r"this node.s certificate .* expired on 2026-04-05"):
        check_certificates(config)


def test_expired_peer_certificate_is_logged_with_its_date(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path)
    old = create_identity(
        "bank_b",
        tmp_path / "old",
        not_before=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        valid_days=30,
    )
    config.peers["bank_b"].cert = old.cert
    config.peers["bank_b"].fingerprint = fingerprint(old.cert.read_bytes())
    check_certificates(config)  # starts: other peers may still work
    assert "bank_b expired on 2024-01-31 00:00 UTC" in caplog.text


def test_transport_says_the_peer_certificate_expired(tmp_path: Path) -> None:
    """A send to a peer whose (pinned) certificate has expired fails at once with "certificate
    of 'bank_b' expired on <date>", not "not the one pinned" and not a timeout."""
    import socket
    import threading

    from privfin.errors import AuthenticationError
    from privfin.federation.http import HttpTransport, Peer
    from privfin.federation.tls import server_context
    from privfin.federation.transport import MessageKey

    a = create_identity("bank_a", tmp_path / "a")
    old = create_identity(
        "bank_b", tmp_path / "b", not_before=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), valid_days=30
    )
    ctx = server_context(old, [a.cert.read_bytes()])
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                ctx.wrap_socket(conn, server_side=True).close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    mailbox = Mailbox(tmp_path / "a.sqlite")
    transport = HttpTransport(
        a,
        {"bank_b": Peer("bank_b", f"https://127.0.0.1:{port}", old.cert.read_bytes())},
        mailbox,
        send_timeout=20,
    )
    try:
        start = time.monotonic()
        with pytest.raises(AuthenticationError) as info:
            transport.send(MessageKey("j", "c", "t", "bank_a", "bank_b", 0), b"x")
        assert time.monotonic() - start < 10  # not retried into a timeout
        assert "certificate of 'bank_b' expired on 2024-01-31 00:00 UTC" in str(info.value)
        assert "not the one pinned" not in str(info.value)
    finally:
        transport.close()
        listener.close()
        mailbox.close()
        t.join(5)


def test_sender_stops_at_507_with_an_abort_not_a_timeout(tmp_path: Path) -> None:
    from privfin.errors import ProtocolAbort
    from privfin.federation.http import HttpTransport, Peer
    from privfin.federation.transport import MessageKey

    a = create_identity("bank_a", tmp_path / "a")
    b = create_identity("bank_b", tmp_path / "b")
    mailbox = Mailbox(tmp_path / "a.sqlite")
    transport = HttpTransport(
        a,
        {"bank_b": Peer("bank_b", "https://127.0.0.1:9", b.cert.read_bytes())},
        mailbox,
        send_timeout=30,
    )
    calls: list[int] = []

    def full(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(507, text='{"detail": "bank_b: internal error"}')

    transport._clients["bank_b"] = httpx.Client(
        transport=httpx.MockTransport(full), base_url="https://bank_b"
    )
    try:
        with pytest.raises(ProtocolAbort, match="party 'bank_b' failed: internal error"):
            transport.send(MessageKey("j", "c", "t", "bank_a", "bank_b", 0), b"x")
        assert calls == [1]  # no retry loop
    finally:
        transport.close()
        mailbox.close()


@pytest.mark.parametrize("outcome", ["done", "failed"])
def test_secret_checkpoints_are_gone_before_the_job_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outcome: str
) -> None:
    """Whoever sees a job done or failed never finds its keys on disk (they used to be deleted
    just after the status changed, and a client polling the status could see them)."""
    config = _config(tmp_path)
    config.state_dir.mkdir(parents=True)
    mailbox = Mailbox(config.state_dir / "node.sqlite")
    runner = JobRunner(config, mailbox)
    job_dir = config.state_dir / "jobs" / "j3"
    seen: list[tuple[str, list[str]]] = []
    real_set = runner._set

    def spy(job: str, **fields: Any) -> None:
        if fields.get("status") in ("done", "failed"):
            seen.append((fields["status"], sorted(p.name for p in job_dir.rglob("*.key"))))
        real_set(job, **fields)

    def component(ctx: Any, params: Any, inputs: Any) -> Any:
        ctx.artifacts.put("exposure.x25519.key", b"k")
        ctx.artifacts.put("kept.json", b"{}")
        if outcome == "failed":
            raise ValueError("a local fault")
        return None

    monkeypatch.setattr(runner, "_set", spy)
    monkeypatch.setattr(runner_mod, "get_component", lambda name: component)
    monkeypatch.setattr(runner, "_queue_abort", lambda *a, **k: None)  # no peer to tell
    spec = JobSpec(job="j3", component="ping", roles={"bank_a": ["x"], "bank_b": ["x"]})
    try:
        runner.submit(spec)
        deadline = time.monotonic() + 10
        while runner.status("j3")["status"] == "running" and time.monotonic() < deadline:  # type: ignore[index]
            time.sleep(0.02)
        assert runner.status("j3")["status"] == outcome  # type: ignore[index]
        assert seen == [(outcome, [])]
        assert (job_dir / "kept.json").exists()
    finally:
        runner.shutdown(1)
        mailbox.close()
