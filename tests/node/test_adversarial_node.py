"""Issue [08] items 7, 8, 9 and 13 against real node processes over mutual TLS: a pinned peer
playing the attacker with its own certificate and raw HTTP requests.

One cluster per module (three lenders), restarted once with small quotas so the limits are
reached with small data: max_message_size 1 MiB, a pre-job buffer of 8 messages / 2 MiB per
peer, chunks abandoned for more than 2 s swept every second.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import stat
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
from typer.testing import CliRunner

from privfin.cli.main import app as cli_app
from privfin.federation.mailbox import Mailbox
from privfin.federation.tls import client_context
from privfin.mpc.exposure import plaintext_exposure
from privfin.node.client import NodeClient
from privfin.node.cluster import Cluster, cluster_up

pytestmark = pytest.mark.cluster
PARTIES = ["bank_a", "bank_b", "bank_c"]
SECRET_COLUMN = "amount_owed_by_ACME_Holdings_175788512"
MAX_MESSAGE = 1024 * 1024


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("advdata")
    rng = random.Random(8)
    ids = [f"C{i:04d}" for i in range(40)]
    tables, paths = {}, {}
    for p in PARTIES:
        rows = [(i, rng.randrange(1, 10**9)) for i in ids if rng.random() < 0.6]
        df = pd.DataFrame(rows, columns=["id", "outstanding_cents"])
        paths[p] = root / f"{p}.csv"
        df.to_csv(paths[p], index=False)
        tables[p] = df
    # bank_b's second dataset has a private schema: the column name itself is confidential.
    bad = root / "bank_b_private_schema.csv"
    pd.DataFrame({"id": ids[:5], SECRET_COLUMN: [1, 2, 3, 4, 5]}).to_csv(bad, index=False)
    return {"ids": ids, "tables": tables, "paths": paths, "bad": bad}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, data: dict[str, Any]) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("advcluster")
    datasets: dict[str, dict[str, str | Path]] = {p: {"loans": data["paths"][p]} for p in PARTIES}
    datasets["bank_b"]["private"] = data["bad"]
    c = cluster_up(PARTIES, root, datasets=datasets, message_timeout=20)
    try:
        c.down()  # restart with small limits
        for p in PARTIES:
            path = c.config_path(p)
            cfg = yaml.safe_load(path.read_text())
            cfg["max_message_size"] = MAX_MESSAGE
            cfg["quotas"] = {
                "prejob_messages": 8,
                "prejob_bytes": 2 * MAX_MESSAGE,
                "prejob_ttl": 60,
            }
            cfg["retention"] = {"chunk_ttl": 2, "sweep_interval": 1, "abort_retry_for": 120}
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            c.start(p)
        c.wait_healthy()
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


def _raw(cluster: Cluster, party: str, target: str) -> httpx.Client:
    ident = cluster.identity(party)
    return httpx.Client(
        base_url=cluster.parties[target]["url"],
        verify=client_context(ident, cluster.identity(target).cert.read_bytes()),
        timeout=30,
    )


def _failed(cluster: Cluster, party: str, job: str, timeout: float = 30.0) -> dict[str, Any]:
    status: dict[str, Any] = _until(
        lambda: (s := _status(cluster, party, job))["status"] == "failed" and s,
        timeout,
        message=f"{job} to fail at {party}",
    )
    return status


def _log(cluster: Cluster, party: str) -> str:
    return (cluster.root / party / "node.log").read_text(errors="replace")


def test_logs_are_private(cluster: Cluster) -> None:
    for p in PARTIES:
        mode = stat.S_IMODE(os.stat(cluster.root / p / "node.log").st_mode)
        assert mode & 0o077 == 0, oct(mode)


def test_peer_outside_the_job_cannot_abort_it_and_names_are_checked(
    cluster: Cluster, data: dict[str, Any]
) -> None:
    # A job between bank_a and bank_b only; bank_b never submits, so bank_a waits on it.
    spec = _spec("adv-outsider", data["ids"][:5], timeout=30)
    spec["roles"] = {"bank_a": ["lender", "result"], "bank_b": ["lender"]}
    spec["inputs"] = {"bank_a": {"loans": "loans"}, "bank_b": {"loans": "loans"}}
    with cluster.client("bank_a") as c:
        c.submit(spec)
    with _raw(cluster, "bank_c", "bank_a") as mallory:
        resp = mallory.post("/v1/abort/adv-outsider", json={"reason": "stop"})
        assert resp.status_code == 404  # same answer as for a job that does not exist
        assert mallory.post("/v1/abort/adv-nonexistent", json={"reason": "x"}).status_code == 404
        # Messages of a job it is not part of are refused too.
        resp = mallory.put("/v1/messages/adv-outsider/exposure/pk/bank_c/bank_a/0", content=b"x")
        assert resp.status_code == 403
        # Names: dot-only and over-long job ids, on every endpoint.
        for bad in ("%2E%2E", "%2E", "j" * 8000):
            assert mallory.post(f"/v1/abort/{bad}", json={"reason": "x"}).status_code == 400
            resp = mallory.put(f"/v1/messages/{bad}/exposure/pk/bank_c/bank_a/0", content=b"x")
            assert resp.status_code == 400
    with cluster.client("bank_a") as c:
        assert c._http.get("/v1/jobs/%2E%2E").status_code == 400
        assert c._http.post("/v1/jobs/adv-nonexistent/cancel").status_code == 404
    time.sleep(0.5)
    assert _status(cluster, "bank_a", "adv-outsider")["status"] == "running"

    # bank_b is a party: garbage and oversize abort bodies are refused cleanly...
    with _raw(cluster, "bank_b", "bank_a") as peer:
        assert peer.post("/v1/abort/adv-outsider", json=["reason"]).status_code == 400
        assert peer.post("/v1/abort/adv-outsider", content=b"not json").status_code == 400
        assert peer.post("/v1/abort/adv-outsider", json={"reason": 7}).status_code == 400
        big = json.dumps({"reason": "x" * 150_000}).encode()
        assert peer.post("/v1/abort/adv-outsider", content=big).status_code == 413
        assert _status(cluster, "bank_a", "adv-outsider")["status"] == "running"
        # ...and a forged log line in its reason stays on one escaped line, capped.
        forged = "ok\n2026-01-01 00:00:00 INFO privfin.node.audit: FORGED-LINE " + "y" * 500
        assert peer.post("/v1/abort/adv-outsider", json={"reason": forged}).status_code == 200
    status = _failed(cluster, "bank_a", "adv-outsider", timeout=10)
    assert "bank_b" in status["error"]
    assert "\n" not in status["error"] and "y" * 201 not in status["error"]
    log = _log(cluster, "bank_a")
    assert "FORGED-LINE" in log  # the reason is logged...
    assert not any(line.startswith("2026-01-01") for line in log.splitlines())  # ...not forged


def test_messages_for_unknown_jobs_are_bounded(cluster: Cluster) -> None:
    """Pre-job buffer: 8 messages (or 2 MiB) per peer for jobs the node has not started;
    beyond that 429 (the honest sender retries until the job is submitted here)."""
    with _raw(cluster, "bank_c", "bank_b") as mallory:
        codes = [
            mallory.put(
                f"/v1/messages/adv-flood-{i}/exposure/pk/bank_c/bank_b/0", content=b"m"
            ).status_code
            for i in range(20)
        ]
        assert codes[:8] == [201] * 8
        assert set(codes[8:]) == {429}
    # Bytes: another peer's buffer is separate, and bounded by bytes too.
    with _raw(cluster, "bank_a", "bank_b") as other:
        blob = b"\1" * (800 * 1024)
        codes = [
            other.put(f"/v1/messages/adv-fb/c/t/bank_a/bank_b/{i}", content=blob).status_code
            for i in range(3)
        ]
        assert codes == [201, 201, 429]  # 2.4 MB > 2 MiB
    box = Mailbox(cluster.root / "bank_b" / "state" / "node.sqlite")
    assert sum(box.count(f"adv-flood-{i}") for i in range(20)) == 8
    box.close()


def test_chunked_message_over_the_limit_is_refused(cluster: Cluster) -> None:
    """The limit holds on the assembled message, whatever the chunking; abandoned chunks are
    swept after chunk_ttl."""
    part = b"\2" * (400 * 1024)
    url = "/v1/chunks/adv-chunks/exposure/blob/bank_a/bank_c/0"
    with _raw(cluster, "bank_a", "bank_c") as peer:
        params: dict[str, Any] = {"total": 3, "digest": "0" * 64}
        assert peer.put(url, params={**params, "index": 0}, content=part).status_code == 201
        assert peer.put(url, params={**params, "index": 1}, content=part).status_code == 201
        resp = peer.put(url, params={**params, "index": 2}, content=part)
        assert resp.status_code == 413  # 1.2 MB assembled > 1 MiB
        # A single chunk may not exceed the limit either, nor may total x chunk be absurd.
        resp = peer.put(
            "/v1/chunks/adv-chunks/exposure/blob/bank_a/bank_c/1",
            params={**params, "index": 0, "total": 2},
            content=b"\3" * (MAX_MESSAGE + 1),
        )
        assert resp.status_code == 413
        resp = peer.put(
            "/v1/chunks/adv-chunks/exposure/blob/bank_a/bank_c/2",
            params={**params, "index": 0, "total": 10**6},
            content=b"x",
        )
        assert resp.status_code == 413
    db = cluster.root / "bank_c" / "state" / "node.sqlite"

    def chunks_left() -> int:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM chunks").fetchone()[0])

    _until(lambda: chunks_left() == 0, timeout=15, message="abandoned chunks to be swept")


def test_failing_party_leaks_nothing_to_its_peers(cluster: Cluster, data: dict[str, Any]) -> None:
    """bank_b's input has a confidential schema; bank_b fails before bank_a and bank_c have
    even started. They learn ``bank_b: input rejected`` (the abort is retried until they have
    the job) and nothing of the schema; bank_b's own status and log keep the detail."""
    spec = _spec("adv-leak", data["ids"][:10], timeout=20)
    spec["inputs"]["bank_b"] = {"loans": "private"}
    with cluster.client("bank_b") as c:
        c.submit(spec)
    own = _failed(cluster, "bank_b", "adv-leak")
    assert SECRET_COLUMN in own["error"]  # the operator of bank_b sees what went wrong
    time.sleep(1.0)  # bank_b's abort is refused (404) by the others until they have the job
    start = time.monotonic()
    for p in ("bank_a", "bank_c"):
        with cluster.client(p) as c:
            c.submit(spec)
    for p in ("bank_a", "bank_c"):
        status = _failed(cluster, p, "adv-leak", timeout=15)
        # bank_b's own reason, or (if the other lender relayed it first) "stopped because
        # bank_b aborted the job"
        assert "bank_b" in status["error"]
        assert "input rejected" in status["error"] or "bank_b aborted" in status["error"]
        assert SECRET_COLUMN not in status["error"]
        assert SECRET_COLUMN not in _log(cluster, p)

        def aborts(p: str = p) -> list[tuple[str, str]]:
            with sqlite3.connect(cluster.root / p / "state" / "node.sqlite") as conn:
                query = "SELECT sender, reason FROM aborts WHERE job = 'adv-leak'"
                return conn.execute(query).fetchall()

        # what bank_b said, all it said (its abort is retried until every party has it)
        got = _until(lambda: ("bank_b", "bank_b: input rejected") in aborts() and aborts(), 15)
        assert all(SECRET_COLUMN not in reason for _, reason in got)
    assert time.monotonic() - start < 15  # stopped by the retried abort, not by a timeout
    assert SECRET_COLUMN in _log(cluster, "bank_b")


def test_abort_is_relayed_to_parties_that_missed_it(cluster: Cluster, data: dict[str, Any]) -> None:
    """bank_b tells only bank_a that it aborts; bank_a relays, so bank_c stops too."""
    spec = _spec("adv-relay", data["ids"][:5], timeout=30)
    for p in ("bank_a", "bank_c"):
        with cluster.client(p) as c:
            c.submit(spec)
    with _raw(cluster, "bank_b", "bank_a") as peer:
        assert peer.post("/v1/abort/adv-relay", json={"reason": "bank_b: x"}).status_code == 200
    status = _failed(cluster, "bank_c", "adv-relay", timeout=15)
    assert "bank_a" in status["error"] and "bank_b aborted" in status["error"]


def test_payloads_are_deleted_at_job_end(cluster: Cluster, data: dict[str, Any]) -> None:
    spec = _spec("adv-done", data["ids"])
    out = cluster.run_job(spec, timeout=60)
    assert out["bank_a"]["totals"] == plaintext_exposure(data["ids"], data["tables"])
    for p in PARTIES:
        box = Mailbox(cluster.root / p / "state" / "node.sqlite")
        assert box.count("adv-done") > 0  # digests and sizes kept for audit
        _until(lambda b=box: b.payload_bytes("adv-done") == 0, 10, message="payload purge")
        box.close()


def test_refused_start_cancels_the_parties_already_started(
    cluster: Cluster, data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1. A party that would refuse is found before anything starts.
    spec = _spec("adv-refused", data["ids"][:5])
    spec["inputs"]["bank_c"] = {"loans": "no_such_dataset"}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        cli_app, ["job", "run", "--spec", str(path), "--dir", str(cluster.root)]
    )
    assert result.exit_code == 1
    assert "bank_c refused" in result.output and "no_such_dataset" in result.output
    assert "nothing was started" in result.output
    with cluster.client("bank_a") as c, pytest.raises(httpx.HTTPStatusError):
        c.status("adv-refused")

    # 2. A party that passes the check but refuses the start (a race, here forced by skipping
    #    the check): the parties already started are cancelled, and stop.
    monkeypatch.setattr(NodeClient, "check", lambda self, spec: None)
    spec = _spec("adv-refused-late", data["ids"][:5], timeout=30)
    spec["inputs"]["bank_c"] = {"loans": "no_such_dataset"}
    path.write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        cli_app, ["job", "run", "--spec", str(path), "--dir", str(cluster.root)]
    )
    assert result.exit_code == 1
    assert "bank_c refused to start" in result.output
    assert "bank_a: cancelled" in result.output and "bank_b: cancelled" in result.output
    for p in ("bank_a", "bank_b"):
        status = _failed(cluster, p, "adv-refused-late", timeout=10)
        assert "cancelled" in status["error"]


def test_restarted_node_does_not_resume_a_job_its_peers_failed(
    cluster: Cluster, data: dict[str, Any]
) -> None:
    """bank_c crashes while in a job; meanwhile bank_a's operator cancels it there. Even with
    bank_a's retried abort given up (outbox emptied, as after abort_retry_for), the restarted
    bank_c asks the job's parties and stops instead of resuming."""
    spec = _spec("adv-resume", data["ids"][:5], timeout=60)
    for p in ("bank_c", "bank_a"):
        with cluster.client(p) as c:
            c.submit(spec)
    cluster.kill("bank_c")
    with cluster.client("bank_a") as c:
        assert c.cancel("adv-resume")
    _failed(cluster, "bank_a", "adv-resume", timeout=10)
    with sqlite3.connect(cluster.root / "bank_a" / "state" / "node.sqlite") as conn:
        conn.execute("DELETE FROM abort_outbox WHERE job = 'adv-resume'")
    cluster.start("bank_c")
    with cluster.client("bank_c") as c:
        c.wait_healthy(30)
    status = _failed(cluster, "bank_c", "adv-resume", timeout=15)
    assert "bank_a: cancelled by its operator" in status["error"]
    with _raw(cluster, "bank_c", "bank_a") as peer:  # what bank_c asked: the generic reason
        answer = peer.get("/v1/abort/adv-resume").json()
        assert answer == {"failed": True, "reason": "bank_a: cancelled by its operator"}
        assert peer.get("/v1/abort/adv-outsider").status_code == 404  # not its job
