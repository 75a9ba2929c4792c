"""Issue [08], "what held": the node defences the red team could not break, kept under test
against real node processes over mutual TLS.

One cluster per module: ``bank_a`` and ``bank_b`` (honest) and ``mallory``, a pinned peer that
plays the attacker with its own certificate, hand-made certificates and raw TLS requests.

1. mTLS pinning: a certificate chain forged for a pinned name is refused at the handshake.
2. A claimed sender that is not the certificate's party: 403 and an audit line naming both.
3. A declared Content-Length over the limit: 413 before the body is sent.
4. Names with SQL metacharacters are refused; such an abort reason is stored as data.
5. Dataset names are looked up in the node's registry only; nothing else is opened.
6. A PSI party killed mid-run resumes and the results equal an uninterrupted run's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import random
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pandas as pd
import pytest
from _nodewait import job_status as _status
from _nodewait import until as _until
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from privfin.federation.tls import client_context, fingerprint
from privfin.node.cluster import Cluster, cluster_up
from privfin.node.logs import peer_text

pytestmark = pytest.mark.cluster
PARTIES = ["bank_a", "bank_b", "mallory"]
N_IDS = 20_000  # PSI set size: ~5 s per run here, wide enough a window to kill a party in
BAIT = "held-bait"  # a job of bank_a, bank_b and mallory that stays running all module long
SQL = "j';DROP TABLE jobs;--"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("helddata")
    rng = random.Random(8)
    universe = [f"id{i:07d}" for i in range(N_IDS * 3 // 2)]
    ids, paths = {}, {}
    for p in ("bank_a", "bank_b"):
        ids[p] = rng.sample(universe, N_IDS)
        paths[p] = root / f"{p}.csv"
        pd.DataFrame({"id": ids[p]}).to_csv(paths[p], index=False)
    return {"ids": ids, "paths": paths}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("heldcluster")
    datasets: dict[str, dict[str, str | Path]] = {
        p: {"ids": data["paths"][p]} for p in ("bank_a", "bank_b")
    }
    c = cluster_up(PARTIES, root, datasets=datasets, message_timeout=60)
    try:
        # The bait: only bank_a has it, so it waits for the others' hellos all module long.
        with c.client("bank_a") as client:
            client.submit(_psi_spec(BAIT, ["bank_a", "bank_b", "mallory"], timeout=600))
        yield c
    finally:
        c.down()


def _psi_spec(job: str, parties: list[str], timeout: float = 60) -> dict[str, Any]:
    roles = {p: ["leader" if i == 0 else "member"] for i, p in enumerate(parties)}
    if len(parties) == 2:
        roles = {parties[0]: ["receiver"], parties[1]: ["sender"]}
    return {
        "job": job,
        "component": "psi",
        "roles": roles,
        "params": {"protocol": "ecdh", "reveal_to": "both"},
        "inputs": {
            p: {"chunks": {"dataset": "ids", "column": "id"}} for p in parties if p != "mallory"
        },
        "timeout": timeout,
    }


# -- helpers


def _pem(cluster: Cluster, party: str) -> bytes:
    return cluster.identity(party).cert.read_bytes()


def _peer(cluster: Cluster, party: str, target: str) -> httpx.Client:
    """An HTTP client presenting ``party``'s genuine (pinned) certificate to ``target``."""
    return httpx.Client(
        base_url=cluster.parties[target]["url"],
        verify=client_context(cluster.identity(party), _pem(cluster, target)),
        timeout=30,
    )


def _raw(cluster: Cluster, target: str, ctx: ssl.SSLContext, request: bytes) -> bytes:
    """Send ``request`` as is over TLS to ``target``'s node; the bytes of the answer until the
    end of its headers (or until the server closes). The caller never sends more than
    ``request``: a body it declares is never sent."""
    port = int(cluster.parties[target]["port"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            part = tls.recv(4096)
            if not part:
                break
            answer += part
        return answer


def _log_size(cluster: Cluster, party: str) -> int:
    return (cluster.root / party / "node.log").stat().st_size


def _log_since(cluster: Cluster, party: str, offset: int) -> list[str]:
    with (cluster.root / party / "node.log").open("rb") as fh:
        fh.seek(offset)
        return fh.read().decode(errors="replace").splitlines()


def _db_rows(cluster: Cluster, party: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(cluster.root / party / "state" / "node.sqlite")) as c:
        return c.execute(query, args).fetchall()


def _stored_from(cluster: Cluster, party: str, job: str, sender: str) -> int:
    rows = _db_rows(
        cluster,
        party,
        "SELECT count(*) FROM messages WHERE job = ? AND sender = ?",
        job,
        sender,
    )
    chunks = _db_rows(cluster, party, "SELECT count(*) FROM chunks WHERE path LIKE ?", f"{job}/%")
    return int(rows[0][0]) + int(chunks[0][0])


# -- 1. mTLS pinning


def _forged_leaf(
    name: str, signer_key: Any, issuer: x509.Name, *, ca: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for the pinned ``name`` (CN and SAN, CA:FALSE unless ``ca``) on a fresh
    key, signed by ``signer_key`` (None: self-signed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if signer_key is None else issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.DNSName(name)]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key if signer_key is None else signer_key, hashes.SHA256())
    )
    return cert, key


def _write_chain(
    directory: Path, label: str, chain: list[x509.Certificate], key: Any
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{label}.pem", directory / f"{label}.key"
    cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _attacker_ctx(cert: Path, key: Path) -> ssl.SSLContext:
    """A client context presenting ``cert``/``key``; it does not check the server (the attacker
    does not care), so a failed handshake can only be the server refusing the client."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cert, key)
    return ctx


def _answer_or_refusal(cluster: Cluster, target: str, ctx: ssl.SSLContext) -> bytes:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    try:
        return _raw(cluster, target, ctx, request)
    except (ssl.SSLError, ConnectionError):
        return b""  # refused during or right after the handshake: no HTTP answer


def test_forged_chain_for_a_pinned_name_is_refused_at_the_handshake(
    cluster: Cluster, tmp_path: Path
) -> None:
    """mallory holds a pinned certificate and its key; it issues itself certificates named
    bank_b (CN and SAN, CA:FALSE) and presents them, with and without its own certificate in
    the chain. bank_a's node pins leaf fingerprints, not names or issuers: every handshake
    fails, no request reaches the app, and the node keeps serving."""
    ident = cluster.identity("mallory")
    mallory_key = serialization.load_pem_private_key(ident.key.read_bytes(), None)
    mallory_cert = x509.load_pem_x509_certificate(ident.cert.read_bytes())
    bank_b_cert = x509.load_pem_x509_certificate(_pem(cluster, "bank_b"))

    # Control: mallory's genuine certificate, the same raw client, gets an answer.
    genuine = _attacker_ctx(ident.cert, ident.key)
    assert _answer_or_refusal(cluster, "bank_a", genuine).startswith(b"HTTP/1.1 200")

    leaf, leaf_key = _forged_leaf("bank_b", mallory_key, mallory_cert.subject)
    as_bank_b, as_bank_b_key = _forged_leaf("bank_b", mallory_key, bank_b_cert.subject)
    own_ca, own_ca_key = _forged_leaf("bank_b", None, bank_b_cert.subject, ca=True)
    under_ca, under_ca_key = _forged_leaf("bank_b", own_ca_key, own_ca.subject)
    attempts = {
        "leaf+mallory": ([leaf, mallory_cert], leaf_key),
        "leaf alone": ([leaf], leaf_key),
        "issuer bank_b": ([as_bank_b], as_bank_b_key),  # claims bank_b issued it
        "own CA named bank_b": ([under_ca, own_ca], under_ca_key),
        "self-signed bank_b": ([own_ca], own_ca_key),
    }
    before = _log_size(cluster, "bank_a")
    for label, (chain, key) in attempts.items():
        cert_path, key_path = _write_chain(tmp_path, label.replace(" ", "_"), chain, key)
        answer = _answer_or_refusal(cluster, "bank_a", _attacker_ctx(cert_path, key_path))
        assert not answer.startswith(b"HTTP/"), (label, answer[:80])
    # The fingerprints the node pins: none of the forged leaves is among them.
    pinned = {fingerprint(_pem(cluster, p)) for p in PARTIES}
    forged = {fingerprint(c.public_bytes(serialization.Encoding.PEM)) for c in (leaf, under_ca)}
    assert not pinned & forged
    # Refused by TLS, not by the app: no request was logged as coming from an unknown
    # certificate (which would mean the handshake had passed).
    new = _log_since(cluster, "bank_a", before)
    assert not [line for line in new if "unknown certificate" in line], new
    assert any("TLS handshake refused" in line for line in new), new
    assert _answer_or_refusal(cluster, "bank_a", genuine).startswith(b"HTTP/1.1 200")
    assert _status(cluster, "bank_a", BAIT)["status"] == "running"


def test_client_refuses_a_server_with_a_forged_chain(cluster: Cluster, tmp_path: Path) -> None:
    """The other direction: a server at bank_b's address presenting a chain forged by mallory
    for bank_b fails the client context every node uses to reach bank_b."""
    ident = cluster.identity("mallory")
    mallory_key = serialization.load_pem_private_key(ident.key.read_bytes(), None)
    mallory_cert = x509.load_pem_x509_certificate(ident.cert.read_bytes())
    leaf, leaf_key = _forged_leaf("bank_b", mallory_key, mallory_cert.subject)
    forged = _write_chain(tmp_path, "forged_server", [leaf, mallory_cert], leaf_key)
    genuine = (cluster.identity("bank_b").cert, cluster.identity("bank_b").key)
    client = client_context(cluster.identity("bank_a"), _pem(cluster, "bank_b"))

    def handshake_with(server_cert: Path, server_key: Path) -> None:
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(server_cert, server_key)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]

            def serve() -> None:
                with contextlib.suppress(OSError):
                    conn, _ = listener.accept()
                    with conn, server_ctx.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
                    client.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
                ):
                    tls.sendall(b"x")
            finally:
                thread.join(10)

    handshake_with(*genuine)  # control: the pinned certificate passes
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake_with(*forged)


# -- 2. claimed sender


def test_claimed_sender_is_refused_and_audited(cluster: Cluster) -> None:
    """mallory, a party of the bait job, sends as bank_b (another party of it): in the path, in
    the sender header, for a chunk and for an abort. Each gets 403, nothing is stored or
    applied, and bank_a's log has an audit line naming mallory and bank_b. (Audit lines are
    rate-limited per peer and kind, 5 a minute: these four claims stay within the burst.)"""
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("PUT", f"/v1/messages/{BAIT}/psi/hello/bank_b/bank_a/0", {"content": b"x"}),
        (
            "PUT",
            f"/v1/messages/{BAIT}/psi/hello/mallory/bank_a/0",
            {"content": b"x", "headers": {"X-Privfin-Sender": "bank_b"}},
        ),
        (
            "PUT",
            f"/v1/chunks/{BAIT}/psi/hello/bank_b/bank_a/0",
            {"content": b"x", "params": {"index": 0, "total": 2, "digest": "0" * 64}},
        ),
        (
            "POST",
            f"/v1/abort/{BAIT}",
            {"json": {"reason": "stop"}, "headers": {"X-Privfin-Sender": "bank_b"}},
        ),
    ]
    with _peer(cluster, "mallory", "bank_a") as mallory:
        for method, url, kwargs in requests:
            before = _log_size(cluster, "bank_a")
            resp = mallory.request(method, url, **kwargs)
            assert resp.status_code == 403, (url, resp.text)

            def audited(offset: int = before) -> list[str]:
                return [
                    line
                    for line in _log_since(cluster, "bank_a", offset)
                    if "privfin.node.audit" in line and "mallory" in line and "bank_b" in line
                ]

            _until(audited, 5, message=f"an audit line for {method} {url}")
        # Control: the same message under its own name is accepted.
        ok = mallory.put(f"/v1/messages/{BAIT}/psi/probe/mallory/bank_a/0", content=b"x")
        assert ok.status_code == 201, ok.text
    assert _stored_from(cluster, "bank_a", BAIT, "bank_b") == 0
    assert _db_rows(cluster, "bank_a", "SELECT job FROM aborts WHERE job = ?", BAIT) == []
    assert _status(cluster, "bank_a", BAIT)["status"] == "running"


# -- 3. oversize by Content-Length


def test_declared_content_length_over_the_limit_gets_413_before_the_body(
    cluster: Cluster,
) -> None:
    """Headers declaring a body over the limit, followed by a few bytes and then nothing: the
    node answers 413 at once (it would otherwise wait for the rest) and stores nothing."""
    mallory = client_context(cluster.identity("mallory"), _pem(cluster, "bank_a"))
    cases = [
        (mallory, f"PUT /v1/messages/{BAIT}/psi/big/mallory/bank_a/0", 300 * 1024 * 1024),
        (
            mallory,
            f"PUT /v1/chunks/{BAIT}/psi/big/mallory/bank_a/1?index=0&total=2&digest={'0' * 64}",
            300 * 1024 * 1024,
        ),
        (mallory, f"POST /v1/abort/{BAIT}", 64 * 1024),
        (mallory, "POST /v1/proposals/held-x", 64 * 1024 * 1024),
    ]
    for ctx, line, length in cases:
        head = f"{line} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
        head += "Content-Type: application/octet-stream\r\n\r\n"
        start = time.monotonic()
        answer = _raw(cluster, "bank_a", ctx, head.encode() + b"PF\x01")
        assert answer.startswith(b"HTTP/1.1 413"), (line, answer[:200])
        assert time.monotonic() - start < 5
    assert not _db_rows(
        cluster, "bank_a", "SELECT tag FROM messages WHERE job = ? AND tag = 'big'", BAIT
    )
    assert not _db_rows(cluster, "bank_a", "SELECT idx FROM chunks WHERE path LIKE 'held-%'")
    assert _status(cluster, "bank_a", BAIT)["status"] == "running"  # the abort was not applied
    with _peer(cluster, "mallory", "bank_a") as peer:
        assert peer.get("/health").status_code == 200


# -- 4. parameterised SQL


def test_sql_in_names_is_refused_and_in_a_reason_is_stored_as_data(cluster: Cluster) -> None:
    name = quote(SQL, safe="")
    jobs_before = _db_rows(cluster, "bank_a", "SELECT job, status FROM jobs ORDER BY job")
    with _peer(cluster, "mallory", "bank_a") as mallory:
        for url in (
            f"/v1/messages/{name}/psi/t/mallory/bank_a/0",
            f"/v1/messages/{BAIT}/{name}/t/mallory/bank_a/0",
            f"/v1/messages/{BAIT}/psi/{name}/mallory/bank_a/0",
            f"/v1/messages/{BAIT}/psi/t/{name}/bank_a/0",
            f"/v1/chunks/{name}/psi/t/mallory/bank_a/0?index=0&total=2&digest={'0' * 64}",
        ):
            assert mallory.put(url, content=b"x").status_code == 400, url
        assert mallory.post(f"/v1/abort/{name}", json={"reason": "x"}).status_code == 400
        assert mallory.get(f"/v1/abort/{name}").status_code == 400
    with cluster.client("bank_a") as own:
        assert own._http.get(f"/v1/jobs/{name}").status_code == 400
        assert own._http.post(f"/v1/jobs/{name}/cancel").status_code == 400
        bad_job = own._http.post("/v1/jobs", json=_psi_spec(SQL, ["bank_a", "bank_b"]))
        assert bad_job.status_code == 422, bad_job.text  # an invalid job spec
        spec = _psi_spec("held-sqlparty", ["bank_a", "bank_b"])
        spec["roles"][SQL] = ["member"]
        assert own._http.post("/v1/jobs", json=spec).status_code == 422
    assert _db_rows(cluster, "bank_a", "SELECT job, status FROM jobs ORDER BY job") == jobs_before

    # A reason is data: mallory aborts a job it is a party of with SQL (and a newline) in it.
    job = "held-sql"
    with cluster.client("bank_a") as own:
        own.submit(_psi_spec(job, ["bank_a", "mallory"], timeout=120))
    reason = "x'); DROP TABLE jobs;-- \" % _ \\ \n done"
    with _peer(cluster, "mallory", "bank_a") as mallory:
        resp = mallory.post(f"/v1/abort/{job}", json={"reason": reason})
        assert resp.status_code == 200, resp.text
    status = _until(
        lambda: (s := _status(cluster, "bank_a", job))["status"] == "failed" and s,
        15,
        message="the aborted job to fail",
    )
    stored = peer_text(reason)
    assert stored == "x'); DROP TABLE jobs;-- \" % _ \\\\ \\n done"  # verbatim, escaped
    assert stored in status["error"] and "\n" not in status["error"]
    assert _db_rows(cluster, "bank_a", "SELECT sender, reason FROM aborts WHERE job = ?", job) == [
        ("mallory", stored)
    ]
    # The jobs table is intact: every earlier record, and the API still answers from it.
    jobs_after = dict(_db_rows(cluster, "bank_a", "SELECT job, status FROM jobs"))
    assert {j: jobs_after[j] for j, _ in jobs_before} == dict(jobs_before)
    assert jobs_after[job] == "failed"
    assert _status(cluster, "bank_a", BAIT)["status"] == "running"


# -- 5. dataset names confined to the registry


def test_dataset_names_outside_the_registry_are_refused(cluster: Cluster, tmp_path: Path) -> None:
    """A job spec naming a path (absolute, or climbing out of the state directory) instead of a
    registered dataset is refused with 422 before anything is recorded or opened. A FIFO
    stands for the file: had the node opened it for reading, it would still hold it open."""
    fifo = tmp_path / "secret.fifo"
    os.mkfifo(fifo)
    sources: list[Any] = [
        "/etc/passwd",
        "../../bank_b/state/node.sqlite",
        "../../other/state/node.sqlite",
        "loans/../../x",
        "ids/../ids",
        str(fifo),
        {"dataset": "/etc/passwd", "column": "root"},
        {"dataset": str(fifo), "column": "id"},
        {"dataset": "../ids", "column": "id"},
    ]
    with cluster.client("bank_a") as own:
        for i, source in enumerate(sources):
            job = f"held-ds-{i}"
            spec = _psi_spec(job, ["bank_a", "bank_b"])
            spec["inputs"]["bank_a"] = {"chunks": source}
            for check in (True, False):
                resp = own._http.post("/v1/jobs", params={"check": check}, json=spec)
                assert resp.status_code == 422, (source, resp.text)
                assert "not registered" in resp.text
                assert "root:" not in resp.text
            assert own._http.get(f"/v1/jobs/{job}").status_code == 404
            assert not (cluster.root / "bank_a" / "state" / "jobs" / job).exists()
        # Control: the registered name passes the same check.
        spec = _psi_spec("held-ds-ok", ["bank_a", "bank_b"])
        resp = own._http.post("/v1/jobs", params={"check": True}, json=spec)
        assert resp.status_code == 200 and resp.json()["accepted"] is True
    rows = _db_rows(cluster, "bank_a", "SELECT job FROM jobs WHERE job LIKE 'held-ds-%'")
    assert rows == []
    with pytest.raises(OSError) as info:  # no reader holds the FIFO open
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert info.value.errno == errno.ENXIO


# -- 6. crash-resume of PSI


def _psi_output(cluster: Cluster, party: str, job: str, timeout: float = 60) -> dict[str, Any]:
    with cluster.client(party) as c:
        out = dict(c.wait(job, timeout=timeout)["result"]["output"])
    out.pop("stats", None)  # this party's timings: the only thing that may differ
    return out


@pytest.fixture(scope="module")
def psi_reference(cluster: Cluster, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An uninterrupted run, checked against the plaintext intersection."""
    spec = _psi_spec("held-psi-ref", ["bank_a", "bank_b"])
    for p in ("bank_a", "bank_b"):
        with cluster.client(p) as c:
            c.submit(spec)
    outs = {p: _psi_output(cluster, p, "held-psi-ref") for p in ("bank_a", "bank_b")}
    a, b = data["ids"]["bank_a"], data["ids"]["bank_b"]
    expected = sorted(set(a) & set(b))
    assert 0 < len(expected) < N_IDS
    for party, ids in (("bank_a", a), ("bank_b", b)):
        out = outs[party]
        assert out["ids"] == expected and out["size"] == len(expected)
        assert [ids[r] for r in out["rows"]] == expected
    return outs


def _kill_mid_run(cluster: Cluster, victim: str, other: str, tag: str, job: str) -> None:
    """Start ``job`` at both parties, SIGKILL ``victim`` as soon as ``other`` has received its
    first ``tag`` chunk (points blinded with its checkpointed key), restart it."""
    spec = _psi_spec(job, ["bank_a", "bank_b"])
    for p in ("bank_a", "bank_b"):
        with cluster.client(p) as c:
            c.submit(spec)
    query = "SELECT count(*) FROM messages WHERE job = ? AND sender = ? AND tag = ?"

    def sent() -> bool:
        try:
            return bool(_db_rows(cluster, other, query, job, victim, tag)[0][0])
        except sqlite3.OperationalError:  # the database is busy: ask again
            return False

    _until(sent, 30, message=f"{victim}'s first {tag!r} chunk at {other}")
    at_kill = _status(cluster, victim, job)
    cluster.kill(victim)
    # Killed mid-run: it had sent blinded points and not finished.
    assert at_kill["status"] == "running", at_kill
    assert at_kill["progress"]["psi.blind"]["done"] > 0
    assert _status(cluster, other, job)["status"] == "running"
    cluster.start(victim)
    with cluster.client(victim) as c:
        c.wait_healthy(30)
        assert c.status(job)["status"] == "running"  # resumed from its records, not resubmitted
    assert _db_rows(cluster, other, query, job, victim, tag)[0][0] >= 1


def test_psi_receiver_killed_mid_run_resumes_with_identical_results(
    cluster: Cluster, psi_reference: dict[str, dict[str, Any]]
) -> None:
    """bank_a (receiver) is SIGKILLed after bank_b has its first blinded chunk; restarted, it
    resends byte-identical messages (a different one would be refused as a conflict and fail
    the job) and both parties end with exactly the uninterrupted run's results."""
    job = "held-psi-crash-r"
    _kill_mid_run(cluster, "bank_a", "bank_b", "a", job)
    for p in ("bank_a", "bank_b"):
        out = _psi_output(cluster, p, job)
        assert out == psi_reference[p]
        assert json.dumps(out, sort_keys=True) == json.dumps(psi_reference[p], sort_keys=True)


def test_psi_sender_killed_mid_run_resumes_with_identical_results(
    cluster: Cluster, psi_reference: dict[str, dict[str, Any]]
) -> None:
    job = "held-psi-crash-s"
    _kill_mid_run(cluster, "bank_b", "bank_a", "b", job)
    for p in ("bank_a", "bank_b"):
        out = _psi_output(cluster, p, job)
        assert out == psi_reference[p]
