"""Three real node processes over mutual TLS on loopback: the exposure job end to end, and
bad input and faults (unknown certificate, wrong sender, replay, oversize, timeouts, crash)."""

from __future__ import annotations

import random
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from privfin.errors import AuthenticationError, PeerTimeout, ProtocolAbort
from privfin.federation import codec
from privfin.federation.http import HttpTransport, Peer
from privfin.federation.mailbox import Mailbox
from privfin.federation.stream import StreamPeer, StreamTransport
from privfin.federation.tls import Identity, client_context, create_identity
from privfin.federation.transport import CancelToken, MessageKey, Transport
from privfin.mpc.exposure import plaintext_exposure
from privfin.node.cluster import Cluster, cluster_up
from privfin.node.config import load_config

pytestmark = pytest.mark.cluster
PARTIES = ["bank_a", "bank_b", "bank_c"]


@pytest.fixture(scope="module")
def loans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("data")
    rng = random.Random(5)
    ids = [f"C{i:06d}" for i in range(300)]
    tables, paths = {}, {}
    for p in PARTIES:
        rows = [(i, rng.randrange(1, 10**10)) for i in ids if rng.random() < 0.5]
        rows += [(ids[0], 17)]  # a borrower with two loans at every lender
        df = pd.DataFrame(rows, columns=["id", "outstanding_cents"])
        paths[p] = root / f"{p}.csv"
        df.to_csv(paths[p], index=False)
        tables[p] = df
    return {"ids": ids, "tables": tables, "paths": paths}


@pytest.fixture(scope="module", params=["http", "stream"])
def cluster(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    loans: dict[str, Any],
) -> Iterator[Cluster]:
    """The three nodes, their peers reached over HTTP or over the streaming transport (every
    job-level test runs over both; tests of the HTTP endpoint itself take ``http`` only)."""
    root = tmp_path_factory.mktemp(f"cluster-{request.param}")
    c = cluster_up(
        PARTIES,
        root,
        datasets={p: {"loans": loans["paths"][p]} for p in PARTIES},
        message_timeout=20,
        transport=request.param,
    )
    try:
        yield c
    finally:
        c.down()


def _spec(job: str, ids: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "job": job,
        "component": "exposure",
        "roles": {"bank_a": ["lender", "result"], "bank_b": ["lender"], "bank_c": ["lender"]},
        "params": {"ids": ids},
        "inputs": {p: {"loans": "loans"} for p in PARTIES},
        **extra,
    }


def test_exposure_over_mtls_equals_plaintext(cluster: Cluster, loans: dict[str, Any]) -> None:
    out = cluster.run_job(_spec("exp-ok", loans["ids"]), timeout=60)
    assert out["bank_a"]["totals"] == plaintext_exposure(loans["ids"], loans["tables"])
    assert out["bank_b"]["totals"] is None
    # Submitting the identical job again is idempotent.
    with cluster.client("bank_a") as c:
        assert c.submit(_spec("exp-ok", loans["ids"]))["status"] == "done"


HTTP_ONLY = pytest.mark.parametrize("cluster", ["http"], indirect=True)


def _sender(
    cluster: Cluster,
    mailbox: Mailbox,
    identity: Identity | None = None,
    pins: dict[str, str] | None = None,
    **options: Any,
) -> Transport:
    """bank_a's transport to its peers as its node has it (HTTP or stream), optionally under
    another ``identity`` or with peer ``pins`` ``{peer: party whose certificate is pinned}``."""
    cfg = load_config(cluster.config_path("bank_a"))
    identity = identity or cfg.identity
    pins = pins or {}
    certs = {p: cluster.identity(pins.get(p, p)).cert.read_bytes() for p in cfg.peers}
    streamed = cfg.stream_peers()
    if streamed:
        peers = {p: StreamPeer(host, port, certs[p]) for p, (host, port, _) in streamed.items()}
        return StreamTransport(identity, peers, mailbox, **options)
    http = {p: Peer(p, cfg.peers[p].url, certs[p]) for p in cfg.peers}
    return HttpTransport(identity, http, mailbox, **options)


def _deliver(transport: Transport, key: MessageKey, payload: bytes) -> None:
    """Send and wait for the peer's disk: the streaming transport's send returns at once and
    reports a refusal at its flush."""
    transport.send(key, payload)
    flush = getattr(transport, "flush", None)
    if callable(flush):
        flush(20)


def _raw_client(cluster: Cluster, party: str, target: str) -> httpx.Client:
    ident = cluster.identity(party)
    peer_cert = cluster.identity(target).cert.read_bytes()
    return httpx.Client(
        base_url=cluster.parties[target]["url"], verify=client_context(ident, peer_cert), timeout=10
    )


@HTTP_ONLY
def test_unknown_certificate_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    stranger = create_identity("bank_a", tmp_path)  # same name, different key: not pinned
    target = cluster.identity("bank_b").cert.read_bytes()
    with (
        httpx.Client(verify=client_context(stranger, target), timeout=10) as client,
        pytest.raises((httpx.TransportError, ssl.SSLError)),
    ):
        client.get(cluster.parties["bank_b"]["url"] + "/health")
    with _raw_client(cluster, "bank_a", "bank_b") as ok:  # and the node keeps serving
        assert ok.get("/health").json()["party"] == "bank_b"


@HTTP_ONLY
def test_wrong_claimed_sender_is_refused(cluster: Cluster) -> None:
    with _raw_client(cluster, "bank_a", "bank_b") as client:
        resp = client.put("/v1/messages/j1/exposure/pk/bank_c/bank_b/0", content=b"x")
        assert resp.status_code == 403
        resp = client.put(
            "/v1/messages/j1/exposure/pk/bank_a/bank_b/0",
            content=b"x",
            headers={"X-Privfin-Sender": "bank_c"},
        )
        assert resp.status_code == 403
        resp = client.post("/v1/jobs", json=_spec("stolen", ["x"]))
        # the job API is not on the federation port at all (operator listener only)
        assert resp.status_code == 404
        assert client.get("/health").status_code == 200


@HTTP_ONLY
def test_replay_duplicate_and_conflict(cluster: Cluster) -> None:
    url = "/v1/messages/j2/exposure/pk/bank_a/bank_b/0"
    with _raw_client(cluster, "bank_a", "bank_b") as client:
        assert client.put(url, content=b"first").status_code == 201
        assert client.put(url, content=b"first").status_code == 200  # replay: dropped
        assert client.put(url, content=b"other").status_code == 409  # altered: refused


@HTTP_ONLY
def test_oversized_and_malformed_requests(cluster: Cluster) -> None:
    with _raw_client(cluster, "bank_a", "bank_b") as client:
        big = b"\0" * (256 * 1024 * 1024 + 1)
        resp = client.put("/v1/messages/j3/exposure/pk/bank_a/bank_b/0", content=big)
        assert resp.status_code == 413
        assert client.put(
            "/v1/messages/j3/exposure/pk/bank_a/bank_b/-1", content=b"x"
        ).status_code in (400, 422)
        assert (
            client.put("/v1/messages/j3/exposure/bad tag/bank_a/bank_b/0", content=b"x").status_code
            == 400
        )
        assert (
            client.put(
                "/v1/chunks/j3/exposure/pk/bank_a/bank_b/0",
                params={"index": 5, "total": 2, "digest": "0" * 64},
                content=b"x",
            ).status_code
            == 400
        )
        resp = client.post("/v1/abort/j3", content=b"not json")
        assert resp.status_code == 404  # no job j3 here (see test_adversarial_node for more)
        assert client.get("/health").status_code == 200


def test_malformed_payload_fails_the_job_cleanly(cluster: Cluster, loans: dict[str, Any]) -> None:
    # bank_c's public key slot for job exp-bad is pre-filled with garbage by bank_c itself.
    with _raw_client(cluster, "bank_c", "bank_a") as client:
        assert (
            client.put(
                "/v1/messages/exp-bad/exposure/pk/bank_c/bank_a/0", content=b"PF\x01\xff\xff"
            ).status_code
            == 201
        )
    spec = _spec("exp-bad", loans["ids"][:10])
    for p in PARTIES:
        with cluster.client(p) as c:
            c.submit(spec)
    # bank_a fails decoding the garbage — unless bank_c, whose own send of that key is refused
    # as a conflict, aborts first: either way the job fails cleanly, with a generic reason.
    with (
        cluster.client("bank_a") as c,
        pytest.raises(ProtocolAbort, match=r"DecodeError|bank_c: protocol aborted"),
    ):
        c.wait("exp-bad", timeout=60)


def test_replay_duplicate_and_conflict_through_the_transport(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The node's own transport (HTTP or stream): a replay is a success, other bytes under the
    same key are refused as a conflict naming the receiver."""
    transport = _sender(cluster, Mailbox(tmp_path / "m.db"), send_timeout=20)
    key = MessageKey("j2t", "exposure", "pk", "bank_a", "bank_b", 0)
    try:
        _deliver(transport, key, b"first")
        _deliver(transport, key, b"first")  # replay: dropped
        with pytest.raises(ProtocolAbort, match="bank_b"):
            _deliver(transport, key, b"other")
    finally:
        close = getattr(transport, "close", None)
        if callable(close):
            close()


def test_large_payload_streams_in_chunks(cluster: Cluster, tmp_path: Path) -> None:
    transport = _sender(cluster, Mailbox(tmp_path / "m.db"), chunk_size=1024 * 1024)
    payload = codec.encode({"x": np.arange(1_000_000, dtype=np.uint64)})  # 8 MB: 8 chunks
    key = MessageKey("big", "exposure", "blob", "bank_a", "bank_b", 0)
    transport.send(key, payload)
    transport.send(key, payload)  # retry of a whole chunked message: idempotent
    box = Mailbox(cluster.root / "bank_b" / "state" / "node.sqlite")
    got = box.wait(key, 10, CancelToken())
    assert got == payload
    getattr(transport, "close")()  # noqa: B009


def test_peer_that_never_answers_times_out(cluster: Cluster, tmp_path: Path) -> None:
    mailbox = Mailbox(tmp_path / "m.db")
    transport = _sender(cluster, mailbox, send_timeout=1.0)
    with pytest.raises(PeerTimeout) as info:
        transport.recv(
            MessageKey("quiet", "exposure", "pk", "bank_c", "bank_a", 0), 0.5, CancelToken()
        )
    assert info.value.peer == "bank_c" and info.value.tag == "pk"
    with pytest.raises(AuthenticationError):
        transport.send(MessageKey("quiet", "exposure", "pk", "bank_a", "bank_z", 0), b"x")
    getattr(transport, "close")()  # noqa: B009


def test_job_with_a_silent_party_fails_cleanly(cluster: Cluster, loans: dict[str, Any]) -> None:
    spec = _spec("exp-silent", loans["ids"][:10], timeout=2.0)
    for p in ["bank_a", "bank_b"]:  # bank_c never gets the job
        with cluster.client(p) as c:
            c.submit(spec)
    with cluster.client("bank_a") as c, pytest.raises(ProtocolAbort, match="bank_c"):
        c.wait("exp-silent", timeout=30)


def test_killed_node_restarts_and_the_job_completes(
    cluster: Cluster, loans: dict[str, Any]
) -> None:
    spec = _spec("exp-crash", loans["ids"])
    for p in ["bank_a", "bank_b"]:
        with cluster.client(p) as c:
            c.submit(spec)
    # bank_a and bank_b have sent their public keys to bank_c's mailbox; now bank_c crashes.
    box = Mailbox(cluster.root / "bank_c" / "state" / "node.sqlite")
    deadline = time.monotonic() + 20
    while box.count("exp-crash") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert box.count("exp-crash") == 2
    box.close()
    cluster.kill("bank_c")
    time.sleep(0.5)
    cluster.start("bank_c")
    with cluster.client("bank_c") as c:
        c.wait_healthy(30)
    out = cluster.run_job(spec, submit_to=["bank_c"], timeout=60)
    assert out["bank_a"]["totals"] == plaintext_exposure(loans["ids"], loans["tables"])


def test_transport_reports_tls_authentication_failures(cluster: Cluster, tmp_path: Path) -> None:
    key = MessageKey("auth", "exposure", "pk", "bank_a", "bank_b", 0)
    # bank_b's address pinned with bank_c's certificate: the server is not who we pinned.
    t = _sender(cluster, Mailbox(tmp_path / "a.db"), pins={"bank_b": "bank_c"}, send_timeout=20)
    with pytest.raises(AuthenticationError, match="not the one pinned"):
        _deliver(t, key, b"x")
    getattr(t, "close")()  # noqa: B009
    # A stranger key under bank_a's name: bank_b's node refuses the client certificate.
    stranger = create_identity("bank_a", tmp_path / "s")
    t = _sender(cluster, Mailbox(tmp_path / "b.db"), identity=stranger, send_timeout=20)
    with pytest.raises(AuthenticationError, match="does not pin"):
        _deliver(t, key, b"x")
    getattr(t, "close")()  # noqa: B009


def test_killed_node_resumes_its_running_job(cluster: Cluster, loans: dict[str, Any]) -> None:
    """bank_c has the job and has sent its public key when it crashes; on restart it resumes the
    job from its records and checkpoint, resends byte-identical messages (dropped by peers as
    duplicates, never refused as conflicts) and the job completes."""
    spec = _spec("exp-resume", loans["ids"])
    for p in ["bank_c", "bank_b"]:
        with cluster.client(p) as c:
            c.submit(spec)
    box = Mailbox(cluster.root / "bank_b" / "state" / "node.sqlite")
    deadline = time.monotonic() + 20
    while box.count("exp-resume") < 1 and time.monotonic() < deadline:  # bank_c's key arrived
        time.sleep(0.1)
    box.close()
    cluster.kill("bank_c")
    cluster.start("bank_c")
    with cluster.client("bank_c") as c:
        c.wait_healthy(30)
        assert c.status("exp-resume")["status"] == "running"  # resumed, not resubmitted
    out = cluster.run_job(spec, submit_to=["bank_a"], timeout=60)
    assert out["bank_a"]["totals"] == plaintext_exposure(loans["ids"], loans["tables"])
