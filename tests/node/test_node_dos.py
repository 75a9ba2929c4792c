"""Red-team findings after [08] items 7-13, against real node processes (and a few in
process): what a pinned peer can make a node do before and while it reads a request body.

One cluster of three lenders (bank_c plays the attacker), restarted with small limits:
max_message_size 2 MiB (so the upload buffer is 4 MiB, 2 MiB per peer), two uploads in
flight per peer, a body must arrive within 4 s (+1 s per MiB), a pre-job buffer of 8 messages /
3 MiB per peer.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from _nodewait import job_status as _status
from _nodewait import until as _until
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from privfin.errors import ProtocolAbort
from privfin.federation.http import HttpTransport
from privfin.federation.mailbox import Mailbox
from privfin.federation.tls import client_context, create_identity
from privfin.federation.transport import MessageKey, validate_name
from privfin.node.cluster import Cluster, cluster_up
from privfin.node.logs import LogLimiter

PARTIES = ["bank_a", "bank_b", "bank_c"]
MAX_MESSAGE = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("doscluster")
    data = root / "loans.csv"
    pd.DataFrame({"id": ["C1", "C2"], "outstanding_cents": [5, 7]}).to_csv(data, index=False)
    c = cluster_up(PARTIES, root, datasets={p: {"loans": data} for p in PARTIES})
    try:
        c.down()  # restart with small limits, and a state directory left too open
        for p in PARTIES:
            path = c.config_path(p)
            cfg = yaml.safe_load(path.read_text())
            cfg["max_message_size"] = MAX_MESSAGE
            cfg["message_timeout"] = 60
            cfg["quotas"] = {
                "prejob_messages": 8,
                "prejob_bytes": 3 * 1024 * 1024,
                "uploads_per_peer": 2,
                "upload_timeout": 4,
            }
            cfg["retention"] = {"abort_retry_for": 5}
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        state = c.root / "bank_a" / "state"
        state.chmod(0o755)
        (state / "node.sqlite").chmod(0o644)
        for p in PARTIES:
            c.start(p)
        c.wait_healthy()
        yield c
    finally:
        c.down()


def _raw(cluster: Cluster, party: str, target: str) -> httpx.Client:
    return httpx.Client(
        base_url=cluster.parties[target]["url"],
        verify=client_context(cluster.identity(party), cluster.identity(target).cert.read_bytes()),
        timeout=30,
    )


def _partial(
    cluster: Cluster, party: str, target: str, path: str, length: int, first: bytes = b"x"
) -> ssl.SSLSocket:
    """Open a PUT declaring ``length`` body bytes and send only ``first`` of them."""
    url = httpx.URL(cluster.parties[target]["url"])
    ctx = client_context(cluster.identity(party), cluster.identity(target).cert.read_bytes())
    assert url.host and url.port
    sock = ctx.wrap_socket(socket.create_connection((url.host, url.port), timeout=10))
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {url.host}\r\nContent-Length: {length}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    sock.sendall(head.encode() + first)
    return sock


def _answer(sock: ssl.SSLSocket, timeout: float = 5.0) -> tuple[int, str]:
    """The status and head of the response; socket.timeout if the node does not answer."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        part = sock.recv(65536)
        if not part:
            break
        data += part
    head = data.split(b"\r\n\r\n")[0].decode()
    return int(head.split(" ", 2)[1]), head


def _spec(job: str, roles: list[str]) -> dict[str, Any]:
    return {
        "job": job,
        "component": "exposure",
        "roles": {p: ["lender", "result"] if i == 0 else ["lender"] for i, p in enumerate(roles)},
        "params": {"ids": ["C1", "C2"]},
        "inputs": {p: {"loans": "loans"} for p in roles},
        "timeout": 60,
    }


@pytest.mark.cluster
def test_state_dir_and_database_files_are_private(cluster: Cluster) -> None:
    """The fixture left bank_a's state dir 0755 and its database 0644 before the start."""
    for p in PARTIES:
        state = cluster.root / p / "state"
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        for name in ("node.sqlite", "node.sqlite-wal", "node.sqlite-shm"):
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, (p, name)


@pytest.mark.cluster
def test_a_refused_message_is_answered_before_its_body_is_read(cluster: Cluster) -> None:
    """Finding 1: the body (up to max_message_size) used to be read before any check. Now a
    message the pre-job buffer cannot take is refused (429) while the client still holds
    almost all of its body; so is a message declaring no length (411) or too much (413)."""
    with _raw(cluster, "bank_c", "bank_b") as mallory:
        for i in range(2):  # 2 MB of the 3 MiB pre-job buffer
            url = f"/v1/messages/dos-pre-{i}/exposure/t/bank_c/bank_b/0"
            assert mallory.put(url, content=b"\1" * 1_000_000).status_code == 201
        resp = mallory.put(
            "/v1/messages/dos-pre-x/exposure/t/bank_c/bank_b/0",
            content=iter([b"\1" * 1000]),  # streamed: no Content-Length
        )
        assert resp.status_code == 411
    path = "/v1/messages/dos-pre-9/exposure/t/bank_c/bank_b/0"
    sock = _partial(cluster, "bank_c", "bank_b", path, 2_000_000, b"\1" * 1000)
    try:
        code, head = _answer(sock)  # only 1000 of 2,000,000 bytes were sent
    finally:
        sock.close()
    assert code == 429 and "retry-after: 1" in head.lower()
    sock = _partial(cluster, "bank_c", "bank_b", path, MAX_MESSAGE + 1)
    try:
        assert _answer(sock)[0] == 413
    finally:
        sock.close()


@pytest.mark.cluster
def test_jobs_refuse_outsiders_other_components_and_ended_jobs_before_the_body(
    cluster: Cluster,
) -> None:
    """Findings 1 and 4: not a party (403), another component (400) and an ended job (410,
    was 201) are answered before the body is read."""
    with cluster.client("bank_a") as c:
        c.submit(_spec("dos-ab", ["bank_a", "bank_b"]))  # bank_b never starts it
        c.submit(_spec("dos-ac", ["bank_a", "bank_c"]))
        c.submit(_spec("dos-ended", ["bank_a", "bank_c"]))
        assert c.cancel("dos-ended")
    _until(lambda: _status(cluster, "bank_a", "dos-ended")["status"] == "failed")
    cases = {
        "/v1/messages/dos-ab/exposure/t/bank_c/bank_a/0": 403,
        "/v1/messages/dos-ac/psi/t/bank_c/bank_a/0": 400,
        "/v1/messages/dos-ended/exposure/junk/bank_c/bank_a/0": 410,
        "/v1/chunks/dos-ended/exposure/junk/bank_c/bank_a/0?index=0&total=2&digest="
        + "0" * 64: 410,
    }
    for path, expected in cases.items():
        sock = _partial(cluster, "bank_c", "bank_a", path, 1_000_000)
        try:
            assert _answer(sock)[0] == expected, path
        finally:
            sock.close()
    box = Mailbox(cluster.root / "bank_a" / "state" / "node.sqlite")
    try:
        assert box.count("dos-ended") == 0 and box.count("dos-ab") == 0
    finally:
        box.close()
    with cluster.client("bank_a") as c:
        assert c.cancel("dos-ac")


@pytest.mark.cluster
def test_uploads_in_flight_are_limited_per_peer(cluster: Cluster) -> None:
    """Finding 1: 8 parallel 250 MB uploads were all buffered at once. Now one peer has at
    most 2 bodies and half the 4 MiB upload buffer in flight; beyond that 503 + Retry-After
    before the body, while another peer still gets through."""
    held = [
        _partial(
            cluster,
            "bank_c",
            "bank_a",
            f"/v1/messages/dos-g{i}/exposure/t/bank_c/bank_a/0",
            100_000,
        )
        for i in range(2)
    ]
    try:
        time.sleep(0.5)  # both are now reading their bodies
        sock = _partial(
            cluster, "bank_c", "bank_a", "/v1/messages/dos-g2/exposure/t/bank_c/bank_a/0", 10
        )
        try:
            code, head = _answer(sock)
        finally:
            sock.close()
        assert code == 503 and "retry-after: 1" in head.lower()
        with _raw(cluster, "bank_b", "bank_a") as other:
            resp = other.put("/v1/messages/dos-g/exposure/t/bank_b/bank_a/0", content=b"ok")
            assert resp.status_code == 201
    finally:
        for s in held:
            s.close()
    # Bytes: 1.5 MB in flight, another 1 MB would pass the 2 MiB share of bank_c.
    big = _partial(
        cluster, "bank_c", "bank_a", "/v1/messages/dos-g3/exposure/t/bank_c/bank_a/0", 1_500_000
    )
    try:
        time.sleep(0.5)
        sock = _partial(
            cluster, "bank_c", "bank_a", "/v1/messages/dos-g4/exposure/t/bank_c/bank_a/0", 1_000_000
        )
        try:
            assert _answer(sock)[0] == 503
        finally:
            sock.close()
    finally:
        big.close()
    with _raw(cluster, "bank_c", "bank_a") as mallory:  # the slots are given back
        resp = _until(
            lambda: (
                (
                    r := mallory.put("/v1/messages/dos-g5/exposure/t/bank_c/bank_a/0", content=b"1")
                ).status_code
                == 201
                and r
            ),
            10,
        )
        assert resp.status_code == 201


@pytest.mark.cluster
def test_a_trickled_upload_is_dropped(cluster: Cluster) -> None:
    """A peer cannot hold its upload slots by sending a body byte by byte: after
    upload_timeout + size / upload_min_rate seconds the node answers 408 and frees them."""
    path = "/v1/messages/dos-slow/exposure/t/bank_c/bank_a/0"
    sock = _partial(cluster, "bank_c", "bank_a", path, 1000, b"x")
    start = time.monotonic()
    try:
        code, _ = _answer(sock, timeout=15)
    finally:
        sock.close()
    assert code == 408
    assert 3.5 < time.monotonic() - start < 10


@pytest.mark.cluster
def test_honest_sender_retries_a_busy_node(cluster: Cluster, tmp_path: Path) -> None:
    """The 503 is a "retry": bank_b's own transport keeps sending while its upload slots at
    bank_a are taken, and delivers once they are free."""
    cfg = yaml.safe_load(cluster.config_path("bank_b").read_text())
    from privfin.node.config import NodeConfig

    config = NodeConfig.model_validate(cfg)
    transport = HttpTransport(
        config.identity, config.transport_peers(), Mailbox(tmp_path / "b.db"), send_timeout=30
    )
    held = [
        _partial(
            cluster, "bank_b", "bank_a", f"/v1/messages/dos-h{i}/exposure/t/bank_b/bank_a/0", 1000
        )
        for i in range(2)
    ]
    outcome: list[object] = []
    key = MessageKey("dos-honest", "exposure", "t", "bank_b", "bank_a", 0)
    sender = threading.Thread(
        target=lambda: outcome.append(transport.send(key, b"payload") or "sent")
    )
    try:
        time.sleep(0.5)
        sender.start()
        time.sleep(1.5)
        assert sender.is_alive() and not outcome  # refused with 503, still retrying
    finally:
        for s in held:
            s.close()
    sender.join(20)
    transport.close()
    assert outcome == ["sent"]
    box = Mailbox(cluster.root / "bank_a" / "state" / "node.sqlite")
    try:
        assert box.get(key) == b"payload"
    finally:
        box.close()


@pytest.mark.cluster
def test_honest_sender_stops_on_an_ended_job(cluster: Cluster, tmp_path: Path) -> None:
    """410 means the job is over at the peer: the send stops at once (no retry until the
    timeout) and says so."""
    with cluster.client("bank_a") as c:
        c.submit(_spec("dos-over", ["bank_a", "bank_b"]))
        assert c.cancel("dos-over")
    _until(lambda: _status(cluster, "bank_a", "dos-over")["status"] == "failed")
    from privfin.node.config import NodeConfig

    config = NodeConfig.model_validate(yaml.safe_load(cluster.config_path("bank_b").read_text()))
    transport = HttpTransport(
        config.identity, config.transport_peers(), Mailbox(tmp_path / "b.db"), send_timeout=60
    )
    start = time.monotonic()
    with pytest.raises(ProtocolAbort, match="bank_a"):
        transport.send(MessageKey("dos-over", "exposure", "t", "bank_b", "bank_a", 0), b"late")
    transport.close()
    assert time.monotonic() - start < 10
    # bank_a's generic reason was taken as its abort
    assert transport.mailbox.aborted("dos-over") == ("bank_a", "bank_a: cancelled by its operator")


@pytest.mark.cluster
def test_a_late_message_to_a_finished_job_is_moot(cluster: Cluster, tmp_path: Path) -> None:
    """A job that finished at the receiver needs nothing more: a new message gets 410 and the
    honest send returns without storing it; the retry of a message stored before the end
    is still answered as a duplicate (200), not 410."""
    spec = _spec("dos-fin", ["bank_a", "bank_b"])
    cluster.run_job(spec, timeout=60)
    from privfin.node.config import NodeConfig

    config = NodeConfig.model_validate(yaml.safe_load(cluster.config_path("bank_b").read_text()))
    transport = HttpTransport(
        config.identity, config.transport_peers(), Mailbox(tmp_path / "b.db"), send_timeout=60
    )
    late = MessageKey("dos-fin", "exposure", "late", "bank_b", "bank_a", 0)
    start = time.monotonic()
    transport.send(late, b"late")
    transport.close()
    assert time.monotonic() - start < 10
    assert transport.mailbox.aborted("dos-fin") is None
    box = Mailbox(cluster.root / "bank_a" / "state" / "node.sqlite")
    try:
        assert not box.has(late)
        with sqlite3.connect(cluster.root / "bank_a" / "state" / "node.sqlite") as conn:
            query = "SELECT component, tag, seq FROM messages WHERE job = ? AND sender = ?"
            row = conn.execute(query, ("dos-fin", "bank_b")).fetchone()
        stored = MessageKey("dos-fin", row[0], row[1], "bank_b", "bank_a", row[2])
        assert box.has(stored)
    finally:
        box.close()
    with _raw(cluster, "bank_b", "bank_a") as peer:
        resp = peer.put(f"/v1/messages/{stored.path()}", content=b"whatever")
        assert resp.status_code == 409  # known key: judged as a replay (payload digest), not 410
        resp = peer.put(f"/v1/messages/{late.path()}", content=b"late")
        assert resp.status_code == 410


@pytest.mark.cluster
def test_tiny_chunks_are_refused_and_count_as_rows(cluster: Cluster) -> None:
    """Finding 3: empty chunks of a message declaring 262,145 chunks were stored for free.
    Now: at most ceil(2 MiB / 64 KiB) = 32 chunks, none empty, all but the last >= 64 KiB,
    and each chunk row counts in the pre-job buffer (8)."""
    url = "/v1/chunks/dos-chunks/exposure/t/bank_c/bank_a/0"
    digest = "ab" * 32
    with _raw(cluster, "bank_c", "bank_a") as mallory:
        params: dict[str, Any] = {"index": 0, "total": 262_145, "digest": digest}
        assert mallory.put(url, params=params, content=b"").status_code == 413
        params["total"] = 33
        assert mallory.put(url, params=params, content=b"x" * 65536).status_code == 413
        params["total"] = 32
        assert mallory.put(url, params=params, content=b"").status_code == 400
        assert mallory.put(url, params=params, content=b"x" * 1000).status_code == 400
        # 8 pre-job rows of one message (0.5 MiB, far below 3 MiB), then 429.
        codes = [
            mallory.put(url, params={**params, "index": i}, content=b"x" * 65536).status_code
            for i in range(10)
        ]
    assert codes[:7] == [201] * 7 and codes[-1] == 429  # dos-g5 holds one of the 8


@pytest.mark.cluster
def test_refused_requests_do_not_flood_the_log(cluster: Cluster) -> None:
    """Finding 5: 2000 refused aborts wrote 2001 log lines. Now 5 per (peer, kind) and
    minute, then one summary line when the window ends."""
    with _raw(cluster, "bank_c", "bank_a") as mallory:
        for i in range(40):
            assert mallory.post(f"/v1/abort/dos-nojob-{i}", json={"reason": "x"}).status_code == 404
            # the job API is not served on the federation port at all
            assert mallory.get("/v1/jobs/dos-nojob").status_code == 404
            resp = mallory.put(
                "/v1/messages/dos-n/exposure/t/bank_c/bank_a/0",
                content=b"x",
                headers={"X-Privfin-Sender": "bank_b"},
            )
            assert resp.status_code == 403
    log = (cluster.root / "bank_a" / "node.log").read_text(errors="replace")
    assert 0 < log.count("refused abort of job dos-nojob") <= 5
    assert 0 < log.count("party bank_c claimed to be bank_b") <= 5
    # uploads dropped half-way (test_uploads_in_flight_are_limited_per_peer): one short line
    # each (rate-limited), no traceback
    assert "ClientDisconnect" not in log and "Traceback" not in log
    assert "upload from bank_c ended before its body" in log


def test_log_limiter_summarises_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    now = [0.0]
    limiter = LogLimiter(
        logging.getLogger("test.limiter"), burst=2, window=60, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO, "test.limiter"):
        logged = [
            limiter.log(logging.WARNING, "mallory", "abort", "refused %d", i) for i in range(5)
        ]
        assert limiter.log(logging.WARNING, "alice", "abort", "refused alice")  # its own budget
        now[0] = 61.0
        limiter.log(logging.WARNING, "mallory", "abort", "refused %d", 99)
    assert logged == [True, True, False, False, False]
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "refused 0",
        "refused 1",
        "refused alice",
        "suppressed 3 more log lines of kind 'abort' from mallory in 60 s",
        "refused 99",
    ]


@pytest.mark.parametrize("bad", ["newjob\n", "..\n", "a\n", "a\r", "\nb"])
def test_names_with_a_newline_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_name("job", bad)


def test_concurrent_init_force_leaves_a_matching_pair(tmp_path: Path) -> None:
    """Finding 6: three concurrent ``init --force`` could leave a key and a certificate that
    do not match; the identity directory's lock serialises them."""
    for _ in range(8):
        threads = [
            threading.Thread(
                target=create_identity, args=("bank_z", tmp_path), kwargs={"overwrite": True}
            )
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        key = serialization.load_pem_private_key((tmp_path / "bank_z.key").read_bytes(), None)
        cert = x509.load_pem_x509_certificate((tmp_path / "bank_z.crt").read_bytes())
        assert key.public_key() == cert.public_key()
    assert stat.S_IMODE(os.stat(tmp_path / "bank_z.key").st_mode) == 0o600


def test_storing_runs_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 2: SQLite writes and hashing ran on the event loop (another party's /health
    took 8 s). While a store is blocked, /health still answers."""
    from privfin.node.app import PEER_CERT_SCOPE_KEY, create_app
    from privfin.node.config import NodeConfig
    from privfin.node.runner import JobRunner

    ids = {p: create_identity(p, tmp_path / p) for p in ("bank_a", "bank_b")}
    config = NodeConfig(
        party="bank_a",
        port=1,
        state_dir=tmp_path / "state",
        cert=ids["bank_a"].cert,
        key=ids["bank_a"].key,
        peers={"bank_b": {"url": "https://127.0.0.1:1", "cert": ids["bank_b"].cert}},
    )
    box = Mailbox(tmp_path / "state" / "node.sqlite")
    runner = JobRunner(config, box)
    app = create_app(config, box, runner)
    release = threading.Event()
    entered = threading.Event()
    real_put = box.put

    def slow_put(*args: Any, **kwargs: Any) -> bool:
        entered.set()
        release.wait(10)
        return real_put(*args, **kwargs)

    monkeypatch.setattr(box, "put", slow_put)
    der = x509.load_pem_x509_certificate(ids["bank_b"].cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )

    async def with_cert(scope: Any, receive: Any, send: Any) -> None:
        scope = {**scope, "extensions": {PEER_CERT_SCOPE_KEY: der}}
        await app(scope, receive, send)

    async def scenario() -> tuple[int, int, bool]:
        transport = httpx.ASGITransport(app=with_cert)
        async with httpx.AsyncClient(transport=transport, base_url="https://node") as client:
            put = asyncio.create_task(
                client.put("/v1/messages/j/exposure/t/bank_b/bank_a/0", content=b"x" * 1000)
            )
            while not entered.is_set():
                await asyncio.sleep(0.01)
            health = await asyncio.wait_for(client.get("/health"), 5)
            still_storing = not put.done()
            release.set()
            return health.status_code, (await put).status_code, still_storing

    try:
        health, stored, still_storing = asyncio.run(scenario())
    finally:
        release.set()
        box.close()
    assert (health, stored, still_storing) == (200, 201, True)


def test_request_bodies_and_the_upload_buffer_are_bounded(tmp_path: Path) -> None:
    from privfin.node.config import NodeConfig

    base = {"party": "bank_a", "port": 1, "state_dir": tmp_path, "cert": "c", "key": "k"}
    default = NodeConfig.model_validate(base)
    assert default.request_body_limit() == 64 * 1024 * 1024  # max_message_size is 256 MiB
    assert default.upload_buffer() == 128 * 1024 * 1024
    small = NodeConfig.model_validate({**base, "max_message_size": MAX_MESSAGE})
    assert (small.request_body_limit(), small.upload_buffer()) == (MAX_MESSAGE, 2 * MAX_MESSAGE)
    tuned = NodeConfig.model_validate(
        {**base, "max_message_size": MAX_MESSAGE, "quotas": {"upload_buffer_bytes": 10**8}}
    )
    assert tuned.upload_buffer() == 10**8
    assert tuned.mailbox_quotas().job_bytes == 8 * 1024**3
