"""[08] items 11, 12: leaf certificates still pin over mutual TLS; expired certificates are
reported as expired (with the date), not as "not the one pinned"; keys are written safely."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from privfin.errors import ConfigError
from privfin.federation.tls import (
    Identity,
    client_context,
    create_identity,
    describe_tls_failure,
    is_ca,
    server_context,
    validity_problem,
)


def _handshake(server: Identity, trusted: list[bytes], client: Identity, pinned: bytes) -> None:
    """One mutual-TLS handshake over a socket pair; raises the client's error if it fails."""
    sctx = server_context(server, trusted)
    cctx = client_context(client, pinned)
    a, b = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with sctx.wrap_socket(a, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with cctx.wrap_socket(b, server_hostname="node") as c:
            c.sendall(b"x")
            c.recv(1)  # surfaces a server-side refusal of our certificate (TLS 1.3)
    finally:
        a.close()
        b.close()
        t.join(5)


def test_identity_is_a_leaf_with_server_and_client_auth(tmp_path: Path) -> None:
    ident = create_identity("bank_a", tmp_path, hosts=["node.example", "10.0.0.1"])
    cert = x509.load_pem_x509_certificate(ident.cert.read_bytes())
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign and not ku.crl_sign
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not is_ca(ident.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node.example"]
    assert stat.S_IMODE(os.stat(ident.key).st_mode) == 0o600


def test_leaf_pinning_still_works_and_refuses_a_stranger(tmp_path: Path) -> None:
    a = create_identity("bank_a", tmp_path / "a")
    b = create_identity("bank_b", tmp_path / "b")
    _handshake(b, [a.cert.read_bytes()], a, b.cert.read_bytes())  # pinned both ways: works
    stranger = create_identity("bank_b", tmp_path / "s")  # same name, another key
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        _handshake(stranger, [a.cert.read_bytes()], a, b.cert.read_bytes())
    msg = describe_tls_failure(info.value, "bank_b", b.cert.read_bytes())
    assert msg is not None and "not the one pinned" in msg


def test_expired_peer_certificate_is_reported_as_expired(tmp_path: Path) -> None:
    a = create_identity("bank_a", tmp_path / "a")
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    old = create_identity("bank_b", tmp_path / "b", not_before=start, valid_days=30)
    assert validity_problem(old.cert.read_bytes()) == "expired on 2024-01-31 00:00 UTC"
    with pytest.raises(ssl.SSLCertVerificationError) as info:
        _handshake(old, [a.cert.read_bytes()], a, old.cert.read_bytes())
    msg = describe_tls_failure(info.value, "bank_b", old.cert.read_bytes())
    assert msg is not None
    assert "certificate of 'bank_b' expired on 2024-01-31" in msg
    assert "not the one pinned" not in msg
    future = create_identity(
        "bank_c", tmp_path / "c", not_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    )
    assert (validity_problem(future.cert.read_bytes()) or "").startswith("not valid before")


def test_own_expired_certificate_refused_by_the_peer_is_explained(tmp_path: Path) -> None:
    b = create_identity("bank_b", tmp_path / "b")
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    old = create_identity("bank_a", tmp_path / "a", not_before=start, valid_days=30)
    with pytest.raises((ssl.SSLError, OSError)) as info:
        _handshake(b, [old.cert.read_bytes()], old, b.cert.read_bytes())
    msg = describe_tls_failure(info.value, "bank_b", b.cert.read_bytes(), old.cert.read_bytes())
    assert msg is not None and "refused this node's certificate" in msg
    assert "expired on 2024-01-31" in msg


def test_init_force_writes_0600_and_refuses_symlinks(tmp_path: Path) -> None:
    os.umask(0o022)
    first = create_identity("bank_a", tmp_path)
    os.chmod(first.key, 0o644)  # a key someone made world-readable
    again = create_identity("bank_a", tmp_path, overwrite=True)
    assert stat.S_IMODE(os.stat(again.key).st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # a symlink at the key path (even with --force) is refused and its target untouched
    victim = tmp_path / "victim"
    victim.write_text("do not touch")
    d = tmp_path / "link"
    d.mkdir()
    (d / "bank_a.key").symlink_to(victim)
    with pytest.raises(ConfigError, match="symbolic link"):
        create_identity("bank_a", d, overwrite=True)
    assert victim.read_text() == "do not touch"
    # a dangling symlink is not "absent": refused too
    e = tmp_path / "dangling"
    e.mkdir()
    (e / "bank_a.key").symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError):
        create_identity("bank_a", e)
    assert not (tmp_path / "nowhere").exists()


def test_cli_init_force(tmp_path: Path) -> None:
    """``privfin init --force``: the new key is 0600 whatever the umask and the old mode, and a
    symlink at the key path is refused (exit code 2, nothing written through it)."""
    import subprocess
    import sys

    def init(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # our own interpreter and module
            [sys.executable, "-c", "from privfin.cli.main import main; main()", "init", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    d = tmp_path / "id"
    assert init("--party", "bank_a", "--dir", str(d)).returncode == 0
    os.chmod(d / "bank_a.key", 0o666)
    assert init("--party", "bank_a", "--dir", str(d)).returncode != 0  # no --force: refused
    assert init("--party", "bank_a", "--dir", str(d), "--force").returncode == 0
    assert stat.S_IMODE(os.stat(d / "bank_a.key").st_mode) == 0o600
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (d / "bank_a.key").unlink()
    (d / "bank_a.key").symlink_to(victim)
    done = init("--party", "bank_a", "--dir", str(d), "--force")
    assert done.returncode == 2 and "symbolic link" in done.stderr
    assert victim.read_text() == "keep"


def test_server_logs_why_it_refused_a_client_certificate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The event loop drops a failed server-side handshake silently; the node's TLS context
    logs the reason (expired) for its operator."""
    import asyncio

    from privfin.federation import tls

    server = create_identity("bank_b", tmp_path / "b")
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    old = create_identity("bank_a", tmp_path / "a", not_before=start, valid_days=30)
    tls._last_logged.clear()

    async def run() -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.close()

        srv = await asyncio.start_server(
            handle, "127.0.0.1", 0, ssl=server_context(server, [old.cert.read_bytes()])
        )
        port = srv.sockets[0].getsockname()[1]
        try:
            # TLS 1.3: the client may finish its side before the server refuses; it then sees
            # the refusal (or EOF) on its first read. Either way the server has logged it.
            with contextlib.suppress(ssl.SSLError, OSError):
                r, w = await asyncio.open_connection(
                    "127.0.0.1",
                    port,
                    ssl=client_context(old, server.cert.read_bytes()),
                    server_hostname="node",
                )
                w.write(b"x")
                await w.drain()
                assert await r.read() == b""
                w.close()
        finally:
            srv.close()
            await srv.wait_closed()

    with caplog.at_level("WARNING", logger="privfin.federation.tls"):
        asyncio.run(run())
    assert "a client's certificate has expired" in caplog.text


def test_contexts_trust_only_the_pinned_certificates(tmp_path: Path) -> None:
    """No system CA is a trust anchor (hostname checks are off, so one would vouch for any
    certificate it signed): the client context holds the one pinned certificate, the server
    context the pinned peers' certificates, and both still require the peer's certificate."""
    a = create_identity("alice", tmp_path / "a")
    b = create_identity("bob", tmp_path / "b")
    cctx = client_context(a, b.cert.read_bytes())
    sctx = server_context(b, [a.cert.read_bytes()])
    assert cctx.cert_store_stats()["x509"] == 1
    assert sctx.cert_store_stats()["x509"] == 1
    assert cctx.verify_mode == sctx.verify_mode == ssl.CERT_REQUIRED
    assert cctx.minimum_version == sctx.minimum_version == ssl.TLSVersion.TLSv1_2
